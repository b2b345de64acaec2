//! Storage: entities, migrations, queries. The only place that knows SQL dialects.

pub mod access_codes;
pub mod audit_log;
pub mod deferred;
pub mod entity;
pub mod legacy;
pub mod migration;
pub mod personal;
pub mod queries;
pub mod retry;
pub mod standby;

use std::{str::FromStr, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqlErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::domain::ServiceError;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    /// Pool size; SQLite serialises writes anyway, so a few connections serve its readers.
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`; SQLite's busy timeout.
    pub statement_timeout: Duration,
}

/// The database used when no URL is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://participants.db?mode=rwc";

impl Default for DbConfig {
    /// The defaults of `serve` (docs/deployment.md, "Pool and timeouts").
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
            max_connections: 6,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

impl DbConfig {
    /// `url` with the default pool and timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Why the database could not be opened; shown as one line at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL scheme {0:?}: use sqlite://FILE?mode=rwc or postgres://USER@HOST/DB"
    )]
    UnsupportedScheme(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
}

/// Key of the PostgreSQL advisory lock that serialises migrations and catalog applies across
/// replicas starting at once.
const SCHEMA_LOCK_KEY: i64 = 0x5041_5254_4943_4950; // "PARTICIP"

/// The database handle shared by every request.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite's one writer (none on PostgreSQL, whose writes use the pool).
    writer: Option<SqliteWriter>,
    /// SQLite: how `migrate` opens its own connection.
    migration_options: Option<ConnectOptions>,
}

/// The most remembered responses one purge transaction deletes.
const PURGE_CHUNK: u64 = 10_000;

/// What SQLite's write transactions run on.
#[derive(Clone)]
struct SqliteWriter {
    /// A pool of one connection that only write transactions use. SQLite drops a connection's
    /// page cache whenever another connection wrote since it last looked, so a writer that took
    /// any pooled connection re-read the pages it needs in every transaction (`read()` calls
    /// copying from the file); its own connection keeps them.
    db: DatabaseConnection,
    /// Queueing writers in-process avoids busy-waiting on the file lock.
    gate: Arc<Mutex<()>>,
}

/// The settings of every SQLite connection; `temp_store` says where its temporary storage goes.
fn sqlite_options(
    options: SqliteConnectOptions,
    busy: Duration,
    temp_store: &'static str,
) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy)
        .foreign_keys(true)
        .pragma("temp_store", temp_store)
}

/// A write transaction: `BEGIN IMMEDIATE` on SQLite; on PostgreSQL the caller locks the rows it
/// guards (the study row) with `SELECT … FOR UPDATE`.
pub struct WriteTx {
    pub tx: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl Store {
    /// Opens the pool. SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged
    /// write survives a power loss, with a busy timeout, and with its temporary storage
    /// (statement journals, sorts) in memory; migrations run on a connection of their own that
    /// keeps it in files (see `migrate`).
    pub async fn connect(config: &DbConfig) -> Result<Self, StoreError> {
        let scheme = config.url.split(':').next().unwrap_or_default();
        let mut migration_options = None;
        let mut options = ConnectOptions::new(config.url.clone());
        options
            .max_connections(config.max_connections)
            .min_connections(0)
            .connect_timeout(config.connect_timeout)
            .acquire_timeout(config.acquire_timeout)
            .sqlx_logging(false);
        let writer_options = match scheme {
            "sqlite" => {
                SqliteConnectOptions::from_str(&config.url)
                    .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
                let busy = config.statement_timeout;
                // A connection to a local file cannot be lost while idle: the ping sqlx sends
                // on every checkout by default is one more hand-off to the connection's thread
                // for every statement run outside a transaction.
                options.test_before_acquire(false);
                let mut for_migrations = options.clone();
                for_migrations.max_connections(1);
                for_migrations.map_sqlx_sqlite_opts(move |o| sqlite_options(o, busy, "file"));
                migration_options = Some(for_migrations);
                // A statement that may fail halfway (a multi-row insert under a unique index)
                // keeps a journal to undo itself. Past 64 KiB SQLite moves it to a temporary
                // file, created in every write transaction and written by each such statement
                // of the writer; in memory it is a copy of the pages the statement changes.
                options.map_sqlx_sqlite_opts(move |o| sqlite_options(o, busy, "memory"));
                let mut for_writes = options.clone();
                // Kept open: a fresh connection would start with an empty cache.
                for_writes
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                Some(for_writes)
            }
            "postgres" | "postgresql" => {
                options.statement_timeout(config.statement_timeout);
                // Every checkout still pings (sqlx's default): a connection cut by a failover,
                // a restart or a proxy is then replaced before a statement fails on it, and a
                // server that went silent costs at most the acquire timeout. Grouped reads and
                // group commit check out once for many calls, so the round trip is shared.
                // A connection opened before a read-only error may lead to a demoted primary:
                // close it instead of using it again (see `standby`).
                options.map_sqlx_postgres_before_acquire(|_, meta| {
                    Box::pin(async move { Ok(!standby::predates_fence(meta.age)) })
                });
                options.map_sqlx_postgres_pool_opts(|pool| {
                    pool.after_release(|_, meta| {
                        Box::pin(async move { Ok(!standby::predates_fence(meta.age)) })
                    })
                });
                None
            }
            other => return Err(StoreError::UnsupportedScheme(other.to_owned())),
        };
        let db = sea_orm::Database::connect(options)
            .await
            .map_err(|e| StoreError::Connect(describe_db_err(&e)))?;
        let writer = match writer_options {
            Some(options) => Some(SqliteWriter {
                db: sea_orm::Database::connect(options)
                    .await
                    .map_err(|e| StoreError::Connect(describe_db_err(&e)))?,
                gate: Arc::new(Mutex::new(())),
            }),
            None => None,
        };
        Ok(Self {
            db,
            writer,
            migration_options,
        })
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Runs pending migrations. On PostgreSQL an advisory lock makes replicas that start
    /// together take turns.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let run = async {
            match self.backend() {
                DbBackend::Postgres => {
                    let tx = self.db.begin().await?;
                    lock_schema(&tx).await?;
                    migration::Migrator::up(&tx, None).await?;
                    tx.commit().await
                }
                // An index built over a large table sorts all its rows: in temporary files, not
                // in memory, where it would grow with the table (some 47 bytes a row).
                _ => match &self.migration_options {
                    Some(options) => {
                        let db = sea_orm::Database::connect(options.clone()).await?;
                        let migrated = migration::Migrator::up(&db, None).await;
                        db.close().await?;
                        migrated
                    }
                    None => migration::Migrator::up(&self.db, None).await,
                },
            }
        };
        run.await
            .map_err(|e| StoreError::Migrate(describe_db_err(&e)))
    }

    /// How many migrations the database lacks (for tools that must not change it).
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        migration::Migrator::get_pending_migrations(&self.db)
            .await
            .map(|p| p.len())
            .map_err(|e| StoreError::Migrate(describe_db_err(&e)))
    }

    /// Starts a write transaction (on SQLite, on the writer's own connection).
    pub async fn begin_write(&self) -> Result<WriteTx, DbErr> {
        let (db, gate) = match &self.writer {
            Some(writer) => (&writer.db, Some(writer.gate.clone().lock_owned().await)),
            None => (&self.db, None),
        };
        let tx = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// Forgets remembered responses older than `retention`; returns how many. Write
    /// transactions like any other (on SQLite they queue with the writers instead of waiting on
    /// the file's lock against them), of at most `PURGE_CHUNK` rows each, so that a large purge
    /// holds the writers up for one chunk at a time.
    pub async fn purge_idempotency_records(&self, retention: Duration) -> Result<u64, DbErr> {
        self.purge_idempotency_records_in(retention, PURGE_CHUNK)
            .await
    }

    async fn purge_idempotency_records_in(
        &self,
        retention: Duration,
        chunk: u64,
    ) -> Result<u64, DbErr> {
        use entity::idempotency_record::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut purged = 0;
        loop {
            let oldest = Entity::find()
                .select_only()
                .column(Column::Id)
                .filter(Column::CreatedAt.lt(cutoff))
                .limit(chunk)
                .into_query();
            let write = self.begin_write().await?;
            let result = Entity::delete_many()
                .filter(Column::Id.in_subquery(oldest))
                .exec(&write.tx)
                .await?;
            write.tx.commit().await?;
            purged += result.rows_affected;
            if result.rows_affected < chunk {
                return Ok(purged);
            }
        }
    }

    /// Whether the database answers and takes writes. A PostgreSQL session that is read-only
    /// (a standby, e.g. a demoted primary still behind the proxy) counts as down, and raises
    /// the fence that makes the pool reconnect.
    pub async fn ping(&self) -> bool {
        if self.backend() != DbBackend::Postgres {
            return self.db.ping().await.is_ok();
        }
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SHOW transaction_read_only",
            ))
            .await;
        match row.map(|r| r.and_then(|r| r.try_get_by_index::<String>(0).ok())) {
            Ok(Some(read_only)) if read_only == "off" => true,
            Ok(Some(_)) => {
                standby::raise_fence();
                false
            }
            _ => false,
        }
    }

    /// The pool's connections now, with the SQLite writer's own: (open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            DbBackend::Sqlite => std::iter::once(&self.db)
                .chain(self.writer.as_ref().map(|w| &w.db))
                .map(|db| db.get_sqlite_connection_pool())
                .fold((0, 0), |(open, idle), pool| {
                    (
                        open.saturating_add(pool.size()),
                        idle.saturating_add(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX)),
                    )
                }),
            _ => (0, 0),
        }
    }
}

/// Takes the advisory lock that serialises schema and catalog changes (PostgreSQL only).
pub async fn lock_schema(tx: &DatabaseTransaction) -> Result<(), DbErr> {
    if tx.get_database_backend() == DbBackend::Postgres {
        tx.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"))
            .await?;
    }
    Ok(())
}

/// The driver's error under a SeaORM error, when the driver raised it.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// What to do about a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database is unreachable or shutting down: answer UNAVAILABLE with RetryInfo.
    Unavailable,
    /// A conflict with a concurrent transaction: run the transaction again.
    Retry,
    /// Anything else: INTERNAL.
    Other,
}

/// Classifies a database error. A read-only error (a write reached a standby) also raises the
/// fence that makes the pool drop its connections (see `standby`).
pub fn classify(err: &DbErr) -> DbFailure {
    use sea_orm::sqlx::Error as X;
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return DbFailure::Retry;
    }
    let Some(sqlx_err) = sqlx_error(err) else {
        return match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => DbFailure::Unavailable,
            _ => DbFailure::Other,
        };
    };
    match sqlx_err {
        X::Io(_) | X::Tls(_) | X::PoolTimedOut | X::PoolClosed | X::WorkerCrashed => {
            DbFailure::Unavailable
        }
        X::Protocol(_) => DbFailure::Unavailable,
        X::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes
                let primary = code.parse::<i32>().unwrap_or_default() & 0xff;
                return if primary == 5 || primary == 6 {
                    DbFailure::Unavailable
                } else {
                    DbFailure::Other
                };
            }
            match code.as_ref() {
                // serialization_failure, deadlock_detected
                "40001" | "40P01" => DbFailure::Retry,
                // The connection leads to a standby: a new primary is on its way or there.
                standby::READ_ONLY_SQL_TRANSACTION => {
                    standby::raise_fence();
                    DbFailure::Unavailable
                }
                // connection_exception class, admin/crash shutdown, cannot_connect_now,
                // statement timeout (query_canceled)
                c if c.starts_with("08") || c.starts_with("57P") || c == "57014" => {
                    DbFailure::Unavailable
                }
                _ => DbFailure::Other,
            }
        }
        _ => DbFailure::Other,
    }
}

/// Whether a write was refused because its session is read-only (it leads to a standby). The
/// fence is raised (see `standby`): the connection is closed when it returns to the pool, with
/// every one opened before it, so a new attempt runs on a session opened from now on.
pub fn refused_as_read_only(err: &DbErr) -> bool {
    let refused = matches!(sqlx_error(err), Some(sea_orm::sqlx::Error::Database(db))
        if db.code().as_deref() == Some(standby::READ_ONLY_SQL_TRANSACTION));
    if refused {
        standby::raise_fence();
    }
    refused
}

/// How long clients are told to wait before retrying when the database is unavailable.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Maps a database error that is not retried to the service error.
pub fn to_service_error(err: DbErr) -> ServiceError {
    match classify(&err) {
        DbFailure::Unavailable => {
            tracing::warn!(error = %describe_db_err(&err), "database unavailable");
            ServiceError::Unavailable {
                retry_after: RETRY_AFTER,
            }
        }
        _ => ServiceError::Internal(describe_db_err(&err)),
    }
}

/// A database error as text for the log. Driver messages name tables and constraints, never
/// bound values, so no personal data can reach the log through them.
pub fn describe_db_err(err: &DbErr) -> String {
    err.to_string()
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    async fn pragma(c: &impl ConnectionTrait, name: &str) -> String {
        let row = c
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .expect("pragma")
            .expect("a row");
        row.try_get_by_index::<i64>(0)
            .map(|v| v.to_string())
            .or_else(|_| row.try_get_by_index::<String>(0))
            .expect("a value")
    }

    #[tokio::test]
    async fn sqlite_connections_commit_durably_and_journal_statements_in_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = Store::connect(&DbConfig::new(url)).await.expect("store");
        // Write-ahead log, fsync at every commit (2 = FULL), and statement journals kept in
        // memory (2 = MEMORY) rather than in a temporary file per write transaction.
        assert_eq!("wal", pragma(store.connection(), "journal_mode").await);
        assert_eq!("2", pragma(store.connection(), "synchronous").await);
        assert_eq!("2", pragma(store.connection(), "temp_store").await);
        // The connection that commits the writes (the writer's own) is set up alike.
        let write = store.begin_write().await.expect("a write transaction");
        for name in [
            "journal_mode",
            "synchronous",
            "temp_store",
            "foreign_keys",
            "busy_timeout",
        ] {
            assert_eq!(
                pragma(store.connection(), name).await,
                pragma(&write.tx, name).await,
                "{name} of the writer's connection"
            );
        }
        assert_eq!("2", pragma(&write.tx, "synchronous").await);
    }

    /// Whether the connection under `c` has the temporary table `writer_mark` (temporary
    /// tables belong to one connection).
    async fn marked(c: &impl ConnectionTrait) -> bool {
        let row = c
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM temp.sqlite_master WHERE name = 'writer_mark'",
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("n") == 1
    }

    /// On SQLite, write transactions run on one connection kept for them: none of the pooled
    /// connections that reads use is it, and the next write transaction finds it again.
    #[tokio::test]
    async fn sqlite_writes_keep_a_connection_of_their_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let config = DbConfig::new(url);
        let store = Store::connect(&config).await.expect("store");
        store.migrate().await.expect("migrations");

        {
            let write = store.begin_write().await.expect("a write transaction");
            write
                .tx
                .execute_unprepared("CREATE TEMP TABLE writer_mark (x INTEGER)")
                .await
                .expect("mark the writer's connection");
            write.tx.commit().await.expect("commit");
        } // and the write gate is open again

        // Every connection of the pool at once, so that none of them can be skipped.
        let mut reads = Vec::new();
        for _ in 0..config.max_connections {
            reads.push(
                store
                    .connection()
                    .begin()
                    .await
                    .expect("a pooled connection"),
            );
        }
        for read in &reads {
            assert!(
                !marked(read).await,
                "a pooled connection ran the write transaction"
            );
        }
        drop(reads);

        let again = store
            .begin_write()
            .await
            .expect("a second write transaction");
        assert!(
            marked(&again.tx).await,
            "the next write found the writer's connection"
        );
    }

    /// The purge of remembered responses is a write like the others: on SQLite it waits for a
    /// write transaction in progress, instead of failing once the busy timeout has passed.
    #[tokio::test]
    async fn sqlite_purge_queues_behind_a_write_in_progress() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let config = DbConfig {
            statement_timeout: Duration::from_millis(100),
            ..DbConfig::new(url)
        };
        let store = Store::connect(&config).await.expect("store");
        store.migrate().await.expect("migrations");

        let write = store.begin_write().await.expect("a write transaction");
        let purge = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .purge_idempotency_records(Duration::from_secs(3600))
                    .await
            }
        });
        // Three busy timeouts: long enough for a purge that waited on the file's lock to fail.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!purge.is_finished(), "the purge waits for the write");
        write.tx.commit().await.expect("commit");
        drop(write._gate);
        let purged = purge.await.expect("the purge task");
        assert_eq!(purged.expect("the purge ran after the write"), 0);
    }

    /// A purge larger than a chunk deletes every expired response, a chunk per transaction,
    /// and keeps the others.
    #[tokio::test]
    async fn a_purge_runs_in_chunks_until_nothing_expired_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = Store::connect(&DbConfig::new(url)).await.expect("store");
        store.migrate().await.expect("migrations");
        store
            .connection()
            .execute_unprepared(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12) \
                 INSERT INTO idempotency_records \
                   (user_name, request_id, request_hash, response_format, response, created_at) \
                 SELECT 'u', 'r' || i, 'h', 1, x'00', \
                   CASE WHEN i <= 7 THEN '2000-01-01 00:00:00' ELSE '2999-01-01 00:00:00' END \
                 FROM n",
            )
            .await
            .expect("remembered responses");
        let purged = store
            .purge_idempotency_records_in(Duration::from_secs(3600), 3)
            .await
            .expect("purge");
        assert_eq!(purged, 7, "every expired response, over three chunks");
        let left = store
            .connection()
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM idempotency_records",
            ))
            .await
            .expect("count")
            .expect("a row")
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(left, 5, "the responses still within the retention stay");
    }

    #[tokio::test]
    async fn sqlite_migrations_keep_their_temporary_storage_in_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = Store::connect(&DbConfig::new(url)).await.expect("store");
        let options = store.migration_options.clone().expect("SQLite has them");
        let own = Store {
            db: sea_orm::Database::connect(options)
                .await
                .expect("connection"),
            writer: None,
            migration_options: None,
        };
        // 1 = FILE: a sort too large for memory goes to disk; and the connection is durable.
        assert_eq!("1", pragma(own.connection(), "temp_store").await);
        assert_eq!("2", pragma(own.connection(), "synchronous").await);
        assert_eq!("2", pragma(store.connection(), "temp_store").await);
        store.migrate().await.expect("migrations");
        assert_eq!(0, store.pending_migrations().await.expect("pending"));
    }
}
