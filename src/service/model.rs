//! What the use cases take and give, free of any transport: the gRPC edge (`crate::grpc::convert`)
//! and the REST edge (`crate::rest`) convert their own types to and from these, so both reach
//! every rule through the same code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::validate::ContactField;

/// The study, or a site of it, a call acts on. `None` in an input means the caller named neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRef {
    pub study_oid: String,
    /// `None` for a study-level call.
    pub site_oid: Option<String>,
}

impl ScopeRef {
    pub fn study(study_oid: impl Into<String>) -> Self {
        Self {
            study_oid: study_oid.into(),
            site_oid: None,
        }
    }

    pub fn site(study_oid: impl Into<String>, site_oid: impl Into<String>) -> Self {
        Self {
            study_oid: study_oid.into(),
            site_oid: Some(site_oid.into()),
        }
    }
}

/// Contact data, each field with its presence: in an input, `None` keeps the stored value and
/// `Some("")` clears it; in a view, `None` is an empty field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<String>,
    pub email_address: Option<String>,
    pub phone_number: Option<String>,
    pub street_address1: Option<String>,
    pub street_address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub full_dob: Option<String>,
    pub hospital_number: Option<String>,
}

impl Contact {
    /// Every field with its name, in column order.
    pub fn fields(&self) -> [(ContactField, Option<String>); 13] {
        [
            (ContactField::FirstName, self.first_name.clone()),
            (ContactField::LastName, self.last_name.clone()),
            (ContactField::MiddleName, self.middle_name.clone()),
            (ContactField::EmailAddress, self.email_address.clone()),
            (ContactField::PhoneNumber, self.phone_number.clone()),
            (ContactField::StreetAddress1, self.street_address1.clone()),
            (ContactField::StreetAddress2, self.street_address2.clone()),
            (ContactField::City, self.city.clone()),
            (ContactField::State, self.state.clone()),
            (ContactField::Country, self.country.clone()),
            (ContactField::PostalCode, self.postal_code.clone()),
            (ContactField::FullDob, self.full_dob.clone()),
            (ContactField::HospitalNumber, self.hospital_number.clone()),
        ]
    }

    /// Whether any field is present.
    pub fn any(&self) -> bool {
        self.fields().iter().any(|(_, v)| v.is_some())
    }
}

/// UpsertParticipant's input. Strings are as the caller sent them; every rule is checked by
/// the use case, never by an edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertInput {
    pub scope: Option<ScopeRef>,
    /// `""` asks the study to generate the ID (system method).
    pub subject_key: String,
    /// `None` keeps, `Some("")` clears.
    pub secondary_id: Option<String>,
    /// `None` when the caller sent no contact at all (kept apart from an empty one, as the
    /// remembered-answer hash of older versions tells them apart).
    pub contact: Option<Contact>,
    pub register: bool,
    /// `""` when absent.
    pub request_id: String,
    pub validate_only: bool,
    /// `""` when absent.
    pub etag: String,
    /// `""` when absent.
    pub reason_for_change: String,
}

/// GetParticipant's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetInput {
    pub scope: Option<ScopeRef>,
    pub subject_key: String,
}

/// A Participant's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantStatus {
    Available,
    Signed,
    Removed,
    /// A stored value this version does not know.
    Unknown,
}

impl ParticipantStatus {
    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "available" => Self::Available,
            "signed" => Self::Signed,
            "removed" => Self::Removed,
            _ => Self::Unknown,
        }
    }

    /// The stored form.
    pub fn as_stored(self) -> Option<&'static str> {
        match self {
            Self::Available => Some("available"),
            Self::Signed => Some("signed"),
            Self::Removed => Some("removed"),
            Self::Unknown => None,
        }
    }
}

/// Where a Participant stands with Participate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipateStatus {
    /// Never registered.
    None,
    Created,
    Invited,
    Active,
    Inactive,
}

impl ParticipateStatus {
    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "created" => Self::Created,
            "invited" => Self::Invited,
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            _ => Self::None,
        }
    }
}

/// A Participant as a caller may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    pub study_oid: String,
    /// `None` for a study-level participant.
    pub site_oid: Option<String>,
    pub subject_key: String,
    pub subject_oid: String,
    pub secondary_id: Option<String>,
    pub status: ParticipantStatus,
    pub participate_status: ParticipateStatus,
    /// `None` when the caller may not see contact data, or for a study-level participant.
    pub contact: Option<Contact>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub etag: String,
}

/// UpsertParticipant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertOutcome {
    pub participant: ParticipantView,
    pub created: bool,
    /// The Participate access code, when the call asked to register (and wrote).
    pub access_code: Option<String>,
}

/// ListParticipants' input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListInput {
    pub scope: Option<ScopeRef>,
    /// 0 for the default; more than the maximum is the maximum; negative is refused.
    pub page_size: i32,
    /// `""` for the first page.
    pub page_token: String,
    /// Only Participants with this status.
    pub status: Option<ParticipantStatus>,
}

/// One page of Participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantPage {
    pub participants: Vec<ParticipantView>,
    /// `None` on the last page.
    pub next_page_token: Option<String>,
}
