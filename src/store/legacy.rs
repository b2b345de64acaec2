//! Personal data is only ever read sealed: `DataCipher::open` refuses a clear value. This module
//! names where each sealed value is bound (its context) and deals with the clear values written
//! before sealing, which migration `000013_unsealed_legacy` listed in `unsealed_legacy`:
//! contact rows and remembered answers are sealed by a start-up step; audit events stay as they
//! are (append-only, hash-chained) and only the listed ones may be read in the clear.

use std::collections::HashSet;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IdenStatic, Iterable,
    ModelTrait, QueryFilter, Statement, Value,
};

use super::{
    Store, StoreError, describe_db_err,
    entity::{idempotency_record, participant_contact},
    lock_schema,
};
use crate::crypto::{CryptoError, DataCipher};

/// The context a contact column of a participant is sealed under.
pub fn contact_context(participant_id: i64, field: &str) -> String {
    format!("participant_contacts/{participant_id}/{field}")
}

/// The context a remembered answer is sealed under.
pub fn idempotency_context(user: &str, request_id: &str) -> String {
    format!("idempotency_records/{user}/{request_id}")
}

/// The context a contact value in the audit trail is sealed under.
pub fn audit_context(participant_id: i64, field: &str) -> String {
    format!("audit_events/{participant_id}/{field}")
}

const CONTACTS: &str = "participant_contacts";
const ANSWERS: &str = "idempotency_records";
const EVENTS: &str = "audit_events";
/// The list's marker that the start-up step has run.
const DONE: &str = "sealed";

async fn listed(c: &impl ConnectionTrait, table: &str) -> Result<Vec<i64>, DbErr> {
    let rows = c
        .query_all_raw(Statement::from_sql_and_values(
            c.get_database_backend(),
            format!(
                "SELECT row_id FROM unsealed_legacy WHERE table_name = {} ORDER BY row_id",
                placeholder(c, 1)
            ),
            [table.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect()
}

fn placeholder(c: &impl ConnectionTrait, n: usize) -> String {
    match c.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

async fn unlist(c: &impl ConnectionTrait, table: &str, row_id: i64) -> Result<(), DbErr> {
    c.execute_raw(Statement::from_sql_and_values(
        c.get_database_backend(),
        format!(
            "DELETE FROM unsealed_legacy WHERE table_name = {} AND row_id = {}",
            placeholder(c, 1),
            placeholder(c, 2)
        ),
        [table.into(), row_id.into()],
    ))
    .await?;
    Ok(())
}

impl Store {
    /// Start-up step, after migrations: seals the clear contact values and remembered answers
    /// that migration 13 listed, and takes them off the list. Returns how many rows it sealed;
    /// nothing on a second run, and nothing on a database that never held clear values.
    pub async fn seal_legacy_values(&self, cipher: &DataCipher) -> Result<u64, StoreError> {
        let fail = |e: DbErr| StoreError::Migrate(describe_db_err(&e));
        let write = self.begin_write().await.map_err(fail)?;
        lock_schema(&write.tx).await.map_err(fail)?;
        // The step runs once, on what migration 13 listed: a row added to the list later was
        // put there by hand, perhaps to have a planted clear value sealed as if it were
        // genuine, and is left as it is (and keeps being refused on read).
        if !listed(&write.tx, DONE).await.map_err(fail)?.is_empty() {
            let late = listed(&write.tx, CONTACTS).await.map_err(fail)?.len()
                + listed(&write.tx, ANSWERS).await.map_err(fail)?.len();
            if late > 0 {
                tracing::warn!(
                    rows = late,
                    "rows were added to unsealed_legacy after its values were sealed; they are not sealed"
                );
            }
            return Ok(0);
        }
        let mut sealed = 0u64;
        for id in listed(&write.tx, CONTACTS).await.map_err(fail)? {
            if let Some(row) = participant_contact::Entity::find_by_id(id)
                .one(&write.tx)
                .await
                .map_err(fail)?
            {
                let mut active: participant_contact::ActiveModel = row.clone().into();
                for column in participant_contact::Column::iter() {
                    if let Value::String(Some(v)) = row.get(column)
                        && !DataCipher::is_sealed(&v)
                    {
                        let context = contact_context(id, column.as_str());
                        active.set(column, cipher.seal(&v, &context).into());
                    }
                }
                active.update(&write.tx).await.map_err(fail)?;
                sealed += 1;
            }
            unlist(&write.tx, CONTACTS, id).await.map_err(fail)?;
        }
        for id in listed(&write.tx, ANSWERS).await.map_err(fail)? {
            let row = idempotency_record::Entity::find()
                .filter(idempotency_record::Column::Id.eq(id))
                .one(&write.tx)
                .await
                .map_err(fail)?;
            if let Some(row) = row
                && !std::str::from_utf8(&row.response).is_ok_and(DataCipher::is_sealed)
            {
                let context = idempotency_context(&row.user_name, &row.request_id);
                let response = cipher.seal_bytes(&row.response, &context);
                let mut active: idempotency_record::ActiveModel = row.into();
                active.response = sea_orm::Set(response);
                active.update(&write.tx).await.map_err(fail)?;
                sealed += 1;
            }
            unlist(&write.tx, ANSWERS, id).await.map_err(fail)?;
        }
        write
            .tx
            .execute_raw(Statement::from_sql_and_values(
                write.tx.get_database_backend(),
                format!(
                    "INSERT INTO unsealed_legacy (table_name, row_id) VALUES ({}, 0)",
                    placeholder(&write.tx, 1)
                ),
                [DONE.into()],
            ))
            .await
            .map_err(fail)?;
        write.tx.commit().await.map_err(fail)?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "personal data stored in the clear before sealing was sealed"
            );
        }
        Ok(sealed)
    }
}

/// Which of `events` hold contact values written in the clear before sealing (the only events
/// whose clear values may be read). One query, and only when a caller met a clear value.
pub async fn clear_legacy_events(
    c: &impl ConnectionTrait,
    events: impl IntoIterator<Item = i64>,
) -> Result<HashSet<i64>, DbErr> {
    let ids: Vec<i64> = events.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let list = (0..ids.len())
        .map(|i| placeholder(c, i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let mut values: Vec<Value> = vec![EVENTS.into()];
    values.extend(ids.iter().map(|&id| Value::from(id)));
    let rows = c
        .query_all_raw(Statement::from_sql_and_values(
            c.get_database_backend(),
            format!(
                "SELECT row_id FROM unsealed_legacy WHERE table_name = {} AND row_id IN ({list})",
                placeholder(c, 1)
            ),
            values,
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect()
}

/// Whether an audit value needs `clear_legacy_events` to be read: it is in the clear.
pub fn is_clear(value: Option<&str>) -> bool {
    value.is_some_and(|v| !DataCipher::is_sealed(v))
}

/// Opens a contact value of audit event `event_id`; a clear value is returned only for an
/// event in `clear_legacy` (from `clear_legacy_events`), and refused everywhere else.
pub fn open_audit_value(
    cipher: &DataCipher,
    clear_legacy: &HashSet<i64>,
    event_id: i64,
    context: &str,
    value: Option<&str>,
) -> Result<Option<String>, CryptoError> {
    match value {
        Some(v) if !DataCipher::is_sealed(v) && clear_legacy.contains(&event_id) => {
            Ok(Some(v.to_owned()))
        }
        other => cipher.open_opt(other, context),
    }
}
