//! The edge of the ParticipantService: global admission control, and typed answers for the
//! failures tonic makes itself while decoding a request.
//!
//! One semaphore is shared by every connection. A call that finds no permit is answered at
//! once — before its token is verified or its body decoded — with `RESOURCE_EXHAUSTED`,
//! `SERVER_OVERLOADED` and a `RetryInfo`. Overload thus costs a header frame per refused call
//! instead of a queue.
//!
//! tonic answers an oversized message with `OUT_OF_RANGE` (or `RESOURCE_EXHAUSTED` when a
//! decompressed message outgrows the limit) and an undecodable one with `INTERNAL`, both
//! without `ErrorInfo`. Every status the service itself makes carries an `ErrorInfo`, so a
//! status without details is tonic's: it is rewritten into the error contract (any other
//! `INTERNAL` without details becomes the contract's `INTERNAL`).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::sync::Semaphore;
use tonic::{Code, Status, body::Body, codegen::http, server::NamedService};
use tower::Service;

use super::status::{overloaded_status, simple_status};
use crate::domain::Reason;

/// Wraps the (authenticated) ParticipantService.
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    max_message_bytes: usize,
}

/// A call's admission: it counts as in flight until every clone is dropped. The service finds
/// one in the request's extensions; a streaming call keeps it until its stream ends, since the
/// admission itself ends when the response headers are ready.
#[derive(Clone)]
pub struct CallPermit(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// A view of how many ParticipantService calls are in flight (the drain waits for none).
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl InFlight {
    pub fn count(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.permits.available_permits())
    }
}

impl<S> Admission<S> {
    /// `max_in_flight` calls at once across all connections; more are refused.
    /// `max_message_bytes` is the decoding limit set on the service, named in refusals.
    pub fn new(inner: S, max_in_flight: usize, max_message_bytes: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_in_flight: max_in_flight.max(1),
            max_message_bytes,
        }
    }

    /// How many calls are in flight, for as long as the server runs.
    pub fn in_flight(&self) -> InFlight {
        InFlight {
            permits: self.permits.clone(),
            max_in_flight: self.max_in_flight,
        }
    }
}

impl<S: NamedService> NamedService for Admission<S> {
    const NAME: &'static str = S::NAME;
}

/// How long a refused caller is told to wait: 100 ms to 1 s, spread so that refused callers
/// do not all come back at the same instant.
fn retry_delay() -> Duration {
    Duration::from_millis(rand::random_range(100..=1000))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<Body>> for Admission<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let response = overloaded_status(retry_delay()).into_http();
            return Box::pin(std::future::ready(Ok(response)));
        };
        let permit = CallPermit(Arc::new(permit));
        request.extensions_mut().insert(permit.clone());
        // The ready service answers this call; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(request);
        let limit = self.max_message_bytes;
        Box::pin(async move {
            let response = future.await?.map(Body::new);
            drop(permit);
            Ok(typed(response, limit))
        })
    }
}

/// Gives a tonic-made error status (one without details) its place in the error contract.
fn typed(response: http::Response<Body>, max_message_bytes: usize) -> http::Response<Body> {
    let headers = response.headers();
    if headers.contains_key(Status::GRPC_STATUS_DETAILS) {
        return response;
    }
    let Some(code) = headers
        .get(Status::GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
    else {
        return response;
    };
    let status = match code {
        Code::OutOfRange | Code::ResourceExhausted => simple_status(
            Reason::MessageTooLarge,
            &format!("the request message is larger than {max_message_bytes} bytes"),
        ),
        // tonic's decoder: "failed to decode Protobuf message", "Unexpected EOF decoding
        // stream", "protocol error: … compression flag", "Error decompressing" (the message
        // is percent-encoded, spaces included, so single words are matched).
        Code::Internal if is_decode_failure(headers) => simple_status(
            Reason::MalformedRequest,
            "the request message could not be decoded",
        ),
        Code::Internal => simple_status(Reason::Internal, "internal error"),
        _ => return response,
    };
    status.into_http()
}

fn is_decode_failure(headers: &http::HeaderMap) -> bool {
    let message = headers
        .get(Status::GRPC_MESSAGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
        .unwrap_or_default();
    // "Missing request message": an empty body, which is no message either.
    ["decod", "decompress", "protocol", "missing"]
        .iter()
        .any(|word| message.contains(word))
}
