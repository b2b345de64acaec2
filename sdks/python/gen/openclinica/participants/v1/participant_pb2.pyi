import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParticipantStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTICIPANT_STATUS_UNSPECIFIED: _ClassVar[ParticipantStatus]
    PARTICIPANT_STATUS_AVAILABLE: _ClassVar[ParticipantStatus]
    PARTICIPANT_STATUS_SIGNED: _ClassVar[ParticipantStatus]
    PARTICIPANT_STATUS_REMOVED: _ClassVar[ParticipantStatus]

class ParticipateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTICIPATE_STATUS_UNSPECIFIED: _ClassVar[ParticipateStatus]
    PARTICIPATE_STATUS_CREATED: _ClassVar[ParticipateStatus]
    PARTICIPATE_STATUS_INVITED: _ClassVar[ParticipateStatus]
    PARTICIPATE_STATUS_ACTIVE: _ClassVar[ParticipateStatus]
    PARTICIPATE_STATUS_INACTIVE: _ClassVar[ParticipateStatus]
PARTICIPANT_STATUS_UNSPECIFIED: ParticipantStatus
PARTICIPANT_STATUS_AVAILABLE: ParticipantStatus
PARTICIPANT_STATUS_SIGNED: ParticipantStatus
PARTICIPANT_STATUS_REMOVED: ParticipantStatus
PARTICIPATE_STATUS_UNSPECIFIED: ParticipateStatus
PARTICIPATE_STATUS_CREATED: ParticipateStatus
PARTICIPATE_STATUS_INVITED: ParticipateStatus
PARTICIPATE_STATUS_ACTIVE: ParticipateStatus
PARTICIPATE_STATUS_INACTIVE: ParticipateStatus

class StudyScope(_message.Message):
    __slots__ = ("study_oid",)
    STUDY_OID_FIELD_NUMBER: _ClassVar[int]
    study_oid: str
    def __init__(self, study_oid: _Optional[str] = ...) -> None: ...

class SiteScope(_message.Message):
    __slots__ = ("study_oid", "site_oid")
    STUDY_OID_FIELD_NUMBER: _ClassVar[int]
    SITE_OID_FIELD_NUMBER: _ClassVar[int]
    study_oid: str
    site_oid: str
    def __init__(self, study_oid: _Optional[str] = ..., site_oid: _Optional[str] = ...) -> None: ...

class ParticipantContact(_message.Message):
    __slots__ = ("first_name", "last_name", "middle_name", "email_address", "phone_number", "street_address1", "street_address2", "city", "state", "country", "postal_code", "full_dob", "hospital_number")
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    MIDDLE_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STREET_ADDRESS1_FIELD_NUMBER: _ClassVar[int]
    STREET_ADDRESS2_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    FULL_DOB_FIELD_NUMBER: _ClassVar[int]
    HOSPITAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    first_name: str
    last_name: str
    middle_name: str
    email_address: str
    phone_number: str
    street_address1: str
    street_address2: str
    city: str
    state: str
    country: str
    postal_code: str
    full_dob: str
    hospital_number: str
    def __init__(self, first_name: _Optional[str] = ..., last_name: _Optional[str] = ..., middle_name: _Optional[str] = ..., email_address: _Optional[str] = ..., phone_number: _Optional[str] = ..., street_address1: _Optional[str] = ..., street_address2: _Optional[str] = ..., city: _Optional[str] = ..., state: _Optional[str] = ..., country: _Optional[str] = ..., postal_code: _Optional[str] = ..., full_dob: _Optional[str] = ..., hospital_number: _Optional[str] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("study_oid", "site_oid", "subject_key", "subject_oid", "secondary_id", "status", "participate_status", "contact", "create_time", "update_time", "etag")
    STUDY_OID_FIELD_NUMBER: _ClassVar[int]
    SITE_OID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_OID_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    study_oid: str
    site_oid: str
    subject_key: str
    subject_oid: str
    secondary_id: str
    status: ParticipantStatus
    participate_status: ParticipateStatus
    contact: ParticipantContact
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, study_oid: _Optional[str] = ..., site_oid: _Optional[str] = ..., subject_key: _Optional[str] = ..., subject_oid: _Optional[str] = ..., secondary_id: _Optional[str] = ..., status: _Optional[_Union[ParticipantStatus, str]] = ..., participate_status: _Optional[_Union[ParticipateStatus, str]] = ..., contact: _Optional[_Union[ParticipantContact, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...
