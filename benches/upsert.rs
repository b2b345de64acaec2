//! Throughput and latency of the service through the generated client over a real socket.
//!
//! `cargo bench --bench upsert` runs it on SQLite; with `PARTICIPANTS_TEST_POSTGRES_URL` set it
//! runs on PostgreSQL too. `BENCH_CALLS` (default 2000) and `BENCH_CONCURRENCY` (default 16)
//! size it. It prints figures; it asserts nothing about speed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use participants::{
    app::{App, Settings},
    auth::{JwtSettings, mint_hs256},
    catalog::Catalog,
    config::DataKeyArgs,
    pb::{
        GetParticipantRequest, ParticipantContact, SiteScope, UpsertParticipantRequest,
        get_participant_request, participant_service_client::ParticipantServiceClient,
        upsert_participant_request,
    },
    store::DbConfig,
};
use sea_orm::{ConnectionTrait, Database};
use tonic::transport::Channel;

const CATALOG: &str = r#"
[[study]]
oid = "S_BENCH"
participate_enabled = true
  [[study.site]]
  oid = "S_BENCH_1"
  [[study.site]]
  oid = "S_BENCH_2"
  [[study.site]]
  oid = "S_BENCH_3"
  [[study.site]]
  oid = "S_BENCH_4"
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

fn site(n: usize) -> SiteScope {
    SiteScope {
        study_oid: "S_BENCH".into(),
        site_oid: format!("S_BENCH_{}", n % 4 + 1),
    }
}

fn upsert(n: usize, city: &str, phase: usize) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: Some(upsert_participant_request::Scope::Site(site(n))),
        subject_key: format!("B-{n:06}"),
        contact: Some(ParticipantContact {
            first_name: Some("Olena".into()),
            last_name: Some("Kovalenko".into()),
            email_address: Some(format!("p{n}@example.org")),
            phone_number: Some("+380 441234567".into()),
            city: Some(city.into()),
            full_dob: Some("1984-03-09".into()),
            ..Default::default()
        }),
        request_id: format!("bench-{phase}-{n}"),
        ..Default::default()
    }
}

/// Runs `calls` calls over `concurrency` tasks; returns the latencies and the wall time.
async fn run<F, Fut>(calls: usize, concurrency: usize, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= calls {
                    return latencies;
                }
                let t = Instant::now();
                let ok = call(n).await;
                assert!(ok, "call {n} failed");
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (all, start.elapsed())
}

fn report(name: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "{name:<28} {:>6} calls {:>8.0} calls/s   p50 {:>6.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn bench(label: &str, url: String) {
    let calls = env_usize("BENCH_CALLS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 16);
    let settings = JwtSettings {
        hs256_secret: Some(b"bench-secret-bench-secret-0123456789".to_vec().into()),
        ..Default::default()
    };
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = App::build(Settings {
        listen: any_port,
        http_listen: None,
        admin_listen: None,
        db: DbConfig::new(url),
        jwt: settings.clone(),
        data: DataKeyArgs {
            data_key: Some(hex::encode([5u8; 32]).into()),
            data_key_previous: Vec::new(),
        },
        catalog: Some(Catalog::parse(CATALOG).expect("catalog")),
        ..Settings::default()
    })
    .await
    .expect("the server starts");
    let addr = app.grpc_addr();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let token: tonic::metadata::MetadataValue<_> = format!(
        "Bearer {}",
        mint_hs256(&settings, "dm.bench", Duration::from_secs(3600)).expect("token")
    )
    .parse()
    .expect("ascii");
    let client = ParticipantServiceClient::new(channel);

    println!("\n{label}: {calls} calls per phase, {concurrency} concurrent clients");
    let phases = [
        ("create (with contact data)", "Kyiv"),
        ("update (one field changes)", "Lviv"),
        ("no-op update", "Lviv"),
    ];
    for (phase_no, (phase, city)) in phases.into_iter().enumerate() {
        let (client, token) = (client.clone(), token.clone());
        let (lat, wall) = run(calls, concurrency, move |n| {
            let mut client = client.clone();
            let token = token.clone();
            let mut req = tonic::Request::new(upsert(n, city, phase_no));
            req.metadata_mut().insert("authorization", token);
            async move { client.upsert_participant(req).await.is_ok() }
        })
        .await;
        report(phase, lat, wall);
    }
    let (client2, token2) = (client.clone(), token.clone());
    let (lat, wall) = run(calls, concurrency, move |n| {
        let mut client = client2.clone();
        let mut req = tonic::Request::new(GetParticipantRequest {
            scope: Some(get_participant_request::Scope::Site(site(n))),
            subject_key: format!("b-{n:06}"),
        });
        req.metadata_mut().insert("authorization", token2.clone());
        async move { client.get_participant(req).await.is_ok() }
    })
    .await;
    report("get", lat, wall);
    app.shutdown().await.expect("a clean shutdown");
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");
    bench(
        "SQLite (WAL, synchronous=FULL)",
        format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
    )
    .await;
    if let Ok(admin) = std::env::var("PARTICIPANTS_TEST_POSTGRES_URL") {
        let name = format!("participants_bench_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(&admin).await.expect("connect");
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create db");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        bench("PostgreSQL", format!("{base}/{name}")).await;
    }
    if let Some(mib) = peak_rss_mib() {
        println!(
            "\npeak resident memory of the whole benchmark (server and clients): {mib:.0} MiB"
        );
    }
}
