/**
 * TypeScript SDK of the OpenClinica participant service (Connect-ES v2 over gRPC / HTTP/2).
 *
 * The generated code lives in ./gen (protoc-gen-es v2); this module re-exports it and adds what
 * every caller needs on top of it:
 *
 *  - createParticipantsClient / bearerInterceptor: a client that sends
 *    `authorization: Bearer <token>` with every call;
 *  - decodeError: turns an error thrown by a call into a ParticipantsError holding the typed
 *    ErrorReason, the OpenClinica errorCode and the field violations of a validation error.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/openclinica/participants/v1/error_reason_pb.js";
import { ParticipantService } from "./gen/openclinica/participants/v1/participant_service_pb.js";

export * from "./gen/openclinica/participants/v1/error_reason_pb.js";
export * from "./gen/openclinica/participants/v1/participant_pb.js";
export * from "./gen/openclinica/participants/v1/participant_service_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

/** The google.rpc.ErrorInfo domain of every error the service sends. */
export const ERROR_DOMAIN = "participants.openclinica.v1";

/** A bearer token, or a function returning a fresh one for each call. */
export type TokenSource = string | (() => string | Promise<string>);

/** An interceptor that sends `authorization: Bearer <token>`; an empty token sends none. */
export function bearerInterceptor(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    const value = typeof token === "function" ? await token() : token;
    if (value) {
      req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}

export type ParticipantsClient = Client<typeof ParticipantService>;

export interface ParticipantsClientOptions extends Partial<Omit<GrpcTransportOptions, "baseUrl">> {
  /** For example `http://127.0.0.1:50051` (plaintext HTTP/2) or `https://participants.example.org`. */
  baseUrl: string;
  token: TokenSource;
}

/** A typed ParticipantService client over the gRPC protocol (HTTP/2), authenticating every call. */
export function createParticipantsClient(options: ParticipantsClientOptions): ParticipantsClient {
  const { token, interceptors = [], ...transportOptions } = options;
  const transport = createGrpcTransport({
    ...transportOptions,
    interceptors: [...interceptors, bearerInterceptor(token)],
  });
  return createClient(ParticipantService, transport);
}

/** One broken validation rule (a google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** Request path, e.g. `contact.first_name` or `subject_key`. */
  field: string;
  /** The typed reason, e.g. `ErrorReason.FIRST_NAME_TOO_LONG`. */
  reason: ErrorReason;
  /** The reason as sent, e.g. `FIRST_NAME_TOO_LONG`. */
  reasonName: string;
  /** Human-readable English description. */
  description: string;
}

/** Maps a reason such as `FIRST_NAME_TOO_LONG` to the enum; unknown names give UNSPECIFIED. */
export function errorReasonFromName(name: string): ErrorReason {
  const value = ErrorReasonSchema.values.find((v) => v.name === `ERROR_REASON_${name}`);
  return value && name ? (value.number as ErrorReason) : ErrorReason.UNSPECIFIED;
}

/** The proto name of an ErrorReason value, e.g. `ERROR_REASON_FIRST_NAME_TOO_LONG`. */
export function errorReasonValueName(reason: ErrorReason): string {
  return ErrorReasonSchema.value[reason]?.name ?? `${reason}`;
}

/** A failed call, decoded from its google.rpc.Status (the `grpc-status-details-bin` trailer). */
export class ParticipantsError extends Error {
  override readonly name = "ParticipantsError";
  /** The gRPC status code. */
  readonly code: Code;
  /** The status message without the code prefix. */
  readonly rawMessage: string;
  /** ErrorInfo.reason as the generated enum (UNSPECIFIED when absent or unknown). */
  readonly reason: ErrorReason;
  /** ErrorInfo.reason as sent, e.g. `FIRST_NAME_TOO_LONG`. */
  readonly reasonName: string;
  /** ErrorInfo.domain. */
  readonly domain: string;
  /** ErrorInfo.metadata: `errorCode` plus `studyOid` / `siteOid` where known. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every broken validation rule (empty unless a validation error). */
  readonly fieldViolations: readonly FieldViolation[];
  /** google.rpc.RetryInfo's delay in milliseconds (STORAGE_UNAVAILABLE), if any. */
  readonly retryDelayMs: number | undefined;

  constructor(cause: ConnectError) {
    const info = cause.findDetails(ErrorInfoSchema)[0];
    const reasonName = info?.reason ?? "";
    super(`${cause.message}${reasonName ? ` [${reasonName}]` : ""}`, { cause });
    this.code = cause.code;
    this.rawMessage = cause.rawMessage;
    this.reasonName = reasonName;
    this.reason = errorReasonFromName(reasonName);
    this.domain = info?.domain ?? "";
    this.metadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = cause.findDetails(BadRequestSchema).flatMap((b) =>
      b.fieldViolations.map((v) => ({
        field: v.field,
        reason: errorReasonFromName(v.reason),
        reasonName: v.reason,
        description: v.description,
      })),
    );
    const retry = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = retry ? Number(retry.seconds) * 1000 + Math.round(retry.nanos / 1e6) : undefined;
  }

  /** The OpenClinica error code, e.g. `errorCode.firstNameTooLong` (empty if absent). */
  get errorCode(): string {
    return this.metadata["errorCode"] ?? "";
  }
}

/** Decodes anything thrown by a client call (non-Connect errors become Code.Unknown). */
export function decodeError(error: unknown): ParticipantsError {
  return error instanceof ParticipantsError ? error : new ParticipantsError(ConnectError.from(error));
}
