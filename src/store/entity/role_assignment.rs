use sea_orm::entity::prelude::*;

/// A user's role at a study (`site_id` empty) or at one of its sites. Never deleted: an
/// assignment the catalog no longer lists is revoked.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_assignments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_name: String,
    pub study_id: i64,
    pub site_id: Option<i64>,
    pub role: String,
    pub active: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
