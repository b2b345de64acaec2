//! `participants`: serve | migrate | catalog apply | token | data-key | import | audit.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use participants::{
    admin::{self, Readiness},
    auth::{JwtVerifier, mint_hs256},
    catalog::{self, Catalog},
    config::{
        AuditCommand, AuditFormat, CatalogCommand, Cli, Command, DEFAULT_DATABASE_URL, LogFormat,
        ServeArgs,
    },
    crypto,
    grpc::{
        incoming,
        server::{self, SERVICE_NAME},
    },
    rest,
    service::{Participants, audit_trail},
    store::Store,
    telemetry::{Metrics, trace::Otlp},
};
use rand::RngCore;

/// Logs to stderr, and spans to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
/// (the returned pipeline is flushed at exit).
fn init_logs(format: LogFormat) -> Result<Option<Otlp>, String> {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARTICIPANTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
            let store = Store::connect(&db.db_config(DEFAULT_DATABASE_URL))
                .await
                .map_err(|e| e.to_string())?;
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

/// `audit verify`: exit 0 when every chain is intact, 1 when one is broken or the check failed.
async fn audit_verify(study: Option<&str>, db: &participants::config::DbArgs) -> ExitCode {
    let checked = async {
        let store = Store::connect(&db.db_config(DEFAULT_DATABASE_URL))
            .await
            .map_err(|e| e.to_string())?;
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
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut args: ServeArgs) -> Result<(), String> {
    // The demo's database lives in a temporary folder removed at exit, with fresh keys.
    let mut demo_dir = None;
    if args.demo {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        args.jwt.jwt_hs256_secret = Some(hex::encode(secret));
        args.data.data_key = Some(crypto::generate_key());
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
    let jwt = args.jwt.settings();
    let verifier = Arc::new(JwtVerifier::new(&jwt)?);
    if verifier.has_jwks_file() {
        spawn_jwks_reload(verifier.clone(), args.jwt.jwt_jwks_refresh);
    }
    let cipher = Arc::new(args.data.cipher()?);
    // Read the catalog before touching the database, so a bad file changes nothing.
    let catalog = match (&args.catalog, args.demo) {
        (Some(path), _) => Some(Catalog::load(path).map_err(|e| e.to_string())?),
        (None, true) => Some(Catalog::parse(catalog::DEMO_CATALOG).map_err(|e| e.to_string())?),
        (None, false) => None,
    };
    let store = Store::connect(&args.db.db_config(DEFAULT_DATABASE_URL))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    // Seals access codes stored in the clear and re-hashes them after a key rotation.
    store
        .seal_access_codes(&cipher)
        .await
        .map_err(|e| e.to_string())?;
    // Logged once start-up can no longer fail on a setting, so a bad one prints one line only.
    // The key id is a hash prefix, safe to log; it tells operators which key seals new data.
    tracing::info!(
        data_key_id = cipher.current_key_id(),
        "personal data is encrypted at rest"
    );
    if let Some(catalog) = &catalog {
        let report = catalog::apply(&store, catalog)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(?report, "catalog applied");
    }
    spawn_idempotency_purge(store.clone(), args.idempotency_retention);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    tracing::info!("listening on {addr}");
    let http_listener = match args.http_listen.0 {
        Some(http) => Some(
            tokio::net::TcpListener::bind(http)
                .await
                .map_err(|e| format!("cannot listen on {http} (--http-listen): {e}"))?,
        ),
        None => None,
    };
    let http_addr = match &http_listener {
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| format!("cannot read the REST listening address: {e}"))?,
        ),
        None => None,
    };
    let admin_listener = match args.admin_listen.0 {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a} (--admin-listen): {e}"))?,
        ),
        None => None,
    };
    if args.demo {
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        print_demo_lines(addr, http_addr, admin_addr, &jwt)?;
    }
    let mut config = args.server_config();
    config.max_connections = connection_cap(config.max_connections, args.db.db_max_connections);
    let participants = Participants::new(store.clone(), cipher).with_batching(args.batch_config());
    let metrics = Metrics::new(store.clone(), participants.batch_sizes());
    config.metrics = Some(metrics.clone());
    let readiness = Arc::new(Readiness::default());

    // One signal stops both edges; /readyz turns 503 at once, and the admin endpoint stays up
    // until both have drained.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let readiness = readiness.clone();
        tokio::spawn(async move {
            server::shutdown_signal().await;
            readiness.set_draining();
            let _ = stop_tx.send(true);
        });
    }
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let admin = admin_listener.map(|l| {
        tokio::spawn(admin::serve(
            l,
            metrics.clone(),
            store.clone(),
            readiness.clone(),
            async {
                let _ = drained_rx.await;
            },
        ))
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let rest = async {
        match http_listener {
            Some(l) => {
                rest::serve(
                    l,
                    participants.clone(),
                    verifier.clone(),
                    rest::HttpConfig::from(&config),
                    // As the gRPC edge, the route keeps serving through the drain delay.
                    {
                        let stop = stopped(stop_rx.clone());
                        let delay = config.drain_delay;
                        async move {
                            stop.await;
                            tokio::time::sleep(delay).await;
                        }
                    },
                )
                .await
            }
            None => Ok(()),
        }
    };
    let grpc = server::serve(
        listener,
        participants.clone(),
        verifier.clone(),
        config.clone(),
        stopped(stop_rx.clone()),
    );
    let (grpc, rest) = tokio::join!(grpc, rest);
    let _ = drained_tx.send(());
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    grpc?;
    rest?;
    let batches = participants.batch_stats();
    tracing::info!(
        write_batches = batches.batches,
        writes = batches.commands,
        largest_batch = batches.largest,
        "stopped"
    );
    drop(demo_dir);
    Ok(())
}

/// Raises the soft open-file limit to the hard one and returns the connection cap that fits
/// under it, leaving room for the database pool and files.
fn connection_cap(wanted: usize, db_connections: u32) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => 1024,
            }
        }
    };
    let cap = incoming::fit_connection_cap(wanted, limit, db_connections);
    if cap < wanted {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = cap,
            "the connection cap is lowered to fit the open-file limit"
        );
    } else {
        tracing::info!(
            open_file_limit = limit,
            max_connections = cap,
            "connection cap"
        );
    }
    cap
}

/// Reads the JWKS file again every `every`, so rotated keys work without a restart.
fn spawn_jwks_reload(verifier: Arc<JwtVerifier>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = verifier.reload_jwks() {
                tracing::warn!(error = %e, "JWKS reload failed; the current keys stay");
            }
        }
    });
}

/// Forgets remembered responses past their retention, hourly.
fn spawn_idempotency_purge(store: Store, retention: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match store.purge_idempotency_records(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired request ids forgotten"),
                Err(e) => tracing::warn!(error = %e, "request id purge failed; will retry"),
            }
        }
    });
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
    // The token command names the binary that is running, so it works wherever it was started.
    let binary = std::env::current_exe()
        .map(|path| shell_quote(&path.display().to_string()))
        .unwrap_or_else(|_| "participants".to_owned());
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
        secret = String::from_utf8_lossy(jwt.hs256_secret.as_deref().unwrap_or_default())
    );
    if let Some(http) = http_addr.map(reachable) {
        // The original's sample call, unchanged but for the host and the token.
        let body = r#"{"subjectKey":"OHIO-5","lastName":"ОНІО","emailAddress":"OHIOS@openclinica.com","phoneNumber":"+1 1234567890"}"#;
        println!(
            "The original's REST route is on http://{http} (paste with curl installed):\n\n\
             export PARTICIPANTS_HTTP=http://{http}\n\
             curl -X POST 'http://{http}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants?register=y' \\\n  \
             -H 'Authorization: Bearer {crc}' -H 'Content-Type: application/json' \\\n  \
             -d '{body}'\n\
             curl 'http://{http}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants/OHIO-5' \\\n  \
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
