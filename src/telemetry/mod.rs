//! What operators watch (SPEC section 15): metrics for Prometheus and traces for OTLP, each as
//! tower layers that both edges (gRPC and REST) wear.

pub mod metrics;
pub mod trace;

pub use metrics::{BATCH_BUCKETS, GrpcMetricsLayer, Metrics, RestMetricsLayer, RestOutcome};
