//! Group commit: upserts that arrive together share one transaction and one durable commit.
//!
//! Each writer ("lane") owns a queue. It takes what is queued (at most `max_batch`, waiting at
//! most `max_wait` for more), opens one write transaction, runs every command under its own
//! savepoint — a command that is refused rolls back to its savepoint and never disturbs its
//! neighbours, and a later command sees what earlier ones wrote — commits once, and only then
//! answers every caller. A failed commit answers every caller of the batch with the error (or
//! runs the whole batch again when the database asks for a retry): never a partial success.
//!
//! SQLite has one lane (one writer per database, as SQLite allows). PostgreSQL has several,
//! chosen by study, so that different studies commit in parallel; a batch locks its studies'
//! rows in id order before any command runs, so batches of several replicas never deadlock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{DatabaseTransaction, DbBackend, TransactionTrait};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::upsert::{TxError, UpsertCommand, execute};
use crate::domain::ServiceError;
use crate::store::{DbFailure, Store, classify, describe_db_err, queries, retry, to_service_error};

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
}

struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    largest: AtomicU64,
    /// Commands per transaction, for the metrics endpoint.
    sizes: prometheus_client::metrics::histogram::Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            batches: AtomicU64::default(),
            commands: AtomicU64::default(),
            largest: AtomicU64::default(),
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
    /// Starts the writers; they stop when the last `Writer` clone is dropped.
    pub fn start(store: Store, config: BatchConfig) -> Self {
        let lanes = match store.backend() {
            DbBackend::Sqlite => 1,
            _ => config.lanes.max(1),
        };
        let max_batch = config.max_batch.max(1);
        let counters = Arc::new(Counters::default());
        let senders = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(max_batch * 4);
                tokio::spawn(run_lane(
                    store.clone(),
                    rx,
                    max_batch,
                    config.max_wait,
                    counters.clone(),
                ));
                tx
            })
            .collect();
        Self {
            lanes: Arc::new(senders),
            counters,
        }
    }

    /// Commands per transaction so far, as a histogram (shared: it keeps counting).
    pub fn batch_sizes(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.counters.sizes.clone()
    }

    /// Batches and commands so far.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
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
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.recv().await {
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
        let answers = commit_batch(&store, &ready).await;
        for (job, answer) in ready.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// Runs the batch in one transaction, each command under a savepoint, and commits once. The
/// answers are in the batch's order; on a failed commit every answer is that failure.
async fn commit_batch(store: &Store, jobs: &[Job]) -> Vec<Answer> {
    match retry::on_conflict(|| try_batch(store, jobs)).await {
        Ok(answers) => answers,
        Err(e) => {
            tracing::warn!(error = %describe_db_err(&e), commands = jobs.len(), "batch failed; nothing of it was written");
            let error = to_service_error(e);
            jobs.iter().map(|_| Err(copy_error(&error))).collect()
        }
    }
}

/// The same failure for every caller of a batch.
fn copy_error(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::Unavailable { retry_after } => ServiceError::Unavailable {
            retry_after: *retry_after,
        },
        other => ServiceError::Internal(other.to_string()),
    }
}

async fn try_batch(store: &Store, jobs: &[Job]) -> Result<Vec<Answer>, sea_orm::DbErr> {
    let write = store.begin_write().await?;
    // Every study of the batch is locked up front, in id order (PostgreSQL; SQLite's write
    // transaction already excludes every other writer).
    let mut studies: Vec<i64> = jobs.iter().map(|j| j.command.study_id).collect();
    studies.sort_unstable();
    studies.dedup();
    for id in studies {
        queries::lock_study(&write.tx, id).await?;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        answers.push(run_one(&write.tx, &job.command).await?);
    }
    write.tx.commit().await?;
    Ok(answers)
}

/// Runs one command under a savepoint: kept when it succeeded (and wrote for real), rolled
/// back otherwise, and run again on a conflict a retry can clear. A database error that breaks
/// the whole transaction fails the batch; any other fails this command alone.
async fn run_one(
    tx: &DatabaseTransaction,
    command: &UpsertCommand,
) -> Result<Answer, sea_orm::DbErr> {
    match retry::on_conflict(|| attempt_one(tx, command)).await {
        Ok(answer) => Ok(answer),
        Err(e) if classify(&e) == DbFailure::Unavailable => Err(e),
        Err(e) => Ok(Err(to_service_error(e))),
    }
}

/// One attempt of one command, under its own savepoint.
async fn attempt_one(
    tx: &DatabaseTransaction,
    command: &UpsertCommand,
) -> Result<Answer, sea_orm::DbErr> {
    let savepoint = tx.begin().await?;
    let result = execute(&savepoint, command).await;
    #[cfg(feature = "fault-injection")]
    if let super::Fault::SlowCommit(delay) = command.fault {
        tokio::time::sleep(delay).await;
    }
    match result {
        Ok(response) if !command.validate_only => {
            savepoint.commit().await?;
            Ok(Ok(response))
        }
        Ok(response) => {
            savepoint.rollback().await?;
            Ok(Ok(response))
        }
        Err(TxError::Rejected(e)) => {
            savepoint.rollback().await?;
            Ok(Err(e))
        }
        Err(TxError::Db(e)) => {
            savepoint.rollback().await?;
            Err(e)
        }
    }
}
