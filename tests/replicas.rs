//! Production shape: several `participants serve` processes on one PostgreSQL database, and
//! the database failing under load. Needs PostgreSQL (`PARTICIPANTS_TEST_POSTGRES_URL`); the
//! fault test also restarts the cluster named by `PARTICIPANTS_TEST_PG_CLUSTER` (e.g. `15 main`)
//! and so runs alone: `cargo test --test replicas -- --ignored --test-threads=1`. The log's
//! default filter is checked here too, as it only matters on PostgreSQL.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use participants::pb::{ParticipantContact, UpsertParticipantRequest, UpsertParticipantResponse};
use sea_orm::{ConnectionTrait, Database};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/serve.rs"]
mod serve;
use fleet::*;

fn outcome(r: &Result<UpsertParticipantResponse, Status>) -> String {
    match r {
        Ok(resp) if resp.created => "created".into(),
        Ok(_) => "updated".into(),
        Err(s) => format!(
            "{:?}/{}",
            s.code(),
            s.get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default()
        ),
    }
}

/// Sends every request at once, spread round-robin over the channels.
async fn race(
    channels: &[Channel],
    token: &str,
    requests: Vec<UpsertParticipantRequest>,
) -> (
    BTreeMap<String, usize>,
    Vec<Result<UpsertParticipantResponse, Status>>,
) {
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(n, req)| {
            let ch = channels[n % channels.len()].clone();
            let token = token.to_owned();
            tokio::spawn(async move { call(ch, &token, req).await })
        })
        .collect();
    let mut counts = BTreeMap::new();
    let mut results = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        *counts.entry(outcome(&r)).or_insert(0) += 1;
        results.push(r);
    }
    (counts, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
async fn three_replicas_on_one_database_stay_exact() {
    let (db_url, _) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    // Exactness is the point here, not latency: a debug build on a shared 2-core machine may
    // queue a burst longer than the production acquire timeout.
    let replicas = start_replicas(
        3,
        &db_url,
        &catalog,
        &["--db-acquire-timeout", "15s", "--request-timeout", "30s"],
    );
    let mut channels = Vec::new();
    for r in &replicas {
        channels.push(channel(&r.addr).await);
    }
    let db = Database::connect(&db_url).await.expect("connect");
    // Three racing catalog applies left one copy.
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM studies").await, 2);
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM role_assignments").await,
        2
    );

    // 200 creations against a study cap of 25.
    let token_race = token("dm.race");
    let requests = (0..200)
        .map(|n| {
            request(
                "S_RACE",
                if n % 2 == 0 { "S_RACE_A" } else { "S_RACE_B" },
                &format!("R-{n:03}"),
            )
        })
        .collect();
    let (counts, results) = race(&channels, &token_race, requests).await;
    println!("200 creations, cap 25, 3 replicas: {counts:?}");
    assert_eq!(
        counts,
        BTreeMap::from([
            ("created".to_owned(), 25),
            (
                "FailedPrecondition/PARTICIPANTS_ENROLLMENT_CAP_REACHED".to_owned(),
                175
            ),
        ])
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM participants").await, 25);

    // While the cap is full, contact updates of the enrolled all succeed.
    let enrolled: Vec<(String, String)> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|r| r.participant.as_ref())
        .map(|p| (p.site_oid.clone(), p.subject_key.clone()))
        .collect();
    let updates = enrolled
        .iter()
        .map(|(site, key)| {
            let mut r = request("S_RACE", site, &key.to_lowercase());
            r.contact = Some(ParticipantContact {
                city: Some("Lisbon".into()),
                ..Default::default()
            });
            r
        })
        .collect();
    let (counts, _) = race(&channels, &token_race, updates).await;
    println!("25 updates at a full cap: {counts:?}");
    assert_eq!(counts, BTreeMap::from([("updated".to_owned(), 25)]));

    // 60 upserts of one key in mixed case: one creation, the rest updates or no-ops.
    let token_key = token("dm.key");
    let requests = (0..60)
        .map(|n| {
            let key = ["MIXED-KEY", "mixed-key", "Mixed-Key"][n % 3];
            let mut r = request("S_KEY", "S_KEY_A", key);
            r.contact = Some(ParticipantContact {
                city: Some(format!("City {}", n % 4)),
                ..Default::default()
            });
            r
        })
        .collect();
    let (counts, _) = race(&channels, &token_key, requests).await;
    println!("60 upserts of one key: {counts:?}");
    assert_eq!(
        counts,
        BTreeMap::from([("created".to_owned(), 1), ("updated".to_owned(), 59)])
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM participants WHERE subject_key_norm = 'mixed-key'"
        )
        .await,
        1
    );

    // One request_id replayed 30 times at once: one write, one answer.
    let requests = (0..30)
        .map(|_| {
            let mut r = request("S_KEY", "S_KEY_A", "ONCE-ONLY");
            r.request_id = "0b7e4f1a-replayed-30-times".into();
            r
        })
        .collect();
    let (counts, results) = race(&channels, &token_key, requests).await;
    println!("one request_id x30: {counts:?}");
    assert_eq!(counts, BTreeMap::from([("created".to_owned(), 30)]));
    let first = results[0].as_ref().expect("ok");
    assert!(
        results.iter().all(|r| r.as_ref().ok() == Some(first)),
        "one answer"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM participants WHERE subject_key = 'ONCE-ONLY'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM idempotency_records").await,
        1
    );
    // The enrolled counters the cap checks read equal the counts after every race.
    for (table, column) in [("studies", "study_id"), ("sites", "site_id")] {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} t WHERE t.enrolled <> (SELECT COUNT(*) FROM participants p \
             WHERE p.{column} = t.id AND p.status IN ('available', 'signed'))"
        );
        assert_eq!(scalar(&db, &sql).await, 0, "{table} counters");
    }
    drop(replicas);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
async fn the_default_log_leaves_out_postgresql_notices() {
    // Every `migrate` (and every start) is told by PostgreSQL that the migrations table exists
    // (a notice, which sqlx logs at info); an operator has nothing to do about it.
    let (url, _) = fresh_database().await;
    for run in ["first", "second"] {
        let out = Command::new(BIN)
            .env_remove("PARTICIPANTS_LOG")
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{run} migrate: {stderr}");
        assert!(
            !stderr.contains("already exists"),
            "{run} migrate: {stderr}"
        );
    }
    // Still shown when asked for.
    let out = Command::new(BIN)
        .env("PARTICIPANTS_LOG", "info")
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
}

fn pg_cluster(action: &str) {
    let cluster = std::env::var("PARTICIPANTS_TEST_PG_CLUSTER")
        .expect("PARTICIPANTS_TEST_PG_CLUSTER must name the cluster to restart, e.g. '15 main'");
    let mut args: Vec<&str> = cluster.split_whitespace().collect();
    args.push(action);
    if action == "stop" {
        args.extend(["-m", "fast"]);
    }
    let status = Command::new("pg_ctlcluster")
        .args(&args)
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {args:?}");
}

/// What one call of the load did.
#[derive(Debug)]
struct Sent {
    key: String,
    result: Result<(), (Code, String, bool)>,
    elapsed: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts PostgreSQL: run alone with PARTICIPANTS_TEST_PG_CLUSTER set (.ci/run does)"]
async fn database_faults_lose_nothing() {
    let (db_url, db_name) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    let request_timeout = Duration::from_secs(10);
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

    // Steady load: 4 workers creating participants with request ids until told to stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for w in 0..4 {
        let ch = channels[w % channels.len()].clone();
        let token = token.clone();
        let stop = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while !*stop.borrow() {
                n += 1;
                let key = format!("W{w}-{n:05}");
                let mut req = request("S_KEY", "S_KEY_A", &key);
                req.request_id = format!("load-{key}");
                req.contact = Some(ParticipantContact {
                    city: Some("Oslo".into()),
                    ..Default::default()
                });
                let t = Instant::now();
                let r = call(ch.clone(), &token, req).await;
                let result = r.map(|_| ()).map_err(|s| {
                    let reason = s
                        .get_details_error_info()
                        .map(|i| i.reason)
                        .unwrap_or_default();
                    (s.code(), reason, s.get_details_retry_info().is_some())
                });
                let failed = result.is_err();
                sent.push(Sent {
                    key,
                    result,
                    elapsed: t.elapsed(),
                });
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            sent
        }));
    }

    let admin = Database::connect(&admin_url()).await.expect("admin");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // 1. Terminate the service's connections, twice.
    for _ in 0..2 {
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
            ))
            .await
            .expect("terminate");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    admin.close().await.ok();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Stop PostgreSQL: calls fail fast as UNAVAILABLE; health turns NOT_SERVING.
    pg_cluster("stop");
    let stopped = Instant::now();
    let mut saw_not_serving = false;
    while stopped.elapsed() < Duration::from_secs(8) {
        if health(&channels[0]).await == ServingStatus::NotServing as i32 {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. Start it again: health and calls recover with no restart of the service.
    pg_cluster("start");
    let restarted = Instant::now();
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(30) {
        let mut req = request("S_KEY", "S_KEY_A", "PROBE");
        req.contact = Some(ParticipantContact {
            city: Some(format!("{}", restarted.elapsed().as_millis())),
            ..Default::default()
        });
        if health(&channels[0]).await == ServingStatus::Serving as i32
            && health(&channels[1]).await == ServingStatus::Serving as i32
            && call(channels[0].clone(), &token, req.clone()).await.is_ok()
            && call(channels[1].clone(), &token, req).await.is_ok()
        {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let mut sent = Vec::new();
    for w in workers {
        sent.extend(w.await.expect("worker"));
    }

    assert!(
        saw_not_serving,
        "health turned NOT_SERVING while the database was down"
    );
    let recovered = recovered.expect("the service recovered after the restart");
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        let key = match &s.result {
            Ok(()) => "OK".to_owned(),
            Err((code, reason, _)) => format!("{code:?}/{reason}"),
        };
        *codes.entry(key).or_insert(0) += 1;
        assert!(
            s.elapsed < request_timeout,
            "{} answered in {:?}",
            s.key,
            s.elapsed
        );
        if let Err((code, reason, retry)) = &s.result {
            assert_eq!(
                (*code, reason.as_str(), *retry),
                (Code::Unavailable, "STORAGE_UNAVAILABLE", true),
                "{s:?}"
            );
        }
    }
    println!("calls under faults: {codes:?}; recovered {recovered:?} after the restart");
    assert!(codes.get("OK").copied().unwrap_or(0) > 10, "{codes:?}");
    assert!(
        codes.keys().any(|k| k.contains("STORAGE_UNAVAILABLE")),
        "{codes:?}"
    );

    // Every call answered OK is stored with its audit events; nothing is half-written.
    let db = Database::connect(&db_url).await.expect("connect");
    for s in sent.iter().filter(|s| s.result.is_ok()) {
        let found = scalar(
            &db,
            &format!(
                "SELECT COUNT(*) FROM participants WHERE subject_key = '{}'",
                s.key
            ),
        )
        .await;
        assert_eq!(found, 1, "{} was answered OK but is not stored", s.key);
    }
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM participants p WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.participant_id = p.id AND a.event_type = 'PARTICIPANT_CREATED')").await,
        0,
        "a participant without its creation event"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM participants p WHERE NOT EXISTS (SELECT 1 FROM participant_contacts c WHERE c.participant_id = p.id)").await,
        0,
        "a participant without its contact row"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM participants p WHERE subject_key LIKE 'W%' AND NOT EXISTS (SELECT 1 FROM idempotency_records i WHERE i.request_id = 'load-' || p.subject_key)").await,
        0,
        "a write without its remembered answer"
    );
    drop(replicas);
}
