//! Grouped point reads: gets that arrive together share one statement.
//!
//! A get used to run its own statement, and each statement run outside a transaction costs a
//! pool checkout, a hand-off to the connection (to SQLite's connection thread, or a round trip
//! to PostgreSQL) and a check of the connection on its return: several times the work of the
//! lookup itself. A reader ("lane") takes the lookups that are queued (at most `MAX_GROUP`, or
//! `MAX_GROUP_POSTGRES`, without waiting for more), reads all those of one study with one
//! statement (an `IN (…)` list; on PostgreSQL a `UNION ALL` of one query per key, see
//! `queries::participants_by_each_key`), and answers each caller with its own row. A lookup
//! that finds its lane idle runs at once, alone; on PostgreSQL one with no other in flight
//! skips the lane (see `Reader::ask`). The replay check before a write (is this request id
//! remembered?) is grouped the same way, by user.
//!
//! Reads only: a failed statement answers the lookups that shared it with the same error, and
//! nothing needs undoing. A lookup whose caller has gone (its deadline passed) is skipped.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};

use crate::domain::ServiceError;
use crate::store::entity::{idempotency_record, participant, participant_contact};
use crate::store::{Store, queries, to_service_error};

/// Readers per store: enough that a slow statement does not hold up every get, few enough
/// that lookups still meet in a queue.
const LANES: usize = 4;

/// The longest one group's statement may take, its connection checkout included: past the
/// pool's acquire timeout and the statement timeout (defaults 3 s and 5 s), so that it only
/// cuts a statement the database will never end.
const GROUP_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// The most lookups one statement holds.
pub const MAX_GROUP: usize = 64;

/// The most on PostgreSQL, where each key is a branch of a `UNION ALL`: a group of 64 with
/// contact data is about 107 KB of SQL and several MB of cached plan per connection, and its
/// parameters would pass one TCP segment on a 1,500-byte link, where sqlx 0.9.0 leaves Nagle's
/// algorithm on (see `store::deferred::ROWS_PER_INSERT_POSTGRES`).
const MAX_GROUP_POSTGRES: usize = 16;

/// A participant, and its contact row when it was asked for and it has one.
pub type Found = Option<(participant::Model, Option<participant_contact::Model>)>;

/// A remembered response, if the user used the request id before.
pub type Remembered = Option<idempotency_record::Model>;

enum Lookup {
    /// A participant by its study and normalized key.
    Participant {
        study_id: i64,
        key_norm: String,
        /// Whether the contact row is read with the participant: roles that may not see
        /// contact data never load it.
        with_contact: bool,
        reply: oneshot::Sender<Result<Found, ServiceError>>,
    },
    /// What a user's request id is remembered with (the replay check before a write).
    Remembered {
        user: String,
        request_id: String,
        reply: oneshot::Sender<Result<Remembered, ServiceError>>,
    },
}

/// Lookups that one statement can answer together.
#[derive(PartialEq, Eq)]
enum Group {
    Participants { study_id: i64, with_contact: bool },
    Remembered { user: String },
}

impl Lookup {
    fn group(&self) -> Group {
        match self {
            Lookup::Participant {
                study_id,
                with_contact,
                ..
            } => Group::Participants {
                study_id: *study_id,
                with_contact: *with_contact,
            },
            Lookup::Remembered { user, .. } => Group::Remembered { user: user.clone() },
        }
    }

    /// Whether this lookup belongs to `group` (without building its own group).
    fn is_in(&self, group: &Group) -> bool {
        match (self, group) {
            (
                Lookup::Participant {
                    study_id,
                    with_contact,
                    ..
                },
                Group::Participants {
                    study_id: s,
                    with_contact: w,
                },
            ) => study_id == s && with_contact == w,
            (Lookup::Remembered { user, .. }, Group::Remembered { user: u }) => user == u,
            _ => false,
        }
    }

    fn is_abandoned(&self) -> bool {
        match self {
            Lookup::Participant { reply, .. } => reply.is_closed(),
            Lookup::Remembered { reply, .. } => reply.is_closed(),
        }
    }

    /// The key the statement looks for.
    fn key(&self) -> &str {
        match self {
            Lookup::Participant { key_norm, .. } => key_norm,
            Lookup::Remembered { request_id, .. } => request_id,
        }
    }

    fn fail(self, error: &ServiceError) {
        let error = super::writer::copy_error(error);
        match self {
            Lookup::Participant { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Lookup::Remembered { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What the readers have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Statements run.
    pub statements: u64,
    /// Lookups they answered.
    pub lookups: u64,
    /// The most lookups one statement answered.
    pub largest: u64,
    /// Lookups run at once by their caller: none other was in flight (PostgreSQL).
    pub alone: u64,
}

#[derive(Default)]
struct Counters {
    statements: AtomicU64,
    lookups: AtomicU64,
    largest: AtomicU64,
    alone: AtomicU64,
    /// Lookups asked for and not answered yet.
    in_flight: AtomicUsize,
}

/// One lookup in flight, until it is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The readers of one store.
#[derive(Clone)]
pub struct Reader {
    /// Where a lookup with no other in flight runs, at once (PostgreSQL, see `ask`).
    store: Store,
    /// Whether a lookup with no other in flight runs at once.
    at_once: bool,
    lanes: Arc<Vec<mpsc::Sender<Lookup>>>,
    next: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Reader {
    /// Starts the readers on `tasks`; they end with `tasks`, or when the last `Reader` clone
    /// is dropped.
    pub fn start(store: Store, tasks: &crate::tasks::Background) -> Self {
        let counters = Arc::new(Counters::default());
        let most = match store.backend() {
            sea_orm::DbBackend::Postgres => MAX_GROUP_POSTGRES,
            _ => MAX_GROUP,
        };
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAX_GROUP * 4);
                tasks.spawn_until_stopped(run_lane(store.clone(), rx, most, counters.clone()));
                tx
            })
            .collect();
        Self {
            at_once: store.backend() == sea_orm::DbBackend::Postgres,
            store,
            lanes: Arc::new(lanes),
            next: Arc::new(AtomicUsize::new(0)),
            counters,
        }
    }

    /// The participant of `study_id` with this normalized key, and its contact row when
    /// `with_contact` (and it has one).
    pub async fn participant(
        &self,
        study_id: i64,
        key_norm: String,
        with_contact: bool,
    ) -> Result<Found, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let in_flight = self
            .ask(Lookup::Participant {
                study_id,
                key_norm,
                with_contact,
                reply,
            })
            .await?;
        let found = answer.await.map_err(|_| stopped())?;
        drop(in_flight);
        found
    }

    /// What `user`'s `request_id` is remembered with, if anything.
    pub async fn remembered(
        &self,
        user: &str,
        request_id: &str,
    ) -> Result<Remembered, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let in_flight = self
            .ask(Lookup::Remembered {
                user: user.to_owned(),
                request_id: request_id.to_owned(),
                reply,
            })
            .await?;
        let found = answer.await.map_err(|_| stopped())?;
        drop(in_flight);
        found
    }

    /// On PostgreSQL, runs the lookup at once when no other is in flight, with a statement for
    /// its key alone (see `answer_alone`); queues it for a lane otherwise, where it may share a
    /// statement. On SQLite every lookup goes through a lane: run in its caller instead, a
    /// lone get cost more (measured at one get in flight: 3,084-3,229/s against 3,781-3,861/s
    /// through a lane, server CPU per get 261-268 against 209-213 µs).
    ///
    /// The lookup counts as in flight until the returned guard is dropped: the caller keeps it
    /// until its answer came.
    async fn ask(&self, lookup: Lookup) -> Result<InFlight<'_>, ServiceError> {
        let others = self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(&self.counters.in_flight);
        if others == 0 && self.at_once {
            self.counters.alone.fetch_add(1, Ordering::Relaxed);
            run_statement(&self.counters, 1, answer_alone(&self.store, lookup)).await;
        } else {
            self.queue(lookup).await?;
        }
        Ok(in_flight)
    }

    async fn queue(&self, lookup: Lookup) -> Result<(), ServiceError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let lane = self
            .lanes
            .get(turn % self.lanes.len().max(1))
            .ok_or_else(stopped)?;
        lane.send(lookup).await.map_err(|_| stopped())
    }

    /// Statements and lookups so far.
    pub fn stats(&self) -> ReadStats {
        ReadStats {
            statements: self.counters.statements.load(Ordering::Relaxed),
            lookups: self.counters.lookups.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
            alone: self.counters.alone.load(Ordering::Relaxed),
        }
    }
}

/// The answer when the readers have stopped (the server is shutting down): try again.
fn stopped() -> ServiceError {
    ServiceError::Unavailable {
        retry_after: crate::store::RETRY_AFTER,
    }
}

/// Takes at most `most` queued lookups at a time and answers them, a statement per group.
async fn run_lane(
    store: Store,
    mut queue: mpsc::Receiver<Lookup>,
    most: usize,
    counters: Arc<Counters>,
) {
    let mut taken: Vec<Lookup> = Vec::with_capacity(most);
    while let Some(first) = queue.recv().await {
        taken.push(first);
        while taken.len() < most {
            match queue.try_recv() {
                Ok(lookup) => taken.push(lookup),
                Err(_) => break,
            }
        }
        // One statement per group, in the order the groups came.
        while let Some(first) = taken.first() {
            let group = first.group();
            let (mut together, rest): (Vec<Lookup>, Vec<Lookup>) =
                taken.drain(..).partition(|l| l.is_in(&group));
            taken = rest;
            // Callers whose deadline passed while earlier groups ran are not looked up.
            together.retain(|l| !l.is_abandoned());
            if together.is_empty() {
                continue;
            }
            run_statement(&counters, together.len(), answer(&store, group, together)).await;
        }
    }
}

/// Counts one statement that answers `lookups` lookups, and runs it (`answer` or
/// `answer_alone`) within `GROUP_BOUND`.
async fn run_statement(counters: &Counters, lookups: usize, statement: impl Future<Output = ()>) {
    let size = u64::try_from(lookups).unwrap_or(u64::MAX);
    counters.statements.fetch_add(1, Ordering::Relaxed);
    counters.lookups.fetch_add(size, Ordering::Relaxed);
    counters.largest.fetch_max(size, Ordering::Relaxed);
    // A statement that never ends (a server gone silent without closing its connection) must
    // not hold a lane or its caller: its lookups are answered UNAVAILABLE (their replies
    // dropped with it) and the lane goes on.
    if tokio::time::timeout(GROUP_BOUND, statement).await.is_err() {
        tracing::warn!(
            bound = ?GROUP_BOUND,
            "a read did not end in time; its callers were answered UNAVAILABLE"
        );
    }
}

/// The distinct keys of `lookups`, filled up to the next power of two with the last one: a
/// handful of statement shapes (1, 2, 4 … keys) instead of one per group size, so that each
/// connection keeps them all prepared.
fn keys_of(lookups: &[Lookup]) -> Vec<String> {
    let mut keys: Vec<String> = lookups.iter().map(|l| l.key().to_owned()).collect();
    keys.sort_unstable();
    keys.dedup();
    if let Some(last) = keys.last().cloned() {
        keys.resize(keys.len().next_power_of_two(), last);
    }
    keys
}

/// Runs one group's statement and answers each of its lookups.
async fn answer(store: &Store, group: Group, lookups: Vec<Lookup>) {
    let conn = store.connection();
    let keys = keys_of(&lookups);
    match group {
        Group::Participants {
            study_id,
            with_contact,
        } => {
            let rows = if with_contact {
                queries::participants_by_each_key(conn, study_id, &keys).await
            } else {
                queries::participants_by_each_key_alone(conn, study_id, &keys)
                    .await
                    .map(|rows| rows.into_iter().map(|p| (p, None)).collect())
            };
            match rows {
                Ok(rows) => {
                    let by_key: HashMap<&str, _> = rows
                        .iter()
                        .map(|row| (row.0.subject_key_norm.as_str(), row))
                        .collect();
                    for lookup in lookups {
                        if let Lookup::Participant {
                            key_norm, reply, ..
                        } = lookup
                        {
                            let found = by_key.get(key_norm.as_str()).map(|row| (*row).clone());
                            let _ = reply.send(Ok(found));
                        }
                    }
                }
                Err(e) => fail_all(lookups, e),
            }
        }
        Group::Remembered { user } => {
            match queries::idempotency_records(conn, &user, &keys).await {
                Ok(rows) => {
                    let by_id: HashMap<&str, _> =
                        rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
                    for lookup in lookups {
                        if let Lookup::Remembered {
                            request_id, reply, ..
                        } = lookup
                        {
                            let found = by_id.get(request_id.as_str()).map(|r| (*r).clone());
                            let _ = reply.send(Ok(found));
                        }
                    }
                }
                Err(e) => fail_all(lookups, e),
            }
        }
    }
}

/// Answers one lookup with a statement for its key alone, with `LIMIT 1`: measured on
/// PostgreSQL at one get in flight, 2,652/s against 2,068-2,095/s through a lane and
/// `participants_by_each_key` (2,661-2,745/s before grouping).
async fn answer_alone(store: &Store, lookup: Lookup) {
    let conn = store.connection();
    match lookup {
        Lookup::Participant {
            study_id,
            key_norm,
            with_contact,
            reply,
        } => {
            let found = if with_contact {
                queries::participant_with_contact_by_key(conn, study_id, &key_norm).await
            } else {
                queries::participant_by_key(conn, study_id, &key_norm)
                    .await
                    .map(|found| found.map(|p| (p, None)))
            };
            let _ = reply.send(found.map_err(to_service_error));
        }
        Lookup::Remembered {
            user,
            request_id,
            reply,
        } => {
            let found = queries::idempotency_record(conn, &user, &request_id).await;
            let _ = reply.send(found.map_err(to_service_error));
        }
    }
}

/// Answers every lookup of a failed statement with its error.
fn fail_all(lookups: Vec<Lookup>, e: sea_orm::DbErr) {
    let error = to_service_error(e);
    for lookup in lookups {
        lookup.fail(&error);
    }
}
