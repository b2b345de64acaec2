/**
 * The transport-neutral part of the SDK, shared by the Node entry point (`index.ts`, gRPC over
 * HTTP/2) and the browser one (`web.ts`, gRPC-Web): the generated code, the bearer-token
 * interceptor, the typed error, the paging helpers and the import helper.
 */
import { Code, ConnectError, type CallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/openclinica/participants/v1/error_reason_pb.js";
import type { AuditEvent, AuditService, ListAuditEventsRequestSchema } from "./gen/openclinica/participants/v1/audit_service_pb.js";
import type { Participant } from "./gen/openclinica/participants/v1/participant_pb.js";
import type { Status } from "./gen/google/rpc/status_pb.js";
import type {
  ImportResult,
  ListParticipantsRequestSchema,
  ParticipantService,
  UpsertParticipantRequestSchema,
  UpsertParticipantResponse,
} from "./gen/openclinica/participants/v1/participant_service_pb.js";

export * from "./gen/openclinica/participants/v1/audit_service_pb.js";
export * from "./gen/openclinica/participants/v1/error_reason_pb.js";
export * from "./gen/openclinica/participants/v1/participant_pb.js";
export * from "./gen/openclinica/participants/v1/participant_service_pb.js";
export { type Status, StatusSchema } from "./gen/google/rpc/status_pb.js";
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

/** A typed AuditService client (ListAuditEvents). */
export type AuditClient = Client<typeof AuditService>;

/**
 * Every Participant of a ListParticipants query, page after page (`request.pageSize` per call,
 * from `request.pageToken` on), following `nextPageToken` until the last page:
 * `for await (const p of listAllParticipants(client, { scope })) …`. A failed page throws as the
 * call would (decode it with decodeError).
 */
export async function* listAllParticipants(
  client: ParticipantsClient,
  request: MessageInitShape<typeof ListParticipantsRequestSchema>,
  options?: CallOptions,
): AsyncGenerator<Participant, void, undefined> {
  let pageToken = request.pageToken ?? "";
  do {
    const page = await client.listParticipants({ ...request, pageToken }, options);
    yield* page.participants;
    pageToken = page.nextPageToken;
  } while (pageToken);
}

/** Every audit event of a ListAuditEvents query, oldest first, page after page (as listAllParticipants). */
export async function* listAllAuditEvents(
  client: AuditClient,
  request: MessageInitShape<typeof ListAuditEventsRequestSchema>,
  options?: CallOptions,
): AsyncGenerator<AuditEvent, void, undefined> {
  let pageToken = request.pageToken ?? "";
  do {
    const page = await client.listAuditEvents({ ...request, pageToken }, options);
    yield* page.events;
    pageToken = page.nextPageToken;
  } while (pageToken);
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

/**
 * Decodes a google.rpc.Status message, such as the `error` of an ImportResult, into the same
 * ParticipantsError a failed unary call gives.
 */
export function decodeStatus(status: Status): ParticipantsError {
  const cause = new ConnectError(status.message, status.code as Code);
  // The details as they come off the wire (type name + bytes): findDetails() decodes them.
  cause.details = status.details.map((any) => ({
    type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1),
    value: any.value,
  }));
  return new ParticipantsError(cause);
}

/** The answer for one row of importParticipants: the response, or the typed error. */
export type ImportRowResult =
  | { /** The row's 0-based position in the input. */ index: number; ok: true; response: UpsertParticipantResponse; error?: undefined }
  | { /** The row's 0-based position in the input. */ index: number; ok: false; response?: undefined; error: ParticipantsError };

/** Turns a generated ImportResult into an ImportRowResult (the Status decoded by decodeStatus). */
export function decodeImportResult(result: ImportResult): ImportRowResult {
  const index = Number(result.index);
  switch (result.outcome.case) {
    case "response":
      return { index, ok: true, response: result.outcome.value };
    case "error":
      return { index, ok: false, error: decodeStatus(result.outcome.value) };
    default: // an outcome of a newer server that this SDK does not know
      return { index, ok: false, error: new ParticipantsError(new ConnectError("the row's outcome is not known to this SDK", Code.Unknown)) };
  }
}

/**
 * Streams rows to ImportParticipants and yields one ImportRowResult per row, as the server commits
 * them (not necessarily in input order: see `index`):
 * `for await (const r of importParticipants(client, rows)) if (!r.ok) console.log(r.index, r.error.reasonName)`.
 *
 * `rows` may be an array, any iterable or an async iterable (a generator over a file, say): the
 * transport takes the next row only when the previous one has been written to the HTTP/2 stream,
 * so a large input is never read into memory. A refused row is a result with its ParticipantsError
 * and the stream goes on; a failure of the whole stream (no token, the server going away) throws a
 * ParticipantsError after the results already yielded. Give every row a `requestId` so that
 * re-sending the input after such a failure writes nothing twice. Set no `timeoutMs` for a long
 * import: the server cuts a client that stays silent instead. Leaving the loop early cancels the
 * stream (rows already committed stay written), as does `options.signal`.
 *
 * Needs a transport with client streaming: the Node entry point (gRPC over HTTP/2). gRPC-Web (the
 * `/web` entry point) has none, and the call fails there.
 */
export async function* importParticipants(
  client: ParticipantsClient,
  rows:
    | Iterable<MessageInitShape<typeof UpsertParticipantRequestSchema>>
    | AsyncIterable<MessageInitShape<typeof UpsertParticipantRequestSchema>>,
  options?: CallOptions,
): AsyncGenerator<ImportRowResult, void, undefined> {
  const abort = new AbortController();
  const outer = options?.signal;
  const onAbort = () => abort.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  outer?.addEventListener("abort", onAbort);
  async function* pull() {
    for await (const row of rows) yield row;
  }
  try {
    for await (const result of client.importParticipants(pull(), { ...options, signal: abort.signal })) {
      yield decodeImportResult(result);
    }
  } catch (error) {
    throw decodeError(error);
  } finally {
    outer?.removeEventListener("abort", onAbort);
    abort.abort();
  }
}
