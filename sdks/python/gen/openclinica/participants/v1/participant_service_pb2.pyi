from google.rpc import status_pb2 as _status_pb2
from openclinica.participants.v1 import participant_pb2 as _participant_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportResult(_message.Message):
    __slots__ = ("index", "response", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    response: UpsertParticipantResponse
    error: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., response: _Optional[_Union[UpsertParticipantResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class UpsertParticipantRequest(_message.Message):
    __slots__ = ("study", "site", "subject_key", "secondary_id", "contact", "register", "request_id", "validate_only", "etag", "reason_for_change")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FOR_CHANGE_FIELD_NUMBER: _ClassVar[int]
    study: _participant_pb2.StudyScope
    site: _participant_pb2.SiteScope
    subject_key: str
    secondary_id: str
    contact: _participant_pb2.ParticipantContact
    register: bool
    request_id: str
    validate_only: bool
    etag: str
    reason_for_change: str
    def __init__(self, study: _Optional[_Union[_participant_pb2.StudyScope, _Mapping]] = ..., site: _Optional[_Union[_participant_pb2.SiteScope, _Mapping]] = ..., subject_key: _Optional[str] = ..., secondary_id: _Optional[str] = ..., contact: _Optional[_Union[_participant_pb2.ParticipantContact, _Mapping]] = ..., register: _Optional[bool] = ..., request_id: _Optional[str] = ..., validate_only: _Optional[bool] = ..., etag: _Optional[str] = ..., reason_for_change: _Optional[str] = ...) -> None: ...

class UpsertParticipantResponse(_message.Message):
    __slots__ = ("participant", "created", "access_code")
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ACCESS_CODE_FIELD_NUMBER: _ClassVar[int]
    participant: _participant_pb2.Participant
    created: bool
    access_code: str
    def __init__(self, participant: _Optional[_Union[_participant_pb2.Participant, _Mapping]] = ..., created: _Optional[bool] = ..., access_code: _Optional[str] = ...) -> None: ...

class GetParticipantRequest(_message.Message):
    __slots__ = ("study", "site", "subject_key")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    study: _participant_pb2.StudyScope
    site: _participant_pb2.SiteScope
    subject_key: str
    def __init__(self, study: _Optional[_Union[_participant_pb2.StudyScope, _Mapping]] = ..., site: _Optional[_Union[_participant_pb2.SiteScope, _Mapping]] = ..., subject_key: _Optional[str] = ...) -> None: ...

class ListParticipantsRequest(_message.Message):
    __slots__ = ("study", "site", "page_size", "page_token", "status")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    study: _participant_pb2.StudyScope
    site: _participant_pb2.SiteScope
    page_size: int
    page_token: str
    status: _participant_pb2.ParticipantStatus
    def __init__(self, study: _Optional[_Union[_participant_pb2.StudyScope, _Mapping]] = ..., site: _Optional[_Union[_participant_pb2.SiteScope, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_participant_pb2.ParticipantStatus, str]] = ...) -> None: ...

class ListParticipantsResponse(_message.Message):
    __slots__ = ("participants", "next_page_token")
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    participants: _containers.RepeatedCompositeFieldContainer[_participant_pb2.Participant]
    next_page_token: str
    def __init__(self, participants: _Optional[_Iterable[_Union[_participant_pb2.Participant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
