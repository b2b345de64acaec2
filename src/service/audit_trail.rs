//! `participants audit verify` and `audit export` (SPEC section 14): re-computes each study's
//! hash chain from the stored rows, and writes a study's trail for an inspector. Both read in
//! pages of constant size, so memory does not grow with the trail.

use std::{collections::HashSet, io::Write};

use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, TransactionTrait,
};

use crate::crypto::DataCipher;
use crate::domain::{
    audit::{GENESIS, parse_hash},
    validate::ContactField,
};
use crate::store::{
    Store,
    audit_log::{self, StoredEvent},
    entity::study,
    legacy,
};

const PAGE: u64 = 1000;

/// How a chain was found broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// An event's stored values (or hash) differ from what was chained.
    Edited,
    /// Events are missing from the chain.
    Deleted,
    /// An event is in the table that the chain does not hold.
    Inserted,
    /// Events are in another order than they were chained in.
    Reordered,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::Deleted => "deleted",
            BreakKind::Inserted => "inserted",
            BreakKind::Reordered => "reordered",
        }
    }
}

/// The first place a study's chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub kind: BreakKind,
    /// The first event found wrong (or the last good one, for events missing at the end).
    pub event_id: i64,
    pub detail: String,
}

/// The result of verifying one study's chain.
#[derive(Debug, Clone)]
pub struct ChainReport {
    pub study_oid: String,
    /// Events checked in chain order before the first break (all of them when intact).
    pub events: i64,
    /// The chain's head (hex) as the study row holds it.
    pub head: Option<String>,
    pub broken: Option<Break>,
}

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => write!(
                f,
                "study {}: intact, {} events, head {}",
                self.study_oid,
                self.events,
                self.head.as_deref().unwrap_or("-")
            ),
            Some(b) => write!(
                f,
                "study {}: BROKEN at event {}: {}: {}",
                self.study_oid,
                b.event_id,
                b.kind.as_str(),
                b.detail
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("no study has the OID {0:?}")]
    NoSuchStudy(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit event {0}: a sealed value cannot be opened with the configured data keys")]
    Sealed(i64),
}

async fn studies(store: &Store, oid: Option<&str>) -> Result<Vec<study::Model>, TrailError> {
    let mut q = study::Entity::find().order_by_asc(study::Column::Id);
    if let Some(oid) = oid {
        q = q.filter(study::Column::Oid.eq(oid));
    }
    let found = q.all(store.connection()).await?;
    match oid {
        Some(oid) if found.is_empty() => Err(TrailError::NoSuchStudy(oid.to_owned())),
        _ => Ok(found),
    }
}

/// Verifies the chain of one study, or of every study.
pub async fn verify(
    store: &Store,
    study_oid: Option<&str>,
) -> Result<Vec<ChainReport>, TrailError> {
    let mut reports = Vec::new();
    for listed in studies(store, study_oid).await? {
        let db = store.connection();
        // One snapshot per study: a write committing meanwhile moves rows and head together.
        let tx = match db.get_database_backend() {
            DbBackend::Postgres => {
                db.begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await?
            }
            _ => db.begin().await?,
        };
        let study = study::Entity::find_by_id(listed.id)
            .one(&tx)
            .await?
            .unwrap_or(listed);
        let report = verify_study(&tx, &study).await?;
        tx.rollback().await?;
        reports.push(report);
    }
    Ok(reports)
}

async fn verify_study(
    c: &impl ConnectionTrait,
    study: &study::Model,
) -> Result<ChainReport, DbErr> {
    let mut report = ChainReport {
        study_oid: study.oid.clone(),
        events: 0,
        head: study.audit_head.clone(),
        broken: None,
    };
    let broken = |kind, event_id, detail: String| {
        Some(Break {
            kind,
            event_id,
            detail,
        })
    };
    if let Some(e) = audit_log::first_unchained(c, study.id).await? {
        report.broken = broken(
            BreakKind::Inserted,
            e.id,
            "the event has no position or hash in the study's chain".into(),
        );
        return Ok(report);
    }
    let (mut expected, mut previous, mut last_id) = (1i64, GENESIS, 0i64);
    let mut after = (0i64, 0i64);
    loop {
        let page = audit_log::page_by_chain(c, study.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = (last.chain_seq.unwrap_or_default(), last.id);
        for e in &page {
            let seq = e.chain_seq.unwrap_or_default();
            if seq < expected {
                report.broken = broken(
                    BreakKind::Inserted,
                    e.id,
                    format!("a second event at chain position {seq}"),
                );
                return Ok(report);
            }
            if seq > expected {
                report.broken = broken(
                    BreakKind::Deleted,
                    e.id,
                    format!(
                        "chain positions {expected}..{} before this event are missing",
                        seq - 1
                    ),
                );
                return Ok(report);
            }
            let hash = e.chained(seq).hash(&previous);
            if e.hash.as_deref().and_then(parse_hash) != Some(hash) {
                report.broken = broken(
                    BreakKind::Edited,
                    e.id,
                    format!("the stored event at chain position {seq} does not match its hash"),
                );
                return Ok(report);
            }
            if e.id <= last_id {
                report.broken = broken(
                    BreakKind::Reordered,
                    e.id,
                    format!(
                        "chain position {seq} is stored before event {last_id}, which precedes it in the chain"
                    ),
                );
                return Ok(report);
            }
            report.events += 1;
            expected += 1;
            previous = hash;
            last_id = e.id;
        }
    }
    let chained = expected - 1;
    if chained < study.audit_seq {
        report.broken = broken(
            BreakKind::Deleted,
            last_id,
            format!(
                "the chain ends at position {chained} but its head is at {}: the last events are missing",
                study.audit_seq
            ),
        );
    } else if chained > study.audit_seq {
        report.broken = broken(
            BreakKind::Inserted,
            last_id,
            format!(
                "the chain holds {chained} events but its head is at {}",
                study.audit_seq
            ),
        );
    } else if chained > 0 && study.audit_head.as_deref().and_then(parse_hash) != Some(previous) {
        report.broken = broken(
            BreakKind::Edited,
            last_id,
            "the last event does not match the chain's head".into(),
        );
    }
    Ok(report)
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

const CSV_HEADER: &str = "event_id,study_oid,site_oid,subject_key,type,field,old_value,new_value,user,time,request_id,reason_for_change,chain_position,hash";

fn csv_field(out: &mut String, value: &str) {
    // IDs, values and reasons come from callers: a spreadsheet must not run them.
    let value = &*crate::csv_safe::cell(value);
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn is_contact(e: &StoredEvent) -> bool {
    e.field_name
        .as_deref()
        .is_some_and(|f| ContactField::ALL.iter().any(|c| c.name() == f))
}

/// Opens a contact value sealed in the trail (a clear one only for the events in
/// `clear_legacy`, written before sealing).
fn opened(
    cipher: &DataCipher,
    clear_legacy: &HashSet<i64>,
    e: &StoredEvent,
    value: Option<&str>,
) -> Result<Option<String>, TrailError> {
    if !is_contact(e) {
        return Ok(value.map(str::to_owned));
    }
    let context = legacy::audit_context(
        e.participant_id,
        e.field_name.as_deref().unwrap_or_default(),
    );
    legacy::open_audit_value(cipher, clear_legacy, e.id, &context, value)
        .map_err(|_| TrailError::Sealed(e.id))
}

/// Writes a study's trail, oldest first, contact values opened, one event per line (JSON) or
/// row (CSV, with a header). Returns the number of events written.
pub async fn export(
    store: &Store,
    cipher: &DataCipher,
    study_oid: &str,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<u64, TrailError> {
    let Some(study) = studies(store, Some(study_oid)).await?.into_iter().next() else {
        return Err(TrailError::NoSuchStudy(study_oid.to_owned()));
    };
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let (mut after, mut written) = (0i64, 0u64);
    loop {
        let page = audit_log::page_by_id(store.connection(), study.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let clear = page
            .iter()
            .filter(|e| {
                is_contact(e)
                    && (legacy::is_clear(e.old_value.as_deref())
                        || legacy::is_clear(e.new_value.as_deref()))
            })
            .map(|e| e.id);
        let clear = legacy::clear_legacy_events(store.connection(), clear).await?;
        for e in &page {
            let old = opened(cipher, &clear, e, e.old_value.as_deref())?;
            let new = opened(cipher, &clear, e, e.new_value.as_deref())?;
            let time = e
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            match format {
                ExportFormat::Jsonl => {
                    let line = serde_json::json!({
                        "event_id": e.id,
                        "study_oid": study.oid,
                        "site_oid": e.site_oid,
                        "subject_key": e.subject_key,
                        "type": e.event_type,
                        "field": e.field_name,
                        "old_value": old,
                        "new_value": new,
                        "user": e.actor,
                        "time": time,
                        "request_id": e.request_id,
                        "reason_for_change": e.reason_text(),
                        "chain_position": e.chain_seq,
                        "hash": e.hash,
                    });
                    writeln!(out, "{line}")?;
                }
                ExportFormat::Csv => {
                    let mut row = String::with_capacity(256);
                    let id = e.id.to_string();
                    let seq = e.chain_seq.map(|s| s.to_string()).unwrap_or_default();
                    let fields: [&str; 14] = [
                        &id,
                        &study.oid,
                        e.site_oid.as_deref().unwrap_or_default(),
                        e.subject_key.as_deref().unwrap_or_default(),
                        &e.event_type,
                        e.field_name.as_deref().unwrap_or_default(),
                        old.as_deref().unwrap_or_default(),
                        new.as_deref().unwrap_or_default(),
                        &e.actor,
                        &time,
                        e.request_id.as_deref().unwrap_or_default(),
                        e.reason_text().unwrap_or_default(),
                        &seq,
                        e.hash.as_deref().unwrap_or_default(),
                    ];
                    for (i, f) in fields.iter().enumerate() {
                        if i > 0 {
                            row.push(',');
                        }
                        csv_field(&mut row, f);
                    }
                    writeln!(out, "{row}")?;
                }
            }
            written += 1;
        }
        out.flush()?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut s = String::new();
        csv_field(&mut s, "plain");
        s.push('|');
        csv_field(&mut s, "a,b");
        s.push('|');
        csv_field(&mut s, "say \"hi\"\nbye");
        s.push('|');
        csv_field(&mut s, "=HYPERLINK(\"http://e.vil\",\"x\")");
        assert_eq!(
            s,
            "plain|\"a,b\"|\"say \"\"hi\"\"\nbye\"|\"'=HYPERLINK(\"\"http://e.vil\"\",\"\"x\"\")\""
        );
    }
}
