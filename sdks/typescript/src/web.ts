/**
 * Browser entry point of the SDK (`import … from "@openclinica/participants-sdk/web"`): the same
 * clients, typed error and paging helpers as the Node entry point, over gRPC-Web
 * (`@connectrpc/connect-web`, fetch over HTTP/1.1 or HTTP/2), which the service serves on its gRPC
 * port. A page served from another origin must be in the server's `--grpc-web-cors-origins` list.
 * Nothing here needs Node: it also runs in Node >= 20 (global fetch), which is how it is tested.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport, type GrpcWebTransportOptions } from "@connectrpc/connect-web";
import { AuditService } from "./gen/openclinica/participants/v1/audit_service_pb.js";
import { ParticipantService } from "./gen/openclinica/participants/v1/participant_service_pb.js";
import { bearerInterceptor, type AuditClient, type ParticipantsClient, type TokenSource } from "./core.js";

export * from "./core.js";

export interface WebClientOptions extends Partial<Omit<GrpcWebTransportOptions, "baseUrl">> {
  /** The service's gRPC port as a URL, e.g. `https://participants.example.org` or `http://127.0.0.1:50051`. */
  baseUrl: string;
  token: TokenSource;
}

function transport(options: WebClientOptions) {
  const { token, interceptors = [], ...transportOptions } = options;
  return createGrpcWebTransport({
    ...transportOptions,
    interceptors: [...interceptors, bearerInterceptor(token)],
  });
}

/** A typed ParticipantService client over gRPC-Web, authenticating every call. */
export function createParticipantsClient(options: WebClientOptions): ParticipantsClient {
  return createClient(ParticipantService, transport(options));
}

/** A typed AuditService client over gRPC-Web, authenticating every call. */
export function createAuditClient(options: WebClientOptions): AuditClient {
  return createClient(AuditService, transport(options));
}
