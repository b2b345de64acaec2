//! The audit trail of a write (SPEC section 8): its events, built while the write runs and
//! inserted in the write's transaction.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, Statement,
};

use super::upsert::UpsertCommand;
use crate::domain::{
    audit::{ChainedEvent, EventType, GENESIS, parse_hash},
    validate::ContactField,
};
use crate::store::entity::{audit_event, change_reason, study};
use crate::store::personal::seal_audit_value;

/// What a write changes.
pub(crate) struct Change {
    pub(crate) field: &'static str,
    pub(crate) old: Option<String>,
    pub(crate) new: Option<String>,
}

/// The audit events of one write, inserted together in the write's transaction.
pub(crate) struct Audit<'a> {
    cmd: &'a UpsertCommand,
    participant_id: i64,
    events: Vec<audit_event::ActiveModel>,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(cmd: &'a UpsertCommand, participant_id: i64) -> Self {
        Self {
            cmd,
            participant_id,
            events: Vec::new(),
        }
    }

    /// One FIELD_CHANGED event per changed field, in field order.
    pub(crate) fn changed(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.record(EventType::FieldChanged, Some(c.field), c.old, c.new);
        }
    }

    /// The first registration for Participate; the access code itself is never recorded.
    pub(crate) fn registered(&mut self) {
        self.record(
            EventType::ParticipateRegistered,
            Some("participate_status"),
            None,
            Some("created".to_owned()),
        );
    }

    pub(crate) fn record(
        &mut self,
        event_type: EventType,
        field: Option<&str>,
        old: Option<String>,
        new: Option<String>,
    ) {
        // Old and new values of contact fields are personal data: sealed like the contact row.
        let (old, new) = match field {
            Some(f) if ContactField::ALL.iter().any(|c| c.name() == f) => {
                let seal = |v: Option<String>| {
                    seal_audit_value(&self.cmd.cipher, self.participant_id, f, v.as_deref())
                };
                (seal(old), seal(new))
            }
            _ => (old, new),
        };
        self.events.push(audit_event::ActiveModel {
            participant_id: Set(self.participant_id),
            study_id: Set(self.cmd.study_id),
            event_type: Set(event_type.as_str().to_owned()),
            field_name: Set(field.map(str::to_owned)),
            old_value: Set(old),
            new_value: Set(new),
            actor: Set(self.cmd.user.clone()),
            occurred_at: Set(self.cmd.now),
            request_id: Set(self.cmd.request_id.as_ref().map(|r| r.as_str().to_owned())),
            // The reason is stored once per write, in `change_reasons` (see `write`).
            reason_for_change: Set(None),
            ..Default::default()
        });
    }

    /// Inserts the write's reason for change once, then the recorded events, which reference
    /// it, in one statement, each hashed onto the study's chain; then moves the chain's head
    /// on `study`, the batch's copy of the row read under the study lock, so the next write of
    /// the batch extends it. The batch stores the head once, before it commits (`move_head`).
    /// With `deferred`, the events are left there for the batch to insert with its others.
    pub(crate) async fn write(
        mut self,
        tx: &DatabaseTransaction,
        study: &mut study::Model,
        deferred: Option<&mut Vec<audit_event::ActiveModel>>,
    ) -> Result<(), DbErr> {
        if self.events.is_empty() {
            return Ok(());
        }
        let reason = self.cmd.reason_for_change.clone();
        if let Some(reason) = &reason {
            let stored = change_reason::ActiveModel {
                reason: Set(reason.clone()),
                ..Default::default()
            }
            .insert(tx)
            .await?;
            for event in &mut self.events {
                event.reason_id = Set(Some(stored.id));
            }
        }
        let mut head = match &study.audit_head {
            None if study.audit_seq == 0 => GENESIS,
            head => head.as_deref().and_then(parse_hash).ok_or_else(|| {
                DbErr::Custom(format!(
                    "the audit chain head of study {} is malformed",
                    study.id
                ))
            })?,
        };
        let mut seq = study.audit_seq;
        for event in &mut self.events {
            seq += 1;
            head = hash_of(event, seq, reason.as_deref()).hash(&head);
            event.chain_seq = Set(Some(seq));
            event.hash = Set(Some(hex::encode(head)));
        }
        match deferred {
            Some(deferred) => deferred.append(&mut self.events),
            None => {
                audit_event::Entity::insert_many(self.events)
                    .exec(tx)
                    .await?;
            }
        }
        study.audit_seq = seq;
        study.audit_head = Some(hex::encode(head));
        Ok(())
    }
}

/// Stores the chain's head of a study as the batch's writes left it (`after`), on the row that
/// was `before` when the batch locked it; nothing when no write of the batch moved it. The
/// row must still be as the lock read it: anything else means another writer went around the
/// lock, and the batch fails rather than fork the chain.
pub(crate) async fn move_head(
    tx: &DatabaseTransaction,
    before: &study::Model,
    after: &study::Model,
) -> Result<(), DbErr> {
    if after.audit_seq == before.audit_seq {
        return Ok(());
    }
    let backend = tx.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE studies SET audit_seq = $1, audit_head = $2 WHERE id = $3 AND audit_seq = $4"
        }
        _ => "UPDATE studies SET audit_seq = ?, audit_head = ? WHERE id = ? AND audit_seq = ?",
    };
    let moved = tx
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                after.audit_seq.into(),
                after.audit_head.clone().into(),
                before.id.into(),
                before.audit_seq.into(),
            ],
        ))
        .await?;
    if moved.rows_affected() != 1 {
        return Err(DbErr::Custom(format!(
            "the audit chain of study {} moved under the study lock",
            before.id
        )));
    }
    Ok(())
}

/// The event as hashed: the values as they are stored.
fn hash_of<'a>(
    event: &'a audit_event::ActiveModel,
    seq: i64,
    reason: Option<&'a str>,
) -> ChainedEvent<'a> {
    fn set<T>(v: &sea_orm::ActiveValue<T>) -> Option<&T>
    where
        T: Into<sea_orm::Value>,
    {
        match v {
            sea_orm::ActiveValue::Set(v) | sea_orm::ActiveValue::Unchanged(v) => Some(v),
            sea_orm::ActiveValue::NotSet => None,
        }
    }
    ChainedEvent {
        study_id: set(&event.study_id).copied().unwrap_or_default(),
        seq,
        participant_id: set(&event.participant_id).copied().unwrap_or_default(),
        event_type: set(&event.event_type).map_or("", String::as_str),
        field: set(&event.field_name).and_then(|v| v.as_deref()),
        old_value: set(&event.old_value).and_then(|v| v.as_deref()),
        new_value: set(&event.new_value).and_then(|v| v.as_deref()),
        actor: set(&event.actor).map_or("", String::as_str),
        occurred_at_micros: set(&event.occurred_at).map_or(0, |t| t.timestamp_micros()),
        request_id: set(&event.request_id).and_then(|v| v.as_deref()),
        inline_reason: set(&event.reason_for_change).and_then(|v| v.as_deref()),
        reason,
    }
}
