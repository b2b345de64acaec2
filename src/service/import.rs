//! ImportParticipants (SPEC section 13): a stream of upserts, each run exactly as a unary
//! UpsertParticipant call of the same caller, many at once so that group commit fills its
//! batches, answered as each commits.
//!
//! Memory stays bounded however fast the client sends: rows in flight and answers waiting for
//! room in `out` (a client that reads slowly, or not at all) share one window, and no row is read
//! while it is full. HTTP/2 flow control then holds the client back. Rows in flight are still
//! driven while answers wait, so a client's pause does not eat their deadlines.
//!
//! Rows are checked concurrently but queued for writing in input order, so every row gets the
//! answer one caller calling UpsertParticipant row after row would get (duplicate keys in a
//! file, a cap reached mid-file).
//!
//! Nothing acknowledged is lost when the client goes away: a row handed to a writer commits (or
//! not) with its batch, and a row is answered only once its batch has committed.

use std::{collections::VecDeque, future::Future, time::Duration};

use futures_util::{Stream, StreamExt, stream::FuturesUnordered};
use tokio::{sync::mpsc, time::Instant};

use super::model::{UpsertInput, UpsertOutcome};
use super::{Caller, Participants, upsert::Turn};
use crate::domain::{Reason, ServiceError};

/// Import settings.
#[derive(Debug, Clone, Copy)]
pub struct ImportConfig {
    /// Rows validated or written at once (the window).
    pub window: usize,
    /// A client that sends nothing for this long while the server waits for its next row, or
    /// reads no answer for this long while the server waits to send one, has its call ended
    /// with `DEADLINE_EXCEEDED` (`REQUEST_TIMED_OUT`).
    pub idle_timeout: Duration,
    /// Each row's own deadline, as a unary call's: a row whose write has not started by then
    /// answers `REQUEST_TIMED_OUT`.
    pub row_timeout: Duration,
    /// Imports open at once on this server; more are refused with `SERVER_OVERLOADED`. An import
    /// holds an admission slot and up to a window of rows for as long as it lasts, so without a
    /// bound a few callers (even without a role: roles are checked per row) could take every
    /// slot and the memory of a window each.
    pub max_concurrent: usize,
    /// Imports open at once per user.
    pub max_per_user: usize,
}

/// Default of `ImportConfig::window`: twice a full write batch, so that one batch forms while
/// the previous one commits.
pub const DEFAULT_IMPORT_WINDOW: usize = 256;
/// Default of `ImportConfig::idle_timeout`.
pub const DEFAULT_IMPORT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_IMPORT_WINDOW,
            idle_timeout: DEFAULT_IMPORT_IDLE_TIMEOUT,
            row_timeout: Duration::from_secs(10),
            max_concurrent: DEFAULT_MAX_IMPORTS,
            max_per_user: DEFAULT_MAX_IMPORTS_PER_USER,
        }
    }
}

/// Default of `ImportConfig::max_concurrent`: with 256 rows of at most 64 KiB each, the worst
/// case is 128 MiB of rows held, within the deployment's memory limit.
pub const DEFAULT_MAX_IMPORTS: usize = 8;
/// Default of `ImportConfig::max_per_user`.
pub const DEFAULT_MAX_IMPORTS_PER_USER: usize = 2;

/// Who is importing now: a place per import, at most `max_concurrent` in all and
/// `max_per_user` per user.
#[derive(Debug, Default)]
pub struct ImportGate {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// An import's place; given back when dropped.
#[derive(Debug)]
pub struct ImportPlace {
    gate: std::sync::Arc<ImportGate>,
    user: String,
}

impl ImportGate {
    /// A place for `user`'s import, or `None` when the server or the user has no place left.
    pub fn enter(
        self: &std::sync::Arc<Self>,
        user: &str,
        config: &ImportConfig,
    ) -> Option<ImportPlace> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.get(user).copied().unwrap_or(0);
        if total >= config.max_concurrent.max(1) || mine >= config.max_per_user.max(1) {
            return None;
        }
        open.insert(user.to_owned(), mine + 1);
        Some(ImportPlace {
            gate: self.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for ImportPlace {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// What the import sends back.
#[derive(Debug)]
pub enum ImportItem {
    /// The answer for the row at `index` (0-based position in the input).
    Row {
        index: i64,
        answer: Box<Result<UpsertOutcome, ServiceError>>,
    },
    /// The call ends with this error, after every row read so far has been answered.
    End(ServiceError),
}

/// How the import ended, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct ImportSummary {
    pub rows: u64,
    pub written: u64,
    pub refused: u64,
}

/// Why the input ended early.
enum Stop {
    Idle,
    NotRead,
    Input(ServiceError),
    Draining,
    TokenExpired,
}

/// When `caller`'s token stops being accepted, as an instant; `None` when it never does (or
/// not within a year, which an import never lasts).
fn token_expiry(caller: &Caller) -> Option<Instant> {
    let left_ms = caller
        .expires_at?
        .saturating_mul(1000)
        .saturating_sub(chrono::Utc::now().timestamp_millis());
    let left = Duration::from_millis(u64::try_from(left_ms.max(0)).ok()?);
    (left < Duration::from_secs(366 * 24 * 3600)).then(|| Instant::now() + left)
}

impl Participants {
    /// Runs every row of `rows` through `upsert` as `caller`, at most `config.window` at once,
    /// sending each answer to `out` as it comes. An `Err` from `rows` (a row that could not be
    /// decoded) stops reading and ends the call with it; a refused row never does. `call_deadline`
    /// is the client's own deadline for the whole call, if it set one; `draining` resolving
    /// stops reading (the server is shutting down) and ends the call with `SERVER_OVERLOADED`.
    /// When the caller's token expires, reading stops too: the rows read are answered and the
    /// call ends `UNAUTHENTICATED`, so a token cannot outlive its expiry by streaming.
    pub async fn import<S>(
        &self,
        caller: &Caller,
        rows: S,
        config: ImportConfig,
        call_deadline: Option<Instant>,
        draining: impl Future<Output = ()>,
        out: mpsc::Sender<ImportItem>,
    ) -> ImportSummary
    where
        S: Stream<Item = Result<UpsertInput, ServiceError>>,
    {
        let window = config.window.max(1);
        // The last word is kept a place, so that a call can be ended even while its client
        // leaves every answer unread.
        let Ok(last_word) = out.clone().reserve_owned().await else {
            return ImportSummary::default();
        };
        let mut rows = std::pin::pin!(rows);
        let mut draining = std::pin::pin!(draining);
        let expiry = token_expiry(caller);
        let mut in_flight = FuturesUnordered::new();
        // Answers ready but not yet sent: the client reads slower than rows commit. Rows in
        // flight and answers waiting share the window, so both stay bounded; rows in flight are
        // still driven meanwhile, so a client's pause does not eat their deadlines.
        let mut ready: VecDeque<ImportItem> = VecDeque::new();
        // Since when the oldest waiting answer has found no room.
        let mut unread_since: Option<Instant> = None;
        let mut summary = ImportSummary::default();
        let mut next_index: i64 = 0;
        let mut reading = true;
        let mut stop: Option<Stop> = None;
        // Rows are checked at once but queued for writing in input order.
        let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
        loop {
            if !reading && in_flight.is_empty() && ready.is_empty() {
                break;
            }
            // The client is idle only while nothing it sent awaits an answer: a client may wait
            // for its answers before it sends more.
            let idle = (in_flight.is_empty() && ready.is_empty()).then_some(config.idle_timeout);
            let next_row = async {
                match idle {
                    Some(limit) => tokio::time::timeout(limit, rows.next()).await.ok(),
                    None => Some(rows.next().await),
                }
            };
            let room = in_flight.len() + ready.len() < window;
            let unread_deadline = unread_since.map(|since| since + config.idle_timeout);
            tokio::select! {
                Ok(permit) = out.reserve(), if !ready.is_empty() => {
                    if let Some(item) = ready.pop_front() {
                        permit.send(item);
                    }
                    unread_since = (!ready.is_empty()).then(Instant::now);
                }
                Some((index, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                    let answer: Result<UpsertOutcome, ServiceError> = answer;
                    match &answer {
                        Ok(_) => summary.written += 1,
                        Err(e) => {
                            summary.refused += 1;
                            tracing::debug!(index, reason = %e.reason(), "import row refused");
                        }
                    }
                    if ready.is_empty() {
                        unread_since = Some(Instant::now());
                    }
                    ready.push_back(ImportItem::Row { index, answer: Box::new(answer) });
                }
                // A client that reads no answer for the idle timeout is cut too.
                () = tokio::time::sleep_until(unread_deadline.unwrap_or_else(Instant::now)),
                    if unread_deadline.is_some() =>
                {
                    stop = Some(Stop::NotRead);
                    break;
                }
                // The client went away: what was handed to a writer commits with its batch.
                () = out.closed() => return summary,
                () = &mut draining, if reading => {
                    reading = false;
                    stop = Some(Stop::Draining);
                }
                () = tokio::time::sleep_until(expiry.unwrap_or_else(Instant::now)),
                    if reading && expiry.is_some() =>
                {
                    reading = false;
                    stop = Some(Stop::TokenExpired);
                }
                row = next_row, if reading && room => {
                    match row {
                        None => {
                            reading = false;
                            stop = Some(Stop::Idle);
                        }
                        Some(None) => reading = false,
                        Some(Some(Err(e))) => {
                            reading = false;
                            stop = Some(Stop::Input(e));
                        }
                        Some(Some(Ok(input))) => {
                            let index = next_index;
                            next_index += 1;
                            summary.rows += 1;
                            let now = Instant::now();
                            let row_deadline = now + config.row_timeout;
                            let deadline =
                                call_deadline.map_or(row_deadline, |d| d.min(row_deadline));
                            let (next, following) = tokio::sync::oneshot::channel();
                            let turn = Turn {
                                previous: previous.replace(following),
                                next: Some(next),
                            };
                            let participants = self.clone();
                            let caller = caller.clone();
                            in_flight.push(async move {
                                let answer =
                                    participants.upsert_in_turn(&caller, input, deadline, turn).await;
                                (index, answer)
                            });
                        }
                    }
                }
            }
        }
        if let Some(stop) = stop {
            let error = match stop {
                Stop::Idle => ServiceError::rejected(
                    Reason::RequestTimedOut,
                    format!(
                        "no row arrived for {}s: the import was ended; every answered row is written, re-send the others",
                        config.idle_timeout.as_secs()
                    ),
                ),
                Stop::NotRead => ServiceError::rejected(
                    Reason::RequestTimedOut,
                    format!(
                        "answers went unread for {}s: the import was ended; every answered row is written, re-send the others",
                        config.idle_timeout.as_secs()
                    ),
                ),
                Stop::Input(e) => e,
                Stop::TokenExpired => ServiceError::rejected(
                    Reason::Unauthenticated,
                    "the bearer token expired: the import was ended; every answered row is written, re-send the others with a fresh token",
                ),
                Stop::Draining => ServiceError::rejected(
                    Reason::ServerOverloaded,
                    "the server is shutting down: the import was ended; every answered row is written, re-send the others",
                ),
            };
            last_word.send(ImportItem::End(error));
        }
        summary
    }
}
