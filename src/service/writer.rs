//! Group commit: upserts that arrive together share one transaction and one durable commit.
//!
//! Each writer ("lane") owns a queue. It takes what is queued (at most `max_batch`, waiting at
//! most `max_wait` for more), opens one write transaction, runs every command under its own
//! savepoint — a command that is refused rolls back to its savepoint and never disturbs its
//! neighbours, and a later command sees what earlier ones wrote — commits once, and only then
//! answers every caller. A failed commit answers every caller of the batch with the error (or
//! runs the whole batch again when the database asks for a retry): never a partial success.
//!
//! The batch locks and reads its studies once, then its sites in one statement; the
//! commands carry those rows from one to the next (the audit chain's head moves in memory and is
//! stored once per study before the commit). A command trusts the unique indexes where they can
//! answer (a twin's request id, a subject OID taken by a legacy row) and checks only when one
//! fails, on its retry.
//!
//! SQLite has one lane (one writer per database, as SQLite allows). PostgreSQL has several,
//! chosen by study, so that different studies commit in parallel; a batch locks its studies'
//! rows in id order before any command runs, so batches of several replicas never deadlock.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use sea_orm::{ActiveValue, ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::audit;
use super::upsert::{BatchRows, Executed, OidCounters, TxError, UpsertCommand, execute};
use crate::domain::ServiceError;
use crate::domain::id::subject_oid_base;
use crate::store::deferred::{self, Deferred, ROWS_PER_INSERT, insert_rows};
use crate::store::entity::{participant, participant_contact, site, study};
use crate::store::{
    DbFailure, Store, classify, describe_db_err, queries, refused_as_read_only, retry,
    to_service_error,
};

/// Group-commit settings.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// The most commands one transaction holds.
    pub max_batch: usize,
    /// How long a writer waits for more commands once it has one; zero takes only what is
    /// already queued (batches then form while the previous commit is on its way to disk).
    pub max_wait: Duration,
    /// Writers on PostgreSQL (SQLite always has one).
    pub lanes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 128,
            max_wait: Duration::ZERO,
            lanes: 4,
        }
    }
}

type Answer = Result<super::model::UpsertOutcome, ServiceError>;

struct Job {
    command: Arc<UpsertCommand>,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// What the writers have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Transactions committed (or failed) by the writers.
    pub batches: u64,
    /// Commands they held.
    pub commands: u64,
    /// The most commands one transaction held.
    pub largest: u64,
    /// Batches that ran again with a savepoint per command after a database error.
    pub fallbacks: u64,
}

/// The writers' figures that the metrics endpoint serves.
#[derive(Debug, Clone)]
pub struct WriteMetrics {
    /// Commands per transaction.
    pub batch_sizes: prometheus_client::metrics::histogram::Histogram,
    /// Batches that ran again with a savepoint per command after a database error: a steady
    /// rise means conflicts or faults are costing group commit its single pass.
    pub fallbacks: prometheus_client::metrics::counter::Counter,
    /// Batches that a read-only session refused and that ran once more on a fresh one (see
    /// `commit_batch`): it rises during a switchover, and with every write batch while the
    /// database address leads to a standby.
    pub read_only_retries: prometheus_client::metrics::counter::Counter,
}

struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    largest: AtomicU64,
    /// Shared with the metrics endpoint.
    fallbacks: prometheus_client::metrics::counter::Counter,
    /// Shared with the metrics endpoint.
    read_only_retries: prometheus_client::metrics::counter::Counter,
    /// Commands per transaction, for the metrics endpoint.
    sizes: prometheus_client::metrics::histogram::Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            batches: AtomicU64::default(),
            commands: AtomicU64::default(),
            largest: AtomicU64::default(),
            fallbacks: Default::default(),
            read_only_retries: Default::default(),
            sizes: prometheus_client::metrics::histogram::Histogram::new(
                crate::telemetry::BATCH_BUCKETS,
            ),
        }
    }
}

impl Counters {
    fn record(&self, size: usize) {
        self.sizes.observe(size as f64);
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }
}

/// The writers of one store.
#[derive(Clone)]
pub struct Writer {
    lanes: Arc<Vec<mpsc::Sender<Job>>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writers on `tasks`; they stop when the last `Writer` clone is dropped, or
    /// when `tasks` stop, once they have written what was queued.
    pub fn start(store: Store, config: BatchConfig, tasks: &crate::tasks::Background) -> Self {
        let lanes = match store.backend() {
            DbBackend::Sqlite => 1,
            _ => config.lanes.max(1),
        };
        let max_batch = config.max_batch.max(1);
        let counters = Arc::new(Counters::default());
        let senders = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(max_batch * 4);
                tasks.spawn(run_lane(
                    store.clone(),
                    rx,
                    max_batch,
                    config.max_wait,
                    counters.clone(),
                    tasks.stop_token(),
                ));
                tx
            })
            .collect();
        Self {
            lanes: Arc::new(senders),
            counters,
        }
    }

    /// The writers' figures for the metrics endpoint (shared: they keep counting).
    pub fn metrics(&self) -> WriteMetrics {
        WriteMetrics {
            batch_sizes: self.counters.sizes.clone(),
            fallbacks: self.counters.fallbacks.clone(),
            read_only_retries: self.counters.read_only_retries.clone(),
        }
    }

    /// Batches and commands so far.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.get(),
        }
    }

    /// Queues `command` and waits for its answer. Waiting for room in the queue ends at
    /// `deadline` (nothing was written); once a writer took the command, its answer comes after
    /// the commit that holds it, whatever the deadline.
    pub async fn submit(&self, command: Arc<UpsertCommand>, deadline: Instant) -> Answer {
        self.enqueue(command, deadline).await?.await
    }

    /// Queues `command` (waiting for room until `deadline`) and gives what waits for its answer.
    /// Commands queued one after the other run in that order.
    pub async fn enqueue(
        &self,
        command: Arc<UpsertCommand>,
        deadline: Instant,
    ) -> Result<impl std::future::Future<Output = Answer> + use<>, ServiceError> {
        let lane = usize::try_from(command.study_id.unsigned_abs()).unwrap_or(0) % self.lanes.len();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            command,
            deadline,
            reply,
        };
        tokio::time::timeout_at(deadline, self.lanes[lane].send(job))
            .await
            .map_err(|_| super::upsert::timed_out())?
            .map_err(|_| ServiceError::Internal("the writer has stopped".into()))?;
        Ok(async move {
            answer
                .await
                .map_err(|_| ServiceError::Internal("the writer dropped a command".into()))?
        })
    }
}

async fn run_lane(
    store: Store,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    counters: Arc<Counters>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        let next = tokio::select! {
            job = queue.recv() => job,
            // Stopping: refuse new commands, but write those already queued.
            _ = stop.cancelled() => {
                queue.close();
                queue.recv().await
            }
        };
        let Some(first) = next else { break };
        batch.push(first);
        let until = Instant::now() + max_wait;
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    _ => break,
                },
            }
        }
        // A command whose deadline passed before its write started is answered at once, and
        // one whose caller has gone is dropped: neither has written anything.
        let now = Instant::now();
        let mut ready = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            if job.reply.is_closed() {
                continue;
            }
            if job.deadline <= now {
                let _ = job.reply.send(Err(super::upsert::timed_out()));
                continue;
            }
            ready.push(job);
        }
        if ready.is_empty() {
            continue;
        }
        counters.record(ready.len());
        tracing::trace!(commands = ready.len(), "write batch");
        let answers = commit_batch(&store, &ready, &counters).await;
        for (job, answer) in ready.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// Runs the batch in one transaction and commits once. The answers are in the batch's order;
/// on a failed commit every answer is that failure.
///
/// The batch first runs its commands one after the other without a savepoint each: a command
/// that is refused has written nothing (every refusal comes before its first write), so only a
/// database error needs a command undone. On such an error the transaction is rolled back and
/// the batch runs again with a savepoint per command, where the error stays with its command
/// (and a conflict is retried) while its neighbours commit. `validate_only` commands always run
/// under a savepoint, which they roll back. A batch refused because its session is read-only
/// runs once more first, on a fresh session (see below).
async fn commit_batch(store: &Store, jobs: &[Job], counters: &Counters) -> Vec<Answer> {
    let mut first = try_batch(store, jobs, Mode::Together).await;
    if first.as_ref().is_err_and(refused_as_read_only) {
        // The session leads to a read-only node, and is now fenced off. Sessions that reads
        // opened on a standby are kept by the pool (a standby answers reads), and one of them
        // may have been this one after a promotion: a single new attempt runs on a session
        // opened now, which reaches the primary if the address leads to one again, and is
        // refused as fast if not. Nothing of the first attempt was written.
        counters.read_only_retries.inc();
        first = try_batch(store, jobs, Mode::Together).await;
    }
    let result = match first {
        Err(e) if classify(&e) != DbFailure::Unavailable => {
            counters.fallbacks.inc();
            tracing::debug!(error = %describe_db_err(&e), "a command failed; running the batch again with a savepoint each");
            retry::on_conflict(|| try_batch(store, jobs, Mode::Savepoints)).await
        }
        other => other,
    };
    match result {
        Ok(answers) => answers,
        Err(e) => {
            tracing::warn!(error = %describe_db_err(&e), commands = jobs.len(), "batch failed; nothing of it was written");
            let error = to_service_error(e);
            jobs.iter().map(|_| Err(copy_error(&error))).collect()
        }
    }
}

/// How a batch runs its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One after the other in the batch's transaction; any database error fails the attempt.
    Together,
    /// Each under its own savepoint.
    Savepoints,
}

/// The same failure for every caller of a batch.
pub(crate) fn copy_error(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::Unavailable { retry_after } => ServiceError::Unavailable {
            retry_after: *retry_after,
        },
        other => ServiceError::Internal(other.to_string()),
    }
}

async fn try_batch(store: &Store, jobs: &[Job], mode: Mode) -> Result<Vec<Answer>, sea_orm::DbErr> {
    let write = store.begin_write().await?;
    // Every study of the batch is locked up front, in id order (PostgreSQL; SQLite's write
    // transaction already excludes every other writer), and read once: the commands carry the
    // rows from one to the next (see `BatchRows`).
    let mut ids: Vec<i64> = jobs.iter().map(|j| j.command.study_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows = Rows::default();
    for id in ids {
        rows.studies
            .insert(id, queries::lock_study(&write.tx, id).await?);
    }
    let locked = rows.studies.clone();
    // The batch's sites, read once under the study locks, as each command would read its own:
    // one statement instead of one at each site's first command. A command's changes to its
    // site are carried in `rows` from then on.
    let mut site_ids: Vec<i64> = jobs.iter().filter_map(|j| j.command.site_id).collect();
    site_ids.sort_unstable();
    site_ids.dedup();
    for chunk in site_ids.chunks(ROWS_PER_INSERT) {
        for site in queries::sites_by_ids(&write.tx, chunk).await? {
            rows.sites.insert(site.id, site);
        }
    }
    if mode == Mode::Together {
        (rows.known, rows.contacts) = known_participants(&write.tx, jobs).await?;
        rows.oid_counters = oid_counters(&write.tx, jobs, &rows.known).await?;
        let creations = jobs
            .iter()
            .filter(|job| may_create(&job.command, &rows.known))
            .count();
        let mut ids = queries::allocate_participant_ids(&write.tx, creations).await?;
        ids.reverse();
        rows.participant_ids = ids;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    // On SQLite the rows that commands run together leave are inserted a part of the batch at a
    // time, while the next part's commands run: the connection's thread writes one part as the
    // writer seals and hashes the next. The insert takes the transaction's connection on its
    // first poll, before the part runs, and holds it until its one call returns; the part's
    // commands run one after the other, so their first statement waits for it and each later one
    // follows. They read the rows as if they were in the database already, and they are.
    let part = match write.tx.get_database_backend() {
        DbBackend::Sqlite if mode == Mode::Together => COMMANDS_PER_INSERT,
        _ => jobs.len(),
    };
    {
        let mut inserting = None;
        for commands in jobs.chunks(part.max(1)) {
            let run = run_commands(&write.tx, commands, mode, &mut rows, &mut answers);
            match inserting.take() {
                // `try_join` polls the insert first, and ends at its error without polling the
                // part again: SQLite may have ended the transaction with it (a full disk, an I/O
                // error), and any statement after that would be committed on its own.
                Some(insert) => {
                    futures_util::future::try_join(insert, run).await?;
                }
                None => run.await?,
            }
            let insert = deferred::insert(&write.tx, take_deferred(&mut rows));
            #[cfg(feature = "fault-injection")]
            let insert = fault_in_insert(&write.tx, commands, mode, insert);
            inserting = Some(insert);
        }
        if let Some(insert) = inserting {
            insert.await?;
        }
    }
    let raised: Vec<(String, i64)> = rows
        .oid_counters
        .drain()
        .filter(|(_, (read, issued))| issued > read)
        .map(|(base, (_, issued))| (base, issued))
        .collect();
    queries::raise_subject_oid_counters(&write.tx, &raised).await?;
    for (id, study) in &rows.studies {
        if let Some(before) = locked.get(id) {
            audit::move_head(&write.tx, before, study).await?;
        }
    }
    write.tx.commit().await?;
    Ok(answers)
}

/// The test seam of `Fault::InsertEndsTransaction`: after `insert` of commands run together,
/// ends the transaction and fails, as SQLite does on a full disk.
#[cfg(feature = "fault-injection")]
async fn fault_in_insert(
    tx: &DatabaseTransaction,
    jobs: &[Job],
    mode: Mode,
    insert: impl std::future::Future<Output = Result<(), sea_orm::DbErr>>,
) -> Result<(), sea_orm::DbErr> {
    let ends = mode == Mode::Together
        && jobs
            .iter()
            .any(|job| job.command.fault == super::Fault::InsertEndsTransaction);
    insert.await?;
    if ends && tx.get_database_backend() == DbBackend::Sqlite {
        tx.execute_unprepared("ROLLBACK").await?;
        return Err(sea_orm::DbErr::Custom(
            "injected fault: the insert ended the transaction".into(),
        ));
    }
    Ok(())
}

/// Runs `jobs` one after the other, in the batch's transaction, and adds their answers.
async fn run_commands(
    tx: &DatabaseTransaction,
    jobs: &[Job],
    mode: Mode,
    rows: &mut Rows,
    answers: &mut Vec<Answer>,
) -> Result<(), sea_orm::DbErr> {
    for job in jobs {
        // A command that repeats a request id remembered earlier in the batch must find it
        // where it looks (the database): after a refusal, or as a dry run.
        if mode == Mode::Together && remembered_in(&rows.deferred, &job.command) {
            deferred::insert(tx, take_deferred(rows)).await?;
        }
        let answer = match mode {
            Mode::Together if !job.command.validate_only => {
                run_together(tx, &job.command, rows).await?
            }
            _ => {
                insert_pending_contacts(tx, rows).await?;
                run_one(tx, &job.command, rows).await?
            }
        };
        answers.push(answer);
    }
    Ok(())
}

/// The studies and sites of a batch as its commands left them so far.
#[derive(Default)]
struct Rows {
    studies: BTreeMap<i64, study::Model>,
    sites: HashMap<i64, site::Model>,
    /// What the commands run together left for the batch to insert.
    deferred: Deferred,
    /// The participants with the keys of the commands run together, by (study, normalized
    /// key): read once when the batch starts, then as its commands leave them.
    known: HashMap<(i64, String), Option<participant::Model>>,
    /// Participants whose contact data is in `deferred`, not yet in the database.
    pending_contacts: HashSet<i64>,
    /// The stored contact rows (or `None`: no row) of the participants in `known`, read with
    /// them. An entry is taken by the first command that plans an update of its participant;
    /// any later command reads the database, where the earlier one's write is.
    contacts: HashMap<i64, Option<participant_contact::Model>>,
    /// The OID counters of the bases the batch's creations may need, moved in memory and
    /// written back before the commit.
    oid_counters: OidCounters,
    /// Ids chosen for the batch's creations and not taken yet (last one first).
    participant_ids: Vec<i64>,
    /// Participants in `deferred`, not yet in the database.
    pending_participants: HashSet<i64>,
}

impl Rows {
    /// The command's study as the batch's commands left it.
    fn study_of(&self, command: &UpsertCommand) -> Result<study::Model, sea_orm::DbErr> {
        self.studies
            .get(&command.study_id)
            .cloned()
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("study {}", command.study_id)))
    }
}

/// The participants with the keys of the batch's commands, and their contact rows.
type Known = (
    HashMap<(i64, String), Option<participant::Model>>,
    HashMap<i64, Option<participant_contact::Model>>,
);

/// Reads the participants with the keys of the batch's commands, and their contact rows, one
/// statement per study (and chunk of keys).
async fn known_participants(
    tx: &DatabaseTransaction,
    jobs: &[Job],
) -> Result<Known, sea_orm::DbErr> {
    let mut keys: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for job in jobs {
        if let Some(key) = &job.command.subject_key {
            keys.entry(job.command.study_id)
                .or_default()
                .push(key.normalized());
        }
    }
    let mut known = HashMap::new();
    let mut contacts = HashMap::new();
    for (study_id, mut norms) in keys {
        norms.sort_unstable();
        norms.dedup();
        for chunk in norms.chunks(ROWS_PER_INSERT) {
            for norm in chunk {
                known.insert((study_id, norm.clone()), None);
            }
            for (row, contact) in queries::participants_by_keys(tx, study_id, chunk).await? {
                contacts.insert(row.id, contact);
                known.insert((study_id, row.subject_key_norm.clone()), Some(row));
            }
        }
    }
    Ok((known, contacts))
}

/// Whether the command may create a participant: it writes, and its key is one no participant
/// of its study has (or it has none: a generated ID).
fn may_create(
    command: &UpsertCommand,
    known: &HashMap<(i64, String), Option<participant::Model>>,
) -> bool {
    !command.validate_only
        && command.subject_key.as_ref().is_none_or(|key| {
            matches!(known.get(&(command.study_id, key.normalized())), Some(None))
        })
}

/// The OID counters of the bases of the batch's keys that no participant has yet (the
/// creations it may make), one statement; a base never seen counts from 0.
async fn oid_counters(
    tx: &DatabaseTransaction,
    jobs: &[Job],
    known: &HashMap<(i64, String), Option<participant::Model>>,
) -> Result<OidCounters, sea_orm::DbErr> {
    let mut bases: Vec<String> = jobs
        .iter()
        .filter(|job| !job.command.validate_only)
        .filter_map(|job| {
            let key = job.command.subject_key.as_ref()?;
            let found = known.get(&(job.command.study_id, key.normalized()))?;
            found.is_none().then(|| subject_oid_base(key.as_str()))
        })
        .collect();
    bases.sort_unstable();
    bases.dedup();
    let mut counters: OidCounters = bases.iter().map(|b| (b.clone(), (0, 0))).collect();
    for (base, issued) in queries::subject_oid_counters(tx, &bases).await? {
        counters.insert(base, (issued, issued));
    }
    Ok(counters)
}

/// Commands of a batch whose rows one SQLite insert takes (see `try_batch`): small enough that
/// the writer has the next part to work on while the connection writes, large enough that a
/// batch needs few statements.
const COMMANDS_PER_INSERT: usize = 16;

/// Takes what the commands run together deferred so far, to insert it: none of it is pending
/// any more (a command that reads it queues behind its insert).
fn take_deferred(rows: &mut Rows) -> Deferred {
    rows.pending_contacts.clear();
    rows.pending_participants.clear();
    std::mem::take(&mut rows.deferred)
}

/// Inserts the participants deferred so far, before a command that may read them (or count
/// them: the enrolled counters move with the insert).
async fn insert_pending_participants(
    tx: &DatabaseTransaction,
    rows: &mut Rows,
) -> Result<(), sea_orm::DbErr> {
    if rows.pending_participants.is_empty() {
        return Ok(());
    }
    rows.pending_participants.clear();
    insert_rows(tx, std::mem::take(&mut rows.deferred.participants)).await
}

/// Inserts the contact data deferred so far (and the participants it belongs to), before a
/// command that may read it.
async fn insert_pending_contacts(
    tx: &DatabaseTransaction,
    rows: &mut Rows,
) -> Result<(), sea_orm::DbErr> {
    insert_pending_participants(tx, rows).await?;
    if rows.pending_contacts.is_empty() {
        return Ok(());
    }
    rows.pending_contacts.clear();
    insert_rows(tx, std::mem::take(&mut rows.deferred.contacts)).await
}

/// Whether `deferred` holds a remembered response for the command's user and request id.
fn remembered_in(deferred: &Deferred, command: &UpsertCommand) -> bool {
    let Some(rid) = &command.request_id else {
        return false;
    };
    deferred.remembered.iter().any(|r| {
        matches!(&r.user_name, ActiveValue::Set(u) if *u == command.user)
            && matches!(&r.request_id, ActiveValue::Set(id) if id == rid.as_str())
    })
}

/// Runs one command in the batch's transaction, without a savepoint: see `commit_batch`.
async fn run_together(
    tx: &DatabaseTransaction,
    command: &UpsertCommand,
    rows: &mut Rows,
) -> Result<Answer, sea_orm::DbErr> {
    let study = rows.study_of(command)?;
    let site = match command.site_id {
        Some(id) => Some(
            rows.sites
                .get(&id)
                .cloned()
                .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("site {id}")))?,
        ),
        None => None,
    };
    let known = command.subject_key.as_ref().and_then(|key| {
        rows.known
            .get(&(command.study_id, key.normalized()))
            .cloned()
    });
    // A creation of a key known to be free, where no cap counts, leaves its row to the batch;
    // anything else may read or count participants: the batch's must be in the database by then.
    let leaves_rows = match &known {
        Some(None) => {
            study.enrollment_cap.is_none()
                && site.as_ref().is_none_or(|s| s.enrollment_cap.is_none())
        }
        Some(Some(found)) => !rows.pending_participants.contains(&found.id),
        None => false,
    };
    if !leaves_rows {
        insert_pending_participants(tx, rows).await?;
    }
    // An update reads the participant's contact data: it must be in the database by then.
    if let Some(Some(found)) = &known
        && rows.pending_contacts.contains(&found.id)
    {
        insert_pending_contacts(tx, rows).await?;
    }
    let known_contact = match &known {
        Some(Some(found)) => rows.contacts.remove(&found.id),
        _ => None,
    };
    let mut after = BatchRows {
        study,
        site,
        deferred: Some(Deferred::default()),
        known,
        known_contact,
        written: None,
        oid_counters: Some(std::mem::take(&mut rows.oid_counters)),
        participant_ids: Some(std::mem::take(&mut rows.participant_ids)),
    };
    let result = execute(tx, command, &mut after, true).await;
    #[cfg(feature = "fault-injection")]
    if let super::Fault::SlowCommit(delay) = command.fault {
        tokio::time::sleep(delay).await;
    }
    let answer = match result {
        Ok(Executed::Written(response) | Executed::Replayed(response)) => Ok(response),
        Err(TxError::Rejected(e)) => Err(e),
        Err(TxError::Db(e)) => return Err(e),
    };
    if let Some(counters) = after.oid_counters.take() {
        rows.oid_counters = counters;
    }
    if let Some(ids) = after.participant_ids.take() {
        rows.participant_ids = ids;
    }
    // A refused or replayed command changed nothing; the rows are as they were read.
    if let Some(written) = after.written {
        rows.known.insert(
            (written.study_id, written.subject_key_norm.clone()),
            Some(written),
        );
    }
    if let Some(mut deferred) = after.deferred {
        for participant in &deferred.participants {
            if let sea_orm::ActiveValue::Set(id) = participant.id {
                rows.pending_participants.insert(id);
            }
        }
        rows.deferred
            .participants
            .append(&mut deferred.participants);
        for contact in &deferred.contacts {
            if let sea_orm::ActiveValue::Set(id) = contact.participant_id {
                rows.pending_contacts.insert(id);
            }
        }
        rows.deferred.contacts.append(&mut deferred.contacts);
        rows.deferred
            .audit_events
            .append(&mut deferred.audit_events);
        rows.deferred.remembered.append(&mut deferred.remembered);
    }
    if let Some(site) = after.site {
        rows.sites.insert(site.id, site);
    }
    rows.studies.insert(after.study.id, after.study);
    Ok(answer)
}

/// Runs one command under a savepoint: kept when it succeeded (and wrote for real), rolled
/// back otherwise, and run again on a conflict a retry can clear. A database error that breaks
/// the whole transaction fails the batch; any other fails this command alone.
async fn run_one(
    tx: &DatabaseTransaction,
    command: &UpsertCommand,
    rows: &mut Rows,
) -> Result<Answer, sea_orm::DbErr> {
    let study = rows.study_of(command)?;
    let site = command.site_id.and_then(|id| rows.sites.get(&id).cloned());
    let attempts = AtomicUsize::new(0);
    let result = retry::on_conflict(|| {
        let first = attempts.fetch_add(1, Ordering::Relaxed) == 0;
        attempt_one(tx, command, study.clone(), site.clone(), first)
    })
    .await;
    match result {
        Ok((answer, after)) => {
            if let Some(site) = after.site {
                rows.sites.insert(site.id, site);
            }
            rows.studies.insert(after.study.id, after.study);
            Ok(answer)
        }
        Err(e) if classify(&e) == DbFailure::Unavailable => Err(e),
        Err(e) => Ok(Err(to_service_error(e))),
    }
}

/// One attempt of one command, under its own savepoint: its answer, and the batch's rows as
/// the command leaves them (changed only when it was kept).
async fn attempt_one(
    tx: &DatabaseTransaction,
    command: &UpsertCommand,
    study: study::Model,
    site: Option<site::Model>,
    first: bool,
) -> Result<(Answer, BatchRows), sea_orm::DbErr> {
    let site = match (command.site_id, site) {
        (Some(_), Some(site)) => Some(site),
        // The batch read its sites when it started.
        (Some(id), None) => return Err(sea_orm::DbErr::RecordNotFound(format!("site {id}"))),
        (None, _) => None,
    };
    let savepoint = tx.begin().await?;
    let read = BatchRows {
        study,
        site,
        deferred: None,
        known: None,
        known_contact: None,
        written: None,
        oid_counters: None,
        participant_ids: None,
    };
    let mut rows = read.clone();
    let result = execute(&savepoint, command, &mut rows, first).await;
    #[cfg(feature = "fault-injection")]
    if let super::Fault::SlowCommit(delay) = command.fault {
        tokio::time::sleep(delay).await;
    }
    match result {
        Ok(Executed::Written(response)) if !command.validate_only => {
            savepoint.commit().await?;
            Ok((Ok(response), rows))
        }
        Ok(Executed::Written(response) | Executed::Replayed(response)) => {
            savepoint.rollback().await?;
            Ok((Ok(response), read))
        }
        Err(TxError::Rejected(e)) => {
            savepoint.rollback().await?;
            Ok((Err(e), read))
        }
        Err(TxError::Db(e)) => {
            savepoint.rollback().await?;
            Err(e)
        }
    }
}
