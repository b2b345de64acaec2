//! The one table of error reasons (SPEC section 5): reason, OpenClinica `errorCode.*`, gRPC code
//! and the HTTP status of a REST-compatible route. Everything else (the proto `ErrorReason` enum
//! check, `ErrorInfo`, the order of violations) is derived from this table.

/// gRPC status codes used by the table, kept free of tonic so the domain has no transport types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    FailedPrecondition,
    Aborted,
    Unauthenticated,
    Unavailable,
    ResourceExhausted,
    DeadlineExceeded,
    Internal,
}

macro_rules! reasons {
    ($( $variant:ident => $name:literal, $oc:literal, $code:ident, $http:literal; )+) => {
        /// Why a call failed. The declaration order is the table order of SPEC section 5: when a
        /// request breaks several rules, the first in this order is `ErrorInfo.reason`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $( $variant, )+
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[ $( Reason::$variant, )+ ];

            /// The reason as sent in `ErrorInfo.reason`, e.g. `FIRST_NAME_TOO_LONG`.
            pub fn as_str(self) -> &'static str {
                match self { $( Reason::$variant => $name, )+ }
            }

            /// The OpenClinica code, e.g. `errorCode.firstNameTooLong`.
            pub fn error_code(self) -> &'static str {
                match self { $( Reason::$variant => $oc, )+ }
            }

            /// The gRPC status code this reason answers with.
            pub fn grpc_code(self) -> GrpcCode {
                match self { $( Reason::$variant => GrpcCode::$code, )+ }
            }

            /// The HTTP status of the REST-compatible route.
            pub fn http_status(self) -> u16 {
                match self { $( Reason::$variant => $http, )+ }
            }
        }
    };
}

reasons! {
    StudyNotExist => "STUDY_NOT_EXIST", "errorCode.studyNotExist", NotFound, 404;
    StudyNotAvailable => "STUDY_NOT_AVAILABLE", "errorCode.studyNotAvailable", FailedPrecondition, 400;
    SiteNotExist => "SITE_NOT_EXIST", "errorCode.siteNotExist", NotFound, 404;
    SiteNotAvailable => "SITE_NOT_AVAILABLE", "errorCode.siteNotAvailable", FailedPrecondition, 400;
    NoRoleSetUp => "NO_ROLE_SET_UP", "errorCode.noRoleSetUp", PermissionDenied, 403;
    NoSufficientPrivileges => "NO_SUFFICIENT_PRIVILEGES", "errorCode.noSufficientPrivileges", PermissionDenied, 403;
    ParticipateNotEnabled => "PARTICIPATE_NOT_ENABLED", "errorCode.participateNotEnabled", FailedPrecondition, 400;
    StudyLevelParticipantContactNotAllowed => "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED", "errorCode.studyLevelParticipantContactNotAllowed", InvalidArgument, 400;
    StudyLevelParticipantRegistrationNotAllowed => "STUDY_LEVEL_PARTICIPANT_REGISTRATION_NOT_ALLOWED", "errorCode.studyLevelParticipantRegistrationNotAllowed", InvalidArgument, 400;
    MissingParticipantIdData => "MISSING_PARTICIPANT_ID_DATA", "errorCode.missingParticipantIdData", InvalidArgument, 400;
    ParticipantIdContainsUnsupportedHtmlCharacter => "PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER", "errorCode.participantIDContainsUnsupportedHTMLCharacter", InvalidArgument, 400;
    ParticipantIdLongerThan30Characters => "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS", "errorCode.participantIDLongerThan30Characters", InvalidArgument, 400;
    FirstNameTooLong => "FIRST_NAME_TOO_LONG", "errorCode.firstNameTooLong", InvalidArgument, 400;
    LastNameTooLong => "LAST_NAME_TOO_LONG", "errorCode.lastNameTooLong", InvalidArgument, 400;
    MiddleNameTooLong => "MIDDLE_NAME_TOO_LONG", "errorCode.middleNameTooLong", InvalidArgument, 400;
    EmailAddressTooLong => "EMAIL_ADDRESS_TOO_LONG", "errorCode.emailAddressTooLong", InvalidArgument, 400;
    InvalidEmailAddress => "INVALID_EMAIL_ADDRESS", "errorCode.invalidEmailAddress", InvalidArgument, 400;
    PhoneNumberTooLong => "PHONE_NUMBER_TOO_LONG", "errorCode.phoneNumberTooLong", InvalidArgument, 400;
    InvalidPhoneNumber => "INVALID_PHONE_NUMBER", "errorCode.invalidPhoneNumber", InvalidArgument, 400;
    StreetAddress1TooLong => "STREET_ADDRESS1_TOO_LONG", "errorCode.streetAddress1TooLong", InvalidArgument, 400;
    StreetAddress2TooLong => "STREET_ADDRESS2_TOO_LONG", "errorCode.streetAddress2TooLong", InvalidArgument, 400;
    CityTooLong => "CITY_TOO_LONG", "errorCode.cityTooLong", InvalidArgument, 400;
    StateTooLong => "STATE_TOO_LONG", "errorCode.stateTooLong", InvalidArgument, 400;
    CountryTooLong => "COUNTRY_TOO_LONG", "errorCode.countryTooLong", InvalidArgument, 400;
    PostalCodeTooLong => "POSTAL_CODE_TOO_LONG", "errorCode.postalCodeTooLong", InvalidArgument, 400;
    SecondaryIdTooLong => "SECONDARY_ID_TOO_LONG", "errorCode.secondaryIdTooLong", InvalidArgument, 400;
    HospitalNumberTooLong => "HOSPITAL_NUMBER_TOO_LONG", "errorCode.hospitalNumberTooLong", InvalidArgument, 400;
    InvalidFullDob => "INVALID_FULL_DOB", "errorCode.invalidFullDob", InvalidArgument, 400;
    RequestIdReused => "REQUEST_ID_REUSED", "errorCode.requestIdReused", InvalidArgument, 422;
    ParticipantNotFound => "PARTICIPANT_NOT_FOUND", "errorCode.participantNotFound", NotFound, 404;
    ParticipantIdAlreadyExists => "PARTICIPANT_ID_ALREADY_EXISTS", "errorCode.participantIDAlreadyExists", AlreadyExists, 409;
    ParticipantIdNotAvailable => "PARTICIPANT_ID_NOT_AVAILABLE", "errorCode.participantIDNotAvailable", FailedPrecondition, 400;
    ParticipantsEnrollmentCapReached => "PARTICIPANTS_ENROLLMENT_CAP_REACHED", "errorCode.participantsEnrollmentCapReached", FailedPrecondition, 400;
    EtagMismatch => "ETAG_MISMATCH", "errorCode.etagMismatch", Aborted, 412;
    Unauthenticated => "UNAUTHENTICATED", "errorCode.unauthenticated", Unauthenticated, 401;
    StorageUnavailable => "STORAGE_UNAVAILABLE", "errorCode.storageUnavailable", Unavailable, 503;
    // Beyond SPEC section 5: a request_id over 64 characters, the catch-all INTERNAL, and the
    // hardening reasons after it (proto numbers follow this order, so new reasons go last).
    RequestIdTooLong => "REQUEST_ID_TOO_LONG", "errorCode.requestIdTooLong", InvalidArgument, 400;
    Internal => "INTERNAL", "errorCode.internal", Internal, 500;
    // Hardening: characters that hide, bounded free text, and the transport's own refusals.
    UnsupportedCharacter => "UNSUPPORTED_CHARACTER", "errorCode.unsupportedCharacter", InvalidArgument, 400;
    ReasonForChangeTooLong => "REASON_FOR_CHANGE_TOO_LONG", "errorCode.reasonForChangeTooLong", InvalidArgument, 400;
    RequestTimedOut => "REQUEST_TIMED_OUT", "errorCode.requestTimedOut", DeadlineExceeded, 504;
    ServerOverloaded => "SERVER_OVERLOADED", "errorCode.serverOverloaded", ResourceExhausted, 429;
    MessageTooLarge => "MESSAGE_TOO_LARGE", "errorCode.messageTooLarge", ResourceExhausted, 413;
    MalformedRequest => "MALFORMED_REQUEST", "errorCode.malformedRequest", InvalidArgument, 400;
    InvalidPageToken => "INVALID_PAGE_TOKEN", "errorCode.invalidPageToken", InvalidArgument, 400;
    InvalidPageSize => "INVALID_PAGE_SIZE", "errorCode.invalidPageSize", InvalidArgument, 400;
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_error_codes_are_openclinica_codes() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert!(r.error_code().starts_with("errorCode."), "{r}");
        }
    }

    #[test]
    fn table_order_puts_the_first_name_before_the_last_name() {
        assert!(Reason::FirstNameTooLong < Reason::LastNameTooLong);
        assert!(Reason::MissingParticipantIdData < Reason::InvalidFullDob);
    }
}
