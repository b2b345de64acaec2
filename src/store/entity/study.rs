use sea_orm::entity::prelude::*;

/// A study copied from the catalog.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "studies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub oid: String,
    pub name: String,
    /// available | pending | frozen | locked | removed
    pub status: String,
    /// manual | system
    pub participant_id_method: String,
    pub participant_id_template: Option<String>,
    pub participate_enabled: bool,
    pub enrollment_cap: Option<i64>,
    /// Next sequence number for study-level generated IDs; only ever grows.
    pub next_seq: i64,
    /// How many audit events the study's hash chain holds, and the hash of the last one (hex):
    /// the head each write extends, read with the study lock.
    pub audit_seq: i64,
    pub audit_head: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
