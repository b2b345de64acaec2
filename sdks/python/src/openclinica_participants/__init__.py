"""Client helpers for the OpenClinica participant service.

The generated stubs live in ``openclinica.participants.v1``; this module adds what every caller
needs on top of them:

* :class:`ParticipantsClient` — a channel that sends ``authorization: Bearer <token>`` with every
  call, and methods that raise :class:`ParticipantsError` instead of a bare ``grpc.RpcError``;
* :func:`decode_error` — turns any ``grpc.RpcError`` from the service into a
  :class:`ParticipantsError` holding the typed :data:`ErrorReason`, the OpenClinica ``errorCode``
  and the field violations of a validation error;
* :class:`AsyncParticipantsClient` — the same on ``grpc.aio`` (asyncio), with
  :func:`async_bearer_interceptor` for callers with their own ``grpc.aio`` channel;
* :func:`bearer_interceptor` — the token interceptor on its own, for callers with their own channel;
* ``iter_participants`` / ``iter_audit_events`` on both clients — every item of a list over all its
  pages (``ListParticipants`` / ``AuditService.ListAuditEvents``), following ``next_page_token``;
* ``import_participants`` on both clients — streams rows to ``ImportParticipants`` as the
  connection's flow control allows (the input is never read ahead of it) and yields one
  :class:`ImportRowResult` per row: its index and the response, or a :class:`ParticipantsError`.

Both clients give a call that sets no ``timeout`` the deadline :data:`DEFAULT_TIMEOUT`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

import grpc
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from openclinica.participants.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    error_reason_pb2,
    participant_pb2,
    participant_service_pb2,
    participant_service_pb2_grpc,
)
from openclinica.participants.v1.audit_service_pb2 import (
    AuditEvent,
    AuditEventType,
    ListAuditEventsRequest,
    ListAuditEventsResponse,
)
from openclinica.participants.v1.audit_service_pb2_grpc import AuditServiceStub
from openclinica.participants.v1.error_reason_pb2 import ErrorReason
from openclinica.participants.v1.participant_pb2 import (
    Participant,
    ParticipantContact,
    ParticipantStatus,
    ParticipateStatus,
    SiteScope,
    StudyScope,
)
from openclinica.participants.v1.participant_service_pb2 import (
    GetParticipantRequest,
    ImportResult,
    ListParticipantsRequest,
    ListParticipantsResponse,
    UpsertParticipantRequest,
    UpsertParticipantResponse,
)
from openclinica.participants.v1.participant_service_pb2_grpc import ParticipantServiceStub

__all__ = [
    "AsyncParticipantsClient",
    "AsyncTokenSource",
    "AuditEvent",
    "AuditEventType",
    "AuditServiceStub",
    "DEFAULT_TIMEOUT",
    "ERROR_DOMAIN",
    "ErrorReason",
    "FieldViolation",
    "GetParticipantRequest",
    "ImportResult",
    "ImportRowResult",
    "ListAuditEventsRequest",
    "ListAuditEventsResponse",
    "ListParticipantsRequest",
    "ListParticipantsResponse",
    "Participant",
    "ParticipantContact",
    "ParticipantServiceStub",
    "ParticipantStatus",
    "ParticipantsClient",
    "ParticipantsError",
    "ParticipateStatus",
    "SiteScope",
    "StudyScope",
    "UpsertParticipantRequest",
    "UpsertParticipantResponse",
    "async_bearer_interceptor",
    "async_bearer_stream_interceptor",
    "audit_service_pb2",
    "audit_service_pb2_grpc",
    "bearer_interceptor",
    "decode_error",
    "decode_import_result",
    "decode_status",
    "error_reason_from_name",
    "error_reason_pb2",
    "participant_pb2",
    "participant_service_pb2",
    "participant_service_pb2_grpc",
]

#: The ``google.rpc.ErrorInfo.domain`` of every error the service sends.
ERROR_DOMAIN = "participants.openclinica.v1"

_REASON_PREFIX = "ERROR_REASON_"

#: Seconds a call may take when the caller sets no ``timeout`` (the call's deadline).
DEFAULT_TIMEOUT = 10.0

TokenSource = Union[str, Callable[[], str]]
#: For the asyncio client, the token function may also be a coroutine function.
AsyncTokenSource = Union[str, Callable[[], str], Callable[[], Awaitable[str]]]


def error_reason_from_name(name: str) -> ErrorReason:
    """Maps an ErrorInfo / FieldViolation reason such as ``"FIRST_NAME_TOO_LONG"`` to the generated
    enum value (``ErrorReason.ERROR_REASON_FIRST_NAME_TOO_LONG``); an unknown name (a newer server)
    gives ``ERROR_REASON_UNSPECIFIED``."""
    if not name:
        return ErrorReason.ERROR_REASON_UNSPECIFIED
    try:
        return cast(ErrorReason, ErrorReason.Value(_REASON_PREFIX + name))
    except ValueError:
        return ErrorReason.ERROR_REASON_UNSPECIFIED


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One broken validation rule (a ``google.rpc.BadRequest.FieldViolation``)."""

    #: Request path of the offending field, e.g. ``"contact.first_name"`` or ``"subject_key"``.
    field: str
    #: The typed reason, e.g. ``ErrorReason.ERROR_REASON_FIRST_NAME_TOO_LONG``.
    reason: ErrorReason
    #: The reason as sent, e.g. ``"FIRST_NAME_TOO_LONG"``.
    reason_name: str
    #: Human-readable English description (never contains the submitted value).
    description: str


class ParticipantsError(Exception):
    """A failed call to the participant service, decoded from its ``google.rpc.Status``."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason_name: str = "",
        domain: str = "",
        metadata: Optional[Mapping[str, str]] = None,
        field_violations: Sequence[FieldViolation] = (),
        retry_delay: Optional[float] = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason_name}]" if reason_name else ""))
        #: The gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        self.code = code
        #: The status message (plain English).
        self.message = message
        #: ``ErrorInfo.reason`` as sent, e.g. ``"FIRST_NAME_TOO_LONG"`` (empty when there was none).
        self.reason_name = reason_name
        #: ``ErrorInfo.reason`` as the generated enum; ``ERROR_REASON_UNSPECIFIED`` if absent/unknown.
        self.reason: ErrorReason = error_reason_from_name(reason_name)
        #: ``ErrorInfo.domain`` (``participants.openclinica.v1``).
        self.domain = domain
        #: ``ErrorInfo.metadata``: ``errorCode`` plus ``studyOid`` / ``siteOid`` where known.
        self.metadata: Mapping[str, str] = dict(metadata or {})
        #: Every broken validation rule (empty unless the error is a validation error).
        self.field_violations: Tuple[FieldViolation, ...] = tuple(field_violations)
        #: Seconds to wait before retrying, from ``google.rpc.RetryInfo`` (STORAGE_UNAVAILABLE).
        self.retry_delay = retry_delay

    @property
    def error_code(self) -> str:
        """The OpenClinica error code, e.g. ``"errorCode.firstNameTooLong"`` (``""`` if absent)."""
        return self.metadata.get("errorCode", "")

    @property
    def reason_value_name(self) -> str:
        """The generated enum value name, e.g. ``"ERROR_REASON_FIRST_NAME_TOO_LONG"``."""
        return ErrorReason.Name(self.reason)


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def decode_error(error: grpc.RpcError) -> ParticipantsError:
    """Decodes the ``grpc-status-details-bin`` trailer (a ``google.rpc.Status``) of a failed call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    status: Optional[status_pb2.Status] = None
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (AttributeError, ValueError):
        # ValueError: the trailer disagrees with the call's code / message; ignore the details.
        status = None
    return _error_from(code if code is not None else grpc.StatusCode.UNKNOWN, message or "", status)


def decode_status(status: status_pb2.Status) -> ParticipantsError:
    """Decodes a ``google.rpc.Status`` message, such as the ``error`` of an ``ImportResult``, into
    the same :class:`ParticipantsError` a failed unary call raises."""
    code = _STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    return _error_from(code, status.message, status)


def _error_from(
    code: grpc.StatusCode, message: str, status: Optional[status_pb2.Status]
) -> ParticipantsError:
    reason_name, domain, metadata = "", "", {}
    violations: list[FieldViolation] = []
    retry_delay: Optional[float] = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason_name, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(
                        field=v.field,
                        reason=error_reason_from_name(v.reason),
                        reason_name=v.reason,
                        description=v.description,
                    )
                    for v in bad_request.field_violations
                )
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return ParticipantsError(
        code,
        message,
        reason_name=reason_name,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        retry_delay=retry_delay,
    )


@dataclasses.dataclass(frozen=True)
class ImportRowResult:
    """The answer for one row of ``import_participants``: exactly one of ``response`` and
    ``error`` is set."""

    #: The row's 0-based position in the input (answers may arrive out of input order).
    index: int
    #: What UpsertParticipant would have answered, when the row was written (or validated).
    response: Optional[UpsertParticipantResponse] = None
    #: Why the row was refused: the same typed error a unary call raises.
    error: Optional[ParticipantsError] = None

    @property
    def ok(self) -> bool:
        """True when the row was written (or, with ``validate_only``, found valid)."""
        return self.error is None


def decode_import_result(result: ImportResult) -> ImportRowResult:
    """Turns a generated ``ImportResult`` into an :class:`ImportRowResult` (its ``error``, a
    ``google.rpc.Status``, decoded as by :func:`decode_status`)."""
    if result.WhichOneof("outcome") == "error":
        return ImportRowResult(index=result.index, error=decode_status(result.error))
    if result.WhichOneof("outcome") == "response":
        return ImportRowResult(index=result.index, response=result.response)
    # A newer server's outcome this SDK does not know: neither written nor explained.
    return ImportRowResult(
        index=result.index,
        error=ParticipantsError(grpc.StatusCode.UNKNOWN, "the row's outcome is not known to this SDK"),
    )


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def _details(self, client_call_details: Any) -> Any:
        token = self._token() if callable(self._token) else self._token
        metadata = list(client_call_details.metadata or [])
        if token:
            metadata.append(("authorization", f"Bearer {token}"))
        return client_call_details._replace(metadata=metadata) if hasattr(
            client_call_details, "_replace"
        ) else _CallDetails(client_call_details, metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: Any) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def bearer_interceptor(token: TokenSource) -> grpc.UnaryUnaryClientInterceptor:  # type: ignore[type-arg]
    """An interceptor that sends ``authorization: Bearer <token>`` on unary and bidirectional
    streaming calls (ImportParticipants); ``token`` may be a callable that returns a fresh token
    for each call. Use with ``grpc.intercept_channel``."""
    return _BearerInterceptor(token)


class ParticipantsClient:
    """A ParticipantService client that authenticates every call and raises
    :class:`ParticipantsError` on failure.

    ``target`` is ``host:port``. Without ``credentials`` the channel is plaintext (development);
    pass ``grpc.ssl_channel_credentials()`` in production.
    """

    def __init__(
        self,
        target: str,
        token: TokenSource,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[Sequence[Tuple[str, object]]] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        #: The deadline, in seconds, of a call that passes no ``timeout`` (None: no deadline).
        self.timeout = timeout
        if credentials is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            channel = grpc.secure_channel(target, credentials, options=options)
        self._raw_channel = channel
        self.channel = grpc.intercept_channel(channel, bearer_interceptor(token))
        #: The generated stub, for callers who want ``with_call`` or futures.
        self.stub = ParticipantServiceStub(self.channel)
        #: The generated AuditService stub on the same channel.
        self.audit_stub = AuditServiceStub(self.channel)

    def upsert_participant(
        self, request: UpsertParticipantRequest, *, timeout: Optional[float] = None
    ) -> UpsertParticipantResponse:
        """Creates or updates a Participant; raises :class:`ParticipantsError`."""
        try:
            return self.stub.UpsertParticipant(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise decode_error(error) from None

    def get_participant(
        self, request: GetParticipantRequest, *, timeout: Optional[float] = None
    ) -> Participant:
        """Reads one Participant; raises :class:`ParticipantsError`."""
        try:
            return self.stub.GetParticipant(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise decode_error(error) from None

    def list_participants(
        self, request: ListParticipantsRequest, *, timeout: Optional[float] = None
    ) -> ListParticipantsResponse:
        """One page of Participants; raises :class:`ParticipantsError`."""
        try:
            return self.stub.ListParticipants(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise decode_error(error) from None

    def iter_participants(
        self, request: ListParticipantsRequest, *, timeout: Optional[float] = None
    ) -> Iterator[Participant]:
        """Every Participant of the query, page after page (``request.page_size`` per call, from
        ``request.page_token`` on); ``timeout`` applies to each call. Raises
        :class:`ParticipantsError` from the page that failed."""
        page = ListParticipantsRequest()
        page.CopyFrom(request)
        while True:
            response = self.list_participants(page, timeout=timeout)
            yield from response.participants
            if not response.next_page_token:
                return
            page.page_token = response.next_page_token

    def list_audit_events(
        self, request: ListAuditEventsRequest, *, timeout: Optional[float] = None
    ) -> ListAuditEventsResponse:
        """One page of audit events (oldest first); raises :class:`ParticipantsError`."""
        try:
            return self.audit_stub.ListAuditEvents(request, timeout=self._timeout(timeout))
        except grpc.RpcError as error:
            raise decode_error(error) from None

    def iter_audit_events(
        self, request: ListAuditEventsRequest, *, timeout: Optional[float] = None
    ) -> Iterator[AuditEvent]:
        """Every audit event of the query, oldest first, page after page (as
        :meth:`iter_participants`)."""
        page = ListAuditEventsRequest()
        page.CopyFrom(request)
        while True:
            response = self.list_audit_events(page, timeout=timeout)
            yield from response.events
            if not response.next_page_token:
                return
            page.page_token = response.next_page_token

    def import_participants(
        self, rows: Iterable[UpsertParticipantRequest], *, timeout: Optional[float] = None
    ) -> Iterator[ImportRowResult]:
        """Streams ``rows`` to ImportParticipants and yields one :class:`ImportRowResult` per row,
        as the server commits them (not necessarily in input order: see ``index``).

        ``rows`` may be any iterable, a generator over a file for instance: gRPC takes the next row
        only when the connection's flow control lets it send, so a large input is never read into
        memory. A refused row is a result with its :class:`ParticipantsError`, and the stream goes
        on; a failure of the whole stream (no token, the server going away) raises
        :class:`ParticipantsError` instead, after the results already received. Give every row a
        ``request_id`` so that re-sending the input after such a failure writes nothing twice.
        Unlike the unary calls, the stream has no deadline unless ``timeout`` (seconds, for the
        whole import) is given: the server cuts a client that stays silent instead. Leaving the
        loop early cancels the stream; rows the server had already committed stay written."""
        call = self.stub.ImportParticipants(iter(rows), timeout=timeout)
        try:
            for result in call:
                yield decode_import_result(result)
        except grpc.RpcError as error:
            raise decode_error(error) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # (grpc-stubs leave it untyped)

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "ParticipantsClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncBearer:
    def __init__(self, token: AsyncTokenSource) -> None:
        self._token = token

    async def _details(self, client_call_details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        token: Any = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        if token:
            metadata.add("authorization", f"Bearer {token}")
        return grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )


# grpc.aio files an interceptor under the first call type it implements only, so the unary and the
# stream-stream (ImportParticipants) interceptors are two objects.
class _AsyncBearerInterceptor(_AsyncBearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(await self._details(client_call_details), request)


class _AsyncBearerStreamInterceptor(_AsyncBearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(await self._details(client_call_details), request_iterator)


def async_bearer_interceptor(
    token: AsyncTokenSource,
) -> grpc.aio.UnaryUnaryClientInterceptor[Any, Any]:
    """The ``grpc.aio`` interceptor that sends ``authorization: Bearer <token>`` on unary calls;
    ``token`` may be a function or a coroutine function asked once per call. Pass it in
    ``interceptors=[...]`` of ``grpc.aio.insecure_channel`` / ``secure_channel``, with
    :func:`async_bearer_stream_interceptor` for ImportParticipants."""
    return _AsyncBearerInterceptor(token)


def async_bearer_stream_interceptor(
    token: AsyncTokenSource,
) -> grpc.aio.StreamStreamClientInterceptor[Any, Any]:
    """:func:`async_bearer_interceptor` for bidirectional streaming calls (ImportParticipants):
    ``grpc.aio`` takes one interceptor object per call type."""
    return _AsyncBearerStreamInterceptor(token)


class AsyncParticipantsClient:
    """The asyncio (``grpc.aio``) twin of :class:`ParticipantsClient`: the same bearer token, the
    same :class:`ParticipantsError`, the same default deadline. Create it inside a running event
    loop; ``async with AsyncParticipantsClient(target, token) as client: ...``.
    """

    def __init__(
        self,
        target: str,
        token: AsyncTokenSource,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        #: The deadline, in seconds, of a call that passes no ``timeout`` (None: no deadline).
        self.timeout = timeout
        # grpc-stubs types `interceptors` loosely (a partial stub): hand it a plain sequence.
        interceptors: Any = [async_bearer_interceptor(token), async_bearer_stream_interceptor(token)]
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
        else:
            self.channel = grpc.aio.secure_channel(
                target, credentials, options=options, interceptors=interceptors
            )
        #: The generated stub on the ``grpc.aio`` channel (its calls are awaitable).
        self.stub = ParticipantServiceStub(self.channel)
        #: The generated AuditService stub on the same channel.
        self.audit_stub = AuditServiceStub(self.channel)

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout

    async def upsert_participant(
        self, request: UpsertParticipantRequest, *, timeout: Optional[float] = None
    ) -> UpsertParticipantResponse:
        """Creates or updates a Participant; raises :class:`ParticipantsError`."""
        try:
            return await self.stub.UpsertParticipant(request, timeout=self._timeout(timeout))
        except grpc.aio.AioRpcError as error:
            raise decode_error(error) from None

    async def get_participant(
        self, request: GetParticipantRequest, *, timeout: Optional[float] = None
    ) -> Participant:
        """Reads one Participant; raises :class:`ParticipantsError`."""
        try:
            return await self.stub.GetParticipant(request, timeout=self._timeout(timeout))
        except grpc.aio.AioRpcError as error:
            raise decode_error(error) from None

    async def list_participants(
        self, request: ListParticipantsRequest, *, timeout: Optional[float] = None
    ) -> ListParticipantsResponse:
        """One page of Participants; raises :class:`ParticipantsError`."""
        try:
            return await self.stub.ListParticipants(request, timeout=self._timeout(timeout))
        except grpc.aio.AioRpcError as error:
            raise decode_error(error) from None

    async def iter_participants(
        self, request: ListParticipantsRequest, *, timeout: Optional[float] = None
    ) -> AsyncIterator[Participant]:
        """Every Participant of the query, page after page: ``async for p in
        client.iter_participants(request)``."""
        page = ListParticipantsRequest()
        page.CopyFrom(request)
        while True:
            response = await self.list_participants(page, timeout=timeout)
            for participant in response.participants:
                yield participant
            if not response.next_page_token:
                return
            page.page_token = response.next_page_token

    async def list_audit_events(
        self, request: ListAuditEventsRequest, *, timeout: Optional[float] = None
    ) -> ListAuditEventsResponse:
        """One page of audit events (oldest first); raises :class:`ParticipantsError`."""
        try:
            return await self.audit_stub.ListAuditEvents(request, timeout=self._timeout(timeout))
        except grpc.aio.AioRpcError as error:
            raise decode_error(error) from None

    async def iter_audit_events(
        self, request: ListAuditEventsRequest, *, timeout: Optional[float] = None
    ) -> AsyncIterator[AuditEvent]:
        """Every audit event of the query, oldest first, page after page."""
        page = ListAuditEventsRequest()
        page.CopyFrom(request)
        while True:
            response = await self.list_audit_events(page, timeout=timeout)
            for event in response.events:
                yield event
            if not response.next_page_token:
                return
            page.page_token = response.next_page_token

    async def import_participants(
        self,
        rows: Union[Iterable[UpsertParticipantRequest], AsyncIterable[UpsertParticipantRequest]],
        *,
        timeout: Optional[float] = None,
    ) -> AsyncIterator[ImportRowResult]:
        """Streams ``rows`` (an iterable or an async iterable) to ImportParticipants: ``async for r
        in client.import_participants(rows)``. The next row is taken only when the previous one
        has been written to the connection (flow control); the rest is as
        :meth:`ParticipantsClient.import_participants`: one :class:`ImportRowResult` per row, a
        :class:`ParticipantsError` raised for a failure of the whole stream, no deadline unless
        ``timeout`` is given, and leaving the loop early cancels the stream."""
        call = self.stub.ImportParticipants(rows, timeout=timeout)  # type: ignore[arg-type]
        try:
            async for result in call:
                yield decode_import_result(result)
        except grpc.aio.AioRpcError as error:
            raise decode_error(error) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> "AsyncParticipantsClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
