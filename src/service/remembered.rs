//! Remembered answers (SPEC section 6): the stored form of an UpsertParticipant answer, kept for
//! its `request_id`, and the request hash that tells a retry from a reuse. The form is versioned:
//! rows written before the service layer had its own model hold protobuf (format 1) and stay
//! readable; new rows hold the model as JSON (format 2). This module is the only place in the
//! service that reads protobuf, and only for format 1.
//!
//! The request hash is keyed: `<key id>:<HMAC>` under a key derived from the data key, bound to
//! the caller and the request id. An unkeyed hash of a request that holds contact data would let
//! anyone who reads the database confirm a guessed value (a date of birth is one of some 30,000)
//! without the key. Rows stored before the hash was keyed hold a bare SHA-256 and still match
//! their retries; they expire with every remembered answer.

use prost::Message;
use sha2::{Digest, Sha256};

use super::model::{UpsertInput, UpsertOutcome};
use crate::crypto::DataCipher;
use crate::pb;

/// The answer is an encoded `UpsertParticipantResponse`; its hash is over the encoded request.
pub const FORMAT_PROTOBUF: i32 = 1;
/// The answer is the model's `UpsertOutcome` as JSON; its hash is over the input as JSON.
pub const FORMAT_JSON: i32 = 2;
/// The format new rows are written in.
pub const CURRENT_FORMAT: i32 = FORMAT_JSON;

/// A request's hash as new rows store it, and the digests that rows of earlier forms hold.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestHash {
    /// The keyed hash stored with a new row.
    current: String,
    /// SHA-256 of the input as JSON: the value keyed into `current`, and the hash of rows
    /// stored in format 2 before the hash was keyed.
    json: String,
    /// SHA-256 of the encoded request: the hash of format-1 rows.
    protobuf: String,
    /// What the keyed hash is bound to: the caller and the request id.
    context: String,
}

impl std::fmt::Debug for RequestHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digests are unkeyed: they stay out of logs as they stay out of the database.
        f.write_str("RequestHash(..)")
    }
}

impl RequestHash {
    /// Only a request with a `request_id` is ever remembered, so only it needs its hash.
    pub fn of(input: &UpsertInput, cipher: &DataCipher, user: &str) -> Self {
        if input.request_id.is_empty() {
            return Self::default();
        }
        // serde_json writes struct fields in declaration order: the same input, the same bytes.
        let json = serde_json::to_vec(input).unwrap_or_default();
        let protobuf = pb::UpsertParticipantRequest::from(input.clone()).encode_to_vec();
        let json = hex::encode(Sha256::digest(&json));
        let context = format!(
            "request_hash/{}",
            crate::store::legacy::idempotency_context(user, &input.request_id)
        );
        Self {
            current: cipher.lookup_hash(&json, &context),
            json,
            protobuf: hex::encode(Sha256::digest(&protobuf)),
            context,
        }
    }

    /// The hash stored with a new row.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Whether a row of `format` with `stored` hash was written for this same request: a keyed
    /// hash under the current or a previous data key, or an unkeyed one of an older row. `None`
    /// when the row was hashed under a data key this server does not have (a replica not yet
    /// given a new key): it cannot tell a retry from a reuse, and must not call it a reuse.
    pub fn matches(&self, format: i32, stored: &str, cipher: &DataCipher) -> Option<bool> {
        if stored.contains(':') {
            if format == FORMAT_PROTOBUF {
                return Some(false);
            }
            return cipher.lookup_hash_matches(stored, &self.json, &self.context);
        }
        Some(match format {
            FORMAT_PROTOBUF => self.protobuf == stored,
            _ => self.json == stored,
        })
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

    fn cipher() -> DataCipher {
        DataCipher::new(&[1; 32], &[])
    }

    #[test]
    fn a_retry_matches_rows_of_every_form_and_a_change_matches_none() {
        let c = cipher();
        let hash = RequestHash::of(&input(), &c, "crc");
        let old_row = hex::encode(Sha256::digest(
            pb::UpsertParticipantRequest::from(input()).encode_to_vec(),
        ));
        let unkeyed_row = hex::encode(Sha256::digest(serde_json::to_vec(&input()).unwrap()));
        assert_eq!(Some(true), hash.matches(FORMAT_PROTOBUF, &old_row, &c));
        assert_eq!(Some(true), hash.matches(FORMAT_JSON, &unkeyed_row, &c));
        assert_eq!(Some(true), hash.matches(FORMAT_JSON, hash.current(), &c));
        let mut changed = input();
        changed.register = true;
        let other = RequestHash::of(&changed, &c, "crc");
        assert_eq!(Some(false), other.matches(FORMAT_PROTOBUF, &old_row, &c));
        assert_eq!(Some(false), other.matches(FORMAT_JSON, &unkeyed_row, &c));
        assert_eq!(Some(false), other.matches(FORMAT_JSON, hash.current(), &c));
    }

    #[test]
    fn the_stored_hash_is_keyed_and_bound_to_the_caller() {
        let c = cipher();
        let hash = RequestHash::of(&input(), &c, "crc");
        let unkeyed = hex::encode(Sha256::digest(serde_json::to_vec(&input()).unwrap()));
        assert!(!hash.current().contains(&unkeyed));
        assert!(hash.current().starts_with(c.current_key_id()));
        // Another key, or another caller with the same request id, gives another hash.
        let other_key = DataCipher::new(&[2; 32], &[]);
        assert_ne!(
            hash.current(),
            RequestHash::of(&input(), &other_key, "crc").current()
        );
        assert_ne!(
            hash.current(),
            RequestHash::of(&input(), &c, "mon").current()
        );
        assert_eq!(
            Some(false),
            RequestHash::of(&input(), &c, "mon").matches(FORMAT_JSON, hash.current(), &c)
        );
        // A format-1 row never holds a keyed hash.
        assert_eq!(
            Some(false),
            hash.matches(FORMAT_PROTOBUF, hash.current(), &c)
        );
    }

    #[test]
    fn a_hash_stored_before_a_key_rotation_still_matches() {
        let before = cipher();
        let stored = RequestHash::of(&input(), &before, "crc")
            .current()
            .to_owned();
        let rotated = DataCipher::new(&[2; 32], &[[1; 32]]);
        let retry = RequestHash::of(&input(), &rotated, "crc");
        assert_ne!(retry.current(), stored);
        assert_eq!(Some(true), retry.matches(FORMAT_JSON, &stored, &rotated));
        // Without the old key the server cannot tell a retry from a reuse.
        let forgotten = DataCipher::new(&[2; 32], &[]);
        assert_eq!(
            None,
            RequestHash::of(&input(), &forgotten, "crc").matches(FORMAT_JSON, &stored, &forgotten)
        );
    }

    #[test]
    fn an_empty_contact_is_not_an_absent_one() {
        let c = cipher();
        let mut absent = input();
        absent.contact = None;
        let mut empty = input();
        empty.contact = Some(Contact::default());
        assert_ne!(
            RequestHash::of(&absent, &c, "crc"),
            RequestHash::of(&empty, &c, "crc")
        );
    }

    #[test]
    fn unknown_formats_and_broken_bytes_are_errors() {
        assert!(decode(3, b"{}").is_err());
        assert!(decode(FORMAT_JSON, b"{").is_err());
        assert!(decode(FORMAT_PROTOBUF, &[0xff, 0xff]).is_err());
    }
}
