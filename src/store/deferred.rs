//! Rows a write batch inserts together, in few statements: the store's side of group commit
//! (`service::writer` decides what a batch writes and when; this writes it). Contact data and
//! remembered responses arrive here sealed (see `personal`).

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait};

use super::entity::{audit_event, idempotency_record, participant, participant_contact};

/// Rows per statement on SQLite: well under its bind-parameter limit (32,766) for the widest
/// of these tables (14 columns); also the most ids one read takes.
pub const ROWS_PER_INSERT: usize = 1_000;

/// Rows per statement on PostgreSQL over TCP: few. sqlx 0.9.0 no longer turns Nagle's
/// algorithm off on its sockets (launchbadge/sqlx#4335; fixed upstream by #4336, not released
/// yet), and larger statements then wait on the server's delayed acknowledgement. Measured
/// here at 64 creations in flight: 1,000 or 32 rows per statement about 400 creations/s, 8
/// rows about 1,500/s; over a Unix socket, where Nagle does not apply, 2,400/s.
pub const ROWS_PER_INSERT_POSTGRES: usize = 8;

/// Rows a batch inserts together: on SQLite one call per part of the batch (see
/// `insert`), on PostgreSQL a statement per table before the commit.
#[derive(Debug, Clone, Default)]
pub struct Deferred {
    /// The participants created, with ids chosen by the batch; inserted before anything that
    /// refers to them or reads them.
    pub participants: Vec<participant::ActiveModel>,
    /// Contact data of creations (sealed); the batch inserts it before any command that may
    /// read it.
    pub contacts: Vec<participant_contact::ActiveModel>,
    pub audit_events: Vec<audit_event::ActiveModel>,
    pub remembered: Vec<idempotency_record::ActiveModel>,
}

/// Inserts what the commands run together deferred: their participants, contact data, audit
/// events (in the batch's order, so ids follow the chain) and remembered responses. A twin's
/// request id fails the remembered insert here (on SQLite, while the next part of the batch
/// runs, which then stops), and the batch then runs with savepoints.
///
/// On SQLite it is one call, whose statements (one per table and up to `ROWS_PER_INSERT` rows)
/// the connection's thread runs in turn, binding the `?` marks from the one list of values:
/// one hand-off to that thread instead of one per table. sqlx 0.9 still runs several statements
/// in one query on SQLite but calls that deprecated (launchbadge/sqlx#3108): check it when
/// sqlx moves (the batching tests fail without it).
/// PostgreSQL takes one statement per call: a statement per table (and `ROWS_PER_INSERT_POSTGRES`
/// rows).
pub async fn insert(tx: &DatabaseTransaction, deferred: Deferred) -> Result<(), sea_orm::DbErr> {
    let Deferred {
        participants,
        contacts,
        audit_events,
        remembered,
    } = deferred;
    let backend = tx.get_database_backend();
    if backend != DbBackend::Sqlite {
        insert_rows(tx, participants).await?;
        insert_rows(tx, contacts).await?;
        insert_rows(tx, audit_events).await?;
        return insert_rows(tx, remembered).await;
    }
    let mut sql = String::new();
    let mut values = Vec::new();
    add_inserts(&mut sql, &mut values, participants);
    add_inserts(&mut sql, &mut values, contacts);
    add_inserts(&mut sql, &mut values, audit_events);
    add_inserts(&mut sql, &mut values, remembered);
    if sql.is_empty() {
        return Ok(());
    }
    tx.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend, sql, values,
    ))
    .await?;
    Ok(())
}

/// Appends SQLite `INSERT` statements for `rows` (`ROWS_PER_INSERT` rows each) to `sql`, and
/// their values, in the order of their `?` marks, to `values`.
fn add_inserts<A>(sql: &mut String, values: &mut Vec<sea_orm::Value>, mut rows: Vec<A>)
where
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::QueryTrait;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_INSERT));
        let statement = <A::Entity as EntityTrait>::insert_many(std::mem::replace(&mut rows, rest))
            .build(DbBackend::Sqlite);
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&statement.sql);
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
}

/// Inserts `rows` in statements of at most `ROWS_PER_INSERT` rows (`ROWS_PER_INSERT_POSTGRES`
/// on PostgreSQL).
pub async fn insert_rows<A>(
    tx: &DatabaseTransaction,
    mut rows: Vec<A>,
) -> Result<(), sea_orm::DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let per_statement = match tx.get_database_backend() {
        DbBackend::Postgres => ROWS_PER_INSERT_POSTGRES,
        _ => ROWS_PER_INSERT,
    };
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(per_statement));
        <A::Entity as EntityTrait>::insert_many(std::mem::replace(&mut rows, rest))
            .exec(tx)
            .await?;
    }
    Ok(())
}
