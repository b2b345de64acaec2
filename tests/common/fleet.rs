//! Shared by the tests that run several `participants serve` processes on one PostgreSQL
//! database: the catalog they share, starting them, minting tokens, calling them, counting rows.
#![allow(dead_code)] // each test binary uses its own part
use std::{process::Command, time::Duration};

use participants::pb::{
    SiteScope, UpsertParticipantRequest, UpsertParticipantResponse,
    participant_service_client::ParticipantServiceClient, upsert_participant_request::Scope,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tonic::{Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::serve;

pub const BIN: &str = env!("CARGO_BIN_EXE_participants");
pub const SECRET: &str = "replica-secret-replica-secret-0123456789";
pub const DATA_KEY: &str = "cmVwbGljYS10ZXN0LWRhdGEta2V5LTMyLWJ5dGVzISE=";
pub const CATALOG: &str = r#"
[[study]]
oid = "S_RACE"
enrollment_cap = 25
participate_enabled = true
  [[study.site]]
  oid = "S_RACE_A"
  [[study.site]]
  oid = "S_RACE_B"

[[study]]
oid = "S_KEY"
  [[study.site]]
  oid = "S_KEY_A"

[[role]]
user = "dm.race"
study = "S_RACE"
role = "data_manager"

[[role]]
user = "dm.key"
study = "S_KEY"
role = "data_manager"
"#;

pub fn admin_url() -> String {
    std::env::var("PARTICIPANTS_TEST_POSTGRES_URL")
        .expect("PARTICIPANTS_TEST_POSTGRES_URL must name a PostgreSQL server")
}

/// A fresh database on the server of `PARTICIPANTS_TEST_POSTGRES_URL`; returns its URL and name.
pub async fn fresh_database() -> (String, String) {
    fresh_database_on(&admin_url()).await
}

/// A fresh database on the server whose admin URL is `admin`; returns its URL and name.
pub async fn fresh_database_on(admin: &str) -> (String, String) {
    let admin = admin.to_owned();
    let name = format!("participants_replicas_{}", uuid::Uuid::new_v4().simple());
    let conn = Database::connect(&admin).await.expect("connect");
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    conn.close().await.ok();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(b, _)| b)
        .to_owned();
    (format!("{base}/{name}"), name)
}

/// Starts `n` replicas at once on one database: migrations and the catalog race at start-up.
pub fn start_replicas(
    n: usize,
    db_url: &str,
    catalog: &std::path::Path,
    extra: &[&str],
) -> Vec<serve::Running> {
    let starting: Vec<_> = (0..n)
        .map(|_| {
            serve::spawn(
                Command::new(BIN)
                    .args([
                        "serve",
                        "--listen",
                        "127.0.0.1:0",
                        "--log-format",
                        "json",
                        "--catalog",
                    ])
                    .arg(catalog)
                    .args(extra)
                    .env("PARTICIPANTS_DATABASE_URL", db_url)
                    .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
                    .env("PARTICIPANTS_DATA_KEY", DATA_KEY)
                    .env("PARTICIPANTS_LOG", "warn,participants=info"),
            )
        })
        .collect();
    starting
        .into_iter()
        .map(|(child, log)| serve::wait_until_listening(child, log, Duration::from_secs(60)))
        .collect()
}

pub fn token(user: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--user", user, "--ttl", "1h"])
        .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
        .output()
        .expect("token");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

pub async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

pub fn request(study: &str, site: &str, key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: Some(Scope::Site(SiteScope {
            study_oid: study.into(),
            site_oid: site.into(),
        })),
        subject_key: key.into(),
        ..Default::default()
    }
}

pub async fn call(
    channel: Channel,
    token: &str,
    req: UpsertParticipantRequest,
) -> Result<UpsertParticipantResponse, Status> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    ParticipantServiceClient::new(channel)
        .upsert_participant(r)
        .await
        .map(tonic::Response::into_inner)
}

pub async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .expect("query")
    .expect("row")
    .try_get_by_index::<i64>(0)
    .expect("int")
}

pub async fn health(channel: &Channel) -> i32 {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}
