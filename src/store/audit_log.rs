//! Reads of the audit trail, in pages of constant size: the stored rows with the text of their
//! reason for change, for `audit verify`, `audit export` and the chain migration.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

use crate::domain::audit::ChainedEvent;

/// One stored audit event as read back, values as stored (contact values sealed).
#[derive(Debug, Clone, FromQueryResult)]
pub struct StoredEvent {
    pub id: i64,
    pub study_id: i64,
    pub participant_id: i64,
    pub event_type: String,
    pub field_name: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub reason_for_change: Option<String>,
    /// The text of the referenced `change_reasons` row.
    pub reason: Option<String>,
    pub chain_seq: Option<i64>,
    pub hash: Option<String>,
    pub subject_key: Option<String>,
    pub site_oid: Option<String>,
}

impl StoredEvent {
    /// The event as hashed into its chain, at position `seq`.
    pub fn chained(&self, seq: i64) -> ChainedEvent<'_> {
        ChainedEvent {
            study_id: self.study_id,
            seq,
            participant_id: self.participant_id,
            event_type: &self.event_type,
            field: self.field_name.as_deref(),
            old_value: self.old_value.as_deref(),
            new_value: self.new_value.as_deref(),
            actor: &self.actor,
            occurred_at_micros: self.occurred_at.timestamp_micros(),
            request_id: self.request_id.as_deref(),
            inline_reason: self.reason_for_change.as_deref(),
            reason: self.reason.as_deref(),
        }
    }

    /// The reason for change, wherever it is stored.
    pub fn reason_text(&self) -> Option<&str> {
        self.reason.as_deref().or(self.reason_for_change.as_deref())
    }
}

const COLUMNS: &str = "e.id, e.study_id, e.participant_id, e.event_type, e.field_name, \
     e.old_value, e.new_value, e.actor, e.occurred_at, e.request_id, e.reason_for_change, \
     r.reason AS reason, e.chain_seq, e.hash, p.subject_key AS subject_key, s.oid AS site_oid \
     FROM audit_events e LEFT JOIN change_reasons r ON r.id = e.reason_id \
     LEFT JOIN participants p ON p.id = e.participant_id LEFT JOIN sites s ON s.id = p.site_id";

/// `?` placeholders as the backend wants them.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(ch);
                }
            }
            out
        }
        _ => sql.to_owned(),
    }
}

async fn query(
    c: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<StoredEvent>, DbErr> {
    let backend = c.get_database_backend();
    let rows = c
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, sql),
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| StoredEvent::from_query_result(row, ""))
        .collect()
}

/// A study's events in insertion order (by id), after `after_id`.
pub async fn page_by_id(
    c: &impl ConnectionTrait,
    study_id: i64,
    after_id: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>, DbErr> {
    query(
        c,
        &format!("SELECT {COLUMNS} WHERE e.study_id = ? AND e.id > ? ORDER BY e.id LIMIT ?"),
        vec![study_id.into(), after_id.into(), (limit as i64).into()],
    )
    .await
}

/// A study's chained events in chain order (position, then id), after `(after_seq, after_id)`.
pub async fn page_by_chain(
    c: &impl ConnectionTrait,
    study_id: i64,
    after: (i64, i64),
    limit: u64,
) -> Result<Vec<StoredEvent>, DbErr> {
    query(
        c,
        &format!(
            "SELECT {COLUMNS} WHERE e.study_id = ? AND e.chain_seq IS NOT NULL \
             AND (e.chain_seq, e.id) > (?, ?) \
             ORDER BY e.chain_seq, e.id LIMIT ?"
        ),
        vec![
            study_id.into(),
            after.0.into(),
            after.1.into(),
            (limit as i64).into(),
        ],
    )
    .await
}

/// What a page of a study's trail is filtered by.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrailFilter {
    pub site_id: Option<i64>,
    pub participant_id: Option<i64>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A page of a study's trail in id order after `after_id`: a keyset read on
/// `(study_id, id)` (or the participant's index), so each page costs the same.
pub async fn page_filtered(
    c: &impl ConnectionTrait,
    study_id: i64,
    filter: TrailFilter,
    after_id: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>, DbErr> {
    let mut sql = format!("SELECT {COLUMNS} WHERE e.study_id = ? AND e.id > ?");
    let mut values: Vec<Value> = vec![study_id.into(), after_id.into()];
    if let Some(site) = filter.site_id {
        sql.push_str(" AND p.site_id = ?");
        values.push(site.into());
    }
    if let Some(participant) = filter.participant_id {
        sql.push_str(" AND e.participant_id = ?");
        values.push(participant.into());
    }
    if let Some(start) = filter.start {
        sql.push_str(" AND e.occurred_at >= ?");
        values.push(start.into());
    }
    if let Some(end) = filter.end {
        sql.push_str(" AND e.occurred_at < ?");
        values.push(end.into());
    }
    sql.push_str(" ORDER BY e.id LIMIT ?");
    values.push((limit as i64).into());
    query(c, &sql, values).await
}

/// The first of a study's events that has no place in its chain (no position or no hash).
pub async fn first_unchained(
    c: &impl ConnectionTrait,
    study_id: i64,
) -> Result<Option<StoredEvent>, DbErr> {
    Ok(query(
        c,
        &format!(
            "SELECT {COLUMNS} WHERE e.study_id = ? AND (e.chain_seq IS NULL OR e.hash IS NULL) \
             ORDER BY e.id LIMIT 1"
        ),
        vec![study_id.into()],
    )
    .await?
    .into_iter()
    .next())
}
