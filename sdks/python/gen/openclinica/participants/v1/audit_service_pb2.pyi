import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from openclinica.participants.v1 import participant_pb2 as _participant_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_EVENT_TYPE_UNSPECIFIED: _ClassVar[AuditEventType]
    AUDIT_EVENT_TYPE_PARTICIPANT_CREATED: _ClassVar[AuditEventType]
    AUDIT_EVENT_TYPE_FIELD_CHANGED: _ClassVar[AuditEventType]
    AUDIT_EVENT_TYPE_PARTICIPATE_REGISTERED: _ClassVar[AuditEventType]
AUDIT_EVENT_TYPE_UNSPECIFIED: AuditEventType
AUDIT_EVENT_TYPE_PARTICIPANT_CREATED: AuditEventType
AUDIT_EVENT_TYPE_FIELD_CHANGED: AuditEventType
AUDIT_EVENT_TYPE_PARTICIPATE_REGISTERED: AuditEventType

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("study", "site", "subject_key", "start_time", "end_time", "page_size", "page_token")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    study: _participant_pb2.StudyScope
    site: _participant_pb2.SiteScope
    subject_key: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, study: _Optional[_Union[_participant_pb2.StudyScope, _Mapping]] = ..., site: _Optional[_Union[_participant_pb2.SiteScope, _Mapping]] = ..., subject_key: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "study_oid", "site_oid", "subject_key", "type", "field", "old_value", "new_value", "user", "time", "request_id", "reason_for_change", "hash")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_OID_FIELD_NUMBER: _ClassVar[int]
    SITE_OID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FOR_CHANGE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    study_oid: str
    site_oid: str
    subject_key: str
    type: AuditEventType
    field: str
    old_value: str
    new_value: str
    user: str
    time: _timestamp_pb2.Timestamp
    request_id: str
    reason_for_change: str
    hash: str
    def __init__(self, event_id: _Optional[int] = ..., study_oid: _Optional[str] = ..., site_oid: _Optional[str] = ..., subject_key: _Optional[str] = ..., type: _Optional[_Union[AuditEventType, str]] = ..., field: _Optional[str] = ..., old_value: _Optional[str] = ..., new_value: _Optional[str] = ..., user: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., reason_for_change: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...
