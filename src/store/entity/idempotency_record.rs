use sea_orm::entity::prelude::*;

/// The remembered answer of a completed UpsertParticipant call, keyed by (user, request_id).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_name: String,
    pub request_id: String,
    /// SHA-256 of the request, to tell a replay from a reuse (see `service::remembered`).
    pub request_hash: String,
    /// How `request_hash` and `response` are encoded (`service::remembered::FORMAT_*`).
    pub response_format: i32,
    /// The sealed answer, encoded as `response_format` says.
    pub response: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
