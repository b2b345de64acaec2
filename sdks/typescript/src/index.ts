/**
 * TypeScript SDK of the OpenClinica participant service, for Node (Connect-ES v2 over gRPC /
 * HTTP/2). Browsers use the `@openclinica/participants-sdk/web` entry point (gRPC-Web) instead.
 *
 * The generated code lives in ./gen (protoc-gen-es v2); this module re-exports it and adds what
 * every caller needs on top of it:
 *
 *  - createParticipantsClient / createAuditClient / bearerInterceptor: clients that send
 *    `authorization: Bearer <token>` with every call;
 *  - decodeError: turns an error thrown by a call into a ParticipantsError holding the typed
 *    ErrorReason, the OpenClinica errorCode and the field violations of a validation error;
 *  - listAllParticipants / listAllAuditEvents: async iterators over every page of a list;
 *  - importParticipants: streams rows to ImportParticipants, one ImportRowResult per row.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { AuditService } from "./gen/openclinica/participants/v1/audit_service_pb.js";
import { ParticipantService } from "./gen/openclinica/participants/v1/participant_service_pb.js";
import { bearerInterceptor, type AuditClient, type ParticipantsClient, type TokenSource } from "./core.js";

export * from "./core.js";

export interface ParticipantsClientOptions extends Partial<Omit<GrpcTransportOptions, "baseUrl">> {
  /** For example `http://127.0.0.1:50051` (plaintext HTTP/2) or `https://participants.example.org`. */
  baseUrl: string;
  token: TokenSource;
}

function transport(options: ParticipantsClientOptions) {
  const { token, interceptors = [], ...transportOptions } = options;
  return createGrpcTransport({
    ...transportOptions,
    interceptors: [...interceptors, bearerInterceptor(token)],
  });
}

/** A typed ParticipantService client over the gRPC protocol (HTTP/2), authenticating every call. */
export function createParticipantsClient(options: ParticipantsClientOptions): ParticipantsClient {
  return createClient(ParticipantService, transport(options));
}

/** A typed AuditService client over the gRPC protocol (HTTP/2), authenticating every call. */
export function createAuditClient(options: ParticipantsClientOptions): AuditClient {
  return createClient(AuditService, transport(options));
}
