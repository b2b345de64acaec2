//! A SQLite-backed server killed with SIGKILL under load loses no acknowledged write: group
//! commit answers a caller only after the commit that holds its write (synchronous=FULL).

#[path = "common/serve.rs"]
mod serve;

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use participants::{
    auth::{JwtSettings, mint_hs256},
    pb::{
        ParticipantContact, SiteScope, UpsertParticipantRequest,
        participant_service_client::ParticipantServiceClient, upsert_participant_request::Scope,
    },
};
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_participants");
const SECRET: &str = "crash-secret-crash-secret-crash-0123456789";
const DATA_KEY: &str = "Y3Jhc2gtdGVzdC1kYXRhLWtleS0zMi1ieXRlcyEhISE=";
const CATALOG: &str = r#"
[[study]]
oid = "S_CRASH"
  [[study.site]]
  oid = "S_CRASH_A"
[[role]]
user = "dm.crash"
study = "S_CRASH"
role = "data_manager"
"#;

fn start(dir: &std::path::Path, url: &str) -> serve::Running {
    let (child, log) = serve::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database-url")
            .arg(url)
            .arg("--catalog")
            .arg(dir.join("catalog.toml"))
            .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
            .env("PARTICIPANTS_DATA_KEY", DATA_KEY),
    );
    serve::wait_until_listening(child, log, Duration::from_secs(30))
}

fn create(key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: Some(Scope::Site(SiteScope {
            study_oid: "S_CRASH".into(),
            site_oid: "S_CRASH_A".into(),
        })),
        subject_key: key.into(),
        contact: Some(ParticipantContact {
            last_name: Some("Kovalenko".into()),
            city: Some("Kyiv".into()),
            ..Default::default()
        }),
        request_id: format!("crash-{key}"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sqlite_server_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("catalog.toml"), CATALOG).expect("catalog");
    let url = format!("sqlite://{}/crash.db?mode=rwc", dir.path().display());
    let mut server = start(dir.path(), &url);
    let token = mint_hs256(
        &JwtSettings {
            hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
            ..Default::default()
        },
        "dm.crash",
        Duration::from_secs(600),
    )
    .expect("token");
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    // Eight writers until the kill; each keeps the keys whose creation was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (channel, token, acknowledged) =
                (channel.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut client = ParticipantServiceClient::new(channel);
                for n in 0.. {
                    let key = format!("K{w}-{n:05}");
                    let mut req = tonic::Request::new(create(&key));
                    req.metadata_mut().insert(
                        "authorization",
                        format!("Bearer {token}").parse().expect("ascii"),
                    );
                    match client.upsert_participant(req).await {
                        Ok(r) => {
                            assert!(r.get_ref().created, "{key} is new");
                            acknowledged.lock().expect("lock").push(key);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().expect("lock").len() < 200
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    for w in writers {
        w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 200, "the load ran");

    // The restarted server opens the same file; every acknowledged write is there, once, with
    // its contact row and its audit event.
    let restarted = start(dir.path(), &url);
    let db = Database::connect(&url).await.expect("open the file");
    let scalar = |sql: String| {
        let db = db.clone();
        async move {
            db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect("query")
                .expect("row")
                .try_get_by_index::<i64>(0)
                .expect("integer")
        }
    };
    let stored = scalar("SELECT COUNT(*) FROM participants".into()).await;
    for key in &acknowledged {
        let found = scalar(format!(
            "SELECT COUNT(*) FROM participants p \
             JOIN participant_contacts c ON c.participant_id = p.id \
             JOIN audit_events a ON a.participant_id = p.id AND a.event_type = 'PARTICIPANT_CREATED' \
             WHERE p.subject_key = '{key}'"
        ))
        .await;
        assert_eq!(found, 1, "{key} was acknowledged");
    }
    println!(
        "{} creations acknowledged before SIGKILL, {stored} stored after restart",
        acknowledged.len()
    );
    assert!(usize::try_from(stored).unwrap_or(0) >= acknowledged.len());
    drop(restarted);
}
