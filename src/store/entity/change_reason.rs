use sea_orm::entity::prelude::*;

/// The reason for change of one write, stored once and referenced by each of the write's audit
/// events. Append-only, like the events.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_reasons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub reason: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
