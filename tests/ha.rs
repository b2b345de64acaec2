//! High availability: the service follows a new PostgreSQL primary.
//!
//! `a_read_only_session_is_dropped_and_the_write_retried_succeeds` and
//! `a_session_a_read_opened_on_the_standby_does_not_fail_the_first_write_after_promotion` need
//! PostgreSQL (`PARTICIPANTS_TEST_POSTGRES_URL`) and play a demoted primary with a read-only role.
//! `writes_survive_a_patroni_switchover_and_failover` needs root, Patroni, etcd and HAProxy:
//! it starts `scripts/ha-cluster.sh` and runs only when `PARTICIPANTS_TEST_HA=1`, as
//! `scripts/ci-ha.sh` sets: `PARTICIPANTS_TEST_HA=1 cargo test --test ha -- --ignored --nocapture`.

use std::{
    collections::{BTreeMap, HashMap},
    process::Command,
    time::{Duration, Instant},
};

use participants::pb::ParticipantContact;
use sea_orm::{ConnectionTrait, Database};
use tonic::{Code, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/serve.rs"]
mod serve;
use fleet::*;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// UNAVAILABLE, and whether it carried RetryInfo.
    Unavailable {
        retry_info: bool,
    },
    /// Anything else: never allowed.
    Other(Code, String),
}

fn outcome(r: &Result<participants::pb::UpsertParticipantResponse, tonic::Status>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(s) if s.code() == Code::Unavailable => Outcome::Unavailable {
            retry_info: s.get_details_retry_info().is_some(),
        },
        Err(s) => Outcome::Other(
            s.code(),
            s.get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default(),
        ),
    }
}

/// A creation with a request id, sent as often as needed.
fn creation(key: &str) -> participants::pb::UpsertParticipantRequest {
    let mut req = request("S_KEY", "S_KEY_A", key);
    req.request_id = format!("ha-{key}");
    req.contact = Some(ParticipantContact {
        city: Some("Oslo".into()),
        ..Default::default()
    });
    req
}

async fn wait_for_health(channel: &Channel, want: ServingStatus, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if health(channel).await == want as i32 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A database whose service role plays a primary that is demoted and promoted again: a
/// read-only role makes every new session read-only, as on a standby.
struct Demotable {
    admin: sea_orm::DatabaseConnection,
    role: String,
    db_name: String,
    url: String,
}

impl Demotable {
    async fn new() -> Self {
        let admin_url = admin_url();
        let admin = Database::connect(&admin_url).await.expect("admin");
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let role = format!("ha_role_{suffix}");
        let db_name = format!("participants_ha_{suffix}");
        for sql in [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'ha-password'"),
            format!("CREATE DATABASE {db_name} OWNER {role}"),
        ] {
            admin.execute_unprepared(&sql).await.expect("setup");
        }
        let host = admin_url
            .rsplit_once('@')
            .and_then(|(_, rest)| rest.split('/').next())
            .expect("host in the admin URL");
        let url = format!("postgres://{role}:ha-password@{host}/{db_name}");
        Self {
            admin,
            role,
            db_name,
            url,
        }
    }

    /// New sessions are read-only; the sessions open now are cut (the pool reopens them).
    async fn demote(&self) {
        let (role, db_name) = (&self.role, &self.db_name);
        for sql in [
            format!("ALTER ROLE {role} SET default_transaction_read_only = on"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}'"
            ),
        ] {
            self.admin.execute_unprepared(&sql).await.expect("demote");
        }
    }

    /// The same address takes writes again (in sessions opened from now on).
    async fn promote(&self) {
        let role = &self.role;
        self.admin
            .execute_unprepared(&format!(
                "ALTER ROLE {role} RESET default_transaction_read_only"
            ))
            .await
            .expect("promote");
    }

    async fn count(&self, keys: &str) -> i64 {
        let db = Database::connect(&self.url).await.expect("connect");
        let n = scalar(
            &db,
            &format!("SELECT COUNT(*) FROM participants WHERE subject_key IN ({keys})"),
        )
        .await;
        db.close().await.ok();
        n
    }

    async fn remove(self) {
        let (role, db_name) = (&self.role, &self.db_name);
        for sql in [
            format!("DROP DATABASE {db_name} WITH (FORCE)"),
            format!("DROP ROLE {role}"),
        ] {
            self.admin.execute_unprepared(&sql).await.ok();
        }
    }
}

/// One replica on `pg` (with `extra` flags), its channel and a data manager's token.
async fn replica_on(
    pg: &Demotable,
    extra: &[&str],
) -> (Vec<serve::Running>, Channel, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    let flags = [&["--db-acquire-timeout", "2s"], extra].concat();
    let replicas = start_replicas(1, &pg.url, &catalog, &flags);
    let ch = channel(&replicas[0].addr).await;
    (replicas, ch, token("dm.key"), dir)
}

/// The write batches `replica` ran once more after a read-only session refused them, from
/// its `/metrics`.
async fn read_only_retries(replica: &serve::Running) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", replica.admin()))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("participants_write_batch_read_only_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the counter is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
async fn a_read_only_session_is_dropped_and_the_write_retried_succeeds() {
    let pg = Demotable::new().await;
    let (replicas, ch, token, _dir) = replica_on(&pg, &[]).await;
    assert!(call(ch.clone(), &token, creation("BEFORE")).await.is_ok());

    pg.demote().await;
    let mut refused = Vec::new();
    for _ in 0..5 {
        refused.push(outcome(&call(ch.clone(), &token, creation("DURING")).await));
    }
    assert!(
        refused
            .iter()
            .all(|o| *o == Outcome::Unavailable { retry_info: true }),
        "a write on a read-only session is UNAVAILABLE with RetryInfo: {refused:?}"
    );
    assert!(
        wait_for_health(&ch, ServingStatus::NotServing, Duration::from_secs(8)).await,
        "health turns NOT_SERVING while the database takes no writes"
    );

    // The read-only sessions opened meanwhile must not fail it (the fence closes those it
    // flagged; the writer tries once more on a fresh session when one was missed): the retry
    // with the same request id succeeds at once.
    pg.promote().await;
    let retried = call(ch.clone(), &token, creation("DURING")).await;
    assert_eq!(
        outcome(&retried),
        Outcome::Ok,
        "the first retry after promotion"
    );
    assert!(
        wait_for_health(&ch, ServingStatus::Serving, Duration::from_secs(8)).await,
        "health turns SERVING again"
    );
    assert_eq!(pg.count("'BEFORE', 'DURING'").await, 2);
    drop(replicas);
    pg.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
async fn a_session_a_read_opened_on_the_standby_does_not_fail_the_first_write_after_promotion() {
    let pg = Demotable::new().await;
    // The health check (which raises the fence when it finds a read-only session) stays out
    // of the way (its first run is a minute after start), so that the session the read opens
    // is still in the pool at the write.
    let (replicas, ch, token, _dir) = replica_on(&pg, &["--health-interval", "60s"]).await;
    assert!(call(ch.clone(), &token, creation("BEFORE")).await.is_ok());

    // The catalog poll (every second) takes sessions from the pool too: if it holds the read's
    // session at the moment the write asks for one, the write opens a fresh session and never
    // meets the read-only one. The round then runs again; every write must succeed, and at
    // least one must have met the read's session.
    let mut written = vec!["'BEFORE'".to_owned()];
    let mut met = false;
    for round in 0..5 {
        met = demote_read_promote_write(&pg, &replicas[0], &ch, &token, round).await;
        written.push(format!("'AFTER-{round}'"));
        if met {
            break;
        }
    }
    assert!(
        met,
        "in five rounds, no first write after promotion met the session the read left"
    );
    assert_eq!(
        pg.count(&written.join(", ")).await,
        i64::try_from(written.len()).expect("a few")
    );
    drop(replicas);
    pg.remove().await;
}

/// Demotes the database, has a write refused, reads (on a read-only session the pool keeps),
/// promotes, and writes again, which must succeed. Whether that write met the read's session
/// (and so ran once more, on a fresh one).
async fn demote_read_promote_write(
    pg: &Demotable,
    replica: &serve::Running,
    ch: &Channel,
    token: &str,
    round: usize,
) -> bool {
    pg.demote().await;
    let during = creation(&format!("DURING-{round}"));
    assert_eq!(
        outcome(&call(ch.clone(), token, during).await),
        Outcome::Unavailable { retry_info: true },
        "a write on a read-only session"
    );
    // Past the fence that refusal raised: a read now opens a session of its own, read-only as
    // every session is until the promotion. A standby answers reads, so nothing flags it, and
    // the pool keeps it (the catalog poll does the same, every second).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut get = tonic::Request::new(participants::pb::GetParticipantRequest {
        scope: Some(participants::pb::get_participant_request::Scope::Site(
            participants::pb::SiteScope {
                study_oid: "S_KEY".into(),
                site_oid: "S_KEY_A".into(),
            },
        )),
        subject_key: "BEFORE".into(),
    });
    get.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    participants::pb::participant_service_client::ParticipantServiceClient::new(ch.clone())
        .get_participant(get)
        .await
        .expect("a read on the standby");

    // Promoted with no health check in between: the first write gets that read-only session
    // from the pool, is refused, and runs once more on a fresh session.
    let retries = read_only_retries(replica).await;
    pg.promote().await;
    // Without a request id nothing is read before the writer takes a session: a replay check
    // would take the read's session first, and the writer could find the pool empty and open
    // a new one: the write would then not meet the read-only session at all.
    let mut after = creation(&format!("AFTER-{round}"));
    after.request_id.clear();
    let first = call(ch.clone(), token, after).await;
    assert_eq!(
        outcome(&first),
        Outcome::Ok,
        "the first write after promotion"
    );
    read_only_retries(replica).await == retries + 1
}

/// The Patroni cluster of `scripts/ha-cluster.sh`, stopped when dropped.
struct Cluster;

fn ha(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ha-cluster.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("run ha-cluster.sh");
    assert!(
        out.status.success(),
        "ha-cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the cluster script off the runtime's threads (a switchover takes seconds).
async fn ha_async(args: &'static [&'static str]) -> String {
    tokio::task::spawn_blocking(move || ha(args))
        .await
        .expect("ha-cluster.sh task")
}

impl Cluster {
    fn start() -> Self {
        ha(&["stop"]); // leftovers of an interrupted run
        ha(&["start"]);
        Cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/ha-cluster.sh"
            ))
            .arg("stop")
            .status();
    }
}

/// One call of the load.
#[derive(Debug, Clone)]
struct Attempt {
    done: Instant,
    outcome: Outcome,
}

/// One logical write: a key and its request id, sent until it is acknowledged.
#[derive(Debug)]
struct Write {
    key: String,
    attempts: Vec<Attempt>,
}

impl Write {
    fn acknowledged(&self) -> bool {
        self.attempts.last().map(|a| &a.outcome) == Some(&Outcome::Ok)
    }
}

/// Pause between a retry and the UNAVAILABLE before it. Shorter than the RetryInfo delay so
/// that recovery is measured to a tenth of a second.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `workers` callers, each creating participants one after another with request ids, retrying
/// an UNAVAILABLE call with the same request id; stops starting new writes when `stop` turns
/// true, and finishes the one in hand.
fn load(
    channels: &[Channel],
    token: &str,
    workers: usize,
    tag: &str,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Vec<Write>>> {
    (0..workers)
        .map(|w| {
            let ch = channels[w % channels.len()].clone();
            let token = token.to_owned();
            let stop = stop.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut writes = Vec::new();
                let mut n = 0;
                while !*stop.borrow() {
                    n += 1;
                    let key = format!("{tag}{w}-{n:05}");
                    let req = creation(&key);
                    let started = Instant::now();
                    let mut attempts = Vec::new();
                    loop {
                        let r = call(ch.clone(), &token, req.clone()).await;
                        let outcome = outcome(&r);
                        attempts.push(Attempt {
                            done: Instant::now(),
                            outcome: outcome.clone(),
                        });
                        match outcome {
                            Outcome::Unavailable { retry_info: true }
                                if started.elapsed() < Duration::from_secs(60) =>
                            {
                                tokio::time::sleep(RETRY_PAUSE).await;
                            }
                            _ => break,
                        }
                    }
                    writes.push(Write { key, attempts });
                }
                writes
            })
        })
        .collect()
}

async fn collect(handles: Vec<tokio::task::JoinHandle<Vec<Write>>>) -> Vec<Write> {
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("worker"));
    }
    all
}

/// After a fault at `fault`, until `until` (the next fault or the end of the load): the longest
/// pause between acknowledged calls, and when (from the fault) the first call after that pause
/// was acknowledged.
fn recovery(oks: &[Instant], fault: Instant, until: Instant) -> (Duration, Duration) {
    let mut points = vec![fault];
    points.extend(oks.iter().copied().filter(|t| *t > fault && *t < until));
    points.sort();
    let (start, end) = points
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| *b - *a)
        .unwrap_or((fault, fault));
    (end - start, end - fault)
}

/// Acknowledged creations per second with `workers` callers for `span`.
async fn throughput(channels: &[Channel], token: &str, tag: &str, span: Duration) -> f64 {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let handles = load(channels, token, 16, tag, &stop_rx);
    tokio::time::sleep(span).await;
    let _ = stop_tx.send(true);
    let writes = collect(handles).await;
    let elapsed = started.elapsed().as_secs_f64();
    writes.iter().filter(|w| w.acknowledged()).count() as f64 / elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, Patroni, etcd and HAProxy: scripts/ci-ha.sh installs them and runs it"]
async fn writes_survive_a_patroni_switchover_and_failover() {
    if std::env::var("PARTICIPANTS_TEST_HA").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set PARTICIPANTS_TEST_HA=1 to start a Patroni cluster (scripts/ci-ha.sh)"
        );
        return;
    }
    let cluster = Cluster::start();
    let (db_url, _) = fresh_database_on(&ha(&["url"])).await;
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    let replicas = start_replicas(
        2,
        &db_url,
        &catalog,
        &[
            "--request-timeout",
            "10s",
            "--db-acquire-timeout",
            "2s",
            "--db-connect-timeout",
            "2s",
        ],
    );
    let mut channels = Vec::new();
    for r in &replicas {
        channels.push(channel(&r.addr).await);
    }
    let token = token("dm.key");

    // Health of both replicas, sampled through the run.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let channels = channels.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut not_serving = Duration::ZERO;
            let tick = Duration::from_millis(250);
            while !*stop.borrow() {
                for ch in &channels {
                    if health(ch).await != ServingStatus::Serving as i32 {
                        not_serving += tick;
                    }
                }
                tokio::time::sleep(tick).await;
            }
            not_serving
        })
    };

    // 60 s of load from 4 clients; a switchover at 15 s, a kill -9 of the leader at 35 s.
    let started = Instant::now();
    let handles = load(&channels, &token, 4, "W", &stop_rx);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before_switchover = ha_async(&["leader"]).await;
    let switchover = Instant::now();
    ha_async(&["switchover"]).await;
    let after_switchover = ha_async(&["leader"]).await;
    tokio::time::sleep(Duration::from_secs(35).saturating_sub(started.elapsed())).await;
    let failover = Instant::now();
    ha_async(&["kill-leader"]).await;
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(started.elapsed())).await;
    let _ = stop_tx.send(true);
    let load_ended = Instant::now();
    let writes = collect(handles).await;
    let not_serving = sampler.await.expect("sampler");
    let after_failover = ha_async(&["leader"]).await;

    // Every call answered OK or UNAVAILABLE with RetryInfo.
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for a in writes.iter().flat_map(|w| &w.attempts) {
        *calls.entry(format!("{:?}", a.outcome)).or_insert(0) += 1;
    }
    let wrong: Vec<_> = writes
        .iter()
        .filter(|w| {
            w.attempts.iter().any(|a| {
                !matches!(
                    a.outcome,
                    Outcome::Ok | Outcome::Unavailable { retry_info: true }
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than OK or UNAVAILABLE+RetryInfo: {wrong:?}"
    );
    // Every write was in the end acknowledged: retries with the same request id succeed.
    let unacknowledged: Vec<_> = writes.iter().filter(|w| !w.acknowledged()).collect();
    assert!(
        unacknowledged.is_empty(),
        "never acknowledged: {unacknowledged:?}"
    );
    let retried = writes.iter().filter(|w| w.attempts.len() > 1).count();

    // Every acknowledged write is stored exactly once, with its audit event, contact and
    // remembered answer.
    let db = Database::connect(&db_url).await.expect("connect");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT p.subject_key, \
               (SELECT COUNT(*) FROM audit_events a WHERE a.participant_id = p.id \
                  AND a.event_type = 'PARTICIPANT_CREATED'), \
               (SELECT COUNT(*) FROM participant_contacts c WHERE c.participant_id = p.id), \
               (SELECT COUNT(*) FROM idempotency_records i WHERE i.request_id = 'ha-' || p.subject_key) \
             FROM participants p"
                .to_owned(),
        ))
        .await
        .expect("stored rows");
    let mut stored: HashMap<String, (usize, i64, i64, i64)> = HashMap::new();
    for row in rows {
        let key: String = row.try_get_by_index(0).expect("key");
        let audit: i64 = row.try_get_by_index(1).expect("audit");
        let contact: i64 = row.try_get_by_index(2).expect("contact");
        let remembered: i64 = row.try_get_by_index(3).expect("remembered");
        let entry = stored.entry(key).or_insert((0, audit, contact, remembered));
        entry.0 += 1;
    }
    let acknowledged = writes.iter().filter(|w| w.acknowledged()).count();
    let lost: Vec<_> = writes
        .iter()
        .filter(|w| w.acknowledged() && !stored.contains_key(&w.key))
        .map(|w| w.key.as_str())
        .collect();
    let incomplete: Vec<_> = stored.iter().filter(|(_, v)| **v != (1, 1, 1, 1)).collect();

    // Recovery: the longest pause between acknowledged calls after each fault.
    let oks: Vec<Instant> = writes
        .iter()
        .flat_map(|w| &w.attempts)
        .filter(|a| a.outcome == Outcome::Ok)
        .map(|a| a.done)
        .collect();
    let (switch_pause, switch_recovered) = recovery(&oks, switchover, failover);
    let (fail_pause, fail_recovered) = recovery(&oks, failover, load_ended);
    let refused_between = |from: Instant, until: Instant| {
        writes
            .iter()
            .flat_map(|w| &w.attempts)
            .filter(|a| a.outcome != Outcome::Ok && a.done > from && a.done < until)
            .count()
    };
    let switch_refused = refused_between(switchover, failover);
    let fail_refused = refused_between(failover, load_ended);

    // Write throughput with and without synchronous replication, 16 callers, twice each in
    // turn so that a neighbour's load on the machine weighs on both alike; and the database's
    // alone (pgbench, one-row INSERT commits), which shows what a commit costs without the
    // service's own work per write in front of it. `PARTICIPANTS_TEST_HA_FIGURES=0` leaves
    // them out (about 40 s a run): `scripts/ci-ha.sh` measures them in its first run only.
    let figures = std::env::var("PARTICIPANTS_TEST_HA_FIGURES").as_deref() != Ok("0");
    let mut with_sync = Vec::new();
    let mut without_sync = Vec::new();
    let mut db_with_sync = Vec::new();
    let mut db_without_sync = Vec::new();
    let bench = || async {
        let out = ha_async(&["bench"]).await;
        out.parse::<f64>()
            .unwrap_or_else(|_| panic!("pgbench tps: {out:?}"))
    };
    let rounds = if figures { 2 } else { 0 };
    for round in 0..rounds {
        ha_async(&["sync", "on"]).await;
        let tag = format!("S{round}-");
        with_sync.push(throughput(&channels, &token, &tag, Duration::from_secs(5)).await);
        db_with_sync.push(bench().await);
        ha_async(&["sync", "off"]).await;
        let tag = format!("A{round}-");
        without_sync.push(throughput(&channels, &token, &tag, Duration::from_secs(5)).await);
        db_without_sync.push(bench().await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;

    println!(
        "HA figures: acknowledged writes {acknowledged}, lost {}, stored incompletely {}, \
         retried {retried}; calls {calls:?}",
        lost.len(),
        incomplete.len()
    );
    println!(
        "HA figures: switchover {before_switchover} -> {after_switchover}: writes paused {:.1} s, \
         first write after the pause {:.1} s after the command, {switch_refused} calls \
         UNAVAILABLE",
        switch_pause.as_secs_f64(),
        switch_recovered.as_secs_f64()
    );
    println!(
        "HA figures: failover (kill -9 of {after_switchover}'s postmaster) -> {after_failover}: \
         writes paused {:.1} s, first write after the pause {:.1} s after the kill, \
         {fail_refused} calls UNAVAILABLE",
        fail_pause.as_secs_f64(),
        fail_recovered.as_secs_f64()
    );
    println!(
        "HA figures: health NOT_SERVING {:.1} replica-seconds",
        not_serving.as_secs_f64()
    );
    if figures {
        println!(
            "HA figures: throughput (16 callers, 2 replicas) {:.0} writes/s with synchronous \
             replication, {:.0} without (rounds {with_sync:.0?} and {without_sync:.0?})",
            mean(&with_sync),
            mean(&without_sync),
        );
        println!(
            "HA figures: the database alone (pgbench, 16 sessions, one-row INSERT commits through \
         HAProxy) {:.0} commits/s with synchronous replication, {:.0} without (rounds \
             {db_with_sync:.0?} and {db_without_sync:.0?})",
            mean(&db_with_sync),
            mean(&db_without_sync),
        );
    }
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(incomplete.is_empty(), "stored incompletely: {incomplete:?}");
    assert_ne!(
        before_switchover, after_switchover,
        "the switchover moved the leader"
    );
    // Patroni restarts a crashed primary in place when no synchronous standby is fit to
    // promote (seen in about one run in fifteen here): the writes must ride through that too,
    // which the checks above assert; the run is reported, not failed, as Patroni's choice.
    if after_switchover == after_failover {
        println!(
            "HA figures: the kill -9 was answered by Patroni restarting the leader in place, \
             not by a failover; no acknowledged write was lost"
        );
    }
    assert!(acknowledged > 100, "the load ran: {acknowledged}");
    assert!(
        retried > 0,
        "the faults refused calls, so the retries with the same request id were exercised"
    );
    drop(replicas);
    drop(cluster);
}
