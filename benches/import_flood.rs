//! ImportParticipants flow control, against the `participants` binary in its own process (so
//! its memory is its own), on SQLite: one client pushes rows as fast as it can and reads no
//! answer for a while. Printed: how many rows the client could send over time (it must stall),
//! the server's resident memory meanwhile, then, reading again, the rate to the end and the
//! server's peak resident memory (VmHWM).
//!
//! `cargo bench --bench import_flood`. Sizes: `IMPORT_FLOOD_ROWS` (1,000,000),
//! `IMPORT_FLOOD_PAUSE_SECS` (30: how long no answer is read; the client stalls once the
//! server's HTTP/2 receive window, the import window, the answer buffer and the client's own
//! receive window are full: some 30,000 small rows with the default windows),
//! `IMPORT_FLOOD_WRITE=1` to create the participants instead of validating them (validate_only,
//! the default, runs every check and the write in a rolled-back savepoint, so a million rows fit
//! in minutes). `PARTICIPANTS_BIN` runs another build. It prints figures and asserts only that
//! every row was answered.

#[path = "../tests/common/serve.rs"]
mod serve;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use participants::{
    auth::{JwtSettings, mint_hs256},
    crypto,
    pb::{
        ParticipantContact, SiteScope, UpsertParticipantRequest, import_result::Outcome,
        participant_service_client::ParticipantServiceClient, upsert_participant_request,
    },
};
use tonic::{metadata::MetadataValue, transport::Channel};

const SECRET: &str = "flood-secret-flood-secret-flood-0123456789";
const CATALOG: &str = r#"
[[study]]
oid = "S_FLOOD"
  [[study.site]]
  oid = "S_FLOOD_1"
[[role]]
user = "dm.flood"
study = "S_FLOOD"
role = "data_manager"
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let rows = env_u64("IMPORT_FLOOD_ROWS", 1_000_000);
    let pause = Duration::from_secs(env_u64("IMPORT_FLOOD_PAUSE_SECS", 30));
    let write = env_u64("IMPORT_FLOOD_WRITE", 0) == 1;

    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("catalog");
    let bin = std::env::var("PARTICIPANTS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_participants").to_owned());
    let mut cmd = Command::new(&bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "",
        "--admin-listen",
        "",
        "--log-format",
        "json",
    ])
    .arg("--catalog")
    .arg(&catalog)
    .env(
        "PARTICIPANTS_DATABASE_URL",
        format!("sqlite://{}/flood.db?mode=rwc", dir.path().display()),
    )
    .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
    .env("PARTICIPANTS_DATA_KEY", crypto::generate_key())
    .env("PARTICIPANTS_LOG", "warn,participants=info");
    let (child, log) = serve::spawn(&mut cmd);
    let server = serve::wait_until_listening(child, log, Duration::from_secs(30));
    let pid = server.child.id();
    let token = mint_hs256(
        &JwtSettings {
            hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
            ..Default::default()
        },
        "dm.flood",
        Duration::from_secs(3600),
    )
    .expect("token");
    println!(
        "server {bin} (pid {pid}), SQLite; {rows} rows, {}; no answer read for {pause:?}",
        if write { "created" } else { "validate_only" }
    );
    println!(
        "    server RSS before: {:.0} MiB",
        mib(status_kib(pid, "VmRSS:"))
    );

    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let sent = Arc::new(AtomicU64::new(0));
    let requests = {
        let sent = sent.clone();
        futures_util::stream::iter(0..rows).map(move |n| {
            sent.fetch_add(1, Ordering::Relaxed);
            UpsertParticipantRequest {
                scope: Some(upsert_participant_request::Scope::Site(SiteScope {
                    study_oid: "S_FLOOD".into(),
                    site_oid: "S_FLOOD_1".into(),
                })),
                subject_key: format!("F-{n:07}"),
                contact: Some(ParticipantContact {
                    last_name: Some("Kovalenko".into()),
                    email_address: Some(format!("f{n}@example.org")),
                    ..Default::default()
                }),
                request_id: format!("flood-{n}"),
                validate_only: !write,
                ..Default::default()
            }
        })
    };
    let mut request = tonic::Request::new(requests);
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse().expect("token");
    request.metadata_mut().insert("authorization", bearer);
    let started = Instant::now();
    let mut answers = ParticipantServiceClient::new(channel)
        .import_participants(request)
        .await
        .expect("import")
        .into_inner();

    // Not reading: sample what the client could send and the server's memory.
    let mut peak_rss = 0;
    let mut samples = Vec::new();
    while started.elapsed() < pause {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rss = status_kib(pid, "VmRSS:");
        peak_rss = peak_rss.max(rss);
        samples.push((started.elapsed(), sent.load(Ordering::Relaxed), rss));
    }
    println!("\n  not reading answers:");
    for (at, n, rss) in samples.iter().step_by(10) {
        println!(
            "    t={:>5.1}s  rows sent {n:>8}  server RSS {:>5.0} MiB",
            at.as_secs_f64(),
            mib(*rss)
        );
    }
    let half = samples.get(samples.len() / 2).map_or(0, |(_, n, _)| *n);
    let end = sent.load(Ordering::Relaxed);
    println!(
        "    sent at the half of the pause {half}, at its end {end}: {}",
        if end == half && end < rows {
            "held back"
        } else {
            "NOT held back"
        }
    );
    println!(
        "    server peak RSS while not reading: {:.0} MiB",
        mib(peak_rss)
    );

    // Reading again, to the end.
    let reading = Instant::now();
    let mut ok = 0u64;
    let mut refused = 0u64;
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while let Some(answer) = answers.message().await.expect("answers") {
        match answer.outcome {
            Some(Outcome::Response(_)) => ok += 1,
            _ => refused += 1,
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            let rss = status_kib(pid, "VmRSS:");
            peak_rss = peak_rss.max(rss);
            println!(
                "    {:>5.0}s  answered {:>8}  server RSS {:.0} MiB",
                started.elapsed().as_secs_f64(),
                ok + refused,
                mib(rss)
            );
        }
    }
    let took = started.elapsed();
    println!("\n  to the end:");
    println!(
        "    {ok} answered OK, {refused} refused, in {:.1}s ({:.0} rows/s over the whole call, {:.0} rows/s once reading)",
        took.as_secs_f64(),
        (ok + refused) as f64 / took.as_secs_f64(),
        (ok + refused).saturating_sub(end) as f64 / reading.elapsed().as_secs_f64().max(1e-3)
    );
    println!(
        "    server peak RSS (VmHWM) {:.0} MiB; now {:.0} MiB",
        mib(status_kib(pid, "VmHWM:")),
        mib(status_kib(pid, "VmRSS:"))
    );
    assert_eq!(ok + refused, rows, "every row answered");
}
