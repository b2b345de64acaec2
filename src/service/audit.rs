//! The audit trail of a write (SPEC section 8): its events, built while the write runs and
//! inserted in the write's transaction.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseTransaction, DbErr, EntityTrait};

use super::upsert::UpsertCommand;
use crate::domain::{audit::EventType, validate::ContactField};
use crate::store::entity::{audit_event, change_reason};

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
                let context = format!("audit_events/{}/{f}", self.participant_id);
                (
                    self.cmd.cipher.seal_opt(old.as_deref(), &context),
                    self.cmd.cipher.seal_opt(new.as_deref(), &context),
                )
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
    /// it, in one statement.
    pub(crate) async fn write(mut self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        if self.events.is_empty() {
            return Ok(());
        }
        if let Some(reason) = &self.cmd.reason_for_change {
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
        audit_event::Entity::insert_many(self.events)
            .exec(tx)
            .await?;
        Ok(())
    }
}
