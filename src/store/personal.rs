//! The repositories of personal data: they take and give plain values, and store them sealed
//! (XChaCha20-Poly1305, bound to their row and column: see `crypto` and the contexts in
//! `legacy`). The service decides what a participant's contact data, access code, remembered
//! response and audited contact values are; only the store turns them into their stored form
//! and back (this module; `access_codes` for the codes; `legacy::open_audit_value` reads audit
//! values, which may predate sealing), so no service module builds a sealed row or opens one.
//!
//! A write either runs now, on the transaction it is given, or is left for the batch to insert
//! with others (`Later`): in both cases what reaches the database is sealed here.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr,
    IntoActiveModel,
};

use super::entity::{idempotency_record, participant_contact};
use super::legacy::{contact_context, idempotency_context};
use crate::crypto::{CryptoError, DataCipher};

/// A stored value that could not be opened: which row, and why. It names the row by its id (or
/// the user and request id), never a value.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Unreadable {
    what: String,
    source: CryptoError,
}

impl Unreadable {
    pub(super) fn new(what: String, source: CryptoError) -> Self {
        Self { what, source }
    }
}

impl From<Unreadable> for crate::domain::ServiceError {
    fn from(e: Unreadable) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Where a write goes: to the database now, or to rows the batch inserts together.
pub enum Write<'a, Row> {
    Now(&'a DatabaseTransaction),
    Later(&'a mut Vec<Row>),
}

impl<Row: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send> Write<'_, Row> {
    /// Inserts `row` now, or leaves it to the batch.
    async fn put(self, row: Row) -> Result<(), DbErr>
    where
        <Row::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<Row>,
    {
        match self {
            Write::Now(c) => {
                row.insert(c).await?;
            }
            Write::Later(rows) => rows.push(row),
        }
        Ok(())
    }
}

/// Applies `f` to every contact column, with its name.
pub fn map_contact<E>(
    c: &participant_contact::Model,
    mut f: impl FnMut(&str, Option<&str>) -> Result<Option<String>, E>,
) -> Result<participant_contact::Model, E> {
    Ok(participant_contact::Model {
        participant_id: c.participant_id,
        first_name: f("first_name", c.first_name.as_deref())?,
        last_name: f("last_name", c.last_name.as_deref())?,
        middle_name: f("middle_name", c.middle_name.as_deref())?,
        email_address: f("email_address", c.email_address.as_deref())?,
        phone_number: f("phone_number", c.phone_number.as_deref())?,
        street_address1: f("street_address1", c.street_address1.as_deref())?,
        street_address2: f("street_address2", c.street_address2.as_deref())?,
        city: f("city", c.city.as_deref())?,
        state: f("state", c.state.as_deref())?,
        country: f("country", c.country.as_deref())?,
        postal_code: f("postal_code", c.postal_code.as_deref())?,
        full_dob: f("full_dob", c.full_dob.as_deref())?,
        hospital_number: f("hospital_number", c.hospital_number.as_deref())?,
    })
}

/// The stored form of a contact field's old or new value in an audit event of participant
/// `participant_id` (the event's other values are not personal data, and stay as they are).
pub fn seal_audit_value(
    cipher: &DataCipher,
    participant_id: i64,
    field: &str,
    value: Option<&str>,
) -> Option<String> {
    value.map(|v| cipher.seal(v, &super::legacy::audit_context(participant_id, field)))
}

/// Participants' contact data: one row per site-level participant, every column sealed.
#[derive(Clone, Copy)]
pub struct Contacts<'a> {
    cipher: &'a DataCipher,
}

impl<'a> Contacts<'a> {
    pub fn new(cipher: &'a DataCipher) -> Self {
        Self { cipher }
    }

    /// The readable form of a stored row (read by the caller, alone or with others).
    pub fn open(
        &self,
        stored: &participant_contact::Model,
    ) -> Result<participant_contact::Model, Unreadable> {
        let id = stored.participant_id;
        map_contact(stored, |field, v| {
            self.cipher
                .open_opt(v, &contact_context(id, field))
                .map_err(|source| Unreadable {
                    what: format!("contact data of participant {id}"),
                    source,
                })
        })
    }

    /// The stored form of `plain`, every column set.
    fn sealed(&self, plain: &participant_contact::Model) -> participant_contact::ActiveModel {
        let id = plain.participant_id;
        let sealed = map_contact(plain, |field, v| {
            Ok::<_, std::convert::Infallible>(self.cipher.seal_opt(v, &contact_context(id, field)))
        });
        let sealed = match sealed {
            Ok(model) => model,
            Err(never) => match never {},
        };
        sealed.into_active_model().reset_all()
    }

    /// Stores a participant's first contact row.
    pub async fn insert(
        &self,
        to: Write<'_, participant_contact::ActiveModel>,
        plain: &participant_contact::Model,
    ) -> Result<(), DbErr> {
        let row = self.sealed(plain);
        to.put(row).await
    }

    /// Replaces a participant's stored contact row.
    pub async fn update(
        &self,
        c: &impl ConnectionTrait,
        plain: &participant_contact::Model,
    ) -> Result<(), DbErr> {
        self.sealed(plain).update(c).await?;
        Ok(())
    }
}

/// Remembered responses, by user and request id: the response sealed, bound to both.
#[derive(Clone, Copy)]
pub struct Remembered<'a> {
    cipher: &'a DataCipher,
}

/// A response to remember.
pub struct ToRemember<'r> {
    pub user: &'r str,
    pub request_id: &'r str,
    /// The request's keyed hash (not personal data: it is compared, never opened).
    pub request_hash: &'r str,
    /// How `response` is encoded.
    pub format: i32,
    /// The encoded response, plain.
    pub response: &'r [u8],
    pub at: DateTime<Utc>,
}

impl<'a> Remembered<'a> {
    pub fn new(cipher: &'a DataCipher) -> Self {
        Self { cipher }
    }

    /// Stores a response.
    pub async fn insert(
        &self,
        to: Write<'_, idempotency_record::ActiveModel>,
        r: ToRemember<'_>,
    ) -> Result<(), DbErr> {
        let row = idempotency_record::ActiveModel {
            user_name: Set(r.user.to_owned()),
            request_id: Set(r.request_id.to_owned()),
            request_hash: Set(r.request_hash.to_owned()),
            response_format: Set(r.format),
            response: Set(self
                .cipher
                .seal_bytes(r.response, &idempotency_context(r.user, r.request_id))),
            created_at: Set(r.at),
            ..Default::default()
        };
        to.put(row).await
    }

    /// The remembered response of a stored record, opened (still encoded).
    pub fn open(&self, record: &idempotency_record::Model) -> Result<Vec<u8>, Unreadable> {
        self.cipher
            .open_bytes(
                &record.response,
                &idempotency_context(&record.user_name, &record.request_id),
            )
            .map_err(|source| Unreadable {
                what: "stored response cannot be opened".to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> DataCipher {
        DataCipher::new(&[7u8; 32], [])
    }

    fn contact(id: i64) -> participant_contact::Model {
        participant_contact::Model {
            participant_id: id,
            email_address: Some("ana@example.org".into()),
            phone_number: Some("+15550100".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_contact_row_is_stored_sealed_and_opens_as_written() {
        let cipher = cipher();
        let contacts = Contacts::new(&cipher);
        let plain = contact(5);
        let stored = participant_contact::Model::try_from(contacts.sealed(&plain)).unwrap();
        let email = stored.email_address.clone().unwrap();
        assert!(
            DataCipher::is_sealed(&email),
            "stored in the clear: {email}"
        );
        assert!(!email.contains("ana@"));
        assert_eq!(stored.first_name, None, "an empty column stays empty");
        assert_eq!(contacts.open(&stored).unwrap(), plain);
    }

    #[test]
    fn a_contact_row_moved_to_another_participant_does_not_open() {
        let cipher = cipher();
        let contacts = Contacts::new(&cipher);
        let mut stored =
            participant_contact::Model::try_from(contacts.sealed(&contact(5))).unwrap();
        stored.participant_id = 6;
        let e = contacts.open(&stored).unwrap_err().to_string();
        assert!(e.starts_with("contact data of participant 6: "), "{e}");
        assert!(!e.contains("ana@"), "{e}");
    }

    #[test]
    fn a_remembered_response_opens_only_for_its_user_and_request_id() {
        let cipher = cipher();
        let remembered = Remembered::new(&cipher);
        let sealed = cipher.seal_bytes(b"answer", &idempotency_context("u1", "r1"));
        let mut record = idempotency_record::Model {
            id: 1,
            user_name: "u1".into(),
            request_id: "r1".into(),
            request_hash: String::new(),
            response_format: 1,
            response: sealed,
            created_at: Utc::now(),
        };
        assert_eq!(remembered.open(&record).unwrap(), b"answer");
        record.user_name = "u2".into();
        assert!(remembered.open(&record).is_err());
    }
}
