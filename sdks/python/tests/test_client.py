"""The helper's own behaviour: default deadline, bearer token (sync and asyncio), and the asyncio
client (its calls, paging and import) against a live server (PARTICIPANTS_ADDR,
PARTICIPANTS_TOKENS_FILE; skipped without one).

The live tests only send invalid or validate_only requests and read, so they change nothing the
conformance cases rely on.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, AsyncIterator, cast

import grpc
import pytest

from openclinica_participants import (
    DEFAULT_TIMEOUT,
    AsyncParticipantsClient,
    ErrorReason,
    GetParticipantRequest,
    ImportRowResult,
    ListAuditEventsRequest,
    ListParticipantsRequest,
    ParticipantContact,
    ParticipantsClient,
    ParticipantsError,
    SiteScope,
    UpsertParticipantRequest,
    async_bearer_interceptor,
)

ADDR = os.environ.get("PARTICIPANTS_ADDR", "")


class _RecordingStub:
    def __init__(self) -> None:
        self.timeouts: list[Any] = []

    def UpsertParticipant(self, request: Any, timeout: Any = None) -> Any:  # noqa: N802
        self.timeouts.append(timeout)
        return "ok"

    GetParticipant = UpsertParticipant


class _AsyncRecordingStub(_RecordingStub):
    async def UpsertParticipant(self, request: Any, timeout: Any = None) -> Any:  # noqa: N802
        self.timeouts.append(timeout)
        return "ok"

    GetParticipant = UpsertParticipant


def test_sync_client_gives_calls_a_default_deadline() -> None:
    with ParticipantsClient("127.0.0.1:9", "t") as client:
        stub = _RecordingStub()
        client.stub = cast(Any, stub)
        client.upsert_participant(UpsertParticipantRequest())
        client.get_participant(GetParticipantRequest(), timeout=2.5)
        assert stub.timeouts == [DEFAULT_TIMEOUT, 2.5]
    with ParticipantsClient("127.0.0.1:9", "t", timeout=None) as client:
        stub = _RecordingStub()
        client.stub = cast(Any, stub)
        client.upsert_participant(UpsertParticipantRequest())
        assert stub.timeouts == [None]


def test_async_client_gives_calls_a_default_deadline() -> None:
    async def run() -> list[Any]:
        async with AsyncParticipantsClient("127.0.0.1:9", "t", timeout=3.0) as client:
            stub = _AsyncRecordingStub()
            client.stub = cast(Any, stub)
            await client.upsert_participant(UpsertParticipantRequest())
            await client.get_participant(GetParticipantRequest(), timeout=1.0)
            return stub.timeouts

    assert asyncio.run(run()) == [3.0, 1.0]


@pytest.mark.parametrize("kind", ["str", "function", "coroutine", "empty"])
def test_async_interceptor_adds_the_bearer_token(kind: str) -> None:
    async def coroutine_token() -> str:
        return "c0r0"

    token: Any = {"str": "s7r", "function": lambda: "f0n", "coroutine": coroutine_token, "empty": ""}[kind]
    expected = {"str": "s7r", "function": "f0n", "coroutine": "c0r0", "empty": None}[kind]
    seen: list[grpc.aio.ClientCallDetails] = []

    async def continuation(details: grpc.aio.ClientCallDetails, request: Any) -> str:
        seen.append(details)
        return "called"

    details = grpc.aio.ClientCallDetails("/svc/M", 4.0, grpc.aio.Metadata(("x-other", "1")), None, None)
    result = asyncio.run(async_bearer_interceptor(token).intercept_unary_unary(
        cast(Any, continuation), details, object()
    ))
    assert result == "called"
    metadata = dict(seen[0].metadata or ())
    assert metadata.get("x-other") == "1"
    assert seen[0].timeout == 4.0
    if expected is None:
        assert "authorization" not in metadata
    else:
        assert metadata["authorization"] == f"Bearer {expected}"


@pytest.mark.skipif(not ADDR, reason="PARTICIPANTS_ADDR not set: no live server to test against")
def test_async_client_decodes_a_validation_error_from_a_live_server() -> None:
    tokens = json.loads(Path(os.environ["PARTICIPANTS_TOKENS_FILE"]).read_text(encoding="utf-8"))

    async def run() -> ParticipantsError:
        async with AsyncParticipantsClient(ADDR, lambda: str(tokens["crc.a"])) as client:
            with pytest.raises(ParticipantsError) as raised:
                await client.upsert_participant(
                    UpsertParticipantRequest(
                        site=SiteScope(study_oid="S_CONF", site_oid="S_CONF_A"),
                        subject_key="ASYNC-0001",
                        contact=ParticipantContact(email_address="not-an-email"),
                    )
                )
            return raised.value

    error = asyncio.run(run())
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == ErrorReason.ERROR_REASON_INVALID_EMAIL_ADDRESS
    assert error.error_code == "errorCode.invalidEmailAddress"
    assert [(v.field, v.reason) for v in error.field_violations] == [
        ("contact.email_address", ErrorReason.ERROR_REASON_INVALID_EMAIL_ADDRESS)
    ]
    assert "not-an-email" not in str(error)


@pytest.mark.skipif(not ADDR, reason="PARTICIPANTS_ADDR not set: no live server to test against")
def test_async_paging_helpers_follow_pages_and_raise_the_typed_error() -> None:
    # Read-only, so the conformance cases that follow on the same server see no change.
    tokens = json.loads(Path(os.environ["PARTICIPANTS_TOKENS_FILE"]).read_text(encoding="utf-8"))
    site = SiteScope(study_oid="S_CONF", site_oid="S_CONF_B")

    async def run() -> tuple[list[str], ParticipantsError]:
        async with AsyncParticipantsClient(ADDR, str(tokens["crc.b"])) as client:
            pages = client.iter_participants(ListParticipantsRequest(site=site, page_size=1))
            keys = [p.subject_key async for p in pages]
            with pytest.raises(ParticipantsError) as raised:
                async for _ in client.iter_audit_events(ListAuditEventsRequest(site=site, page_token="forged")):
                    pass
            return keys, raised.value

    keys, error = asyncio.run(run())
    assert len(keys) == len(set(keys))  # every page followed, none repeated
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == ErrorReason.ERROR_REASON_INVALID_PAGE_TOKEN
    assert error.error_code == "errorCode.invalidPageToken"


@pytest.mark.skipif(not ADDR, reason="PARTICIPANTS_ADDR not set: no live server to test against")
def test_async_import_streams_an_async_iterable_with_the_token() -> None:
    # validate_only rows write nothing, so the conformance cases that follow see no change. The
    # stream goes out through the stream-stream interceptor: without it the call is UNAUTHENTICATED.
    tokens = json.loads(Path(os.environ["PARTICIPANTS_TOKENS_FILE"]).read_text(encoding="utf-8"))
    site = SiteScope(study_oid="S_CONF", site_oid="S_CONF_A")

    async def rows() -> AsyncIterator[UpsertParticipantRequest]:
        for key, email in [("ASYNC-IMP-1", "a@example.org"), ("ASYNC-IMP-2", "not-an-email")]:
            yield UpsertParticipantRequest(site=site, subject_key=key, validate_only=True,
                                           contact=ParticipantContact(email_address=email))

    async def run() -> dict[int, ImportRowResult]:
        async with AsyncParticipantsClient(ADDR, str(tokens["crc.a"])) as client:
            return {r.index: r async for r in client.import_participants(rows())}

    results = asyncio.run(run())
    assert sorted(results) == [0, 1]
    ok, refused = results[0], results[1]
    assert ok.ok and ok.response is not None and ok.response.participant.subject_key == "ASYNC-IMP-1"
    assert refused.error is not None and refused.response is None
    assert refused.error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.error.reason == ErrorReason.ERROR_REASON_INVALID_EMAIL_ADDRESS
    assert refused.error.error_code == "errorCode.invalidEmailAddress"
    assert [v.field for v in refused.error.field_violations] == ["contact.email_address"]
