//! Figures for the transport limits, against the `participants` binary in its own process (so
//! its CPU and memory are its own), on SQLite, started with a soft open-file limit of 1,024:
//!
//! 1. capacity: creations at a concurrency the server admits, for calls/s and latency;
//! 2. a flood of silent TCP connections (no HTTP/2 preface): how many the server holds, health
//!    check latency meanwhile, server CPU, and how long until they are closed;
//! 3. overload: many concurrent creations over several connections: OK / SERVER_OVERLOADED /
//!    other answers, p99 of the OK ones, and the server's peak resident memory.
//!
//! `cargo bench --bench overload`. Sizes: `OVERLOAD_SILENT` (2000), `OVERLOAD_CALLS` (5000),
//! `OVERLOAD_CONNECTIONS` (20). `PARTICIPANTS_BIN` runs another build of the binary (e.g. an
//! older one, to compare); `OVERLOAD_SERVER_ARGS` adds flags. It prints figures and asserts
//! nothing about speed.

#[path = "../tests/common/serve.rs"]
mod serve;

use std::{
    collections::BTreeMap,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use participants::{
    auth::{JwtSettings, mint_hs256},
    crypto,
    pb::{
        ParticipantContact, SiteScope, UpsertParticipantRequest,
        participant_service_client::ParticipantServiceClient, upsert_participant_request,
    },
};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tonic::{metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

const SECRET: &str = "overload-secret-overload-secret-0123456789";
const CATALOG: &str = r#"
[[study]]
oid = "S_BENCH"
participate_enabled = true
  [[study.site]]
  oid = "S_BENCH_1"
  [[study.site]]
  oid = "S_BENCH_2"
[[role]]
user = "dm.bench"
study = "S_BENCH"
role = "data_manager"
"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(n: usize, phase: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: Some(upsert_participant_request::Scope::Site(SiteScope {
            study_oid: "S_BENCH".into(),
            site_oid: format!("S_BENCH_{}", n % 2 + 1),
        })),
        subject_key: format!("{phase}-{n:06}"),
        contact: Some(ParticipantContact {
            last_name: Some("Kovalenko".into()),
            email_address: Some(format!("{phase}{n}@example.org")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Server CPU time so far (user + system), from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // CLK_TCK is 100 on Linux
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

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// Whether the server closes `stream` within `within` (EOF or reset); what it sends (an
/// HTTP/2 server's SETTINGS frame) is read and ignored.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all).await.is_ok()
}

async fn connect(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
}

async fn health_latency(channel: Channel) -> Result<Duration, String> {
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(2),
        HealthClient::new(channel).check(HealthCheckRequest::default()),
    )
    .await
    .map_err(|_| "timed out after 2 s".to_owned())?
    .map_err(|s| format!("{:?}", s.code()))?;
    Ok(t.elapsed())
}

async fn health_on_new_connection(addr: &str) -> String {
    let t = Instant::now();
    match connect(addr).await {
        Ok(channel) => match health_latency(channel).await {
            Ok(d) => format!("{:.1} ms", ms(d)),
            Err(e) => format!("failed ({e}) after {:.0} ms", ms(t.elapsed())),
        },
        Err(_) => format!("refused (connect failed) after {:.0} ms", ms(t.elapsed())),
    }
}

/// Creations at `concurrency` over `connections`; returns latencies per answer kind.
async fn creations(
    addr: &str,
    token: &str,
    calls: usize,
    connections: usize,
    phase: &'static str,
) -> (BTreeMap<String, Vec<Duration>>, Duration) {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(ParticipantServiceClient::new(
            connect(addr).await.expect("connect"),
        ));
    }
    let auth: MetadataValue<_> = format!("Bearer {token}").parse().expect("token");
    let start = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|n| {
            let mut client = clients[n % connections].clone();
            let mut req = tonic::Request::new(request(n, phase));
            req.metadata_mut().insert("authorization", auth.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let kind = match client.upsert_participant(req).await {
                    Ok(_) => "OK".to_owned(),
                    Err(s) => match s.get_details_error_info() {
                        Some(info) => format!("{:?}/{}", s.code(), info.reason),
                        None => format!("{:?} (no ErrorInfo)", s.code()),
                    },
                };
                (kind, t.elapsed())
            })
        })
        .collect();
    let mut by_kind: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for t in tasks {
        let (kind, d) = t.await.expect("task");
        by_kind.entry(kind).or_default().push(d);
    }
    for v in by_kind.values_mut() {
        v.sort_unstable();
    }
    (by_kind, start.elapsed())
}

fn print_kinds(by_kind: &BTreeMap<String, Vec<Duration>>, wall: Duration) {
    for (kind, lat) in by_kind {
        println!(
            "    {kind:<40} {:>6}   p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms",
            lat.len(),
            pct(lat, 0.5),
            pct(lat, 0.99),
            pct(lat, 1.0)
        );
    }
    let ok = by_kind.get("OK").map_or(0, Vec::len);
    println!(
        "    wall {:.2} s, {:.0} OK/s",
        wall.as_secs_f64(),
        ok as f64 / wall.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let silent_n = env_usize("OVERLOAD_SILENT", 2000);
    let calls = env_usize("OVERLOAD_CALLS", 5000);
    let connections = env_usize("OVERLOAD_CONNECTIONS", 20).max(1);
    // The client side needs more descriptors than the flood it makes.
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("catalog");
    let bin = std::env::var("PARTICIPANTS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_participants").to_owned());
    let extra = std::env::var("OVERLOAD_SERVER_ARGS").unwrap_or_default();
    // A soft limit of 1,024 descriptors, as on many hosts; the hard limit stays.
    let script = format!(
        "ulimit -Sn 1024; exec {bin} serve --listen 127.0.0.1:0 --http-listen '' --admin-listen '' --log-format json --catalog {} {extra}",
        catalog.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .env(
            "PARTICIPANTS_DATABASE_URL",
            format!("sqlite://{}/overload.db?mode=rwc", dir.path().display()),
        )
        .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
        .env("PARTICIPANTS_DATA_KEY", crypto::generate_key())
        .env("PARTICIPANTS_LOG", "warn,participants=info");
    let (child, log) = serve::spawn(&mut cmd);
    let server = serve::wait_until_listening(child, log, Duration::from_secs(30));
    let pid = server.child.id();
    let addr = server.addr.clone();
    let token = mint_hs256(
        &JwtSettings {
            hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
            ..Default::default()
        },
        "dm.bench",
        Duration::from_secs(3600),
    )
    .expect("token");
    println!("server {bin} (pid {pid}) on {addr}, SQLite, soft fd limit 1024 at start");
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(line) = server.log.try_recv() {
        if line.contains("connection cap") {
            println!("    server log: {line}");
        }
    }

    // 1. Capacity: 2,000 creations at concurrency 64 (under any sane admission limit).
    println!("\n1. capacity: 2000 creations at concurrency 64 over 4 connections");
    {
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(ParticipantServiceClient::new(
                connect(&addr).await.expect("connect"),
            ));
        }
        let auth: MetadataValue<_> = format!("Bearer {token}").parse().expect("token");
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|w| {
                let mut client = clients[w % 4].clone();
                let next = next.clone();
                let auth = auth.clone();
                tokio::spawn(async move {
                    let mut out = BTreeMap::<String, Vec<Duration>>::new();
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= 2000 {
                            return out;
                        }
                        let mut req = tonic::Request::new(request(n, "CAP"));
                        req.metadata_mut().insert("authorization", auth.clone());
                        let t = Instant::now();
                        let kind = match client.upsert_participant(req).await {
                            Ok(_) => "OK".to_owned(),
                            Err(s) => format!("{:?}", s.code()),
                        };
                        out.entry(kind).or_default().push(t.elapsed());
                    }
                })
            })
            .collect();
        let mut all = BTreeMap::<String, Vec<Duration>>::new();
        for t in tasks {
            for (k, v) in t.await.expect("task") {
                all.entry(k).or_default().extend(v);
            }
        }
        for v in all.values_mut() {
            v.sort_unstable();
        }
        print_kinds(&all, start.elapsed());
    }

    // 2. Silent connections.
    println!("\n2. {silent_n} silent TCP connections (no HTTP/2 preface)");
    let established = connect(&addr).await.expect("connect");
    let fds_before = open_fds(pid);
    let cpu_before = cpu_time(pid);
    let flood_start = Instant::now();
    let mut silent = Vec::new();
    let mut refused_connect = 0;
    let mut failures_in_a_row = 0;
    for _ in 0..silent_n {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => {
                silent.push((Instant::now(), s));
                failures_in_a_row = 0;
            }
            _ => {
                refused_connect += 1;
                failures_in_a_row += 1;
                if failures_in_a_row == 10 {
                    // The server no longer accepts (its backlog is full): stop flooding.
                    break;
                }
            }
        }
    }
    let flood_took = flood_start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held_fds = open_fds(pid).saturating_sub(fds_before);
    // Which ones the server has closed already (over the cap), and which it holds.
    let mut held = Vec::new();
    let mut closed_at_once = 0;
    for (opened, mut s) in silent {
        if closed_within(&mut s, Duration::from_millis(2)).await {
            closed_at_once += 1;
        } else {
            held.push((opened, s));
        }
    }
    let held_n = held.len();
    // Watch the held ones: how long after its connect is each closed?
    let watchers: Vec<_> = held
        .into_iter()
        .map(|(opened, mut s)| {
            tokio::spawn(async move {
                closed_within(&mut s, Duration::from_secs(15))
                    .await
                    .then(|| (opened.elapsed(), flood_start.elapsed()))
            })
        })
        .collect();
    let on_established = match health_latency(established.clone()).await {
        Ok(d) => format!("{:.1} ms", ms(d)),
        Err(e) => format!("failed ({e})"),
    };
    let on_new = health_on_new_connection(&addr).await;
    let mut lifetimes = Vec::new();
    let mut last_closed = Duration::ZERO;
    let mut still_open = 0;
    for w in watchers {
        match w.await.expect("task") {
            Some((life, at)) => {
                lifetimes.push(life);
                last_closed = last_closed.max(at);
            }
            None => still_open += 1,
        }
    }
    lifetimes.sort_unstable();
    let window = flood_start.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    println!(
        "    opened in {:.2} s; connect refused or timed out: {refused_connect}",
        flood_took.as_secs_f64()
    );
    println!("    descriptors the server holds after the flood: {held_fds}");
    println!(
        "    closed at once (over the cap): {closed_at_once}; held: {held_n}; of those still open after 15 s: {still_open}"
    );
    if !lifetimes.is_empty() {
        println!(
            "    held ones closed {:.2} to {:.2} s after their connect; the last {:.2} s after the flood began",
            pct(&lifetimes, 0.0) / 1000.0,
            pct(&lifetimes, 1.0) / 1000.0,
            last_closed.as_secs_f64()
        );
    }
    println!(
        "    health check during the flood: established connection {on_established}; new connection {on_new}"
    );
    println!(
        "    server CPU over the {:.1} s window: {:.1} % of one core",
        window.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / window.as_secs_f64()
    );
    println!(
        "    health check on a new connection afterwards: {}",
        health_on_new_connection(&addr).await
    );

    // 3. Overload.
    println!("\n3. overload: {calls} concurrent creations over {connections} connections");
    let cpu_before = cpu_time(pid);
    let (by_kind, wall) = creations(&addr, &token, calls, connections, "OVL").await;
    print_kinds(&by_kind, wall);
    println!(
        "    server CPU during the burst: {:.1} s; server peak RSS (VmHWM) {:.0} MiB, now {:.0} MiB",
        cpu_time(pid).saturating_sub(cpu_before).as_secs_f64(),
        status_kib(pid, "VmHWM:") as f64 / 1024.0,
        status_kib(pid, "VmRSS:") as f64 / 1024.0
    );
    println!(
        "    health check afterwards: {}",
        match health_latency(established).await {
            Ok(d) => format!("{:.1} ms", ms(d)),
            Err(e) => format!("failed ({e})"),
        }
    );
    drop(server);
}
