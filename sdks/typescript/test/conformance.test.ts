// TypeScript runner of the SDK conformance suite (sdks/conformance/cases.json).
//
// Needs a live server: PARTICIPANTS_ADDR (host:port) and PARTICIPANTS_TOKENS_FILE ({"user": "jwt"}).
// Optional: CONFORMANCE_CASES (path of cases.json), CONFORMANCE_OUT (JSON-lines file to which one
// normalized outcome per case is appended, for the driver's cross-language comparison).
// CONFORMANCE_TRANSPORT=grpc-web runs the same cases through the browser entry point
// (`@openclinica/participants-sdk/web`: gRPC-Web over fetch) instead of gRPC over HTTP/2.
// Driven by sdks/run-conformance.sh; skipped when PARTICIPANTS_ADDR is not set.
import assert from "node:assert/strict";
import { appendFileSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import {
  Code,
  ErrorReason,
  GetParticipantRequestSchema,
  ListAuditEventsRequestSchema,
  ListAuditEventsResponseSchema,
  ListParticipantsRequestSchema,
  ListParticipantsResponseSchema,
  ParticipantSchema,
  UpsertParticipantRequestSchema,
  UpsertParticipantResponseSchema,
  decodeError,
  errorReasonValueName,
  importParticipants,
  type ParticipantsError,
  listAllAuditEvents,
  listAllParticipants,
} from "../src/index.js";
import * as node from "../src/index.js";
import * as web from "../src/web.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Expectation {
  code: string;
  reason?: string;
  errorCode?: string;
  metadata?: Record<string, string>;
  fieldViolations?: { field: string; reason: string }[];
  noEcho?: string[];
  response?: Json;
  /** ImportParticipants: one expectation per row, by index. */
  results?: (Expectation & { index: number })[];
}
interface Case {
  name: string;
  rpc: "UpsertParticipant" | "GetParticipant" | "ListParticipants" | "ListAuditEvents" | "ImportParticipants";
  /** A case that checks what an earlier ImportParticipants case wrote. */
  requires?: "ImportParticipants";
  /** "all": through the paging helper, every page concatenated into one response. */
  pages?: "all";
  user?: string;
  token?: string;
  request: JsonValue;
  /** ImportParticipants: the rows. */
  requests?: JsonValue[];
  expect: Expectation;
}

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to dist/test/, so the repository's sdks/ folder is three levels up.
const casesPath = process.env.CONFORMANCE_CASES ?? resolve(here, "../../../conformance/cases.json");
const suite = JSON.parse(readFileSync(casesPath, "utf8")) as { errorDomain: string; cases: Case[] };
const addr = process.env.PARTICIPANTS_ADDR ?? "";
const VOLATILE = new Set(["createTime", "updateTime", "etag", "accessCode", "nextPageToken", "eventId", "time", "hash", "requestId"]);
const sdk = process.env.CONFORMANCE_TRANSPORT === "grpc-web" ? web : node;

/** Canonical gRPC code names, indexed by code number (Code.InvalidArgument === 3, …). */
const CODE_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];
const codeName = (code: Code): string => CODE_NAMES[code] ?? String(code);

/** The matcher of cases.json: objects as subsets, "$" matchers, exact scalars. */
export function match(expected: Json, actual: Json | undefined, path: string, missing = false): string[] {
  if (typeof expected === "string" && expected.startsWith("$")) {
    if (expected === "$absent") return missing ? [] : [`${path}: expected absent, got ${JSON.stringify(actual)}`];
    if (expected === "$empty") return missing || actual === "" ? [] : [`${path}: expected empty, got ${JSON.stringify(actual)}`];
    if (missing) return [`${path}: missing, expected ${expected}`];
    if (expected === "$nonempty") return typeof actual === "string" && actual !== "" ? [] : [`${path}: expected non-empty, got ${JSON.stringify(actual)}`];
    if (expected.startsWith("$re:")) {
      return typeof actual === "string" && new RegExp(expected.slice(4)).test(actual)
        ? [] : [`${path}: ${JSON.stringify(actual)} does not match ${expected.slice(4)}`];
    }
    throw new Error(`unknown matcher ${expected}`);
  }
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    const obj = missing ? {} : actual;
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return [`${path}: expected an object, got ${JSON.stringify(actual)}`];
    return Object.entries(expected).flatMap(([k, v]) => match(v, (obj as Record<string, Json>)[k], `${path}.${k}`, !(k in obj)));
  }
  if (missing) return [`${path}: missing, expected ${JSON.stringify(expected)}`];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return expected.flatMap((e, i) => match(e, actual[i], `${path}[${i}]`));
  }
  return expected === actual ? [] : [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

function stripVolatile(value: Json): Json {
  if (Array.isArray(value)) return value.map(stripVolatile);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => !VOLATILE.has(k)).map(([k, v]) => [k, stripVolatile(v)]));
}

const sortPairs = (pairs: string[][]): string[][] =>
  pairs.sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));

/** The normalized outcome of a failed call (or refused import row) and the unmet expectations. */
function checkError(exp: Expectation, e: ParticipantsError): [Record<string, Json>, string[]] {
  const outcome: Record<string, Json> = {};
  outcome.code = codeName(e.code);
  outcome.reason = errorReasonValueName(e.reason);
  outcome.errorCode = e.errorCode;
  outcome.metadata = { ...e.metadata };
  outcome.fieldViolations = sortPairs(e.fieldViolations.map((v) => [v.field, errorReasonValueName(v.reason)]));
  if (exp.code === "OK") return [outcome, [`expected OK, got ${e.message}`]];
  const problems: string[] = [];
  if (codeName(e.code) !== exp.code) problems.push(`code: expected ${exp.code}, got ${codeName(e.code)} (${e.rawMessage})`);
  if (e.domain !== suite.errorDomain) problems.push(`ErrorInfo.domain: expected ${suite.errorDomain}, got ${JSON.stringify(e.domain)}`);
  if (e.reasonName !== exp.reason) problems.push(`ErrorInfo.reason: expected ${exp.reason}, got ${JSON.stringify(e.reasonName)}`);
  if (e.reason === ErrorReason.UNSPECIFIED) problems.push(`ErrorInfo.reason ${JSON.stringify(e.reasonName)} is not a known ErrorReason`);
  if (e.errorCode !== exp.errorCode) problems.push(`errorCode: expected ${exp.errorCode}, got ${JSON.stringify(e.errorCode)}`);
  for (const [k, v] of Object.entries(exp.metadata ?? {})) {
    if (e.metadata[k] !== v) problems.push(`metadata.${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(e.metadata[k])}`);
  }
  if (exp.fieldViolations) {
    const want = sortPairs(exp.fieldViolations.map((v) => [v.field, v.reason]));
    const got = sortPairs(e.fieldViolations.map((v) => [v.field, v.reasonName]));
    if (JSON.stringify(want) !== JSON.stringify(got)) problems.push(`field violations: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    for (const v of e.fieldViolations) {
      if (v.reason === ErrorReason.UNSPECIFIED) problems.push(`field violation reason ${JSON.stringify(v.reasonName)} is not a known ErrorReason`);
      if (!v.description) problems.push(`field violation ${v.field} has no description`);
    }
  }
  for (const secret of exp.noEcho ?? []) {
    if ([e.rawMessage, ...e.fieldViolations.map((v) => v.description)].some((t) => t.includes(secret))) {
      problems.push(`personal data ${JSON.stringify(secret)} echoed in the error`);
    }
  }
  return [outcome, problems];
}

/** The normalized outcome of a successful call (or written import row) and the unmet expectations. */
function checkOk(exp: Expectation, actual: Json): [Record<string, Json>, string[]] {
  const outcome: Record<string, Json> = { code: "OK", response: stripVolatile(actual) };
  if (exp.code !== "OK") return [outcome, [`expected ${exp.code} / ${exp.reason}, got OK: ${JSON.stringify(actual)}`]];
  return [outcome, match(exp.response ?? {}, actual, "response")];
}

/** Streams the case's rows through importParticipants; checks each row's result by its index. */
async function runImport(c: Case, client: node.ParticipantsClient): Promise<[Json[], string[]]> {
  const rows = c.requests ?? [];
  const wanted = new Map((c.expect.results ?? []).map((r) => [r.index, r]));
  const outcomes = new Map<number, Record<string, Json>>();
  const problems: string[] = [];
  for await (const r of importParticipants(client, rows.map((row) => fromJson(UpsertParticipantRequestSchema, row)), { timeoutMs: 30_000 })) {
    if (outcomes.has(r.index) || r.index < 0 || r.index >= rows.length) {
      problems.push(`row ${r.index}: answered twice or not a row`);
      continue;
    }
    const exp = wanted.get(r.index) ?? { code: "?" };
    const [row, rowProblems] = r.ok
      ? checkOk(exp, toJson(UpsertParticipantResponseSchema, r.response, { alwaysEmitImplicit: true }) as Json)
      : checkError(exp, r.error);
    outcomes.set(r.index, { index: r.index, ...row });
    problems.push(...rowProblems.map((p) => `row ${r.index}: ${p}`));
  }
  const missing = rows.map((_, i) => i).filter((i) => !outcomes.has(i));
  if (missing.length) problems.push(`rows never answered: ${JSON.stringify(missing)}`);
  return [[...outcomes.keys()].sort((a, b) => a - b).map((i) => outcomes.get(i) as Json), problems];
}

async function runCase(c: Case, tokens: Record<string, string>): Promise<[Record<string, Json>, string[]]> {
  const token = c.token ?? tokens[c.user ?? ""];
  if (token === undefined) throw new Error(`no token for user ${c.user}`);
  const client = sdk.createParticipantsClient({ baseUrl: `http://${addr}`, token });
  const audit = sdk.createAuditClient({ baseUrl: `http://${addr}`, token });
  const opts = { timeoutMs: 10_000 };
  const outcome: Record<string, Json> = { name: c.name };
  const exp = c.expect;
  let actual: Json;
  try {
    if (c.rpc === "ImportParticipants") {
      const [results, problems] = await runImport(c, client);
      outcome.code = "OK";
      outcome.results = results;
      if (exp.code !== "OK") problems.push(`expected the stream to fail with ${exp.code}, it ended OK`);
      return [outcome, problems];
    }
    if (c.rpc === "UpsertParticipant") {
      const res = await client.upsertParticipant(fromJson(UpsertParticipantRequestSchema, c.request), { timeoutMs: 10_000 });
      actual = toJson(UpsertParticipantResponseSchema, res, { alwaysEmitImplicit: true }) as Json;
    } else if (c.rpc === "GetParticipant") {
      const res = await client.getParticipant(fromJson(GetParticipantRequestSchema, c.request), opts);
      actual = toJson(ParticipantSchema, res, { alwaysEmitImplicit: true }) as Json;
    } else if (c.rpc === "ListParticipants") {
      const req = fromJson(ListParticipantsRequestSchema, c.request);
      let res = await (c.pages === "all" ? Promise.resolve(undefined) : client.listParticipants(req, opts));
      if (res === undefined) {
        const participants = [];
        for await (const p of listAllParticipants(client, req, opts)) participants.push(p);
        res = create(ListParticipantsResponseSchema, { participants });
      }
      actual = toJson(ListParticipantsResponseSchema, res, { alwaysEmitImplicit: true }) as Json;
    } else if (c.rpc === "ListAuditEvents") {
      const req = fromJson(ListAuditEventsRequestSchema, c.request);
      let res = await (c.pages === "all" ? Promise.resolve(undefined) : audit.listAuditEvents(req, opts));
      if (res === undefined) {
        const events = [];
        for await (const e of listAllAuditEvents(audit, req, opts)) events.push(e);
        res = create(ListAuditEventsResponseSchema, { events });
      }
      actual = toJson(ListAuditEventsResponseSchema, res, { alwaysEmitImplicit: true }) as Json;
    } else {
      throw new Error(`unknown rpc ${c.rpc as string}`);
    }
  } catch (thrown) {
    const [failed, problems] = checkError(exp, decodeError(thrown));
    Object.assign(outcome, failed);
    return [outcome, problems];
  }
  const [done, problems] = checkOk(exp, actual);
  Object.assign(outcome, done);
  return [outcome, problems];
}

describe("conformance", { skip: addr ? false : "PARTICIPANTS_ADDR not set: no live server to test against" }, () => {
  const tokensFile = process.env.PARTICIPANTS_TOKENS_FILE;
  const tokens: Record<string, string> = addr && tokensFile ? JSON.parse(readFileSync(tokensFile, "utf8")) : {};
  for (const c of suite.cases) {
    // gRPC-Web has no client streaming: the browser transport cannot make the import call.
    const needsImport = c.rpc === "ImportParticipants" || c.requires === "ImportParticipants";
    const skip = sdk === web && needsImport ? "gRPC-Web has no client streaming" : false;
    if (skip && addr && process.env.CONFORMANCE_OUT) {
      appendFileSync(process.env.CONFORMANCE_OUT, JSON.stringify({ name: c.name, skipped: skip }) + "\n");
    }
    it(c.name, { skip }, async () => {
      if (!tokensFile) throw new Error("PARTICIPANTS_TOKENS_FILE is not set");
      const [outcome, problems] = await runCase(c, tokens);
      outcome.pass = problems.length === 0;
      if (process.env.CONFORMANCE_OUT) appendFileSync(process.env.CONFORMANCE_OUT, JSON.stringify(outcome) + "\n");
      assert.deepEqual(problems, [], `${c.name}: ${problems.join("; ")}`);
    });
  }
});
