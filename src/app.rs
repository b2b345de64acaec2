//! The composition root: `App::build(settings)` opens the store, migrates, applies the
//! catalog, builds the cipher, the token verifier and the use cases, binds the gRPC, REST and
//! admin listeners and serves on them, with every background task owned by the `App`.
//! `main`, the tests and the benchmarks all start the server through it, and `Settings` is the
//! one place where defaults are written (the command line reads its defaults from it).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{self, Readiness},
    auth::{JwtSettings, JwtVerifier},
    catalog::{self, Catalog},
    config::DataKeyArgs,
    grpc::{
        incoming,
        server::{self, ServerConfig},
    },
    rest,
    service::{CATALOG_POLL, Participants, writer::BatchConfig},
    store::{DbConfig, Store},
    tasks::Background,
    telemetry::Metrics,
};

/// Everything `serve` runs with. `Default` holds the defaults of every setting.
#[derive(Clone)]
pub struct Settings {
    /// The gRPC (and gRPC-Web) listener.
    pub listen: SocketAddr,
    /// The original's REST route; none: off.
    pub http_listen: Option<SocketAddr>,
    /// `/metrics`, `/livez`, `/readyz`; none: off.
    pub admin_listen: Option<SocketAddr>,
    pub db: DbConfig,
    /// Apply pending migrations at start (else the schema must be current).
    pub migrate: bool,
    pub jwt: JwtSettings,
    /// How often the JWKS file is read again, to pick up rotated keys.
    pub jwks_refresh: Duration,
    /// The data keys, as `PARTICIPANTS_DATA_KEY` and `PARTICIPANTS_DATA_KEY_PREVIOUS` give them.
    pub data: DataKeyArgs,
    /// Applied at start, after the migrations.
    pub catalog: Option<Catalog>,
    pub server: ServerConfig,
    pub batching: BatchConfig,
    /// How long a request_id's answer is remembered.
    pub idempotency_retention: Duration,
    /// How often answers past their retention are forgotten.
    pub idempotency_purge_every: Duration,
    /// How often the catalog version is checked (other replicas may change it).
    pub catalog_poll: Duration,
    /// Makes writes fail or stall (tests only).
    #[cfg(feature = "fault-injection")]
    pub fault: crate::service::Fault,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            db: DbConfig::default(),
            migrate: true,
            jwt: JwtSettings::default(),
            jwks_refresh: Duration::from_secs(300),
            data: DataKeyArgs {
                data_key: None,
                data_key_previous: Vec::new(),
            },
            catalog: None,
            server: ServerConfig::default(),
            batching: BatchConfig::default(),
            idempotency_retention: Duration::from_secs(7 * 24 * 3600),
            idempotency_purge_every: Duration::from_secs(3600),
            catalog_poll: CATALOG_POLL,
            #[cfg(feature = "fault-injection")]
            fault: crate::service::Fault::None,
        }
    }
}

/// A running server: its listeners, its use cases and every task it started.
pub struct App {
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    store: Store,
    participants: Participants,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// Cancelled when shutdown is asked for (or an edge failed).
    shutdown: CancellationToken,
    /// The edges: ends once both have drained, with their result.
    serving: JoinHandle<Result<(), String>>,
    tasks: Background,
}

impl App {
    /// Starts the server on the listeners `settings` name.
    pub async fn build(settings: Settings) -> Result<Self, String> {
        Self::build_with(settings, None).await
    }

    /// Starts the server with its gRPC listener already bound (by a caller that needed the
    /// address first); `settings.listen` is then not used.
    pub async fn build_on(settings: Settings, listener: TcpListener) -> Result<Self, String> {
        Self::build_with(settings, Some(listener)).await
    }

    async fn build_with(settings: Settings, listener: Option<TcpListener>) -> Result<Self, String> {
        // Every setting is checked before the database is touched, so a bad one changes nothing.
        let verifier = Arc::new(JwtVerifier::new(&settings.jwt)?);
        let cipher = Arc::new(settings.data.cipher()?);
        let store = Store::connect(&settings.db)
            .await
            .map_err(|e| e.to_string())?;
        if settings.migrate {
            store.migrate().await.map_err(|e| e.to_string())?;
        }
        // Seals access codes stored in the clear and re-hashes them after a key rotation.
        store
            .seal_access_codes(&cipher)
            .await
            .map_err(|e| e.to_string())?;
        // Seals contact data and remembered answers stored in the clear before sealing existed.
        store
            .seal_legacy_values(&cipher)
            .await
            .map_err(|e| e.to_string())?;
        // Key ids are hash prefixes, safe to log: they tell operators which key seals new data
        // and which earlier ones still open (a rotation's first step shows here).
        tracing::info!(
            data_key_id = cipher.current_key_id(),
            previous_data_key_ids = %cipher.previous_key_ids().join(","),
            "personal data is encrypted at rest"
        );
        if let Some(catalog) = &settings.catalog {
            let report = catalog::apply(&store, catalog)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(?report, "catalog applied");
        }

        let grpc_listener = match listener {
            Some(l) => l,
            None => bind(settings.listen, "--listen").await?,
        };
        let grpc_addr = grpc_listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let http_listener = match settings.http_listen {
            Some(a) => Some(bind(a, "--http-listen").await?),
            None => None,
        };
        let http_addr = local_addr(http_listener.as_ref())?;
        let admin_listener = match settings.admin_listen {
            Some(a) => Some(bind(a, "--admin-listen").await?),
            None => None,
        };
        let admin_addr = local_addr(admin_listener.as_ref())?;
        tracing::info!("listening on {grpc_addr}");

        let tasks = Background::new();
        let participants = Participants::start(
            store.clone(),
            cipher,
            settings.batching,
            settings.catalog_poll,
            &tasks,
        );
        #[cfg(feature = "fault-injection")]
        let participants = participants.with_fault(settings.fault);
        let metrics = Metrics::new(store.clone(), participants.write_metrics());
        if verifier.has_jwks_file() {
            tasks.spawn_until_stopped(reload_jwks(verifier.clone(), settings.jwks_refresh));
        }
        tasks.spawn_until_stopped(purge_idempotency_records(
            store.clone(),
            settings.idempotency_retention,
            settings.idempotency_purge_every,
        ));

        let mut config = settings.server;
        config.max_connections =
            connection_cap(config.max_connections, settings.db.max_connections);
        config.metrics = Some(metrics.clone());
        let readiness = Arc::new(Readiness::default());
        let shutdown = CancellationToken::new();
        // The admin endpoint stays up until both edges have drained.
        let admin_stop = CancellationToken::new();
        if let Some(listener) = admin_listener {
            let stop = admin_stop.clone();
            tasks.spawn(admin::serve(
                listener,
                metrics.clone(),
                store.clone(),
                readiness.clone(),
                async move { stop.cancelled().await },
            ));
        }
        let grpc = {
            let shutdown = shutdown.clone();
            let served = server::serve(
                grpc_listener,
                participants.clone(),
                verifier.clone(),
                config.clone(),
                shutdown.clone().cancelled_owned(),
            );
            // An edge that fails, or panics, stops the other one too.
            edge("gRPC", served, shutdown)
        };
        let rest = {
            let shutdown = shutdown.clone();
            let participants = participants.clone();
            let http = rest::HttpConfig::from(&config);
            let drain_delay = config.drain_delay;
            async move {
                let Some(listener) = http_listener else {
                    return Ok(());
                };
                // As the gRPC edge, the route keeps serving through the drain delay.
                let stop = {
                    let shutdown = shutdown.clone();
                    async move {
                        shutdown.cancelled().await;
                        tokio::time::sleep(drain_delay).await;
                    }
                };
                let served = rest::serve(listener, participants, verifier, http, stop);
                edge("REST", served, shutdown).await
            }
        };
        let serving = {
            let shutdown = shutdown.clone();
            let readiness = readiness.clone();
            let background = tasks.clone();
            tasks.spawn(async move {
                let draining = async {
                    shutdown.cancelled().await;
                    // /readyz turns 503 at once, as health turns NOT_SERVING.
                    readiness.set_draining();
                };
                let (grpc, rest, ()) = tokio::join!(grpc, rest, draining);
                admin_stop.cancel();
                // Nothing calls the use cases any more: their tasks can stop.
                background.request_stop();
                grpc.and(rest)
            })
        };
        Ok(Self {
            grpc_addr,
            http_addr,
            admin_addr,
            store,
            participants,
            metrics,
            readiness,
            shutdown,
            serving,
            tasks,
        })
    }

    /// Where gRPC is served (the bound port when the setting said 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the REST route is served, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where the admin endpoint is served, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn participants(&self) -> &Participants {
        &self.participants
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// Background tasks still running (servers, writers, polls, timers).
    pub fn running_tasks(&self) -> usize {
        self.tasks.running()
    }

    /// The owner of the tasks: lets a caller see them end after `shutdown` consumed the App.
    pub fn tasks(&self) -> Background {
        self.tasks.clone()
    }

    /// A token that starts the shutdown when cancelled, without waiting for it (for a caller
    /// that cannot await, such as a `Drop`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `signal` resolves (or an edge fails), then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), String> {
        tokio::select! {
            _ = signal => {}
            _ = self.shutdown.cancelled() => {}
        }
        self.shutdown().await
    }

    /// Drains and stops: health turns `NOT_SERVING` and `/readyz` 503 at once; after the
    /// drain delay the listeners close and in-flight calls get the grace period; then the
    /// admin endpoint closes and every background task is stopped and awaited.
    pub async fn shutdown(self) -> Result<(), String> {
        self.shutdown.cancel();
        let served = match self.serving.await {
            Ok(result) => result,
            Err(e) => Err(format!("the server task failed: {e}")),
        };
        self.tasks.stop().await;
        let batches = self.participants.batch_stats();
        tracing::info!(
            write_batches = batches.batches,
            writes = batches.commands,
            largest_batch = batches.largest,
            "stopped"
        );
        served
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({flag}): {e}"))
}

fn local_addr(listener: Option<&TcpListener>) -> Result<Option<SocketAddr>, String> {
    listener
        .map(|l| {
            l.local_addr()
                .map_err(|e| format!("cannot read a listening address: {e}"))
        })
        .transpose()
}

/// Runs an edge's server to its end, then starts the shutdown, so that the other edge and the
/// admin endpoint stop too. A panic in the edge is its failure: it must not end the task that
/// joins the edges before the shutdown starts, which would leave the admin endpoint answering
/// ready, the other edge serving, and the process deaf to SIGTERM (its shutdown would wait for
/// the admin endpoint for ever).
async fn edge(
    name: &str,
    served: impl Future<Output = Result<(), String>>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    use futures_util::FutureExt;
    let result = match std::panic::AssertUnwindSafe(served).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(format!("the {name} edge failed unexpectedly (see the log)")),
    };
    shutdown.cancel();
    result
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
async fn reload_jwks(verifier: Arc<JwtVerifier>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = verifier.reload_jwks() {
            tracing::warn!(error = %e, "JWKS reload failed; the current keys stay");
        }
    }
}

/// Forgets remembered responses past their retention, every `every`.
async fn purge_idempotency_records(store: Store, retention: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        match store.purge_idempotency_records(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired request ids forgotten"),
            Err(e) => tracing::warn!(error = %e, "request id purge failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_edge_that_panics_fails_and_starts_the_shutdown() {
        let shutdown = CancellationToken::new();
        let served = async {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            panic!("an edge's defect")
        };
        let result = edge("gRPC", served, shutdown.clone()).await;
        assert_eq!(
            result,
            Err("the gRPC edge failed unexpectedly (see the log)".to_owned())
        );
        assert!(shutdown.is_cancelled(), "the other edges must stop too");
    }

    #[tokio::test]
    async fn an_edge_that_ends_starts_the_shutdown_with_its_result() {
        let shutdown = CancellationToken::new();
        let result = edge("REST", async { Err("bind".to_owned()) }, shutdown.clone()).await;
        assert_eq!(result, Err("bind".to_owned()));
        assert!(shutdown.is_cancelled());
    }
}
