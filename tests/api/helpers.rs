//! Test harness: a server on 127.0.0.1 port 0 with a fresh database per test, called through
//! the generated client.

use std::{collections::HashMap, time::Duration};

use participants::{
    app::{App, Settings},
    auth::{JwtSettings, mint_hs256},
    catalog::Catalog,
    config::DataKeyArgs,
    grpc::server::ServerConfig,
    pb::{
        self, GetParticipantRequest, Participant, ParticipantContact, SiteScope, StudyScope,
        UpsertParticipantRequest, UpsertParticipantResponse,
        participant_service_client::ParticipantServiceClient,
    },
    service::{Fault, Participants},
    store::{DbConfig, Store},
};
use sea_orm::{ConnectionTrait, Database};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

pub const CATALOG: &str = include_str!("../fixtures/catalog.toml");
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const DATA_KEY: [u8; 32] = [7; 32];
pub const JUNO: &str = "S_JUNO(PROD)";
pub const OHIO: &str = "S_OHI0(TEST)";
pub const TEXAS: &str = "S_TEXAS(TEST)";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where PostgreSQL tests create their databases: an admin URL such as
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_ENV: &str = "PARTICIPANTS_TEST_POSTGRES_URL";

/// A fresh, empty database for one test, and what keeps it alive.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn fresh_database(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
            TestDb {
                url,
                _dir: Some(dir),
            }
        }
        Backend::Postgres => {
            let admin = std::env::var(POSTGRES_ENV)
                .unwrap_or_else(|_| panic!("{POSTGRES_ENV} must name a PostgreSQL server"));
            // Named with the hour of creation, so that later runs can drop what earlier runs
            // left behind (a test cannot drop its own database while its server still holds it).
            let now = chrono::Utc::now().timestamp();
            let name = format!("participants_test_{now}_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            drop_stale_test_databases(&conn, now).await;
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            TestDb {
                url: format!("{base}/{name}"),
                _dir: None,
            }
        }
    }
}

/// Drops test databases created more than two hours ago, and unused ones from before names
/// carried the time.
async fn drop_stale_test_databases(conn: &sea_orm::DatabaseConnection, now: i64) {
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE datname LIKE 'participants\\_test\\_%'",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix("participants_test_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(t, _)| t.parse::<i64>().ok());
        // An old one is dropped even if a crashed run left a connection open; one without a
        // time only when nobody uses it.
        let sql = match created {
            Some(t) if now - t > 2 * 3600 => {
                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
            }
            Some(_) => continue,
            None => format!("DROP DATABASE IF EXISTS \"{name}\""),
        };
        let _ = conn.execute_unprepared(&sql).await;
    }
}

/// A running server with its own database.
pub struct TestApp {
    pub store: Store,
    /// The server's use cases (for refreshing its catalog after hand edits).
    pub participants: Participants,
    pub client: ParticipantServiceClient<Channel>,
    pub channel: Channel,
    pub settings: JwtSettings,
    /// Where gRPC is served.
    pub addr: std::net::SocketAddr,
    /// The REST route's base, `http://127.0.0.1:PORT`.
    pub http: String,
    /// The admin endpoint's base (`/metrics`, `/livez`, `/readyz`).
    pub admin: String,
    app: Option<App>,
    _db: TestDb,
}

pub struct AppOptions {
    pub backend: Backend,
    pub catalog: &'static str,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub fault: Fault,
    /// Accept HS256 tokens signed with `SECRET`.
    pub hs256: bool,
    /// Accept RS256/ES256 tokens signed with the keys of `tests/fixtures/jwt/`.
    pub jwks: bool,
    /// Transport limits; `test_server_config()` when absent.
    pub server: Option<ServerConfig>,
    /// Group-commit settings; the defaults when absent.
    pub batching: Option<participants::service::writer::BatchConfig>,
    /// A listener bound by the test (so it knows the address); a fresh one when absent.
    pub listener: Option<tokio::net::TcpListener>,
}

/// The test JWKS and its private keys.
pub const JWKS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/jwks.json");
pub const ES256_PRIVATE_PEM: &str = include_str!("../fixtures/jwt/es256-private.pem");
pub const RS256_PRIVATE_PEM: &str = include_str!("../fixtures/jwt/rs256-private.pem");

impl AppOptions {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            catalog: CATALOG,
            issuer: None,
            audience: None,
            fault: Fault::None,
            hs256: true,
            jwks: false,
            server: None,
            batching: None,
            listener: None,
        }
    }
}

/// The transport settings of the tests: the defaults, but health noticing a database change
/// within 200 ms and a shorter grace period.
pub fn test_server_config() -> ServerConfig {
    ServerConfig {
        health_interval: Duration::from_millis(200),
        grace_period: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

/// The settings of a test server on `db`: every listener on a free port, the defaults for
/// the rest but what `options` says.
pub fn test_settings(options: &AppOptions, db: &TestDb) -> Settings {
    let mut db_config = DbConfig::new(db.url.clone());
    db_config.max_connections = 5;
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Settings {
        listen: any_port,
        http_listen: Some(any_port),
        admin_listen: Some(any_port),
        db: db_config,
        jwt: JwtSettings {
            hs256_secret: options.hs256.then(|| SECRET.as_bytes().to_vec().into()),
            jwks_file: options.jwks.then(|| JWKS_FILE.into()),
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
        },
        data: DataKeyArgs {
            data_key: Some(hex::encode(DATA_KEY).into()),
            data_key_previous: Vec::new(),
        },
        catalog: Some(Catalog::parse(options.catalog).expect("catalog")),
        server: options.server.clone().unwrap_or_else(test_server_config),
        batching: options.batching.unwrap_or_default(),
        fault: options.fault,
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(AppOptions::new(backend)).await
    }

    pub async fn spawn_with(mut options: AppOptions) -> Self {
        let db = fresh_database(options.backend).await;
        let settings = test_settings(&options, &db);
        let jwt = settings.jwt.clone();
        let app = match options.listener.take() {
            Some(listener) => App::build_on(settings, listener).await,
            None => App::build(settings).await,
        }
        .expect("the server starts");
        let addr = app.grpc_addr();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the test server");
        Self {
            store: app.store().clone(),
            participants: app.participants().clone(),
            client: ParticipantServiceClient::new(channel.clone()),
            channel,
            settings: jwt,
            addr,
            http: format!("http://{}", app.http_addr().expect("REST is on")),
            admin: format!("http://{}", app.admin_addr().expect("admin is on")),
            app: Some(app),
            _db: db,
        }
    }

    /// The running server.
    pub fn app(&self) -> &App {
        self.app
            .as_ref()
            .expect("the server runs until the test app is dropped")
    }

    /// Drains and stops the server, waiting until every task it started has ended.
    pub async fn shutdown(mut self) -> Result<(), String> {
        let app = self.app.take().expect("running");
        app.shutdown().await
    }

    pub fn token(&self, user: &str) -> String {
        mint_hs256(&self.settings, user, Duration::from_secs(600)).expect("token")
    }

    pub fn authed<T>(&self, user: &str, message: T) -> Request<T> {
        with_token(message, &self.token(user))
    }

    pub async fn upsert(
        &self,
        user: &str,
        req: UpsertParticipantRequest,
    ) -> Result<UpsertParticipantResponse, Status> {
        self.client
            .clone()
            .upsert_participant(self.authed(user, req))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get(&self, user: &str, req: GetParticipantRequest) -> Result<Participant, Status> {
        self.client
            .clone()
            .get_participant(self.authed(user, req))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Runs a SQL query returning one integer.
    /// The admin endpoint's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let conn = self.store.connection();
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }

    /// Runs SQL by hand; the server sees catalog changes at once (not at its next poll).
    pub async fn execute(&self, sql: &str) {
        self.store
            .connection()
            .execute_unprepared(sql)
            .await
            .expect("statement");
        self.participants
            .refresh_catalog()
            .await
            .expect("catalog refresh");
    }

    /// Asserts that every study's and site's enrolled counter equals a row-by-row count.
    pub async fn assert_counters_match(&self) {
        for (table, column) in [("studies", "study_id"), ("sites", "site_id")] {
            let sql = format!(
                "SELECT COUNT(*) FROM {table} t WHERE t.enrolled <> (SELECT COUNT(*) FROM participants p \
                 WHERE p.{column} = t.id AND p.status IN ('available', 'signed'))"
            );
            assert_eq!(
                self.scalar(&sql).await,
                0,
                "{table}: enrolled counters differ from counts"
            );
        }
        assert!(
            self.scalar("SELECT COUNT(*) FROM studies WHERE enrolled > 0")
                .await
                > 0
                || self.participant_count().await == 0,
            "counters are kept at all"
        );
    }

    pub async fn audit_count(&self) -> i64 {
        self.scalar("SELECT COUNT(*) FROM audit_events").await
    }

    pub async fn participant_count(&self) -> i64 {
        self.scalar("SELECT COUNT(*) FROM participants").await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Starts the shutdown; the server's tasks end by themselves.
        if let Some(app) = self.app.take() {
            app.shutdown_token().cancel();
        }
    }
}

pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

pub fn site(study: &str, site: &str) -> Option<pb::upsert_participant_request::Scope> {
    Some(pb::upsert_participant_request::Scope::Site(SiteScope {
        study_oid: study.into(),
        site_oid: site.into(),
    }))
}

pub fn study(study: &str) -> Option<pb::upsert_participant_request::Scope> {
    Some(pb::upsert_participant_request::Scope::Study(StudyScope {
        study_oid: study.into(),
    }))
}

pub fn get_site(study: &str, site: &str, key: &str) -> GetParticipantRequest {
    GetParticipantRequest {
        scope: Some(pb::get_participant_request::Scope::Site(SiteScope {
            study_oid: study.into(),
            site_oid: site.into(),
        })),
        subject_key: key.into(),
    }
}

pub fn get_study(study: &str, key: &str) -> GetParticipantRequest {
    GetParticipantRequest {
        scope: Some(pb::get_participant_request::Scope::Study(StudyScope {
            study_oid: study.into(),
        })),
        subject_key: key.into(),
    }
}

/// A site-level upsert at Juno / Ohio.
pub fn at_ohio(key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site(JUNO, OHIO),
        subject_key: key.into(),
        ..Default::default()
    }
}

/// A site-level upsert in the capped study (study cap 10; site B cap 2).
pub fn capped(site_oid: &str, key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site("S_CAPPED", site_oid),
        subject_key: key.into(),
        ..Default::default()
    }
}

/// Contact data set by `f`, for a request's `contact`.
pub fn contact(f: impl FnOnce(&mut ParticipantContact)) -> Option<ParticipantContact> {
    let mut c = ParticipantContact::default();
    f(&mut c);
    Some(c)
}

/// The seed's sample request.
pub fn seed_request() -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site(JUNO, OHIO),
        subject_key: "OHIO-5".into(),
        contact: Some(ParticipantContact {
            last_name: Some("ОНІО".into()),
            email_address: Some("OHIOS@openclinica.com".into()),
            phone_number: Some("+1 1234567890".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a failed call carried.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub reason: String,
    pub domain: String,
    pub metadata: HashMap<String, String>,
    /// (field, reason) of each field violation, in order.
    pub violations: Vec<(String, String)>,
    pub retry_delay: Option<Duration>,
}

impl Failure {
    pub fn error_code(&self) -> &str {
        self.metadata.get("errorCode").map_or("", String::as_str)
    }
}

pub fn failure(status: &Status) -> Failure {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    let violations = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.reason))
                .collect()
        })
        .unwrap_or_default();
    Failure {
        code: status.code(),
        message: status.message().to_owned(),
        reason: info.reason,
        domain: info.domain,
        metadata: info.metadata,
        violations,
        retry_delay: status.get_details_retry_info().and_then(|r| r.retry_delay),
    }
}

/// Asserts a call failed with `code` and `reason`, and returns the failure.
#[track_caller]
pub fn expect_failure<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) -> Failure {
    let status = result.expect_err("the call should have failed");
    let f = failure(&status);
    assert_eq!(f.code, code, "code of {f:?}");
    assert_eq!(f.reason, reason, "reason of {f:?}");
    assert_eq!(f.domain, "participants.openclinica.v1");
    let expected_code = participants::domain::Reason::ALL
        .iter()
        .find(|r| r.as_str() == reason)
        .map(|r| r.error_code())
        .expect("a known reason");
    assert_eq!(f.error_code(), expected_code, "errorCode of {f:?}");
    f
}

/// Runs each named test body against SQLite, and against PostgreSQL when `.ci/run` provides
/// a server (ignored otherwise).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Lifts the audit trail's append-only guards, as someone with database rights could.
pub async fn drop_audit_guards(app: &TestApp, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_events_no_replace",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "DROP TRIGGER audit_events_no_truncate ON audit_events",
        ],
    };
    for sql in statements {
        app.store
            .connection()
            .execute_unprepared(sql)
            .await
            .expect(sql);
    }
}
