use sea_orm::entity::prelude::*;

/// One append-only audit event: who, what, when, why, old and new value.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub participant_id: i64,
    pub study_id: i64,
    /// `domain::audit::EventType::as_str`
    pub event_type: String,
    pub field_name: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub actor: String,
    pub occurred_at: DateTimeUtc,
    pub request_id: Option<String>,
    /// Set on events written before reasons were stored once per write; later events leave it
    /// empty and reference their write's `change_reasons` row.
    pub reason_for_change: Option<String>,
    pub reason_id: Option<i64>,
    /// Position in the study's hash chain: 1 for its first event (SPEC section 14).
    pub chain_seq: Option<i64>,
    /// `SHA-256(previous event's hash ‖ canonical bytes)`, hex (`domain::audit::ChainedEvent`).
    pub hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
