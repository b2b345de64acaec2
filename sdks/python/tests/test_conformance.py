"""Python runner of the SDK conformance suite (sdks/conformance/cases.json).

Needs a live server: PARTICIPANTS_ADDR (host:port) and PARTICIPANTS_TOKENS_FILE ({"user": "jwt"}).
Optional: CONFORMANCE_CASES (path of cases.json), CONFORMANCE_OUT (JSON-lines file to which one
normalized outcome per case is appended, for the driver's cross-language comparison).
Driven by sdks/run-conformance.sh; skipped when PARTICIPANTS_ADDR is not set.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from openclinica_participants import (
    ErrorReason,
    GetParticipantRequest,
    ListAuditEventsRequest,
    ListAuditEventsResponse,
    ListParticipantsRequest,
    ListParticipantsResponse,
    ParticipantsClient,
    ParticipantsError,
    UpsertParticipantRequest,
)

CASES_PATH = Path(
    os.environ.get("CONFORMANCE_CASES", Path(__file__).resolve().parents[2] / "conformance" / "cases.json")
)
SUITE = json.loads(CASES_PATH.read_text(encoding="utf-8"))
ADDR = os.environ.get("PARTICIPANTS_ADDR", "")
VOLATILE = {"createTime", "updateTime", "etag", "accessCode", "nextPageToken", "eventId", "time", "hash", "requestId"}

pytestmark = pytest.mark.skipif(not ADDR, reason="PARTICIPANTS_ADDR not set: no live server to test against")


def _tokens() -> dict[str, str]:
    path = os.environ.get("PARTICIPANTS_TOKENS_FILE")
    if not path:
        raise RuntimeError("PARTICIPANTS_TOKENS_FILE is not set")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _token_for(case: dict[str, Any], tokens: dict[str, str]) -> str:
    if "token" in case:
        return case["token"]
    return tokens[case["user"]]


def match(expected: Any, actual: Any, path: str, missing: bool = False) -> list[str]:
    """The matcher of cases.json: objects as subsets, '$'-matchers, exact scalars."""
    if isinstance(expected, str) and expected.startswith("$"):
        if expected == "$absent":
            return [] if missing else [f"{path}: expected absent, got {actual!r}"]
        if expected == "$empty":
            return [] if missing or actual == "" else [f"{path}: expected empty, got {actual!r}"]
        if missing:
            return [f"{path}: missing, expected {expected}"]
        if expected == "$nonempty":
            return [] if isinstance(actual, str) and actual else [f"{path}: expected non-empty, got {actual!r}"]
        if expected.startswith("$re:"):
            ok = isinstance(actual, str) and re.search(expected[4:], actual) is not None
            return [] if ok else [f"{path}: {actual!r} does not match {expected[4:]}"]
        raise ValueError(f"unknown matcher {expected}")
    if isinstance(expected, dict):
        if missing:
            actual = {}
        elif not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        errors: list[str] = []
        for key, value in expected.items():
            errors += match(value, actual.get(key), f"{path}.{key}", key not in actual)
        return errors
    if missing:
        return [f"{path}: missing, expected {expected!r}"]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        errors = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            errors += match(e, a, f"{path}[{i}]")
        return errors
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip_volatile(v) for v in value]
    return value


def check_error(expect: dict[str, Any], error: ParticipantsError) -> tuple[dict[str, Any], list[str]]:
    """The normalized outcome of a failed call (or refused import row) and the unmet expectations."""
    outcome: dict[str, Any] = dict(
        code=error.code.name,
        reason=ErrorReason.Name(error.reason),
        errorCode=error.error_code,
        metadata=dict(error.metadata),
        fieldViolations=sorted([v.field, ErrorReason.Name(v.reason)] for v in error.field_violations),
    )
    if expect["code"] == "OK":
        return outcome, [f"expected OK, got {error}"]
    errors: list[str] = []
    if error.code.name != expect["code"]:
        errors.append(f"code: expected {expect['code']}, got {error.code.name} ({error.message})")
    if error.domain != SUITE["errorDomain"]:
        errors.append(f"ErrorInfo.domain: expected {SUITE['errorDomain']}, got {error.domain!r}")
    if error.reason_name != expect["reason"]:
        errors.append(f"ErrorInfo.reason: expected {expect['reason']}, got {error.reason_name!r}")
    if error.reason == ErrorReason.ERROR_REASON_UNSPECIFIED:
        errors.append(f"ErrorInfo.reason {error.reason_name!r} is not a known ErrorReason")
    if error.error_code != expect["errorCode"]:
        errors.append(f"errorCode: expected {expect['errorCode']}, got {error.error_code!r}")
    for key, value in expect.get("metadata", {}).items():
        if error.metadata.get(key) != value:
            errors.append(f"metadata.{key}: expected {value!r}, got {error.metadata.get(key)!r}")
    if "fieldViolations" in expect:
        want = sorted([v["field"], v["reason"]] for v in expect["fieldViolations"])
        got = sorted([v.field, v.reason_name] for v in error.field_violations)
        if want != got:
            errors.append(f"field violations: expected {want}, got {got}")
        for v in error.field_violations:
            if v.reason == ErrorReason.ERROR_REASON_UNSPECIFIED:
                errors.append(f"field violation reason {v.reason_name!r} is not a known ErrorReason")
            if not v.description:
                errors.append(f"field violation {v.field} has no description")
    for secret in expect.get("noEcho", []):
        texts = [error.message] + [v.description for v in error.field_violations]
        if any(secret in t for t in texts):
            errors.append(f"personal data {secret!r} echoed in the error")
    return outcome, errors


def check_ok(expect: dict[str, Any], response: Any) -> tuple[dict[str, Any], list[str]]:
    """The normalized outcome of a successful call (or written import row) and the unmet expectations."""
    actual = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
    outcome = dict(code="OK", response=strip_volatile(actual))
    if expect["code"] != "OK":
        return outcome, [f"expected {expect['code']} / {expect.get('reason')}, got OK: {actual}"]
    return outcome, match(expect.get("response", {}), actual, "response")


def run_import(
    case: dict[str, Any], client: ParticipantsClient
) -> tuple[list[dict[str, Any]], list[str]]:
    """Streams the case's rows through the import helper; checks each row's result by its index.
    A failure of the whole stream propagates as ParticipantsError."""
    rows = (json_format.ParseDict(r, UpsertParticipantRequest()) for r in case["requests"])
    wanted = {r["index"]: r for r in case["expect"].get("results", [])}
    outcomes: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    for result in client.import_participants(rows, timeout=30):
        if result.index in outcomes or not 0 <= result.index < len(case["requests"]):
            errors.append(f"row {result.index}: answered twice or not a row")
            continue
        expect = wanted.get(result.index, {"code": "?"})
        if result.error is not None:
            row, row_errors = check_error(expect, result.error)
        else:
            row, row_errors = check_ok(expect, result.response)
        outcomes[result.index] = {"index": result.index, **row}
        errors += [f"row {result.index}: {e}" for e in row_errors]
    missing = sorted(set(range(len(case["requests"]))) - set(outcomes))
    if missing:
        errors.append(f"rows never answered: {missing}")
    return [outcomes[i] for i in sorted(outcomes)], errors


def run_case(case: dict[str, Any], tokens: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    expect = case["expect"]
    outcome: dict[str, Any] = {"name": case["name"]}
    with ParticipantsClient(ADDR, _token_for(case, tokens)) as client:
        try:
            if case["rpc"] == "ImportParticipants":
                results, errors = run_import(case, client)
                outcome.update(code="OK", results=results)
                if expect["code"] != "OK":
                    errors.append(f"expected the stream to fail with {expect['code']}, it ended OK")
                return outcome, errors
            if case["rpc"] == "UpsertParticipant":
                response = client.upsert_participant(
                    json_format.ParseDict(case["request"], UpsertParticipantRequest()), timeout=10
                )
            elif case["rpc"] == "GetParticipant":
                response = client.get_participant(
                    json_format.ParseDict(case["request"], GetParticipantRequest()), timeout=10
                )
            elif case["rpc"] == "ListParticipants":
                list_request = json_format.ParseDict(case["request"], ListParticipantsRequest())
                if case.get("pages") == "all":  # through the paging helper, every page
                    everyone = list(client.iter_participants(list_request, timeout=10))
                    response = ListParticipantsResponse(participants=everyone)
                else:
                    response = client.list_participants(list_request, timeout=10)
            elif case["rpc"] == "ListAuditEvents":
                audit_request = json_format.ParseDict(case["request"], ListAuditEventsRequest())
                if case.get("pages") == "all":
                    events = list(client.iter_audit_events(audit_request, timeout=10))
                    response = ListAuditEventsResponse(events=events)
                else:
                    response = client.list_audit_events(audit_request, timeout=10)
            else:
                raise ValueError(f"unknown rpc {case['rpc']}")
        except ParticipantsError as error:
            failed, errors = check_error(expect, error)
            outcome.update(failed)
            return outcome, errors
    # `pages: all` cases: the concatenated items, as one response with no next_page_token.
    done, errors = check_ok(expect, response)
    outcome.update(done)
    return outcome, errors


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return _tokens()


@pytest.mark.parametrize("case", SUITE["cases"], ids=[c["name"] for c in SUITE["cases"]])
def test_case(case: dict[str, Any], tokens: dict[str, str]) -> None:
    outcome, errors = run_case(case, tokens)
    outcome["pass"] = not errors
    out = os.environ.get("CONFORMANCE_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome, ensure_ascii=False, sort_keys=True) + "\n")
    assert not errors, f"{case['name']}: " + "; ".join(errors)
