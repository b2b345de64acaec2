use sea_orm::entity::prelude::*;

/// A site of a study, copied from the catalog.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub study_id: i64,
    #[sea_orm(unique)]
    pub oid: String,
    pub name: String,
    /// available | pending | frozen | locked | removed
    pub status: String,
    pub enrollment_cap: Option<i64>,
    /// Next sequence number for generated IDs at this site; only ever grows.
    pub next_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
