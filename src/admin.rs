//! The admin endpoint (SPEC section 15) on `--admin-listen`: `/metrics` in the Prometheus text
//! format, `/livez` (the process answers) and `/readyz` (it takes calls: not draining, and the
//! database answers). Kept off the serving ports so that it is never exposed with them.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;

use crate::store::Store;
use crate::telemetry::Metrics;

/// Whether the process takes calls; `draining` is set when shutdown starts.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    store: Store,
    readiness: Arc<Readiness>,
}

/// The admin router, for tests that drive it without a socket.
pub fn router(metrics: Arc<Metrics>, store: Store, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Admin {
            metrics,
            store,
            readiness,
        })
}

async fn metrics_text(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.render(),
    )
        .into_response()
}

async fn ready(State(admin): State<Admin>) -> Response {
    if admin.readiness.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    match tokio::time::timeout(Duration::from_secs(1), admin.store.ping()).await {
        Ok(true) => "ok\n".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

/// Serves the admin endpoint on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("admin listener: {e}"))?;
    tracing::info!(%addr, "serving the admin endpoint");
    axum::serve(listener, router(metrics, store, readiness))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("admin server: {e}"))
}
