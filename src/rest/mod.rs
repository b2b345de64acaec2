//! The original's REST route (SPEC sections 11 and 12), a drop-in for callers of OpenClinica's
//! "Add/Update Participant" endpoint: the same paths under any prefix, the seed's JSON body,
//! the original's answers. It reaches the use cases through the service's own model, so every
//! rule, the token verifier and the error table are those of the gRPC edge.

pub(crate) mod body;
pub(crate) mod route;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_stream::StreamExt;

use crate::auth::{TokenVerifier, UNAUTHENTICATED_MESSAGE, authenticate};
use crate::domain::{Reason, ServiceError};
use crate::grpc::incoming::{IncomingConfig, incoming};
use crate::service::{Caller, Participants};
use crate::telemetry::RestOutcome;
use route::Route;

/// Limits and timing of the REST edge; the gRPC edge's values by default.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A call whose write has not started after this answers 504 (`REQUEST_TIMED_OUT`).
    pub request_timeout: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Calls in flight at once; more are refused at once with 429 and `Retry-After`.
    pub max_in_flight: usize,
    /// Connections held at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a new connection has to send its first bytes.
    pub handshake_timeout: Duration,
    /// How long in-flight calls may take to finish after shutdown.
    pub grace_period: Duration,
    /// Where calls are counted; not counted when absent.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// A request's headers must arrive within this, and an idle keep-alive connection is
    /// closed after it.
    pub header_read_timeout: Duration,
}

impl From<&crate::grpc::server::ServerConfig> for HttpConfig {
    fn from(c: &crate::grpc::server::ServerConfig) -> Self {
        Self {
            request_timeout: c.request_timeout,
            max_body_bytes: c.max_message_bytes,
            max_in_flight: c.max_in_flight,
            max_connections: c.max_connections,
            handshake_timeout: c.handshake_timeout,
            grace_period: c.grace_period,
            metrics: c.metrics.clone(),
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

#[derive(Clone)]
struct Edge {
    participants: Participants,
    verifier: Arc<dyn TokenVerifier>,
    permits: Arc<Semaphore>,
    config: Arc<HttpConfig>,
}

/// The REST router, for tests that drive it without a socket.
pub fn router(
    participants: Participants,
    verifier: Arc<dyn TokenVerifier>,
    config: HttpConfig,
) -> Router {
    let metrics = config.metrics.clone();
    let edge = Edge {
        participants,
        verifier,
        permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        config: Arc::new(config),
    };
    let router = Router::new().fallback(dispatch).with_state(edge);
    match metrics {
        Some(m) => router.layer(crate::telemetry::RestMetricsLayer(m)),
        None => router,
    }
}

/// Default of `HttpConfig::header_read_timeout`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most header bytes a request may send (HTTP/1.1 buffer; HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves the REST route on `listener` until `shutdown` resolves, then lets in-flight calls
/// finish within the grace period. Connections come from the gRPC edge's capped accept loop;
/// a client that trickles its headers, or holds a keep-alive connection idle, is cut after
/// `HEADER_READ_TIMEOUT`, and headers are bounded, so slow clients cannot hold the cap.
pub async fn serve(
    listener: TcpListener,
    participants: Participants,
    verifier: Arc<dyn TokenVerifier>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let local = listener
        .local_addr()
        .map_err(|e| format!("http listener: {e}"))?;
    let (draining_tx, draining_rx) = watch::channel(false);
    let (mut connections, accept_loop) = incoming(
        listener,
        IncomingConfig {
            max_connections: config.max_connections,
            handshake_timeout: config.handshake_timeout,
            tcp_keepalive: crate::grpc::server::TCP_KEEPALIVE,
            // No maximum connection age on this edge.
            close_after: None,
        },
        draining_rx,
    );
    let grace = config.grace_period;
    let header_read_timeout = config.header_read_timeout;
    let app = router(participants, verifier, config);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tracing::info!(addr = %local, "serving REST");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            next = connections.next() => match next {
                Some(Ok(conn)) => {
                    let service = hyper_util::service::TowerToHyperService::new(app.clone());
                    let connection = builder
                        .serve_connection(TokioIo::new(conn), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "REST connection ended");
                        }
                    });
                }
                // The accept loop logs and backs off by itself.
                Some(Err(_)) => {}
                None => break,
            },
            _ = &mut shutdown => break,
        }
    }
    let _ = draining_tx.send(true);
    // Connections accepted but not served yet close now, not after the grace period.
    drop(connections);
    // The listening socket is closed once the accept loop has seen the draining.
    let accepting = crate::grpc::incoming::accept_loop_ended(accept_loop.await, "REST");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: closing REST calls still in flight");
        }
    }
    accepting
}

/// An answer of the REST edge, in the original's shape.
pub(crate) struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: serde_json::Value,
    /// The reason of a refusal, `""` for a success (for the metrics).
    reason: &'static str,
}

impl Answer {
    fn ok(body: serde_json::Value) -> Self {
        Self {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body,
            reason: "",
        }
    }

    fn with_etag(mut self, etag: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
            self.headers.insert(header::ETAG, v);
        }
        self
    }

    /// An error of the table: its HTTP status and the original's body,
    /// `{"message":"errorCode.…","params":{…}}`, plus the reason, a readable detail and the
    /// field violations.
    fn error(err: ServiceError) -> Self {
        let reason = err.reason();
        let status =
            StatusCode::from_u16(reason.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        let mut params = serde_json::Map::new();
        let (detail, violations) = match err {
            ServiceError::Rejected {
                message,
                violations,
                study_oid,
                site_oid,
                ..
            } => {
                if let Some(s) = study_oid {
                    params.insert("studyOid".into(), s.into());
                }
                if let Some(s) = site_oid {
                    params.insert("siteOid".into(), s.into());
                }
                let violations: Vec<serde_json::Value> = violations
                    .into_iter()
                    .map(|v| {
                        serde_json::json!({
                            "field": body::json_field_name(v.field),
                            "reason": v.reason.as_str(),
                            "errorCode": v.reason.error_code(),
                            "detail": v.description,
                        })
                    })
                    .collect();
                // The gRPC wording points at its BadRequest detail; here they are `violations`.
                let message = message.replace("see the BadRequest details", "see violations");
                (message, violations)
            }
            ServiceError::Unavailable { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
                (
                    "the database is unavailable; retry later".to_owned(),
                    Vec::new(),
                )
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ("internal error".to_owned(), Vec::new())
            }
        };
        let mut body = serde_json::json!({
            "message": reason.error_code(),
            "params": params,
            "reason": reason.as_str(),
            "detail": detail,
        });
        if !violations.is_empty() {
            body["violations"] = violations.into();
        }
        Self {
            status,
            headers,
            body,
            reason: reason.as_str(),
        }
    }

    fn rejected(reason: Reason, message: impl Into<String>) -> Self {
        Self::error(ServiceError::rejected(reason, message))
    }
}

impl Answer {
    /// The response, marked with the use case it answered for the metrics layer.
    fn answering(self, method: &'static str) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        response.headers_mut().extend(self.headers);
        response.extensions_mut().insert(RestOutcome {
            method,
            reason: self.reason,
        });
        response
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "message": "no such route" })),
    )
        .into_response()
}

async fn dispatch(State(edge): State<Edge>, request: Request) -> Response {
    let Some(route) = Route::parse(request.uri().path()) else {
        return not_found();
    };
    let method = request.method().clone();
    let span = crate::telemetry::trace::call_span(route.method_name(&method), request.headers());
    tracing::Instrument::instrument(answer(edge, route, method, request), span).await
}

async fn answer(edge: Edge, route: Route, method: Method, request: Request) -> Response {
    if !route.allows(&method) {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        if let Ok(v) = HeaderValue::from_str(route.allowed()) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return response;
    }
    // Overload is answered before any work, a token check included.
    let Ok(_permit) = edge.permits.clone().try_acquire_owned() else {
        let mut answer = Answer::rejected(
            Reason::ServerOverloaded,
            "the server is at capacity; retry later",
        );
        answer
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return answer.answering(route.method_name(&method));
    };
    let values = request.headers().get_all(header::AUTHORIZATION).iter();
    let caller = match authenticate(edge.verifier.as_ref(), values.map(HeaderValue::as_bytes)) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::debug!(reason = %e, "unauthenticated call");
            let mut answer = Answer::rejected(Reason::Unauthenticated, UNAUTHENTICATED_MESSAGE);
            answer
                .headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return answer.answering(route.method_name(&method));
        }
    };
    let label = route.method_name(&method);
    let deadline = tokio::time::Instant::now() + edge.config.request_timeout;
    let answer = match (method, route) {
        (Method::POST, Route::Participants(scope)) => {
            upsert(&edge, &caller, scope, request, deadline).await
        }
        (Method::GET, Route::Participants(scope)) => {
            list(&edge, &caller, scope, request.uri(), deadline).await
        }
        (Method::GET, Route::Participant(scope, key)) => {
            get(&edge, &caller, scope, key, deadline).await
        }
        (Method::GET, Route::ParticipantAudit(scope, key)) => {
            audit(&edge, &caller, scope, key, request.uri(), deadline).await
        }
        (Method::GET, Route::ParticipantByQuery(scope)) => {
            let key = body::query_param(request.uri(), "participantID").unwrap_or_default();
            get(&edge, &caller, scope, key, deadline).await
        }
        _ => return not_found(),
    };
    answer.answering(label)
}

async fn upsert(
    edge: &Edge,
    caller: &Caller,
    scope: crate::service::model::ScopeRef,
    request: Request<Body>,
    deadline: tokio::time::Instant,
) -> Answer {
    let (parts, body) = request.into_parts();
    let input = match body::upsert_input(&parts, body, scope, &edge.config, deadline).await {
        Ok(input) => input,
        Err(answer) => return *answer,
    };
    match edge.participants.upsert(caller, input, deadline).await {
        Ok(outcome) => {
            tracing::info!(
                user = %caller.user,
                subject_oid = %outcome.participant.subject_oid,
                created = outcome.created,
                "upsert done (REST)"
            );
            let etag = outcome.participant.etag.clone();
            Answer::ok(body::upsert_answer(&outcome)).with_etag(&etag)
        }
        Err(e) => {
            tracing::info!(user = %caller.user, reason = %e.reason(), "upsert refused (REST)");
            Answer::error(e)
        }
    }
}

async fn list(
    edge: &Edge,
    caller: &Caller,
    scope: crate::service::model::ScopeRef,
    uri: &axum::http::Uri,
    deadline: tokio::time::Instant,
) -> Answer {
    let input = match body::list_input(uri, scope) {
        Ok(input) => input,
        Err(answer) => return *answer,
    };
    match edge.participants.list(caller, input, deadline).await {
        Ok(page) => Answer::ok(body::page_json(&page)),
        Err(e) => {
            tracing::info!(user = %caller.user, reason = %e.reason(), "list refused (REST)");
            Answer::error(e)
        }
    }
}

async fn audit(
    edge: &Edge,
    caller: &Caller,
    scope: crate::service::model::ScopeRef,
    subject_key: String,
    uri: &axum::http::Uri,
    deadline: tokio::time::Instant,
) -> Answer {
    let query = match body::audit_query(uri, scope, subject_key) {
        Ok(query) => query,
        Err(answer) => return *answer,
    };
    match edge
        .participants
        .list_audit_events(caller, query, deadline)
        .await
    {
        Ok(page) => Answer::ok(body::audit_page_json(&page)),
        Err(e) => {
            tracing::info!(user = %caller.user, reason = %e.reason(), "audit read refused (REST)");
            Answer::error(e)
        }
    }
}

async fn get(
    edge: &Edge,
    caller: &Caller,
    scope: crate::service::model::ScopeRef,
    subject_key: String,
    deadline: tokio::time::Instant,
) -> Answer {
    let input = crate::service::model::GetInput {
        scope: Some(scope),
        subject_key,
    };
    match edge.participants.get(caller, input, deadline).await {
        Ok(view) => {
            let etag = view.etag.clone();
            Answer::ok(body::participant_json(&view)).with_etag(&etag)
        }
        Err(e) => {
            tracing::info!(user = %caller.user, reason = %e.reason(), "get refused (REST)");
            Answer::error(e)
        }
    }
}
