//! Server wiring: health, reflection, auth, limits, graceful shutdown.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::interceptor::InterceptedService, transport::Server};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use super::{
    admission::Admission,
    audit::AuditApi,
    auth::AuthInterceptor,
    incoming::{IncomingConfig, incoming},
    participants::ParticipantApi,
    request_deadline::RequestDeadlineLayer,
};
use crate::auth::TokenVerifier;
use crate::pb::{
    audit_service_server::AuditServiceServer, participant_service_server::ParticipantServiceServer,
};
use crate::service::Participants;

/// Transport limits and timing.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A call whose write has not started after this answers `DEADLINE_EXCEEDED`
    /// (`REQUEST_TIMED_OUT`); a started write always finishes and is answered. Every call but
    /// an import must also have ended its request half by then (see `request_deadline`).
    pub request_timeout: Duration,
    /// Largest accepted request message.
    pub max_message_bytes: usize,
    /// ParticipantService calls in flight at once, across all connections; more are refused
    /// at once with `RESOURCE_EXHAUSTED` / `SERVER_OVERLOADED` and a `RetryInfo`.
    pub max_in_flight: usize,
    /// HTTP/2 streams a client may open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Connections held at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface before it is closed.
    pub handshake_timeout: Duration,
    /// How often an idle connection is pinged (HTTP/2 PING).
    pub http2_keepalive_interval: Duration,
    /// A connection whose ping is not answered within this is closed.
    pub http2_keepalive_timeout: Duration,
    /// How long in-flight calls may take to finish once draining has begun.
    pub grace_period: Duration,
    /// After SIGTERM, how long health reports `NOT_SERVING` while the server still accepts and
    /// serves, so load balancers and meshes stop routing here before the listener closes.
    pub drain_delay: Duration,
    /// A connection older than this is sent a GOAWAY and closes once its calls are done, so
    /// clients and proxies reconnect and spread over replicas that joined since (`None`: never).
    /// One still open `HARD_CLOSE_AFTER_TIMEOUTS` request timeouts later, with no import on it,
    /// is closed hard.
    pub max_connection_age: Option<Duration>,
    /// How often the database is pinged for the health status.
    pub health_interval: Duration,
    /// Where calls are counted; a registry of the server's own when absent.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// Browser origins allowed to call through gRPC-Web (CORS); none: same origin only.
    pub cors_origins: Vec<String>,
    /// `grpc.health.v1.Health/Watch` streams open at once; more are refused with
    /// `RESOURCE_EXHAUSTED`. Each one ends at `max_connection_age` and when draining begins,
    /// so watches can neither fill the connection cap nor hold a connection past its age.
    pub max_health_watches: usize,
    /// ImportParticipants: the window of rows in flight and the idle timeout.
    pub import: crate::service::import::ImportConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_concurrent_streams: 256,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Duration::from_secs(5),
            http2_keepalive_interval: Duration::from_secs(60),
            http2_keepalive_timeout: Duration::from_secs(20),
            grace_period: Duration::from_secs(20),
            drain_delay: Duration::ZERO,
            max_connection_age: Some(DEFAULT_MAX_CONNECTION_AGE),
            health_interval: Duration::from_secs(2),
            metrics: None,
            cors_origins: Vec::new(),
            max_health_watches: 128,
            import: crate::service::import::ImportConfig::default(),
        }
    }
}

/// Default of `max_in_flight`, from the measured capacity of the write path (docs/deployment.md).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Once no call is in flight during a drain, how long connections get to close by themselves.
const SETTLE: Duration = Duration::from_secs(1);
/// The HTTP/2 flow-control windows of the gRPC edge (see where they are set).
const STREAM_WINDOW_BYTES: u32 = 64 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 2 * 1024 * 1024;

/// The calls whose request half is long by design, left out of the request-half deadline:
/// an import streams rows for as long as it has them, bounded by its own idle timeout.
const LONG_REQUEST_HALVES: &[(&str, &str)] = &[(SERVICE_NAME, "ImportParticipants")];

/// A connection still open this many request timeouts after its maximum age, with no import
/// on it, is closed hard. By then the GOAWAY and the request-half deadline have ended every
/// call of a client that behaves (a call that came just before the age has had a request
/// timeout to arrive and more than another to be answered): what is left is a peer holding a
/// stream open, e.g. by never granting the window its answer needs.
const HARD_CLOSE_AFTER_TIMEOUTS: u32 = 3;

/// Default of `max_connection_age`.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// Default of `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// TCP keepalive on every accepted connection (gRPC and REST), beside HTTP/2 pings.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Largest header block a client may send (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE): room for an
/// 8 KiB token (refused with UNAUTHENTICATED beyond that) and the other metadata.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// The fully qualified name of the participant service, as health reports it.
pub const SERVICE_NAME: &str = <ParticipantServiceServer<ParticipantApi> as NamedService>::NAME;

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Serves on `listener` until `shutdown` resolves, then drains: health turns `NOT_SERVING` at
/// once; after `drain_delay` (still serving) the listener closes, every connection is sent a
/// GOAWAY, and in-flight calls get `grace_period` to finish.
pub async fn serve(
    listener: TcpListener,
    participants: Participants,
    verifier: Arc<dyn TokenVerifier>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    // Settings that can be refused, before anything is started.
    let cors = cors_layer(&config.cors_origins)?;
    let reporter = HealthReporter::new();
    // Health watches end when draining begins (after the drain delay, so that watchers see
    // NOT_SERVING first), and at the connection age.
    let watches_end = CancellationToken::new();
    // However serve ends, no watch outlives it.
    let _watches_end_on_return = watches_end.clone().drop_guard();
    let health_service = HealthServer::new(super::health::BoundedHealth::new(
        HealthService::from_health_reporter(reporter.clone()),
        config.max_health_watches,
        config.max_connection_age.filter(|a| !a.is_zero()),
        watches_end.clone(),
    ));
    // build_v1 and build_v1alpha each consume a builder: one configured builder per version.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;

    let store = participants.store().clone();
    let metrics = config.metrics.clone().unwrap_or_else(|| {
        crate::telemetry::Metrics::new(store.clone(), participants.write_metrics())
    });
    // The audit trail's readers pass the same token check and their own admission limit.
    let audit =
        AuditServiceServer::new(AuditApi::new(participants.clone(), config.request_timeout))
            .max_decoding_message_size(config.max_message_bytes);
    let audit = InterceptedService::new(audit, AuthInterceptor::new(verifier.clone()));
    let audit = Admission::new(audit, config.max_in_flight, config.max_message_bytes);
    let (draining_tx, mut draining_rx) = watch::channel(false);
    // An import stops reading once draining begins, and ends after answering what it read.
    let api = ParticipantApi::new(participants, config.request_timeout)
        .with_import(config.import)
        .with_draining(draining_rx.clone());
    let api =
        ParticipantServiceServer::new(api).max_decoding_message_size(config.max_message_bytes);
    let api = InterceptedService::new(api, AuthInterceptor::new(verifier));
    // Admission comes first: an overloaded server refuses before verifying a token.
    let api = Admission::new(api, config.max_in_flight, config.max_message_bytes);
    let in_flight = api.in_flight();

    // Migrations and the catalog are done by now: report SERVING while the database answers.
    set_health(&reporter, ServingStatus::Serving).await;
    let watcher = {
        let reporter = reporter.clone();
        let interval = config.health_interval;
        tokio::spawn(async move {
            let mut healthy = true;
            loop {
                tokio::time::sleep(interval).await;
                let up = store.ping().await;
                if up != healthy {
                    healthy = up;
                    tracing::warn!(database_up = up, "database health changed");
                    let status = if up {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    set_health(&reporter, status).await;
                }
            }
        })
    };

    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let (incoming, accept_loop) = incoming(
        listener,
        IncomingConfig {
            max_connections: config.max_connections,
            handshake_timeout: config.handshake_timeout,
            tcp_keepalive: TCP_KEEPALIVE,
            close_after: config
                .max_connection_age
                .filter(|a| !a.is_zero())
                .map(|age| {
                    age.saturating_add(
                        config
                            .request_timeout
                            .saturating_mul(HARD_CLOSE_AFTER_TIMEOUTS),
                    )
                }),
        },
        draining_tx.subscribe(),
    );

    let drain_reporter = reporter.clone();
    let stop_watcher = watcher.abort_handle();
    let drain_delay = config.drain_delay;
    let requested: Arc<OnceLock<Instant>> = Arc::default();
    let requested_at = requested.clone();
    let stop = async move {
        shutdown.await;
        let _ = requested_at.set(Instant::now());
        // Health first, while the listener is still open: a balancer polling it, or a mesh
        // told by it, stops sending new calls here before connections are refused.
        stop_watcher.abort();
        set_health(&drain_reporter, ServingStatus::NotServing).await;
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis() as u64,
            "shutdown requested: health NOT_SERVING; still serving during the drain delay"
        );
        tokio::time::sleep(drain_delay).await;
        tracing::info!("draining: listener closed, GOAWAY sent on every connection");
        let _ = draining_tx.send(true);
        watches_end.cancel();
    };

    let mut builder = Server::builder();
    if let Some(age) = config.max_connection_age.filter(|a| !a.is_zero()) {
        // No max_connection_age_grace: tonic then closes at age + grace without ever sending
        // a GOAWAY, cutting whatever runs (an import included); without it the connection ends
        // gracefully once its calls are done, which the request-half deadline below bounds.
        // The accept loop closes what is left later, imports spared (`close_after`).
        builder = builder.max_connection_age(age);
    }
    let server = builder
        // gRPC-Web (HTTP/1.1, for browsers) beside gRPC on the same port.
        .accept_http1(true)
        // Every call, health and reflection included, gets its span, then is counted.
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::telemetry::trace::GrpcTraceLayer)
                .layer(crate::telemetry::GrpcMetricsLayer(metrics))
                .option_layer(cors)
                .layer(tonic_web::GrpcWebLayer::new())
                // A call whose request half never ends would hold its connection past the
                // maximum age (and a place under the cap): all but imports must end it in time.
                .layer(RequestDeadlineLayer::new(
                    config.request_timeout,
                    LONG_REQUEST_HALVES,
                )),
        )
        .max_concurrent_streams(config.max_concurrent_streams)
        // HTTP/2 ends a connection that holds too many small DATA frames unread (h2's flood
        // guard: a budget of half the connection window). An import the server holds back
        // leaves up to a stream window of rows unread, and clients that send each row in its own
        // small frame (grpc-go, grpc-python, Node) would trip the guard after about 3,500 rows
        // with hyper's 1 MiB stream window. A 64 KiB stream window (HTTP/2's own default size)
        // under a 2 MiB connection window keeps a dozen held-back imports per connection
        // within the budget.
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .http2_keepalive_interval(Some(config.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .add_service(audit)
        .serve_with_incoming_shutdown(incoming, stop);
    tracing::info!(addr = ?addr, "serving");

    tokio::pin!(server);
    let grace = config.grace_period;
    let mut quiet_rx = draining_rx.clone();
    let result = tokio::select! {
        r = &mut server => r.map_err(|e| format!("server: {e}")),
        _ = async {
            let _ = draining_rx.wait_for(|d| *d).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over: closing with calls still in flight");
            Ok(())
        }
        // An HTTP/2 connection whose peer never answers the GOAWAY would hold the drain for the
        // whole grace period: once no call has been in flight for a moment, the rest are idle.
        _ = async {
            let _ = quiet_rx.wait_for(|d| *d).await;
            let mut quiet = 0;
            while quiet < 3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                quiet = if in_flight.count() == 0 { quiet + 1 } else { 0 };
            }
        } => {
            // The count ends when a call's answer is ready, not when its trailers are written,
            // and a proxy's last streams may still be on their way: let connections close by
            // themselves for a moment (a peer that answers the GOAWAY closes at once), then
            // close what is left, idle.
            if tokio::time::timeout(SETTLE, &mut server).await.is_err() {
                tracing::info!("drained: no call in flight; closing idle connections");
            }
            Ok(())
        }
    };
    watcher.abort();
    // Draining (or the server's end, which dropped the stream) ends the loop: once it has
    // ended, the listening socket is closed. A loop that panicked ended the stream, which the
    // server took for a clean end: it is an error.
    let result = result.and(super::incoming::accept_loop_ended(
        accept_loop.await,
        "gRPC",
    ));
    if let Some(at) = requested.get() {
        tracing::info!(
            drain_ms = at.elapsed().as_millis() as u64,
            "stopped: time from the shutdown request to the last connection closed"
        );
    }
    result
}

/// The CORS rules for gRPC-Web calls from `origins` (exact origins such as
/// `https://app.example.org`), or none when the list is empty.
fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, String> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| {
            http::HeaderValue::from_str(o.trim())
                .map_err(|_| format!("CORS origin {o:?} is not a header value"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header = |n: &'static str| http::HeaderName::from_static(n);
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                header("authorization"),
                header("content-type"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
