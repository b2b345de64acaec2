//! Command line and `PARTICIPANTS_*` environment configuration (SPEC section 10).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::app::Settings;
use crate::auth::JwtSettings;
use crate::crypto::{self, DataCipher};
use crate::grpc::server::ServerConfig;
use crate::service::{import::ImportConfig, writer::BatchConfig};
use crate::store::DbConfig;

pub use crate::store::DEFAULT_DATABASE_URL;

/// Every default below is read from `Settings::default()` (and what it is made of), the one
/// place where default values are written.
fn defaults() -> Settings {
    Settings::default()
}

/// A duration as a default value, in the form `--help` shows and the parser reads back.
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[derive(Debug, Parser)]
#[command(
    name = "participants",
    version,
    about = "The participant service: add, update and register clinical-trial participants over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, env = "PARTICIPANTS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (migrations and the catalog are applied first).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Manage the catalog of studies, sites and roles.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Print a development HS256 token signed with the configured secret.
    Token(TokenArgs),
    /// Print a fresh random key for PARTICIPANTS_DATA_KEY.
    DataKey,
    /// Import participants from a CSV file through a running server (ImportParticipants).
    Import(ImportArgs),
    /// Check and export the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-compute every study's hash chain (or one study's): exit 0 when intact, 1 naming the
    /// first event edited, deleted, inserted or reordered. Needs no data key.
    Verify {
        /// Only this study.
        #[arg(long)]
        study: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write a study's audit trail to standard output, oldest first, contact values opened.
    Export {
        /// The study's OID.
        #[arg(long)]
        study: String,
        #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
        format: AuditFormat,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        data: DataKeyArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated, with a header row.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Apply a catalog file idempotently, in one transaction.
    Apply {
        /// The TOML catalog file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The longest duration any setting takes: far beyond any sensible value, and far enough below
/// `Duration`'s range that sums and small multiples of settings cannot overflow.
const LONGEST: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 1h)"))?;
    if d > LONGEST {
        return Err("must be at most 10 years".to_owned());
    }
    Ok(d)
}

/// The database's statement timeout (SQLite's busy timeout): both databases take it in
/// milliseconds as a 32-bit number, so at most 24 days (sqlx panics past it on SQLite).
fn parse_statement_timeout(s: &str) -> Result<Duration, String> {
    duration_within(
        s,
        Duration::ZERO,
        Duration::from_secs(24 * 24 * 3600),
        "must be at most 24 days",
    )
}

/// A call's time limit: some time (zero would refuse every write) and at most an hour.
fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    duration_within(
        s,
        Duration::from_millis(1),
        Duration::from_secs(3600),
        "must be between 1ms and 1h",
    )
}

/// A duration between `min` and `max`, or `refusal`.
fn duration_within(
    s: &str,
    min: Duration,
    max: Duration,
    refusal: &str,
) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(min..=max).contains(&d) {
        return Err(refusal.to_owned());
    }
    Ok(d)
}

/// A count setting, between `MIN` and `MAX`: values past these are mistakes (a zero that would
/// be read as one, or sizes that would allocate the machine away), refused at start-up. The
/// load generator's counts use it too.
pub fn count<const MIN: usize, const MAX: usize>(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number between {MIN} and {MAX}"))?;
    if !(MIN..=MAX).contains(&n) {
        return Err(format!("must be between {MIN} and {MAX}"));
    }
    Ok(n)
}

fn pool_size(s: &str) -> Result<u32, String> {
    count::<1, 10_000>(s).map(|n| n as u32)
}

fn parse_health_interval(s: &str) -> Result<Duration, String> {
    duration_within(
        s,
        Duration::from_millis(100),
        Duration::from_secs(60),
        "must be between 100ms and 60s",
    )
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    duration_within(
        s,
        Duration::from_secs(24 * 3600),
        LONGEST,
        "request ids are remembered for at least 24h",
    )
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://FILE?mode=rwc (embedded) or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "PARTICIPANTS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connection pool size.
    #[arg(long, env = "PARTICIPANTS_DB_MAX_CONNECTIONS", value_parser = pool_size, default_value_t = defaults().db.max_connections)]
    pub db_max_connections: u32,
    /// Time allowed to open a database connection.
    #[arg(long, env = "PARTICIPANTS_DB_CONNECT_TIMEOUT", value_parser = parse_duration, default_value = human(defaults().db.connect_timeout))]
    pub db_connect_timeout: Duration,
    /// Time a call may wait for a free pooled connection.
    #[arg(long, env = "PARTICIPANTS_DB_ACQUIRE_TIMEOUT", value_parser = parse_duration, default_value = human(defaults().db.acquire_timeout))]
    pub db_acquire_timeout: Duration,
    /// PostgreSQL statement timeout; SQLite busy timeout.
    #[arg(long, env = "PARTICIPANTS_DB_STATEMENT_TIMEOUT", value_parser = parse_statement_timeout, default_value = human(defaults().db.statement_timeout))]
    pub db_statement_timeout: Duration,
}

impl DbArgs {
    pub fn db_config(&self, default_url: &str) -> DbConfig {
        DbConfig {
            url: self
                .database_url
                .clone()
                .unwrap_or_else(|| default_url.to_owned()),
            max_connections: self.db_max_connections.max(1),
            connect_timeout: self.db_connect_timeout,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// HS256 secret for development tokens, at least 32 bytes.
    #[arg(long, env = "PARTICIPANTS_JWT_HS256_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_hs256_secret: Option<SecretString>,
    /// JWKS file with the RS256 / ES256 public keys of the identity provider (tokens name
    /// their key with `kid`).
    #[arg(long, env = "PARTICIPANTS_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// How often the JWKS file is read again, to pick up rotated keys.
    #[arg(long, env = "PARTICIPANTS_JWT_JWKS_REFRESH", value_parser = parse_duration, default_value = human(defaults().jwks_refresh))]
    pub jwt_jwks_refresh: Duration,
    /// Required `iss` claim, when set.
    #[arg(long, env = "PARTICIPANTS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "PARTICIPANTS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

impl JwtArgs {
    pub fn settings(&self) -> JwtSettings {
        JwtSettings {
            hs256_secret: self
                .jwt_hs256_secret
                .as_ref()
                .filter(|s| !s.expose_secret().is_empty())
                .map(|s| SecretSlice::from(s.expose_secret().as_bytes().to_vec())),
            jwks_file: self.jwt_jwks_file.clone(),
            issuer: self.jwt_issuer.clone().filter(|s| !s.is_empty()),
            audience: self.jwt_audience.clone().filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DataKeyArgs {
    /// Key that encrypts personal data at rest: 32 random bytes as base64
    /// (`participants data-key` makes one).
    #[arg(long, env = "PARTICIPANTS_DATA_KEY", hide_env_values = true, value_parser = secret)]
    pub data_key: Option<SecretString>,
    /// Earlier data keys, comma-separated: they still decrypt what they encrypted.
    #[arg(
        long,
        env = "PARTICIPANTS_DATA_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = secret
    )]
    pub data_key_previous: Vec<SecretString>,
}

impl DataKeyArgs {
    pub fn cipher(&self) -> Result<DataCipher, String> {
        let current = self
            .data_key
            .as_ref()
            .map(|k| k.expose_secret())
            .filter(|k| !k.is_empty())
            .ok_or(
            "PARTICIPANTS_DATA_KEY is not set: personal data is encrypted at rest; make a key with `participants data-key`",
        )?;
        let current =
            crypto::parse_key(current).map_err(|e| format!("PARTICIPANTS_DATA_KEY: {e}"))?;
        let previous = self
            .data_key_previous
            .iter()
            .map(|k| k.expose_secret())
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                crypto::parse_key(k).map_err(|e| format!("PARTICIPANTS_DATA_KEY_PREVIOUS: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DataCipher::new(&current, previous.iter().map(|k| &**k)))
    }
}

/// Secrets from the command line or the environment: kept where they neither print (`Debug`
/// shows `[REDACTED]`) nor linger (wiped on drop).
fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// A socket address, or none (an empty value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl std::fmt::Display for OptionalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => Ok(()),
        }
    }
}

fn parse_optional_addr(value: &str) -> Result<OptionalAddr, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(OptionalAddr(None));
    }
    value.parse().map(|a| OptionalAddr(Some(a))).map_err(|_| {
        format!("{value:?} is not an address like 127.0.0.1:8080 (or empty, for none)")
    })
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARTICIPANTS_LISTEN", default_value_t = defaults().listen)]
    pub listen: SocketAddr,
    /// Address of the original's REST route (SPEC section 11); empty turns it off.
    #[arg(long, env = "PARTICIPANTS_HTTP_LISTEN", default_value_t = OptionalAddr(defaults().http_listen), value_parser = parse_optional_addr)]
    pub http_listen: OptionalAddr,
    /// Address of the admin endpoint (`/metrics`, `/livez`, `/readyz`); empty turns it off.
    #[arg(long, env = "PARTICIPANTS_ADMIN_LISTEN", default_value_t = OptionalAddr(defaults().admin_listen), value_parser = parse_optional_addr)]
    pub admin_listen: OptionalAddr,
    /// Catalog file applied at start-up.
    #[arg(long, env = "PARTICIPANTS_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Demo mode: a fresh embedded SQLite database, the demo catalog, a fresh development
    /// secret and data key, and ready-to-paste grpcurl lines.
    #[arg(long)]
    pub demo: bool,
    /// A call whose write has not started by then answers DEADLINE_EXCEEDED (REQUEST_TIMED_OUT);
    /// a started write always finishes and is answered.
    #[arg(long, env = "PARTICIPANTS_REQUEST_TIMEOUT", value_parser = parse_request_timeout, default_value = human(defaults().server.request_timeout))]
    pub request_timeout: Duration,
    /// Largest accepted request message, in bytes.
    #[arg(long, env = "PARTICIPANTS_MAX_MESSAGE_BYTES", value_parser = count::<1_024, 67_108_864>, default_value_t = defaults().server.max_message_bytes)]
    pub max_message_bytes: usize,
    /// ParticipantService calls in flight at once across all connections; more are refused at
    /// once with RESOURCE_EXHAUSTED (SERVER_OVERLOADED) and a retry delay.
    #[arg(long, env = "PARTICIPANTS_MAX_IN_FLIGHT", value_parser = count::<1, 1_000_000>, default_value_t = defaults().server.max_in_flight)]
    pub max_in_flight: usize,
    /// Client connections held at once; more are closed as soon as they are accepted. Lowered
    /// at start-up to fit the open-file limit.
    #[arg(long, env = "PARTICIPANTS_MAX_CONNECTIONS", value_parser = count::<1, 1_000_000>, default_value_t = defaults().server.max_connections)]
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface before it is closed.
    #[arg(long, env = "PARTICIPANTS_HANDSHAKE_TIMEOUT", value_parser = parse_duration, default_value = human(defaults().server.handshake_timeout))]
    pub handshake_timeout: Duration,
    /// How often idle connections are pinged (HTTP/2 PING).
    #[arg(long, env = "PARTICIPANTS_HTTP2_KEEPALIVE_INTERVAL", value_parser = parse_duration, default_value = human(defaults().server.http2_keepalive_interval))]
    pub http2_keepalive_interval: Duration,
    /// A connection whose ping is not answered within this is closed.
    #[arg(long, env = "PARTICIPANTS_HTTP2_KEEPALIVE_TIMEOUT", value_parser = parse_duration, default_value = human(defaults().server.http2_keepalive_timeout))]
    pub http2_keepalive_timeout: Duration,
    /// How long a request_id's answer is remembered (at least 24h).
    #[arg(long, env = "PARTICIPANTS_IDEMPOTENCY_RETENTION", value_parser = parse_retention, default_value = human(defaults().idempotency_retention))]
    pub idempotency_retention: Duration,
    /// Time in-flight calls get to finish once draining has begun (after the drain delay).
    #[arg(long, env = "PARTICIPANTS_GRACE_PERIOD", value_parser = parse_duration, default_value = human(defaults().server.grace_period))]
    pub grace_period: Duration,
    /// After SIGTERM or SIGINT, how long health answers NOT_SERVING while calls and new
    /// connections are still served, before the listener closes and draining begins. Set it
    /// above the interval at which your load balancer or mesh checks health (e.g. 5s).
    #[arg(long, env = "PARTICIPANTS_DRAIN_DELAY", value_parser = parse_duration, default_value = human(defaults().server.drain_delay))]
    pub drain_delay: Duration,
    /// How often the database is checked for the health service: `NOT_SERVING` while it does
    /// not answer or takes no writes (a read-only session: a demoted primary, whose pooled
    /// connections the check then drops). From 100ms to 60s; keep it below the readiness
    /// probe's period times its failure threshold.
    #[arg(long, env = "PARTICIPANTS_HEALTH_INTERVAL", value_parser = parse_health_interval, default_value = human(defaults().server.health_interval))]
    pub health_interval: Duration,
    /// Connections older than this get a GOAWAY and are closed once their calls are done, so
    /// clients and proxies reconnect and reach replicas that joined since (0s: never).
    #[arg(long, env = "PARTICIPANTS_MAX_CONNECTION_AGE", value_parser = parse_duration, default_value = human(defaults().server.max_connection_age.unwrap_or_default()))]
    pub max_connection_age: Duration,
    /// Browser origins (e.g. `https://app.example.org`, comma-separated) allowed to call through
    /// gRPC-Web across origins (CORS). Empty: same-origin callers only.
    #[arg(
        long,
        env = "PARTICIPANTS_GRPC_WEB_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub grpc_web_cors_origins: Vec<String>,
    /// ImportParticipants: a client that sends no row for this long, while the server waits for
    /// one, has its import ended (DEADLINE_EXCEEDED); the call itself has no overall timeout.
    #[arg(long, env = "PARTICIPANTS_IMPORT_IDLE_TIMEOUT", value_parser = parse_duration, default_value = human(defaults().server.import.idle_timeout))]
    pub import_idle_timeout: Duration,
    /// ImportParticipants: rows of one import validated or written at once. More fill write
    /// batches better; each costs memory until answered.
    #[arg(long, env = "PARTICIPANTS_IMPORT_WINDOW", value_parser = count::<1, 10_000>, default_value_t = defaults().server.import.window)]
    pub import_window: usize,
    /// ImportParticipants calls open at once on this server; more are refused with
    /// SERVER_OVERLOADED (each holds an admission slot and a window of rows while it lasts).
    #[arg(long, env = "PARTICIPANTS_MAX_IMPORTS", value_parser = count::<1, 10_000>, default_value_t = defaults().server.import.max_concurrent)]
    pub max_imports: usize,
    /// ImportParticipants calls open at once per user.
    #[arg(long, env = "PARTICIPANTS_MAX_IMPORTS_PER_USER", value_parser = count::<1, 10_000>, default_value_t = defaults().server.import.max_per_user)]
    pub max_imports_per_user: usize,
    /// Group commit: the most upserts one transaction holds.
    #[arg(long, env = "PARTICIPANTS_WRITE_BATCH_MAX", value_parser = count::<1, 10_000>, default_value_t = defaults().batching.max_batch)]
    pub write_batch_max: usize,
    /// Group commit: how long a writer waits for more upserts once it has one (0: take only
    /// what is queued; batches then form while the previous commit is on its way to disk).
    #[arg(long, env = "PARTICIPANTS_WRITE_BATCH_WAIT", value_parser = parse_duration, default_value = human(defaults().batching.max_wait))]
    pub write_batch_wait: Duration,
    /// Group commit on PostgreSQL: writers working in parallel, chosen by study (SQLite: one).
    #[arg(long, env = "PARTICIPANTS_WRITE_LANES", value_parser = count::<1, 64>, default_value_t = defaults().batching.lanes)]
    pub write_lanes: usize,
    /// `grpc.health.v1.Health/Watch` streams open at once; more are refused with
    /// RESOURCE_EXHAUSTED. A watch ends at the connection age and when draining begins.
    #[arg(long, env = "PARTICIPANTS_MAX_HEALTH_WATCHES", value_parser = count::<1, 1_000_000>, default_value_t = defaults().server.max_health_watches)]
    pub max_health_watches: usize,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub data: DataKeyArgs,
}

impl ServeArgs {
    pub fn batch_config(&self) -> BatchConfig {
        BatchConfig {
            max_batch: self.write_batch_max.max(1),
            max_wait: self.write_batch_wait,
            lanes: self.write_lanes.max(1),
        }
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            request_timeout: self.request_timeout,
            max_message_bytes: self.max_message_bytes,
            max_in_flight: self.max_in_flight.max(1),
            max_connections: self.max_connections.max(1),
            handshake_timeout: self.handshake_timeout,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            grace_period: self.grace_period,
            drain_delay: self.drain_delay,
            health_interval: self.health_interval,
            max_connection_age: Some(self.max_connection_age).filter(|a| !a.is_zero()),
            cors_origins: self.grpc_web_cors_origins.clone(),
            max_health_watches: self.max_health_watches.max(1),
            import: ImportConfig {
                window: self.import_window.max(1),
                idle_timeout: self.import_idle_timeout,
                row_timeout: self.request_timeout,
                max_concurrent: self.max_imports.max(1),
                max_per_user: self.max_imports_per_user.max(1),
            },
            ..ServerConfig::default()
        }
    }

    /// What `serve` runs with: these flags over the defaults. The catalog file is read by the
    /// caller (so that a bad file stops start-up before the database is touched).
    pub fn settings(&self) -> Settings {
        let defaults = Settings::default();
        Settings {
            listen: self.listen,
            http_listen: self.http_listen.0,
            admin_listen: self.admin_listen.0,
            db: self.db.db_config(&defaults.db.url),
            jwt: self.jwt.settings(),
            jwks_refresh: self.jwt.jwt_jwks_refresh,
            data: self.data.clone(),
            server: self.server_config(),
            batching: self.batch_config(),
            idempotency_retention: self.idempotency_retention,
            ..defaults
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CSV file: a header line (OpenClinica bulk names such as ParticipantID, FirstName,
    /// EmailAddress, MobileNumber, SecondaryID, or the seed's subjectKey, phoneNumber, …), then
    /// one participant per line. UTF-8, with or without a byte order mark.
    #[arg(long)]
    pub file: PathBuf,
    /// The study's OID.
    #[arg(long)]
    pub study: String,
    /// The site's OID; without it, participants are added at the study level (a `SiteOID`
    /// column, where present, names each row's site).
    #[arg(long)]
    pub site: Option<String>,
    /// The server (the demo prints `export PARTICIPANTS_ADDR=…`).
    #[arg(long, env = "PARTICIPANTS_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// A bearer token (JWT) for the calls.
    #[arg(long, env = "PARTICIPANTS_TOKEN", hide_env_values = true, value_parser = secret)]
    pub token: Option<SecretString>,
    /// Where the per-row results go (default: FILE.results.csv).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Check every row without writing anything (validate_only).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user the token names (`sub` and `preferred_username`).
    #[arg(long)]
    pub user: String,
    /// How long the token is valid (its `exp`); the server accepts it 30 s longer, for clock
    /// skew between machines.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub ttl: Duration,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values past any sensible setting are refused by the parser, rather than crashing the
    /// server once it serves (an allocation of `--write-batch-max` slots, a duration that
    /// overflows when the server adds it to another) or being read as something else (a zero
    /// count as one).
    #[test]
    fn settings_out_of_range_are_refused() {
        for (flag, value) in [
            ("--request-timeout", "300000000000years"),
            ("--request-timeout", "0s"),
            ("--request-timeout", "2h"),
            ("--grace-period", "300000000000years"),
            ("--write-batch-max", "99999999999999"),
            ("--write-batch-max", "4611686018427387904"),
            ("--write-batch-max", "0"),
            ("--write-lanes", "0"),
            ("--max-in-flight", "0"),
            ("--max-connections", "0"),
            ("--db-max-connections", "0"),
            ("--db-max-connections", "99999999999"),
            ("--max-message-bytes", "0"),
            ("--import-window", "99999999999999"),
            ("--db-statement-timeout", "25d"),
            ("--max-imports", "0"),
        ] {
            let parsed = Cli::try_parse_from(["participants", "serve", flag, value]);
            assert!(parsed.is_err(), "{flag} {value} was accepted");
        }
        for (flag, value) in [
            ("--request-timeout", "150ms"),
            ("--request-timeout", "1h"),
            ("--write-batch-max", "1"),
            ("--write-batch-max", "10000"),
            ("--db-max-connections", "1"),
            ("--idempotency-retention", "3650d"),
        ] {
            let parsed = Cli::try_parse_from(["participants", "serve", flag, value]);
            assert!(parsed.is_ok(), "{flag} {value} was refused");
        }
    }

    /// `serve` with no flag runs with `Settings::default()`: the command line has no
    /// defaults of its own.
    #[test]
    fn serve_without_flags_runs_with_the_default_settings() {
        let cli = Cli::try_parse_from(["participants", "serve"]).expect("parsed");
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let (got, want) = (args.settings(), Settings::default());
        assert_eq!(got.listen, want.listen);
        assert_eq!(got.http_listen, want.http_listen);
        assert_eq!(got.admin_listen, want.admin_listen);
        assert_eq!(got.db.url, want.db.url);
        assert_eq!(got.db.max_connections, want.db.max_connections);
        assert_eq!(got.db.connect_timeout, want.db.connect_timeout);
        assert_eq!(got.db.acquire_timeout, want.db.acquire_timeout);
        assert_eq!(got.db.statement_timeout, want.db.statement_timeout);
        assert_eq!(got.jwks_refresh, want.jwks_refresh);
        assert_eq!(got.idempotency_retention, want.idempotency_retention);
        let (g, w) = (&got.server, &want.server);
        assert_eq!(g.request_timeout, w.request_timeout);
        assert_eq!(g.max_message_bytes, w.max_message_bytes);
        assert_eq!(g.max_in_flight, w.max_in_flight);
        assert_eq!(g.max_concurrent_streams, w.max_concurrent_streams);
        assert_eq!(g.max_connections, w.max_connections);
        assert_eq!(g.handshake_timeout, w.handshake_timeout);
        assert_eq!(g.http2_keepalive_interval, w.http2_keepalive_interval);
        assert_eq!(g.http2_keepalive_timeout, w.http2_keepalive_timeout);
        assert_eq!(g.grace_period, w.grace_period);
        assert_eq!(g.drain_delay, w.drain_delay);
        assert_eq!(g.max_connection_age, w.max_connection_age);
        assert_eq!(g.health_interval, w.health_interval);
        assert_eq!(g.cors_origins, w.cors_origins);
        assert_eq!(g.max_health_watches, w.max_health_watches);
        assert_eq!(g.import.window, w.import.window);
        assert_eq!(g.import.idle_timeout, w.import.idle_timeout);
        assert_eq!(g.import.row_timeout, w.import.row_timeout);
        assert_eq!(g.import.max_concurrent, w.import.max_concurrent);
        assert_eq!(g.import.max_per_user, w.import.max_per_user);
        assert_eq!(got.batching.max_batch, want.batching.max_batch);
        assert_eq!(got.batching.max_wait, want.batching.max_wait);
        assert_eq!(got.batching.lanes, want.batching.lanes);
        assert_eq!(got.catalog_poll, want.catalog_poll);
        assert_eq!(got.idempotency_purge_every, want.idempotency_purge_every);
    }
}

#[cfg(test)]
mod health_interval_tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cli = Cli::try_parse_from(["participants", "serve"].iter().chain(args))?;
        match cli.command {
            Command::Serve(args) => Ok(*args),
            _ => panic!("serve"),
        }
    }

    #[test]
    fn the_health_interval_reaches_the_server_and_is_between_100ms_and_60s() {
        let args = serve(&["--health-interval", "30s"]).expect("parses");
        assert_eq!(
            args.server_config().health_interval,
            Duration::from_secs(30)
        );
        assert!(serve(&["--health-interval", "50ms"]).is_err());
        assert!(serve(&["--health-interval", "0s"]).is_err());
        assert!(serve(&["--health-interval", "60s"]).is_ok());
        assert!(serve(&["--health-interval", "61s"]).is_err());
        assert!(serve(&["--health-interval", "100y"]).is_err());
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    /// Keys and secrets given on the command line never show in a `Debug` print of the
    /// configuration, nor in the JWT settings made from it; the values still reach their users.
    #[test]
    fn secrets_do_not_print() {
        let key = crypto::generate_key();
        let previous = crypto::generate_key();
        let jwt = "jwt-secret-that-must-never-print-0123456789";
        let cli = Cli::try_parse_from([
            "participants",
            "serve",
            "--data-key",
            &key,
            "--data-key-previous",
            &previous,
            "--jwt-hs256-secret",
            jwt,
        ])
        .expect("parses");
        let Command::Serve(args) = &cli.command else {
            panic!("serve");
        };
        let printed = format!("{cli:?} {:?} {:?}", args.jwt.settings(), args.data.cipher());
        for secret in [key.as_str(), previous.as_str(), jwt] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
        let settings = args.jwt.settings();
        let kept = settings.hs256_secret.as_ref().map(|s| s.expose_secret());
        assert_eq!(kept, Some(jwt.as_bytes()));
        assert!(args.data.cipher().is_ok());
    }
}
