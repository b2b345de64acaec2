//! Metrics (SPEC section 15) in the Prometheus text format: calls by method, code and reason,
//! their durations, the database pool and the write batches. The gRPC and REST edges each get a
//! tower layer that counts every call; `/metrics` on the admin endpoint renders them.

use std::{
    borrow::Cow,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tower::{Layer, Service};

use crate::store::Store;

/// The bounds of the write-batch histogram (commands per transaction).
pub const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// The bounds of the call-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// Labels borrow static names where they can (every method, every gRPC code, every reason of
// the table), so counting a call allocates nothing once its label set exists.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: Cow<'static, str>,
    reason: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    store: Store,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Metrics {
    /// `writes` are the writers' figures (`Participants::write_metrics`).
    pub fn new(store: Store, writes: crate::service::writer::WriteMetrics) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "participants_requests",
            "Calls answered, by method, gRPC code (or HTTP status) and error reason",
            requests.clone(),
        );
        let durations = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register(
            "participants_request_duration_seconds",
            "Time from a call's arrival to its answer, by method",
            durations.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "participants_db_pool_connections",
            "Database pool connections, by state (idle or in_use)",
            pool.clone(),
        );
        registry.register(
            "participants_write_batch_size",
            "Commands per group-committed write transaction",
            writes.batch_sizes,
        );
        registry.register(
            "participants_write_batch_fallbacks",
            "Write batches run again with a savepoint per command after a database error",
            writes.fallbacks,
        );
        registry.register(
            "participants_write_batch_read_only_retries",
            "Write batches refused by a read-only session and run once more on a fresh one",
            writes.read_only_retries,
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("participants_build_info", "The running version", build);
        Arc::new(Self {
            registry,
            requests,
            durations,
            pool,
            store,
        })
    }

    /// Counts one answered call.
    pub fn record(
        &self,
        method: &'static str,
        code: Cow<'static, str>,
        reason: Cow<'static, str>,
        took: std::time::Duration,
    ) {
        self.requests
            .get_or_create(&CallLabels {
                method,
                code,
                reason,
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels { method })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the pool read now.
    pub fn render(&self) -> String {
        let (size, idle) = self.store.pool_state();
        let gauge = |n: u32| i64::from(n);
        self.pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(gauge(idle));
        self.pool
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(gauge(size.saturating_sub(idle)));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The gRPC methods counted by name; any other path is `other`, so hostile paths cannot grow
/// the label set.
const GRPC_METHODS: &[&str] = &[
    "/openclinica.participants.v1.ParticipantService/UpsertParticipant",
    "/openclinica.participants.v1.ParticipantService/GetParticipant",
    "/openclinica.participants.v1.ParticipantService/ListParticipants",
    "/openclinica.participants.v1.ParticipantService/ImportParticipants",
    "/openclinica.participants.v1.AuditService/ListAuditEvents",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

pub(crate) fn grpc_method(path: &str) -> &'static str {
    GRPC_METHODS
        .iter()
        .find(|m| **m == path)
        .map_or("other", |m| m.rsplit('/').next().unwrap_or("other"))
}

/// The name of a gRPC code, as its `Debug` form spells it (`InvalidArgument`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        // As `grpc_outcome` names a success, so that one label value means OK for every call.
        C::Ok => "OK",
        C::Cancelled => "Cancelled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

/// The gRPC code name and `ErrorInfo.reason` of an answer whose status is in its headers (a
/// refusal); an answer without one is `OK` so far (its trailers carry the final status).
fn grpc_outcome(headers: &http::HeaderMap) -> (Cow<'static, str>, Cow<'static, str>) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return (Cow::Borrowed("OK"), Cow::Borrowed(""));
    };
    let code = code_name(tonic::Code::from_i32(code));
    let reason = tonic::Status::from_header_map(headers)
        .and_then(|s| {
            use tonic_types::StatusExt;
            s.get_details_error_info().map(|i| i.reason)
        })
        .unwrap_or_default();
    let reason = crate::domain::Reason::ALL
        .iter()
        .find(|r| r.as_str() == reason)
        .map_or(Cow::Owned(reason), |r| Cow::Borrowed(r.as_str()));
    (Cow::Borrowed(code), reason)
}

/// Counts every call of the gRPC server.
#[derive(Clone)]
pub struct GrpcMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, R> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<Counted<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = grpc_method(request.uri().path());
        let started = Instant::now();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let future = inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let (code, reason) = grpc_outcome(response.headers());
            if method != "ImportParticipants" || response.headers().contains_key("grpc-status") {
                metrics.record(method, code, reason, started.elapsed());
                return Ok(response.map(|body| Counted {
                    inner: body,
                    pending: None,
                }));
            }
            // A stream's outcome is in its trailers: it is counted once, when it ends.
            Ok(response.map(|body| Counted {
                inner: body,
                pending: Some(Pending {
                    metrics,
                    method,
                    started,
                }),
            }))
        })
    }
}

/// A streamed call not yet counted.
struct Pending {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
}

impl Pending {
    fn record(self, code: Cow<'static, str>, reason: Cow<'static, str>) {
        self.metrics
            .record(self.method, code, reason, self.started.elapsed());
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its call when its trailers go out, or as `Cancelled` when
    /// it is dropped before (the client went away).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.record(Cow::Borrowed("Cancelled"), Cow::Borrowed(""));
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(trailers) = f.trailers_ref()
            && let Some(pending) = this.pending.take()
        {
            let (code, reason) = grpc_outcome(trailers);
            pending.record(code, reason);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a REST answer was, for the REST metrics layer: the use case it reached and the reason
/// it was refused with (`""` for a success).
#[derive(Debug, Clone, Copy)]
pub struct RestOutcome {
    pub method: &'static str,
    pub reason: &'static str,
}

/// Counts every call of the REST edge (the router puts a `RestOutcome` in each response).
#[derive(Clone)]
pub struct RestMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for RestMetricsLayer {
    type Service = RestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<http::Request<B>> for RestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let future = inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let outcome = response
                .extensions()
                .get::<RestOutcome>()
                .copied()
                .unwrap_or(RestOutcome {
                    method: "rest:other",
                    reason: "",
                });
            metrics.record(
                outcome.method,
                Cow::Owned(response.status().as_str().to_owned()),
                Cow::Borrowed(outcome.reason),
                started.elapsed(),
            );
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            grpc_method("/openclinica.participants.v1.ParticipantService/UpsertParticipant"),
            "UpsertParticipant"
        );
        assert_eq!(grpc_method("/x.Y/Z"), "other");
        assert_eq!(grpc_method(&"/a".repeat(1000)), "other");
    }

    #[test]
    fn a_refusal_in_the_headers_gives_its_code_and_reason() {
        let status = crate::grpc::status::simple_status(
            crate::domain::Reason::Unauthenticated,
            "missing or invalid bearer token",
        );
        let response = status.into_http::<tonic::body::Body>();
        assert_eq!(
            grpc_outcome(response.headers()),
            ("Unauthenticated".into(), "UNAUTHENTICATED".into())
        );
        assert_eq!(
            grpc_outcome(&http::HeaderMap::new()),
            ("OK".into(), "".into())
        );
    }

    #[test]
    fn code_names_are_the_debug_names_and_ok_is_spelt_as_for_unary_calls() {
        assert_eq!(
            code_name(tonic::Code::Ok),
            grpc_outcome(&http::HeaderMap::new()).0
        );
        for n in 1..=17 {
            let code = tonic::Code::from_i32(n);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }
}
