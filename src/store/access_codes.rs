//! Access codes at rest: sealed like the contact data, bound to the participant's subject OID
//! (known before the row is inserted, and never changed), and kept unique per study through a
//! keyed hash (`DataCipher::lookup_hash`) with a unique index over (study_id, access_code_hash).

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Store, StoreError, describe_db_err, entity::participant, lock_schema};
use crate::crypto::DataCipher;

/// What a sealed access code is bound to: its row (by subject OID) and column.
pub fn seal_context(subject_oid: &str) -> String {
    format!("participants/{subject_oid}/access_code")
}

/// What an access code's lookup hash is bound to: uniqueness is per study.
pub fn hash_context(study_id: i64) -> String {
    format!("participants/{study_id}/access_code")
}

/// The stored form of a new access code: (sealed code, lookup hash).
pub fn seal(cipher: &DataCipher, study_id: i64, subject_oid: &str, code: &str) -> (String, String) {
    (
        cipher.seal(code, &seal_context(subject_oid)),
        cipher.lookup_hash(code, &hash_context(study_id)),
    )
}

/// The readable form of a participant's stored access code: sealed, or (before the start-up
/// step sealed it) in the clear, which opens as itself.
pub fn open(
    cipher: &DataCipher,
    participant_id: i64,
    subject_oid: &str,
    stored: Option<&str>,
) -> Result<Option<String>, super::personal::Unreadable> {
    cipher
        .open_opt(stored, &seal_context(subject_oid))
        .map_err(|e| {
            super::personal::Unreadable::new(
                format!("access code of participant {participant_id}"),
                e,
            )
        })
}

/// Rows handled per transaction by the start-up step.
const PAGE: u64 = 500;

impl Store {
    /// Start-up step, after migrations: seals access codes stored in the clear (written before
    /// codes were sealed) and (re)computes their lookup hash where it is missing or was made
    /// under another data key. Returns how many rows it changed; nothing on a second run.
    ///
    /// Key rotation: the lookup hash is keyed by the current data key, so after a rotation every
    /// code is re-hashed here (opened with the previous key, which must still be configured; the
    /// sealed code itself stays as it is, like the contact data). Until this step has run, a new
    /// code could duplicate an old one without the unique index noticing — the step runs before
    /// the server takes calls. A code that no configured key opens is left as it is and counted
    /// in a warning.
    pub async fn seal_access_codes(&self, cipher: &DataCipher) -> Result<u64, StoreError> {
        let fail = |e: DbErr| StoreError::Migrate(describe_db_err(&e));
        let stale_hash = Condition::any()
            .add(participant::Column::AccessCodeHash.is_null())
            .add(
                participant::Column::AccessCodeHash
                    .not_like(format!("{}:%", cipher.current_key_id())),
            );
        let mut changed = 0u64;
        let mut unreadable = 0u64;
        let mut after = 0i64;
        loop {
            let write = self.begin_write().await.map_err(fail)?;
            lock_schema(&write.tx).await.map_err(fail)?;
            let rows = participant::Entity::find()
                .filter(participant::Column::Id.gt(after))
                .filter(participant::Column::AccessCode.is_not_null())
                .filter(stale_hash.clone())
                .order_by_asc(participant::Column::Id)
                .limit(PAGE)
                .all(&write.tx)
                .await
                .map_err(fail)?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.id;
            for row in rows {
                let Some(stored) = row.access_code.clone() else {
                    continue;
                };
                let context = seal_context(&row.subject_oid);
                // A clear code (from before sealing) is sealed as it is.
                let (code, sealed) = if DataCipher::is_sealed(&stored) {
                    let Ok(code) = cipher.open(&stored, &context) else {
                        unreadable += 1;
                        continue;
                    };
                    (code, stored)
                } else {
                    let sealed = cipher.seal(&stored, &context);
                    (stored, sealed)
                };
                let hash = cipher.lookup_hash(&code, &hash_context(row.study_id));
                let mut active = row.into_active_model();
                active.access_code = Set(Some(sealed));
                active.access_code_hash = Set(Some(hash));
                active.update(&write.tx).await.map_err(fail)?;
                changed += 1;
            }
            write.tx.commit().await.map_err(fail)?;
        }
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "access codes sealed with a key that is not configured were left as they are"
            );
        }
        if changed > 0 {
            tracing::info!(changed, "access codes sealed or re-hashed");
        }
        Ok(changed)
    }
}
