//! Behind real L7 proxies: nginx and HAProxy with the configs of `deploy/proxies/`, started by
//! `scripts/proxies.sh`, each in front of two `participants serve` replicas that share one
//! PostgreSQL database.
//!
//! Ignored in plain `cargo test`: they need nginx, HAProxy, PostgreSQL
//! (`PARTICIPANTS_TEST_POSTGRES_URL`) and python3 with grpcio (`PARTICIPANTS_TEST_PYTHON`), and
//! run only when `PARTICIPANTS_TEST_PROXIES` is set (`cargo test -- --ignored` elsewhere in CI
//! runs before these tools are installed). `scripts/ci-proxies.sh` installs everything and runs
//! `cargo test --test proxies -- --ignored --test-threads=1 --nocapture`; the figures they print
//! (drain times, calls per replica) are the ones docs/deployment.md quotes.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use participants::{
    auth::{JwtSettings, mint_hs256},
    pb::{
        GetParticipantRequest, ParticipantContact, SiteScope, UpsertParticipantRequest,
        get_participant_request, participant_service_client::ParticipantServiceClient,
        upsert_participant_request,
    },
};
use prost::Message;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::{ErrorDetail, StatusExt};

const BIN: &str = env!("CARGO_BIN_EXE_participants");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "proxies-secret-proxies-secret-0123456789";
const DATA_KEY: &str = "cHJveGllcy10ZXN0LWRhdGEta2V5LTMyLWJ5dGVzISE=";
const JUNO: &str = "S_JUNO(PROD)";
const OHIO: &str = "S_OHI0(TEST)";
/// The replicas' --max-message-bytes (the default).
const MAX_MESSAGE: usize = 64 * 1024;

/// Whether the proxy tests run; they pass without checking anything otherwise.
fn enabled() -> bool {
    if std::env::var_os("PARTICIPANTS_TEST_PROXIES").is_some() {
        return true;
    }
    eprintln!("skipped: set PARTICIPANTS_TEST_PROXIES (scripts/ci-proxies.sh does)");
    false
}

fn token(user: &str) -> String {
    let settings = JwtSettings {
        hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
        ..Default::default()
    };
    mint_hs256(&settings, user, Duration::from_secs(3600)).expect("token")
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// A fresh PostgreSQL database: its URL.
async fn fresh_database() -> String {
    let admin = std::env::var("PARTICIPANTS_TEST_POSTGRES_URL")
        .expect("PARTICIPANTS_TEST_POSTGRES_URL must name a PostgreSQL server");
    let name = format!("participants_proxies_{}", uuid::Uuid::new_v4().simple());
    let conn = Database::connect(&admin).await.expect("connect");
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    Nginx,
    Haproxy,
}

/// Two replicas and both proxies, from `scripts/proxies.sh`; all stopped when dropped.
struct Stack {
    dir: tempfile::TempDir,
    db_url: String,
    replica_args: String,
    nginx: String,
    haproxy: String,
    a: String,
    b: String,
    ports: Vec<u16>,
}

impl Stack {
    /// Starts `replicas` (in order) with `replica_args`, then the proxies.
    async fn start(replica_args: &str, replicas: &[&str]) -> Self {
        let ports = free_ports(4);
        let stack = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            db_url: fresh_database().await,
            replica_args: replica_args.to_owned(),
            nginx: format!("127.0.0.1:{}", ports[0]),
            haproxy: format!("127.0.0.1:{}", ports[1]),
            a: format!("127.0.0.1:{}", ports[2]),
            b: format!("127.0.0.1:{}", ports[3]),
            ports,
        };
        for r in replicas {
            stack.script(&["replica", r]);
        }
        stack.script(&["proxies"]);
        stack
    }

    fn script(&self, args: &[&str]) -> String {
        let (cmd, rest) = args.split_first().expect("a command");
        let out = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/proxies.sh"))
            .arg(cmd)
            .arg(self.dir.path())
            .args(rest)
            .env("PARTICIPANTS_BIN", BIN)
            .env("PARTICIPANTS_DATABASE_URL", &self.db_url)
            .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
            .env("PARTICIPANTS_DATA_KEY", DATA_KEY)
            .env(
                "PARTICIPANTS_CATALOG",
                Path::new(ROOT).join("tests/fixtures/catalog.toml"),
            )
            .env("PARTICIPANTS_LOG_FORMAT", "json")
            .env("NGINX_PORT", self.ports[0].to_string())
            .env("HAPROXY_PORT", self.ports[1].to_string())
            .env("REPLICA_A_PORT", self.ports[2].to_string())
            .env("REPLICA_B_PORT", self.ports[3].to_string())
            .env("REPLICA_ARGS", &self.replica_args)
            .output()
            .expect("run scripts/proxies.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scripts/proxies.sh {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn addr(&self, proxy: Proxy) -> &str {
        match proxy {
            Proxy::Nginx => &self.nginx,
            Proxy::Haproxy => &self.haproxy,
        }
    }

    /// `signal` (TERM, KILL) to replica `r`; returns the time until the process has exited.
    fn stop_replica(&self, r: &str, signal: &str) -> Duration {
        let file = self.dir.path().join(format!("replica-{r}.pid"));
        let pid = std::fs::read_to_string(&file).expect("pid file");
        let pid = pid.trim();
        let started = Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(status.success());
        // The replica is no child of this process (the script started it): watch /proc. A
        // zombie nobody reaped counts as exited.
        let stat = PathBuf::from(format!("/proc/{pid}/stat"));
        loop {
            let alive = std::fs::read_to_string(&stat)
                .map(|s| {
                    s.rsplit_once(") ")
                        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
                })
                .unwrap_or(false);
            if !alive {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "replica {r} still running 60 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(file);
        started.elapsed()
    }

    /// Calls answered by each replica so far, as the proxy counted them.
    fn calls_per_replica(&self, proxy: Proxy) -> BTreeMap<String, u64> {
        match proxy {
            Proxy::Nginx => {
                let log = std::fs::read_to_string(self.dir.path().join("nginx/access.log"))
                    .unwrap_or_default();
                let mut counts = BTreeMap::new();
                for line in log.lines() {
                    // $msec|$upstream_addr|$upstream_status|…: a call re-sent lists every
                    // replica tried ("a, b"); the last one answered it, if its status is 200.
                    let f: Vec<&str> = line.split('|').collect();
                    let last = |i: usize| f.get(i).and_then(|v| v.rsplit(", ").next());
                    if let (Some(addr), Some("200")) = (last(1), last(2)) {
                        *counts.entry(self.replica_name(addr)).or_insert(0) += 1;
                    }
                }
                counts
            }
            Proxy::Haproxy => ["a", "b"]
                .into_iter()
                .map(|r| (format!("replica-{r}"), self.haproxy_stat(r, "hrsp_2xx")))
                .collect(),
        }
    }

    /// A counter of HAProxy's `show stat` for server `a` or `b`, or the backend (`BACKEND`).
    fn haproxy_stat(&self, server: &str, column: &str) -> u64 {
        use std::io::{Read, Write};
        let mut sock =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("haproxy/haproxy.sock"))
                .expect("HAProxy stats socket");
        sock.write_all(b"show stat\n").expect("write");
        let mut csv = String::new();
        sock.read_to_string(&mut csv).expect("read");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
        let (px, sv, want) = (col("pxname"), col("svname"), col(column));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > want && f[px] == "participants" && f[sv] == server)
            .and_then(|f| f[want].parse().ok())
            .unwrap_or(0)
    }

    /// What the proxy did about calls a replica could not take: re-sent them elsewhere itself,
    /// or answered them 502/503 (UNAVAILABLE, which the clients' retry policy re-sent).
    fn proxy_retries(&self, proxy: Proxy) -> String {
        match proxy {
            Proxy::Nginx => {
                let log = std::fs::read_to_string(self.dir.path().join("nginx/access.log"))
                    .unwrap_or_default();
                let fields = |l: &str| l.split('|').map(str::to_owned).collect::<Vec<_>>();
                let resent = log
                    .lines()
                    .filter(|l| fields(l).get(1).is_some_and(|u| u.contains(", ")))
                    .count();
                // The last replica tried did not answer: nginx answered UNAVAILABLE itself.
                let unavailable = log
                    .lines()
                    .filter(|l| {
                        fields(l)
                            .get(2)
                            .is_some_and(|s| s.rsplit(", ").next() != Some("200"))
                    })
                    .count();
                format!(
                    "nginx re-sent {resent} calls to the other replica, answered {unavailable} UNAVAILABLE (the clients retried them)"
                )
            }
            Proxy::Haproxy => format!(
                "HAProxy retried {} connections, redispatched {}, answered {} with 5xx (UNAVAILABLE)",
                self.haproxy_stat("BACKEND", "wretr"),
                self.haproxy_stat("BACKEND", "wredis"),
                self.haproxy_stat("BACKEND", "hrsp_5xx")
            ),
        }
    }

    fn replica_name(&self, addr: &str) -> String {
        if addr == self.a {
            "replica-a".into()
        } else if addr == self.b {
            "replica-b".into()
        } else {
            addr.into()
        }
    }

    async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.db_url).await.expect("connect")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/proxies.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

async fn client(addr: &str) -> ParticipantServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    ParticipantServiceClient::new(channel)
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    req
}

/// An answer as a client sees it: the encoded response, or the status with its details (the
/// `grpc-status-details-bin` trailer) — with RetryInfo's random delay checked and left out.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok(Vec<u8>),
    Failed {
        code: Code,
        message: String,
        details: Vec<String>,
    },
}

fn answer<T: Message>(r: Result<tonic::Response<T>, Status>) -> Answer {
    match r {
        Ok(resp) => Answer::Ok(resp.into_inner().encode_to_vec()),
        Err(status) => {
            let details = status
                .get_error_details_vec()
                .into_iter()
                .map(|d| match d {
                    ErrorDetail::RetryInfo(info) => {
                        let delay = info.retry_delay.expect("RetryInfo has a delay");
                        assert!(
                            delay >= Duration::from_millis(100) && delay <= Duration::from_secs(1),
                            "RetryInfo delay {delay:?}"
                        );
                        "RetryInfo(100 ms..1 s)".to_owned()
                    }
                    // Its metadata is a map: in a stable order, whichever replica answered.
                    ErrorDetail::ErrorInfo(info) => format!(
                        "ErrorInfo {} {} {:?}",
                        info.reason,
                        info.domain,
                        info.metadata.into_iter().collect::<BTreeMap<_, _>>()
                    ),
                    other => format!("{other:?}"),
                })
                .collect();
            Answer::Failed {
                code: status.code(),
                message: status.message().to_owned(),
                details,
            }
        }
    }
}

fn ohio(key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: Some(upsert_participant_request::Scope::Site(SiteScope {
            study_oid: JUNO.into(),
            site_oid: OHIO.into(),
        })),
        subject_key: key.into(),
        ..Default::default()
    }
}

fn get_ohio(key: &str) -> GetParticipantRequest {
    GetParticipantRequest {
        scope: Some(get_participant_request::Scope::Site(SiteScope {
            study_oid: JUNO.into(),
            site_oid: OHIO.into(),
        })),
        subject_key: key.into(),
    }
}

/// An upsert whose encoded size is exactly `size` bytes (padding in reason_for_change).
fn upsert_of_size(size: usize) -> UpsertParticipantRequest {
    let mut req = ohio("SIZE-1");
    req.reason_for_change = "r".repeat(size - 300);
    let len = req.encoded_len();
    let pad = size as i64 - len as i64;
    req.reason_for_change = "r".repeat((size as i64 - 300 + pad) as usize);
    // The length prefix may have grown by a byte.
    while req.encoded_len() > size {
        req.reason_for_change.pop();
    }
    req
}

/// The same calls, sent straight to a replica and through each proxy: every answer is equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy and PostgreSQL: scripts/ci-proxies.sh"]
async fn every_answer_through_each_proxy_equals_the_direct_answer() {
    if !enabled() {
        return;
    }
    // One call in flight per replica, so that overload (RetryInfo) can be provoked, and a
    // short request timeout for the deadline that expires upstream.
    let stack = Stack::start("--max-in-flight 1 --request-timeout 2s", &["a", "b"]).await;
    let crc = token("crc.ohio");
    let viewer = token("viewer.juno");
    let mut direct = client(&stack.a).await;
    let created = direct
        .upsert_participant(authed(
            UpsertParticipantRequest {
                contact: Some(ParticipantContact {
                    first_name: Some("Ada".into()),
                    email_address: Some("ada@example.org".into()),
                    ..Default::default()
                }),
                ..ohio("SEEN-1")
            },
            &crc,
        ))
        .await
        .expect("seed");
    assert!(created.into_inner().created);

    let long_token = "x".repeat(8 * 1024 - 16);
    let too_long_token = "x".repeat(9 * 1024);
    let bad_email = UpsertParticipantRequest {
        contact: Some(ParticipantContact {
            first_name: Some("A".repeat(36)),
            email_address: Some("not-an-email".into()),
            ..Default::default()
        }),
        ..ohio("BAD-1")
    };
    let just_under = upsert_of_size(MAX_MESSAGE - 8);
    let just_over = upsert_of_size(MAX_MESSAGE + 8);
    assert!(just_under.encoded_len() <= MAX_MESSAGE && just_over.encoded_len() > MAX_MESSAGE);

    // Each case: a name and the call, made through a given client.
    type Call = Box<
        dyn Fn(
            ParticipantServiceClient<Channel>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>,
    >;
    let mut cases: Vec<(&str, Call)> = Vec::new();
    macro_rules! case {
        ($name:expr, $method:ident, $req:expr, $token:expr) => {{
            let req = $req.clone();
            let token: String = $token.to_owned();
            cases.push((
                $name,
                Box::new(move |mut c: ParticipantServiceClient<Channel>| {
                    let req = req.clone();
                    let token = token.clone();
                    Box::pin(async move { answer(c.$method(authed(req, &token)).await) })
                }),
            ));
        }};
    }
    case!("get: found", get_participant, get_ohio("SEEN-1"), crc);
    case!("get: not found", get_participant, get_ohio("NOBODY"), crc);
    case!("get: viewer", get_participant, get_ohio("SEEN-1"), viewer);
    case!(
        "upsert: validation (ErrorInfo, BadRequest)",
        upsert_participant,
        bad_email,
        crc
    );
    case!(
        "upsert: not allowed",
        upsert_participant,
        ohio("SEEN-2"),
        viewer
    );
    case!(
        "upsert: no such site",
        upsert_participant,
        UpsertParticipantRequest {
            scope: Some(upsert_participant_request::Scope::Site(SiteScope {
                study_oid: JUNO.into(),
                site_oid: "S_NOWHERE".into(),
            })),
            ..ohio("SEEN-3")
        },
        crc
    );
    case!(
        "upsert: a message just under the limit",
        upsert_participant,
        just_under,
        crc
    );
    case!(
        "upsert: a message just over the limit",
        upsert_participant,
        just_over,
        crc
    );
    case!(
        "get: an unknown 8 KiB token",
        get_participant,
        get_ohio("SEEN-1"),
        long_token
    );
    case!(
        "get: a 9 KiB token",
        get_participant,
        get_ohio("SEEN-1"),
        too_long_token
    );
    case!(
        "get: a forged token",
        get_participant,
        get_ohio("SEEN-1"),
        format!("{}x", &crc[..crc.len() - 1])
    );

    let proxies = [
        ("nginx", client(&stack.nginx).await),
        ("HAProxy", client(&stack.haproxy).await),
    ];
    for (name, call) in &cases {
        let want = call(direct.clone()).await;
        for (proxy, c) in &proxies {
            // Twice: the proxies balance, so both replicas answer.
            for _ in 0..2 {
                assert_eq!(call(c.clone()).await, want, "{name} through {proxy}");
            }
        }
        match &want {
            Answer::Ok(bytes) => {
                println!(
                    "equal through nginx and HAProxy: {name}: OK, {} bytes",
                    bytes.len()
                )
            }
            failed => println!("equal through nginx and HAProxy: {name}: {failed:?}"),
        }
    }
    match cases[6].1(direct.clone()).await {
        Answer::Failed { code, .. } => assert_ne!(code, Code::ResourceExhausted, "just under"),
        Answer::Ok(_) => {}
    }
    assert!(matches!(
        cases[7].1(direct.clone()).await,
        Answer::Failed {
            code: Code::ResourceExhausted,
            ..
        }
    ));

    // Health through the proxies.
    for addr in [&stack.nginx, &stack.haproxy] {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
    }

    // With the participants table locked, calls wait in the database: a deadline expires
    // upstream, and a replica with its one call in flight refuses more (RetryInfo).
    let db = stack.db().await;
    let lock = db.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE participants IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut held = Vec::new();
    for addr in [&stack.a, &stack.b] {
        let mut c = client(addr).await;
        let crc = crc.clone();
        held.push(tokio::spawn(async move {
            answer(c.get_participant(authed(get_ohio("SEEN-1"), &crc)).await)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let overloaded = answer(
        direct
            .get_participant(authed(get_ohio("SEEN-1"), &crc))
            .await,
    );
    assert!(
        matches!(
            &overloaded,
            Answer::Failed { code: Code::ResourceExhausted, details, .. }
                if details.iter().any(|d| d.starts_with("RetryInfo"))
        ),
        "{overloaded:?}"
    );
    for (proxy, c) in &proxies {
        let through = answer(
            c.clone()
                .get_participant(authed(get_ohio("SEEN-1"), &crc))
                .await,
        );
        assert_eq!(through, overloaded, "overloaded, through {proxy}");
    }
    println!("equal through nginx and HAProxy: overloaded (RetryInfo): {overloaded:?}");
    // The held calls end at the replicas' 2 s request timeout: DEADLINE_EXCEEDED.
    let mut expired = Vec::new();
    for h in held {
        expired.push(h.await.expect("task"));
    }
    assert!(
        matches!(
            &expired[0],
            Answer::Failed {
                code: Code::DeadlineExceeded,
                ..
            }
        ),
        "{:?}",
        expired[0]
    );
    assert_eq!(expired[0], expired[1]);
    for (proxy, c) in &proxies {
        let started = Instant::now();
        let through = answer(
            c.clone()
                .get_participant(authed(get_ohio("SEEN-1"), &crc))
                .await,
        );
        assert_eq!(through, expired[0], "deadline upstream, through {proxy}");
        assert!(started.elapsed() >= Duration::from_millis(1900));
    }
    println!(
        "equal through nginx and HAProxy: deadline expired upstream: {:?}",
        expired[0]
    );
    lock.rollback().await.expect("unlock");
}

/// Starts the grpcio load client (scripts/proxies-load.py) against `addr`; it writes the
/// acknowledged calls to `out` and its summary to stdout (`load_summary`).
fn spawn_load(addr: &str, clients: usize, duration: Duration, out: &Path) -> std::process::Child {
    let python = std::env::var("PARTICIPANTS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    Command::new(python)
        .arg(Path::new(ROOT).join("scripts/proxies-load.py"))
        .args(["--target", addr, "--token", &token("crc.boston")])
        .args(["--clients", &clients.to_string()])
        .args(["--duration", &duration.as_secs_f64().to_string()])
        .arg("--out")
        .arg(out)
        .env("PYTHONPATH", Path::new(ROOT).join("sdks/python/gen"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run scripts/proxies-load.py")
}

fn load_summary(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("load client");
    assert!(out.status.success(), "the load client failed");
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

/// Rolling restart under load: 4 clients with the gRPC retry policy call through `proxy` for
/// 30 s while each replica in turn gets `signal` (TERM: drains; KILL: calls in flight on it
/// break, and the clients retry them with their request_id) and is started again.
async fn rolling_restart(proxy: Proxy, signal: &str) {
    let stack = Stack::start("--drain-delay 500ms", &["a", "b"]).await;
    let out = stack.dir.path().join("acked.jsonl");
    let load = spawn_load(stack.addr(proxy), 4, Duration::from_secs(30), &out);
    let mut drains = Vec::new();
    std::thread::sleep(Duration::from_secs(4));
    for r in ["a", "b", "a", "b"] {
        let before = stack.calls_per_replica(proxy);
        let drain = stack.stop_replica(r, signal);
        let restarted = Instant::now();
        stack.script(&["replica", r]);
        let down = restarted.elapsed() + drain;
        drains.push(drain);
        println!(
            "{proxy:?}: replica-{r} exited {} ms after SIG{signal}, listening again {} ms after it (calls so far {before:?})",
            drain.as_millis(),
            down.as_millis()
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    let summary = load_summary(load);
    let split = stack.calls_per_replica(proxy);
    println!(
        "{proxy:?}: load {summary}; calls per replica {split:?}; {}",
        stack.proxy_retries(proxy)
    );
    assert_eq!(summary["failed"], 0, "failed calls through {proxy:?}");

    // Every acknowledged write exactly once: one creation per request_id, no other.
    let acked: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("acked calls")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(acked.len() > 100, "{} calls", acked.len());
    let ids: HashSet<&str> = acked
        .iter()
        .map(|a| a["request_id"].as_str().expect("id"))
        .collect();
    let keys: HashSet<&str> = acked
        .iter()
        .map(|a| a["subject_key"].as_str().expect("key"))
        .collect();
    assert_eq!(ids.len(), acked.len());
    assert_eq!(keys.len(), acked.len(), "a Participant acknowledged twice");
    assert!(
        acked.iter().all(|a| a["created"] == true),
        "an acknowledged creation answered as an update"
    );
    let db = stack.db().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*)::bigint AS n, COUNT(DISTINCT request_id)::bigint AS ids \
             FROM audit_events WHERE event_type = 'PARTICIPANT_CREATED'",
        ))
        .await
        .expect("query")
        .expect("row");
    let created: i64 = row.try_get("", "n").expect("n");
    let distinct: i64 = row.try_get("", "ids").expect("ids");
    let participants: i64 = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*)::bigint AS n FROM participants",
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get("", "n")
        .expect("n");
    println!(
        "{proxy:?}: {} acknowledged, {created} created in the database ({distinct} request ids), duplicates {}",
        acked.len(),
        created - distinct
    );
    assert_eq!(created, distinct, "a request executed twice");
    assert_eq!(created as usize, acked.len(), "a write nobody acknowledged");
    assert_eq!(participants as usize, acked.len());
    let max = drains.iter().max().expect("drains");
    println!(
        "{proxy:?}: SIG{signal} to exit {:?} ms (max {} ms)",
        drains.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        max.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn a_rolling_restart_behind_nginx_fails_no_call_and_writes_each_once() {
    if enabled() {
        rolling_restart(Proxy::Nginx, "TERM").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn a_rolling_restart_behind_haproxy_fails_no_call_and_writes_each_once() {
    if enabled() {
        rolling_restart(Proxy::Haproxy, "TERM").await;
    }
}

/// Not a drain: each replica in turn is killed with calls in flight. The proxy answers those
/// UNAVAILABLE, the clients' retry policy sends them again with the same request_id, and still
/// no call fails and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn replicas_killed_behind_nginx_fail_no_call_and_write_each_once() {
    if enabled() {
        rolling_restart(Proxy::Nginx, "KILL").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn replicas_killed_behind_haproxy_fail_no_call_and_write_each_once() {
    if enabled() {
        rolling_restart(Proxy::Haproxy, "KILL").await;
    }
}

/// A replica that joins under load gets a share of the calls within 60 s.
async fn a_joining_replica_gets_calls(proxy: Proxy) {
    let stack = Stack::start("", &["a"]).await;
    let out = stack.dir.path().join("acked.jsonl");
    let load = spawn_load(stack.addr(proxy), 4, Duration::from_secs(20), &out);
    std::thread::sleep(Duration::from_secs(5));
    let before = stack.calls_per_replica(proxy);
    assert_eq!(before.get("replica-b").copied().unwrap_or(0), 0);
    stack.script(&["replica", "b"]);
    let joined = Instant::now();
    let mut first_call = None;
    let mut at_10s = None;
    while joined.elapsed() < Duration::from_secs(14) {
        let now = stack.calls_per_replica(proxy);
        if first_call.is_none() && now.get("replica-b").copied().unwrap_or(0) > 0 {
            first_call = Some(joined.elapsed());
        }
        if at_10s.is_none() && joined.elapsed() >= Duration::from_secs(10) {
            at_10s = Some(now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary = load_summary(load);
    let after = at_10s.expect("sampled");
    let gained = |r: &str| after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0);
    let (a, b) = (gained("replica-a"), gained("replica-b"));
    println!(
        "{proxy:?}: replica-b joined; first call after {} ms; in the 10 s after joining: replica-a {a}, replica-b {b} ({}%); load {summary}",
        first_call.map_or(-1, |d| d.as_millis() as i64),
        100 * b / (a + b).max(1)
    );
    assert_eq!(summary["failed"], 0);
    let first = first_call.expect("the joined replica got calls");
    assert!(first < Duration::from_secs(60));
    assert!(
        b * 4 >= a + b,
        "replica-b got less than a quarter: {a} / {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn a_replica_that_joins_behind_nginx_gets_its_share() {
    if enabled() {
        a_joining_replica_gets_calls(Proxy::Nginx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, HAProxy, PostgreSQL and python3 with grpcio: scripts/ci-proxies.sh"]
async fn a_replica_that_joins_behind_haproxy_gets_its_share() {
    if enabled() {
        a_joining_replica_gets_calls(Proxy::Haproxy).await;
    }
}
