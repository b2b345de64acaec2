//! The audit trail's closed set of event types and its hash chain (SPEC section 14): pure, so
//! the write path, the migration that chains old rows and `audit verify` hash the same bytes.

use sha2::{Digest, Sha256};

/// What an audit event records. Stored and exposed by `as_str`; the proto `AuditEventType`
/// lists the same names with an `AUDIT_EVENT_TYPE_` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A Participant was created (field `subject_key`, new value the ID).
    ParticipantCreated,
    /// One field changed (old and new value; contact values sealed at rest).
    FieldChanged,
    /// The Participant was registered for Participate (the access code is never recorded).
    ParticipateRegistered,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        EventType::ParticipantCreated,
        EventType::FieldChanged,
        EventType::ParticipateRegistered,
    ];

    /// The name stored in `audit_events.event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ParticipantCreated => "PARTICIPANT_CREATED",
            EventType::FieldChanged => "FIELD_CHANGED",
            EventType::ParticipateRegistered => "PARTICIPATE_REGISTERED",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The hash before a study's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The stored form of one event, as hashed into its study's chain: internal ids, the stored
/// (sealed) values, and the text of its reason for change.
#[derive(Debug, Clone, Copy)]
pub struct ChainedEvent<'a> {
    pub study_id: i64,
    /// 1 for the study's first event, then one more per event.
    pub seq: i64,
    pub participant_id: i64,
    pub event_type: &'a str,
    pub field: Option<&'a str>,
    pub old_value: Option<&'a str>,
    pub new_value: Option<&'a str>,
    pub actor: &'a str,
    /// Microseconds since the Unix epoch (what the database keeps).
    pub occurred_at_micros: i64,
    pub request_id: Option<&'a str>,
    /// The inline reason of events written before reasons were stored once per write.
    pub inline_reason: Option<&'a str>,
    /// The text of the referenced `change_reasons` row.
    pub reason: Option<&'a str>,
}

const CANONICAL_VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

impl ChainedEvent<'_> {
    /// Unambiguous bytes of the event: a version byte, then each field in order, integers as
    /// 8 bytes big-endian, text as its 8-byte length and UTF-8 bytes, absent values as one 0 byte
    /// (present ones prefixed by a 1 byte).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(CANONICAL_VERSION);
        out.extend_from_slice(&self.study_id.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.participant_id.to_be_bytes());
        put_str(&mut out, self.event_type);
        put_opt(&mut out, self.field);
        put_opt(&mut out, self.old_value);
        put_opt(&mut out, self.new_value);
        put_str(&mut out, self.actor);
        out.extend_from_slice(&self.occurred_at_micros.to_be_bytes());
        put_opt(&mut out, self.request_id);
        put_opt(&mut out, self.inline_reason);
        put_opt(&mut out, self.reason);
        out
    }

    /// `SHA-256(previous ‖ canonical bytes)`.
    pub fn hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(previous);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }
}

/// Parses a stored hash (64 hex digits).
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ChainedEvent<'static> {
        ChainedEvent {
            study_id: 1,
            seq: 1,
            participant_id: 2,
            event_type: "FIELD_CHANGED",
            field: Some("secondary_id"),
            old_value: None,
            new_value: Some("x"),
            actor: "dm",
            occurred_at_micros: 1_700_000_000_000_000,
            request_id: None,
            inline_reason: None,
            reason: Some("typo"),
        }
    }

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("field_changed"), None);
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let base = event().hash(&GENESIS);
        assert_eq!(base, event().hash(&GENESIS), "deterministic");
        assert_ne!(base, event().hash(&[1; 32]));
        let variants = [
            ChainedEvent { seq: 2, ..event() },
            ChainedEvent {
                study_id: 9,
                ..event()
            },
            ChainedEvent {
                participant_id: 9,
                ..event()
            },
            ChainedEvent {
                event_type: "PARTICIPANT_CREATED",
                ..event()
            },
            ChainedEvent {
                field: None,
                ..event()
            },
            ChainedEvent {
                old_value: Some(""),
                ..event()
            },
            ChainedEvent {
                new_value: Some("y"),
                ..event()
            },
            ChainedEvent {
                actor: "dn",
                ..event()
            },
            ChainedEvent {
                occurred_at_micros: 1,
                ..event()
            },
            ChainedEvent {
                request_id: Some("r"),
                ..event()
            },
            ChainedEvent {
                inline_reason: Some("typo"),
                ..event()
            },
            ChainedEvent {
                reason: None,
                ..event()
            },
        ];
        for v in variants {
            assert_ne!(v.hash(&GENESIS), base, "{v:?}");
        }
        // Moving text between adjacent fields changes the bytes.
        let a = ChainedEvent {
            old_value: Some("ab"),
            new_value: Some("c"),
            ..event()
        };
        let b = ChainedEvent {
            old_value: Some("a"),
            new_value: Some("bc"),
            ..event()
        };
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn stored_hashes_parse() {
        let h = event().hash(&GENESIS);
        assert_eq!(parse_hash(&hex::encode(h)), Some(h));
        assert_eq!(parse_hash("zz"), None);
        assert_eq!(parse_hash(&"ab".repeat(31)), None);
    }
}

/// What ListAuditEvents asks for, parsed from the request at the edge.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub study_oid: String,
    /// A site-scoped call; `None` for the whole study.
    pub site_oid: Option<String>,
    /// Only this Participant's events (as typed by the caller; matched like GetParticipant).
    pub subject_key: Option<String>,
    /// Events at or after this time.
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Events before this time.
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// As requested: 0 for the default, more than the largest is the largest, negative is
    /// refused (`INVALID_PAGE_SIZE`).
    pub page_size: i32,
    pub page_token: Option<String>,
}

/// One event as a reader sees it: contact values opened, or masked for roles that do not
/// see contact data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventView {
    pub event_id: i64,
    pub study_oid: String,
    pub site_oid: Option<String>,
    pub subject_key: String,
    /// `None` for a stored name this version does not know.
    pub event_type: Option<EventType>,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub user: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub request_id: Option<String>,
    pub reason_for_change: Option<String>,
    pub hash: Option<String>,
}

/// One page of events, oldest first, and the token of the next page when there is one.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    pub next_page_token: Option<String>,
}

/// What a masked contact value reads as.
pub const MASK: &str = "***";

/// Default and largest page sizes of ListAuditEvents.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
