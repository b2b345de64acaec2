use sea_orm::entity::prelude::*;

/// A Participant (study subject). `subject_key_norm` carries the case-insensitive unique key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "participants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub study_id: i64,
    pub site_id: Option<i64>,
    pub subject_key: String,
    pub subject_key_norm: String,
    #[sea_orm(unique)]
    pub subject_oid: String,
    pub secondary_id: Option<String>,
    /// available | signed | removed
    pub status: String,
    /// created | invited | active | inactive; empty when not registered
    pub participate_status: String,
    /// Sealed (`crypto::DataCipher`), bound to the subject OID; a code stored before sealing
    /// is in the clear until the start-up step `Store::seal_access_codes` seals it.
    pub access_code: Option<String>,
    /// Keyed hash of the access code (`DataCipher::lookup_hash`): unique per study.
    pub access_code_hash: Option<String>,
    pub etag: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The participant's contact data (site-level participants only), read with it in one
    /// statement when the caller may see it.
    #[sea_orm(has_one = "super::participant_contact::Entity")]
    Contact,
}

impl Related<super::participant_contact::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Contact.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
