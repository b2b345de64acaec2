//! Traces (SPEC section 15): one span per call, continuing the caller's W3C `traceparent` (gRPC
//! metadata and HTTP headers alike), exported over OTLP (HTTP/protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Every log line of a call carries its `trace_id` (and
//! the `request_id` once known) through the span. Spans hold the method and ids only: no
//! request field, so no personal data, ever reaches them.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
};

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The variable that turns OTLP export on (the OpenTelemetry convention).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether this process built an OTLP pipeline: only then can a span's trace id come from the
/// exporter, and only then must `call_span` create the span before it knows the id.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The OTLP pipeline, when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector: the provider (to
/// flush at exit) and its tracer for the `tracing` layer.
pub struct Otlp {
    pub provider: SdkTracerProvider,
    pub tracer: opentelemetry_sdk::trace::Tracer,
}

impl Otlp {
    /// Builds the exporter from the standard `OTEL_*` variables, or `None` when no endpoint is
    /// set. A bad setting is an error (start-up stops with one line).
    pub fn from_env() -> Result<Option<Self>, String> {
        if std::env::var(OTLP_ENDPOINT_ENV).is_ok_and(|v| v.trim().is_empty())
            || std::env::var_os(OTLP_ENDPOINT_ENV).is_none()
        {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("{OTLP_ENDPOINT_ENV}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("participants")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("participants");
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Some(Self { provider, tracer }))
    }

    /// Sends what is buffered; called at exit.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not finish");
        }
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one call named `method`, child of the caller's `traceparent` when it sent a
/// valid one. Its `trace_id` field is the trace's id: the caller's, the exporter's new one, or
/// (without either) a fresh random id, so that a call's log lines always share one id.
///
/// The id is given when the span is made whenever it is known then (the caller's, or a fresh
/// one when nothing exports): recording it later makes the JSON log layer parse and write the
/// span's fields again, a cost every call would pay.
pub fn call_span(method: &str, headers: &http::HeaderMap) -> tracing::Span {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let from_caller = parent.span().span_context().trace_id();
    let known = if from_caller != TraceId::INVALID {
        Some(from_caller)
    } else if !EXPORTING.load(Ordering::Relaxed) {
        Some(TraceId::from_bytes(rand::random::<[u8; 16]>()))
    } else {
        None
    };
    if let Some(id) = known {
        let span = tracing::info_span!(
            "call",
            otel.name = method,
            rpc.method = method,
            trace_id = %id,
            request_id = tracing::field::Empty,
        );
        if from_caller != TraceId::INVALID {
            let _ = span.set_parent(parent);
        }
        return span;
    }
    let span = tracing::info_span!(
        "call",
        otel.name = method,
        rpc.method = method,
        trace_id = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    let exported = span.context().span().span_context().trace_id();
    let id = [exported, from_caller]
        .into_iter()
        .find(|id| *id != TraceId::INVALID)
        .unwrap_or_else(|| TraceId::from_bytes(rand::random::<[u8; 16]>()));
    span.record("trace_id", tracing::field::display(id));
    span
}

/// Records the call's `request_id` on its span (it then appears on every later log line).
pub fn record_request_id(request_id: &str) {
    if !request_id.is_empty() {
        tracing::Span::current().record("request_id", request_id);
    }
}

/// Wraps every gRPC call in its span.
#[derive(Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

#[derive(Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for GrpcTrace<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = super::metrics::grpc_method(request.uri().path());
        let span = call_span(method, request.headers());
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = span.in_scope(|| inner.call(request));
        Box::pin(future.instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_trace_id_is_continued_and_a_missing_one_is_made() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt;

        #[derive(Clone, Default)]
        struct Seen(Arc<Mutex<Vec<String>>>);
        struct Visitor<'a>(&'a mut Vec<String>);
        impl tracing::field::Visit for Visitor<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "trace_id" {
                    self.0.push(format!("{value:?}"));
                }
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                if let Ok(mut seen) = self.0.lock() {
                    attrs.record(&mut Visitor(&mut seen));
                }
            }

            fn on_record(
                &self,
                _: &tracing::span::Id,
                values: &tracing::span::Record<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                if let Ok(mut seen) = self.0.lock() {
                    values.record(&mut Visitor(&mut seen));
                }
            }
        }
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let _a = call_span("GetParticipant", &headers);
            let _b = call_span("GetParticipant", &http::HeaderMap::new());
            let mut bad = http::HeaderMap::new();
            bad.insert("traceparent", http::HeaderValue::from_static("garbage"));
            let _c = call_span("GetParticipant", &bad);
        });
        let seen = seen.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], "4bf92f3577b34da6a3ce929d0e0e4736");
        for made in &seen[1..] {
            assert_eq!(made.len(), 32, "{made}");
            assert_ne!(made, "00000000000000000000000000000000");
            assert_ne!(made, &seen[0]);
        }
        assert_ne!(seen[1], seen[2]);
    }
}
