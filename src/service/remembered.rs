//! Remembered answers (SPEC section 6): the stored form of an UpsertParticipant answer, kept for
//! its `request_id`, and the request hash that tells a retry from a reuse. The form is versioned:
//! rows written before the service layer had its own model hold protobuf (format 1) and stay
//! readable; new rows hold the model as JSON (format 2). This module is the only place in the
//! service that reads protobuf, and only for format 1.

use prost::Message;
use sha2::{Digest, Sha256};

use super::model::{UpsertInput, UpsertOutcome};
use crate::pb;

/// The answer is an encoded `UpsertParticipantResponse`; its hash is over the encoded request.
pub const FORMAT_PROTOBUF: i32 = 1;
/// The answer is the model's `UpsertOutcome` as JSON; its hash is over the input as JSON.
pub const FORMAT_JSON: i32 = 2;
/// The format new rows are written in.
pub const CURRENT_FORMAT: i32 = FORMAT_JSON;

/// A request's hash in each format, so that a retry matches a row of either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHash {
    current: String,
    protobuf: String,
}

impl RequestHash {
    /// Only a request with a `request_id` is ever remembered, so only it needs its hash.
    pub fn of(input: &UpsertInput) -> Self {
        if input.request_id.is_empty() {
            return Self::default();
        }
        // serde_json writes struct fields in declaration order: the same input, the same bytes.
        let json = serde_json::to_vec(input).unwrap_or_default();
        let protobuf = pb::UpsertParticipantRequest::from(input.clone()).encode_to_vec();
        Self {
            current: hex::encode(Sha256::digest(&json)),
            protobuf: hex::encode(Sha256::digest(&protobuf)),
        }
    }

    /// The hash stored with a new row.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Whether a row of `format` with `stored` hash was written for this same request.
    pub fn matches(&self, format: i32, stored: &str) -> bool {
        match format {
            FORMAT_PROTOBUF => self.protobuf == stored,
            _ => self.current == stored,
        }
    }
}

/// The bytes stored for an answer, in `CURRENT_FORMAT`.
pub fn encode(outcome: &UpsertOutcome) -> Vec<u8> {
    serde_json::to_vec(outcome).unwrap_or_default()
}

/// The answer stored as `bytes` in `format`.
pub fn decode(format: i32, bytes: &[u8]) -> Result<UpsertOutcome, String> {
    match format {
        FORMAT_PROTOBUF => pb::UpsertParticipantResponse::decode(bytes)
            .map_err(|e| e.to_string())?
            .try_into(),
        FORMAT_JSON => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        other => Err(format!("unknown answer format {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::model::{Contact, ScopeRef};

    fn input() -> UpsertInput {
        UpsertInput {
            scope: Some(ScopeRef::site("S_A", "S_B")),
            subject_key: "K-1".into(),
            contact: Some(Contact {
                email_address: Some("a@example.org".into()),
                ..Contact::default()
            }),
            request_id: "r-1".into(),
            ..UpsertInput::default()
        }
    }

    #[test]
    fn a_retry_matches_rows_of_both_formats_and_a_change_matches_neither() {
        let hash = RequestHash::of(&input());
        let old_row = hex::encode(Sha256::digest(
            pb::UpsertParticipantRequest::from(input()).encode_to_vec(),
        ));
        assert!(hash.matches(FORMAT_PROTOBUF, &old_row));
        assert!(hash.matches(FORMAT_JSON, hash.current()));
        let mut changed = input();
        changed.register = true;
        let other = RequestHash::of(&changed);
        assert!(!other.matches(FORMAT_PROTOBUF, &old_row));
        assert!(!other.matches(FORMAT_JSON, hash.current()));
    }

    #[test]
    fn an_empty_contact_is_not_an_absent_one() {
        let mut absent = input();
        absent.contact = None;
        let mut empty = input();
        empty.contact = Some(Contact::default());
        assert_ne!(RequestHash::of(&absent), RequestHash::of(&empty));
    }

    #[test]
    fn unknown_formats_and_broken_bytes_are_errors() {
        assert!(decode(3, b"{}").is_err());
        assert!(decode(FORMAT_JSON, b"{").is_err());
        assert!(decode(FORMAT_PROTOBUF, &[0xff, 0xff]).is_err());
    }
}
