//! `participants`: serve | migrate | catalog apply | token | data-key | import | audit.

use std::process::ExitCode;

use clap::Parser;
use participants::{
    app::App,
    auth::mint_hs256,
    catalog::{self, Catalog},
    config::{
        AuditCommand, AuditFormat, CatalogCommand, Cli, Command, DEFAULT_DATABASE_URL, LogFormat,
        ServeArgs,
    },
    crypto,
    grpc::server::{self, SERVICE_NAME},
    service::audit_trail,
    store::Store,
    telemetry::trace::Otlp,
};
use rand::RngCore;
use secrecy::ExposeSecret;

// See the `jemalloc` feature in Cargo.toml for what it was measured to give.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The log filter when `PARTICIPANTS_LOG` is unset. PostgreSQL's notices (sqlx logs them at
/// `info`) say nothing an operator acts on: each start is told three times that the
/// migrations table "already exists, skipping". Its warnings still show.
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Logs to stderr, and spans to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
/// (the returned pipeline is flushed at exit).
fn init_logs(format: LogFormat) -> Result<Option<Otlp>, String> {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARTICIPANTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colour codes only for a person at a terminal: not in files, pipes or a log collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let otlp = Otlp::from_env()?;
    let traces = otlp
        .as_ref()
        .map(|o| tracing_opentelemetry::layer().with_tracer(o.tracer.clone()));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(traces)
        .init();
    Ok(otlp)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let otlp = match init_logs(cli.log_format) {
        Ok(otlp) => otlp,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Import(args) = cli.command {
        return ExitCode::from(runtime.block_on(participants::import_cli::run(args)));
    }
    if let Command::Audit {
        command: AuditCommand::Verify { study, db },
    } = &cli.command
    {
        return runtime.block_on(audit_verify(study.as_deref(), db));
    }
    let result = runtime.block_on(run(cli.command));
    drop(runtime);
    // Spans still buffered go to the collector before the process ends.
    if let Some(otlp) = otlp {
        otlp.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(db) => {
            let store = Store::connect(&db.db_config(DEFAULT_DATABASE_URL))
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::Catalog {
            command: CatalogCommand::Apply { file, db },
        } => {
            let parsed = Catalog::load(&file).map_err(|e| e.to_string())?;
            let store = Store::connect(&db.db_config(DEFAULT_DATABASE_URL))
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            let report = catalog::apply(&store, &parsed)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "catalog applied: {} studies, {} sites written, {} sites removed, {} roles written, {} roles revoked",
                report.studies_written,
                report.sites_written,
                report.sites_removed,
                report.roles_written,
                report.roles_revoked
            );
            Ok(())
        }
        Command::DataKey => {
            println!("{}", crypto::generate_key());
            Ok(())
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    study,
                    format,
                    db,
                    data,
                },
        } => {
            let cipher = data.cipher()?;
            let config = db.db_config(DEFAULT_DATABASE_URL);
            existing_sqlite_file(&config.url)?;
            let store = Store::connect(&config).await.map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            let format = match format {
                AuditFormat::Jsonl => audit_trail::ExportFormat::Jsonl,
                AuditFormat::Csv => audit_trail::ExportFormat::Csv,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = audit_trail::export(&store, &cipher, &study, format, &mut out)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(events = n, "audit trail exported");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { .. },
        } => Err("audit verify runs on its own".into()),
        Command::Import(_) => Err("import runs on its own".into()),
        Command::Token(args) => {
            let token = mint_hs256(&args.jwt.settings(), &args.user, args.ttl)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// An inspector's commands read a database that exists: a SQLite URL naming no file is an
/// error, not a new empty database made on the spot.
fn existing_sqlite_file(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || std::path::Path::new(path).exists() {
        return Ok(());
    }
    Err(format!(
        "no database at {path}: name it with --database-url sqlite://PATH (`serve --demo` prints its own)"
    ))
}

/// `audit verify`: exit 0 when every chain is intact, 1 when one is broken, 2 when the check
/// could not be made.
async fn audit_verify(study: Option<&str>, db: &participants::config::DbArgs) -> ExitCode {
    let checked = async {
        let config = db.db_config(DEFAULT_DATABASE_URL);
        existing_sqlite_file(&config.url)?;
        let store = Store::connect(&config).await.map_err(|e| e.to_string())?;
        // An inspector's check reads only: a database that lacks migrations is not changed.
        let pending = store
            .pending_migrations()
            .await
            .map_err(|e| e.to_string())?;
        if pending > 0 {
            return Err(format!(
                "the database lacks {pending} migration(s): run `participants migrate` (or start the service) first"
            ));
        }
        audit_trail::verify(&store, study)
            .await
            .map_err(|e| e.to_string())
    };
    match checked.await {
        Ok(reports) => {
            let mut intact = true;
            for report in &reports {
                println!("{report}");
                intact &= report.broken.is_none();
            }
            if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        // Exit 2, not 1: the check could not be made (1 means a broken chain).
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn serve(mut args: ServeArgs) -> Result<(), String> {
    // The demo's database lives in a temporary folder removed at exit, with fresh keys.
    let mut demo_dir = None;
    if args.demo {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(secret.as_mut());
        args.jwt.jwt_hs256_secret = Some(hex::encode(secret.as_ref()).into());
        args.data.data_key = Some(crypto::generate_key().into());
        args.data.data_key_previous.clear();
        if args.db.database_url.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("participants-demo-")
                .tempdir()
                .map_err(|e| format!("cannot make the demo's database folder: {e}"))?;
            args.db.database_url = Some(format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("demo.db").display()
            ));
            demo_dir = Some(dir);
        }
    }
    let mut settings = args.settings();
    // Read the catalog before touching the database, so a bad file changes nothing.
    settings.catalog = match (&args.catalog, args.demo) {
        (Some(path), _) => Some(Catalog::load(path).map_err(|e| e.to_string())?),
        (None, true) => Some(Catalog::parse(catalog::DEMO_CATALOG).map_err(|e| e.to_string())?),
        (None, false) => None,
    };
    let app = App::build(settings).await?;
    if args.demo {
        print_demo_lines(
            app.grpc_addr(),
            app.http_addr(),
            app.admin_addr(),
            &args.jwt.settings(),
        )?;
        if let Some(url) = demo_dir.as_ref().and(args.db.database_url.as_deref()) {
            println!(
                "The demo's database (removed when the demo stops), and its audit trail's check:\n\n\
                 {} audit verify --database-url {}\n",
                running_binary(),
                shell_quote(url)
            );
        }
    }
    let result = app.run_until(server::shutdown_signal()).await;
    drop(demo_dir);
    result
}

/// A wildcard listen address is reached through loopback.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The binary that is running, quoted for a shell: printed commands work wherever it started.
fn running_binary() -> String {
    std::env::current_exe()
        .map(|path| shell_quote(&path.display().to_string()))
        .unwrap_or_else(|_| "participants".to_owned())
}

fn print_demo_lines(
    addr: std::net::SocketAddr,
    http_addr: Option<std::net::SocketAddr>,
    admin_addr: Option<std::net::SocketAddr>,
    jwt: &participants::auth::JwtSettings,
) -> Result<(), String> {
    let addr = reachable(addr);
    let ttl = std::time::Duration::from_secs(12 * 3600);
    let crc = mint_hs256(jwt, "crc.ohio", ttl)?;
    let monitor = mint_hs256(jwt, "monitor.juno", ttl)?;
    let upsert = r#"{"site":{"studyOid":"S_JUNO(PROD)","siteOid":"S_OHI0(TEST)"},"subjectKey":"OHIO-5","contact":{"lastName":"ОНІО","emailAddress":"OHIOS@openclinica.com","phoneNumber":"+1 1234567890"},"register":true}"#;
    let get =
        r#"{"site":{"studyOid":"S_JUNO(PROD)","siteOid":"S_OHI0(TEST)"},"subjectKey":"ohio-5"}"#;
    let binary = running_binary();
    println!(
        "\nThe participant service is running on {addr} (demo mode: a fresh database in a temporary folder,\n\
         catalog/demo.toml, a fresh development secret and data key).\n\
         Paste these lines into a shell with grpcurl installed:\n\n\
         grpcurl -plaintext {addr} list\n\
         grpcurl -plaintext {addr} describe {SERVICE_NAME}\n\
         grpcurl -plaintext -d '{{\"service\":\"{SERVICE_NAME}\"}}' {addr} grpc.health.v1.Health/Check\n\
         grpcurl -plaintext -H 'authorization: Bearer {crc}' -d '{upsert}' {addr} {SERVICE_NAME}/UpsertParticipant\n\
         grpcurl -plaintext -H 'authorization: Bearer {monitor}' -d '{get}' {addr} {SERVICE_NAME}/GetParticipant\n\n\
         For the SDK examples (sdks/README.md), the address and the token of crc.ohio (a CRC at S_OHI0(TEST)):\n\n\
         export PARTICIPANTS_ADDR={addr}\n\
         export PARTICIPANTS_TOKEN={crc}\n\n\
         Tokens for the other demo users (dm.juno, monitor.juno, viewer.juno, crc.texas, dm.vega, crc.boston, ...):\n\
         PARTICIPANTS_JWT_HS256_SECRET={secret} {binary} token --user dm.juno\n\
         (the development secret is new on every demo start)\n",
        // The demo's throw-away development secret, printed on purpose so tokens can be made.
        secret = String::from_utf8_lossy(
            jwt.hs256_secret
                .as_ref()
                .map(|s| s.expose_secret())
                .unwrap_or_default()
        )
    );
    if let Some(http) = http_addr.map(reachable) {
        // The original's sample call, unchanged but for the host and the token.
        let body = r#"{"subjectKey":"OHIO-5","lastName":"ОНІО","emailAddress":"OHIOS@openclinica.com","phoneNumber":"+1 1234567890"}"#;
        println!(
            "The original's REST route is on http://{http} (paste with curl installed):\n\n\
             export PARTICIPANTS_HTTP=http://{http}\n\
             curl -sS -w '\\n' -X POST 'http://{http}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants?register=y' \\\n  \
             -H 'Authorization: Bearer {crc}' -H 'Content-Type: application/json' \\\n  \
             -d '{body}'\n\
             curl -sS -w '\\n' 'http://{http}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants/OHIO-5' \\\n  \
             -H 'Authorization: Bearer {crc}'\n"
        );
    }
    if let Some(admin) = admin_addr.map(reachable) {
        println!("Metrics: curl http://{admin}/metrics (and /livez, /readyz)\n");
    }
    Ok(())
}

/// `text` as one shell word: as it is when it holds only safe characters, else single-quoted.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
