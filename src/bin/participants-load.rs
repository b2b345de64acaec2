//! `participants-load`: a load generator for a running `participants serve`, through the
//! generated client.
//!
//! Closed loop (a fixed number of calls in flight) or open loop (a fixed rate, with latency
//! measured from each call's intended send time, so queueing is not hidden). Workloads: create,
//! update, get, mixed, and `health` (`grpc.health.v1.Health/Check`, the bare-transport baseline).
//! Prints a table and, with `--json`, writes the same figures as JSON. With `--check`, every answer
//! must be what the call asked for (a creation created, an update updated, a get found the key),
//! and the run exits 1 otherwise: it proves answers, never speed.
//!
//! Run against the bench catalog (catalog/bench.toml), e.g.:
//! `participants-load --target 127.0.0.1:50051 --workload health,create,get --concurrency 64`

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use participants::{
    auth::{JwtSettings, mint_hs256},
    config::count,
    pb::{
        GetParticipantRequest, ParticipantContact, SiteScope, UpsertParticipantRequest,
        get_participant_request, participant_service_client::ParticipantServiceClient,
        upsert_participant_request,
    },
};
use serde::Serialize;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    /// grpc.health.v1.Health/Check: the bare-transport baseline.
    Health,
    /// Creations with contact data, each with a new Participant ID.
    Create,
    /// One changed contact field on an existing Participant.
    Update,
    /// GetParticipant of an existing Participant.
    Get,
    /// 20 % creations, 30 % updates, 50 % gets.
    Mixed,
}

#[derive(Debug, Parser)]
#[command(
    name = "participants-load",
    about = "Load generator for the participant service"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    /// Workloads to run, one after the other.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "health,create,update,get"
    )]
    workload: Vec<Workload>,
    /// Calls in flight (closed loop), 1 to 100,000.
    #[arg(long, default_value_t = 64, value_parser = count::<1, 100_000>)]
    concurrency: usize,
    /// Open loop: calls started per second, whatever the answers' pace (overrides --concurrency,
    /// warm-up included), 1 to 1,000,000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: Option<u64>,
    /// Open loop: the most calls outstanding at once. A send due while this many are
    /// unanswered waits (its wait counts as latency); one still waiting when the run ends is
    /// not sent, and is reported as `NOT_SENT` (an error: the server fell this far behind).
    #[arg(long, default_value_t = 10_000, value_parser = count::<1, 1_000_000>)]
    max_outstanding: usize,
    /// HTTP/2 connections the calls are spread over, 1 to 10,000.
    #[arg(long, default_value_t = 8, value_parser = count::<1, 10_000>)]
    connections: usize,
    /// How long each workload runs.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// Untimed calls before each workload's measurement starts.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    warmup: Duration,
    /// Participants created before update, get and mixed workloads (untimed), 1 to 10,000,000.
    #[arg(long, default_value_t = 1000, value_parser = count::<1, 10_000_000>)]
    population: usize,
    /// Bearer token; otherwise one is minted for --user with PARTICIPANTS_JWT_HS256_SECRET.
    #[arg(long, env = "PARTICIPANTS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// User of the minted token.
    #[arg(long, default_value = "dm.bench")]
    user: String,
    /// HS256 secret that mints the token.
    #[arg(long, env = "PARTICIPANTS_JWT_HS256_SECRET", hide_env_values = true)]
    hs256_secret: Option<String>,
    /// Study the calls act on.
    #[arg(long, default_value = "S_BENCH")]
    study: String,
    /// Sites the calls are spread over.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "S_BENCH_1,S_BENCH_2,S_BENCH_3,S_BENCH_4"
    )]
    sites: Vec<String>,
    /// Prefix of every Participant ID this run makes; a random one by default, which keeps runs
    /// apart on one database. With a fixed prefix, a run again re-uses the set-up participants
    /// (their creations carry request ids, so repeating them writes nothing); so does a create
    /// workload run again: its calls are then replays, answered without a write, and measure
    /// that instead.
    #[arg(long)]
    key_prefix: Option<String>,
    /// Exit 1 unless every answer is the one asked for.
    #[arg(long)]
    check: bool,
    /// Also write the figures here as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Instead of a workload: open this many HTTP/2 connections, make one health check on
    /// each, and hold them idle for --duration (to measure a server's memory per connection).
    #[arg(long, value_parser = count::<1, 1_000_000>)]
    hold_connections: Option<usize>,
}

/// Durations up to a day: a run longer than that is a mistake, and an instant past the end of
/// time would panic.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(24 * 3600) {
        return Err("must be at most 24h".to_owned());
    }
    Ok(d)
}

/// A call unanswered for this long fails (DeadlineExceeded), so that a server that accepts calls
/// and never answers ends a run instead of holding it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The figures of one workload.
#[derive(Debug, Serialize)]
struct Figures {
    workload: Workload,
    mode: String,
    calls: u64,
    ok: u64,
    /// Failed calls by gRPC code (and ErrorInfo reason where there is one).
    errors: BTreeMap<String, u64>,
    /// Answers that were OK but not what the call asked for (`--check`).
    wrong: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// This workload's rate over the health baseline's, when one ran first.
    ratio_to_health: Option<f64>,
}

/// What every call needs.
struct Ctx {
    participants: Vec<ParticipantServiceClient<Channel>>,
    health: Vec<HealthClient<Channel>>,
    token: String,
    study: String,
    sites: Vec<String>,
    prefix: String,
    population: usize,
    /// Creations so far (keys are never reused).
    created: AtomicU64,
    /// Updates so far (each one changes the city).
    updated: AtomicU64,
}

/// The result of one call.
enum Outcome {
    Ok,
    Wrong,
    Failed(String),
}

impl Ctx {
    fn site(&self, n: u64) -> SiteScope {
        let i = usize::try_from(n).unwrap_or(0) % self.sites.len().max(1);
        SiteScope {
            study_oid: self.study.clone(),
            site_oid: self.sites.get(i).cloned().unwrap_or_default(),
        }
    }

    fn key(&self, n: u64) -> String {
        format!("{}{n:07}", self.prefix)
    }

    fn authed<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            req.metadata_mut().insert("authorization", value);
        }
        req
    }

    fn create_request(&self, n: u64) -> UpsertParticipantRequest {
        UpsertParticipantRequest {
            scope: Some(upsert_participant_request::Scope::Site(self.site(n))),
            subject_key: self.key(n),
            contact: Some(ParticipantContact {
                first_name: Some("Olena".into()),
                last_name: Some("Kovalenko".into()),
                email_address: Some(format!("p{n}@example.org")),
                phone_number: Some("+380 441234567".into()),
                city: Some("Kyiv".into()),
                full_dob: Some("1984-03-09".into()),
                ..Default::default()
            }),
            request_id: format!("{}c{n}", self.prefix),
            ..Default::default()
        }
    }

    async fn call(&self, workload: Workload, i: u64) -> Outcome {
        let conn = usize::try_from(i).unwrap_or(0) % self.participants.len().max(1);
        let workload = match workload {
            Workload::Mixed => match i % 10 {
                0 | 1 => Workload::Create,
                2..=4 => Workload::Update,
                _ => Workload::Get,
            },
            w => w,
        };
        let population = u64::try_from(self.population.max(1)).unwrap_or(1);
        match workload {
            Workload::Health => {
                let mut client = self.health[conn].clone();
                let req = HealthCheckRequest {
                    service: String::new(),
                };
                match client.check(req).await {
                    Ok(r) if r.get_ref().status == 1 => Outcome::Ok,
                    Ok(_) => Outcome::Wrong,
                    Err(s) => Outcome::Failed(describe(&s)),
                }
            }
            Workload::Create => {
                let n = population + self.created.fetch_add(1, Ordering::Relaxed);
                let mut client = self.participants[conn].clone();
                match client
                    .upsert_participant(self.authed(self.create_request(n)))
                    .await
                {
                    Ok(r) => check(r.get_ref().created && key_of(r.get_ref()) == self.key(n)),
                    Err(s) => Outcome::Failed(describe(&s)),
                }
            }
            Workload::Update => {
                let u = self.updated.fetch_add(1, Ordering::Relaxed);
                let n = u % population;
                let req = UpsertParticipantRequest {
                    scope: Some(upsert_participant_request::Scope::Site(self.site(n))),
                    subject_key: self.key(n),
                    contact: Some(ParticipantContact {
                        city: Some(format!("City {u}")),
                        ..Default::default()
                    }),
                    reason_for_change: "load test".into(),
                    ..Default::default()
                };
                let mut client = self.participants[conn].clone();
                match client.upsert_participant(self.authed(req)).await {
                    Ok(r) => check(!r.get_ref().created && key_of(r.get_ref()) == self.key(n)),
                    Err(s) => Outcome::Failed(describe(&s)),
                }
            }
            Workload::Get | Workload::Mixed => {
                let n = i.wrapping_mul(2_654_435_761) % population;
                let req = GetParticipantRequest {
                    scope: Some(get_participant_request::Scope::Site(self.site(n))),
                    subject_key: self.key(n),
                };
                let mut client = self.participants[conn].clone();
                match client.get_participant(self.authed(req)).await {
                    Ok(r) => check(r.get_ref().subject_key == self.key(n)),
                    Err(s) => Outcome::Failed(describe(&s)),
                }
            }
        }
    }
}

fn key_of(r: &participants::pb::UpsertParticipantResponse) -> &str {
    r.participant
        .as_ref()
        .map_or("", |p| p.subject_key.as_str())
}

fn check(right: bool) -> Outcome {
    if right { Outcome::Ok } else { Outcome::Wrong }
}

fn describe(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match s.get_details_error_info() {
        Some(info) => format!("{:?}/{}", s.code(), info.reason),
        None => format!("{:?}", s.code()),
    }
}

/// Latencies and outcomes of one workload, shared by its tasks.
struct Tally {
    histogram: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    ok: AtomicU64,
    wrong: AtomicU64,
    calls: AtomicU64,
}

impl Tally {
    fn new() -> Result<Self, String> {
        Ok(Self {
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
            ),
            errors: Mutex::new(BTreeMap::new()),
            ok: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        })
    }

    /// A send of the open loop that the run ended before it could make.
    fn not_sent(&self) {
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry("NOT_SENT".to_owned())
            .or_default() += 1;
    }

    fn record(&self, outcome: Outcome, latency: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Wrong => {
                self.wrong.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(code) => {
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(code)
                    .or_default() += 1;
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros.max(1));
    }
}

fn progress(quiet: bool, label: &str, total: Duration) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// Runs one workload for `duration` (after `warmup`) and returns its figures.
async fn run(ctx: Arc<Ctx>, args: &Args, workload: Workload) -> Result<Figures, String> {
    // Warm-up: the same calls, at the same pace, not recorded.
    if !args.warmup.is_zero() {
        match args.rate {
            Some(rate) => {
                let pace = Pace {
                    rate,
                    duration: args.warmup,
                    max_outstanding: args.max_outstanding,
                };
                let ignored = Arc::new(Tally::new()?);
                open_loop(&ctx, workload, pace, &ignored, &ProgressBar::hidden()).await?;
            }
            None => closed_loop(&ctx, workload, args.concurrency, args.warmup, None).await?,
        }
    }
    let tally = Arc::new(Tally::new()?);
    let bar = progress(args.quiet, &format!("{workload:?}"), args.duration);
    let started = Instant::now();
    let mode = match args.rate {
        Some(rate) => {
            let pace = Pace {
                rate,
                duration: args.duration,
                max_outstanding: args.max_outstanding,
            };
            open_loop(&ctx, workload, pace, &tally, &bar).await?;
            format!("open loop, {rate}/s")
        }
        None => {
            closed_loop(
                &ctx,
                workload,
                args.concurrency,
                args.duration,
                Some((&tally, &bar)),
            )
            .await?;
            format!("closed loop, {} in flight", args.concurrency)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let h = tally
        .histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let calls = tally.calls.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    Ok(Figures {
        workload,
        mode,
        calls,
        ok,
        errors: tally
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
        wrong: tally.wrong.load(Ordering::Relaxed),
        seconds,
        per_second: ok as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1000.0,
        ratio_to_health: None,
    })
}

async fn closed_loop(
    ctx: &Arc<Ctx>,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
    tally: Option<(&Arc<Tally>, &ProgressBar)>,
) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (ctx, stop, next) = (ctx.clone(), stop.clone(), next.clone());
        let tally = tally.map(|(t, _)| t.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = ctx.call(workload, i).await;
                if let Some(t) = &tally {
                    t.record(outcome, sent.elapsed());
                }
            }
        }));
    }
    tick_until(duration, tally.map(|(_, b)| b)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What an open loop sends: `rate` calls a second for `duration`, at most `max_outstanding`
/// unanswered at once.
struct Pace {
    rate: u64,
    duration: Duration,
    max_outstanding: usize,
}

async fn open_loop(
    ctx: &Arc<Ctx>,
    workload: Workload,
    pace: Pace,
    tally: &Arc<Tally>,
    bar: &ProgressBar,
) -> Result<(), String> {
    let Pace {
        rate,
        duration,
        max_outstanding,
    } = pace;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let end = start + duration;
    // The sends are paced by a thread of their own: the runtime's timer has a resolution of
    // one millisecond, and a send it wakes up to a millisecond late counts that lateness as
    // latency (which is measured from the intended send time). A thread's sleep is accurate to
    // tens of microseconds. The queue is bounded: a pacer that runs ahead of a saturated
    // runtime waits, and the sends it holds back count their lateness from the intended time.
    let (due, mut sends) = tokio::sync::mpsc::channel::<(u64, Instant)>(4096);
    let pacer = std::thread::spawn(move || {
        let mut i: u64 = 0;
        loop {
            let intended = start + interval.mul_f64(i as f64);
            if intended >= end {
                break;
            }
            std::thread::sleep(intended.saturating_duration_since(Instant::now()));
            if due.blocking_send((i, intended)).is_err() {
                break;
            }
            i += 1;
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut shown = 0;
    // Calls outstanding are bounded, or a server that falls behind would have the generator
    // hold every late call in memory; a send that cannot start before the run ends is counted,
    // not made.
    let outstanding = Arc::new(tokio::sync::Semaphore::new(max_outstanding));
    while let Some((n, intended)) = sends.recv().await {
        let permit =
            match tokio::time::timeout_at(end.into(), outstanding.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    tally.not_sent();
                    continue;
                }
            };
        let (ctx, tally) = (ctx.clone(), tally.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = ctx.call(workload, n).await;
            // From the intended send time: a late start counts against the server.
            tally.record(outcome, intended.elapsed());
        });
        // Reap finished calls as we go, so memory stays flat over a long run.
        while tasks.try_join_next().is_some() {}
        let secs = start.elapsed().as_secs();
        if secs != shown {
            shown = secs;
            bar.set_position(secs);
        }
    }
    pacer
        .join()
        .map_err(|_| "the pacing thread failed".to_owned())?;
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn tick_until(duration: Duration, bar: Option<&ProgressBar>) {
    let start = Instant::now();
    while start.elapsed() < duration {
        let left = duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        if let Some(bar) = bar {
            bar.set_position(start.elapsed().as_secs());
        }
    }
}

/// Creates `population` participants (untimed) for update, get and mixed workloads.
async fn populate(ctx: &Arc<Ctx>, concurrency: usize) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let population = u64::try_from(ctx.population).unwrap_or(0);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, 64) {
        let (ctx, next, failed) = (ctx.clone(), next.clone(), failed.clone());
        let first_error = first_error.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= population {
                    return;
                }
                let conn = usize::try_from(n).unwrap_or(0) % ctx.participants.len().max(1);
                let mut client = ctx.participants[conn].clone();
                if let Err(status) = client
                    .upsert_participant(ctx.authed(ctx.create_request(n)))
                    .await
                {
                    failed.fetch_add(1, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert_with(|| describe(&status));
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    match failed.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => {
            let first = first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            Err(format!(
                "{n} of {population} set-up creations failed (the first with {first})"
            ))
        }
    }
}

fn print_table(rows: &[Figures]) {
    println!(
        "{:<8} {:<26} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "workload", "mode", "ok", "per sec", "×health", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms"
    );
    for f in rows {
        let ratio = f
            .ratio_to_health
            .map_or("-".to_owned(), |r| format!("{:.1} %", r * 100.0));
        let errors: Vec<String> = f
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain((f.wrong > 0).then(|| format!("wrong answers={}", f.wrong)))
            .collect();
        println!(
            "{:<8} {:<26} {:>9} {:>10.0} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            format!("{:?}", f.workload).to_lowercase(),
            f.mode,
            f.ok,
            f.per_second,
            ratio,
            f.p50_ms,
            f.p90_ms,
            f.p99_ms,
            f.p999_ms,
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(" ")
            }
        );
    }
}

async fn connect(target: &str, n: usize) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let channel = Channel::from_shared(format!("http://{target}"))
            .map_err(|e| format!("--target: {e}"))?
            .tcp_nodelay(true)
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {target} (host:port): {}", causes(&e)))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// An error with its causes, which a transport error keeps to itself ("transport error").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens `n` connections, checks health once on each, holds them for `duration`.
async fn hold(target: &str, n: usize, duration: Duration) -> Result<bool, String> {
    let channels = connect(target, n).await?;
    for channel in &channels {
        HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| format!("health check: {e}"))?;
    }
    println!(
        "holding {} idle connections for {duration:?}",
        channels.len()
    );
    tokio::time::sleep(duration).await;
    Ok(true)
}

async fn main_inner(args: Args) -> Result<bool, String> {
    if let Some(n) = args.hold_connections {
        return hold(&args.target, n, args.duration).await;
    }
    let token = match (&args.token, &args.hs256_secret) {
        (Some(t), _) if !t.is_empty() => t.clone(),
        (_, Some(secret)) => mint_hs256(
            &JwtSettings {
                hs256_secret: Some(secret.clone().into_bytes().into()),
                ..Default::default()
            },
            &args.user,
            Duration::from_secs(24 * 3600),
        )?,
        _ => {
            return Err(
                "give a token (--token or PARTICIPANTS_TOKEN) or PARTICIPANTS_JWT_HS256_SECRET"
                    .into(),
            );
        }
    };
    let channels = connect(&args.target, args.connections).await?;
    let prefix = args
        .key_prefix
        .clone()
        .unwrap_or_else(|| format!("L{}-", &uuid::Uuid::new_v4().simple().to_string()[..6]));
    let ctx = Arc::new(Ctx {
        participants: channels
            .iter()
            .map(|c| ParticipantServiceClient::new(c.clone()))
            .collect(),
        health: channels
            .iter()
            .map(|c| HealthClient::new(c.clone()))
            .collect(),
        token,
        study: args.study.clone(),
        sites: args.sites.clone(),
        prefix,
        population: args.population,
        created: AtomicU64::new(0),
        updated: AtomicU64::new(0),
    });
    if args
        .workload
        .iter()
        .any(|w| matches!(w, Workload::Update | Workload::Get | Workload::Mixed))
    {
        populate(&ctx, args.concurrency).await?;
    }
    let mut rows: Vec<Figures> = Vec::new();
    for &workload in &args.workload {
        let mut figures = run(ctx.clone(), &args, workload).await?;
        if let Some(health) = rows.iter().find(|r| r.workload == Workload::Health)
            && health.per_second > 0.0
        {
            figures.ratio_to_health = Some(figures.per_second / health.per_second);
        }
        rows.push(figures);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let clean = rows
        .iter()
        .all(|r| r.errors.is_empty() && r.wrong == 0 && r.ok > 0);
    Ok(clean)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let check = args.check;
    match main_inner(args).await {
        Ok(clean) if clean || !check => std::process::ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!(
                "participants-load: --check: some calls failed or answered other than asked (see the errors column)"
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("participants-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
