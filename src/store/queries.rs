//! Reads shared by the use cases. Each takes any connection or transaction.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::entity::{
    idempotency_record, participant, participant_contact, role_assignment, site, study,
};
use crate::domain::{Assignment, Role};

/// Statuses that count toward enrollment caps.
pub const ENROLLED_STATUSES: [&str; 2] = ["available", "signed"];

pub async fn study_by_oid(
    c: &impl ConnectionTrait,
    oid: &str,
) -> Result<Option<study::Model>, DbErr> {
    study::Entity::find()
        .filter(study::Column::Oid.eq(oid))
        .one(c)
        .await
}

pub async fn site_by_oid(
    c: &impl ConnectionTrait,
    oid: &str,
) -> Result<Option<site::Model>, DbErr> {
    site::Entity::find()
        .filter(site::Column::Oid.eq(oid))
        .one(c)
        .await
}

pub async fn site_by_id(c: &impl ConnectionTrait, id: i64) -> Result<Option<site::Model>, DbErr> {
    site::Entity::find_by_id(id).one(c).await
}

/// Reads the study row and, on PostgreSQL, locks it until the transaction ends: every write
/// of a study's Participants takes this lock first, which makes caps and lookups exact.
/// (SQLite write transactions are `IMMEDIATE` and already hold the database's write lock.)
pub async fn lock_study(c: &impl ConnectionTrait, id: i64) -> Result<study::Model, DbErr> {
    study::Entity::find_by_id(id)
        .lock_exclusive()
        .one(c)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("study {id}")))
}

/// The user's active role assignments within one study, with the site OIDs resolved.
pub async fn assignments(
    c: &impl ConnectionTrait,
    user: &str,
    study_id: i64,
) -> Result<Vec<Assignment>, DbErr> {
    let rows = role_assignment::Entity::find()
        .filter(role_assignment::Column::UserName.eq(user))
        .filter(role_assignment::Column::StudyId.eq(study_id))
        .filter(role_assignment::Column::Active.eq(true))
        .all(c)
        .await?;
    let site_ids: Vec<i64> = rows.iter().filter_map(|r| r.site_id).collect();
    let site_oids: std::collections::HashMap<i64, String> = if site_ids.is_empty() {
        Default::default()
    } else {
        site::Entity::find()
            .filter(site::Column::Id.is_in(site_ids))
            .all(c)
            .await?
            .into_iter()
            .map(|s| (s.id, s.oid))
            .collect()
    };
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let role = Role::parse(&row.role)?;
            let site_oid = match row.site_id {
                Some(id) => Some(site_oids.get(&id)?.clone()),
                None => None,
            };
            Some(Assignment { site_oid, role })
        })
        .collect())
}

pub async fn participant_by_key(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norm: &str,
) -> Result<Option<participant::Model>, DbErr> {
    participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::SubjectKeyNorm.eq(subject_key_norm))
        .one(c)
        .await
}

pub async fn contact_of(
    c: &impl ConnectionTrait,
    participant_id: i64,
) -> Result<Option<participant_contact::Model>, DbErr> {
    participant_contact::Entity::find_by_id(participant_id)
        .one(c)
        .await
}

/// Participants of the study counting toward its cap.
pub async fn enrolled_in_study(c: &impl ConnectionTrait, study_id: i64) -> Result<u64, DbErr> {
    participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::Status.is_in(ENROLLED_STATUSES))
        .count(c)
        .await
}

/// Participants of the site counting toward its cap.
pub async fn enrolled_at_site(c: &impl ConnectionTrait, site_id: i64) -> Result<u64, DbErr> {
    participant::Entity::find()
        .filter(participant::Column::SiteId.eq(site_id))
        .filter(participant::Column::Status.is_in(ENROLLED_STATUSES))
        .count(c)
        .await
}

pub async fn subject_oid_taken(c: &impl ConnectionTrait, oid: &str) -> Result<bool, DbErr> {
    Ok(participant::Entity::find()
        .filter(participant::Column::SubjectOid.eq(oid))
        .count(c)
        .await?
        > 0)
}

pub async fn access_code_taken(
    c: &impl ConnectionTrait,
    study_id: i64,
    code: &str,
) -> Result<bool, DbErr> {
    Ok(participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::AccessCode.eq(code))
        .count(c)
        .await?
        > 0)
}

pub async fn idempotency_record(
    c: &impl ConnectionTrait,
    user: &str,
    request_id: &str,
) -> Result<Option<idempotency_record::Model>, DbErr> {
    idempotency_record::Entity::find()
        .filter(idempotency_record::Column::UserName.eq(user))
        .filter(idempotency_record::Column::RequestId.eq(request_id))
        .one(c)
        .await
}
