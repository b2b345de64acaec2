//! A deadline on the request half of every call but the long ones.
//!
//! A unary or server-streaming call is decoded only once its request half has ended (tonic
//! waits for END_STREAM, or trailers, after the one message), and a reflection stream lives
//! until its client ends it. A client that opens such a call and never ends its request half
//! would hold the stream, and so its connection, forever: `--max-connection-age` sends a
//! GOAWAY, but a connection closes only once its last stream has ended. Health and reflection
//! need no token, so anyone could fill the connection cap that way.
//!
//! Here every call's request body must end within the request timeout of the call's arrival;
//! past it, the body fails with `DEADLINE_EXCEEDED` (`REQUEST_TIMED_OUT`), which tonic answers
//! as the call's status (a reflection stream then ends), and the stream closes. Calls whose
//! request half is long by design are exempt: ImportParticipants, which has its own idle
//! timeout. A Health/Watch is bounded here too, but only until its request half ends (at once,
//! for any real client): the watch itself ends at the connection age (see `health.rs`).
//!
//! Every call also counts as handled on its connection until its handler has its answer, so
//! that the hard close of old connections (see `incoming.rs`) never cuts a write that has
//! started. An exempt call (an import) answers at once with a stream: its count travels in the
//! request's extensions (`CallInProgress`) to the import's task, which holds it until the import
//! ends. An answer that is ready but never read off (a client that grants no window) holds
//! nothing, so it cannot pin the connection.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body as _, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::codegen::Bytes;
use tonic::{Status, body::Body, codegen::http};
use tower::{Layer, Service};

use super::{incoming::ConnectionInfo, status::simple_status};
use crate::domain::Reason;

/// Bounds the request half of every call except those named in `exempt`.
#[derive(Debug, Clone)]
pub struct RequestDeadlineLayer {
    timeout: Duration,
    exempt: &'static [(&'static str, &'static str)],
}

impl RequestDeadlineLayer {
    /// `exempt`: (fully qualified service name, method name) of the calls left unbounded.
    pub fn new(timeout: Duration, exempt: &'static [(&'static str, &'static str)]) -> Self {
        Self { timeout, exempt }
    }
}

impl<S> Layer<S> for RequestDeadlineLayer {
    type Service = RequestDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestDeadline {
            inner,
            timeout: self.timeout,
            exempt: self.exempt,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestDeadline<S> {
    inner: S,
    timeout: Duration,
    exempt: &'static [(&'static str, &'static str)],
}

impl<S> RequestDeadline<S> {
    fn is_exempt(&self, path: &str) -> bool {
        let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
            return false;
        };
        self.exempt
            .iter()
            .any(|&(s, m)| s == service && m == method)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<http::Request<Body>> for RequestDeadline<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        if let Some(connection) = &connection {
            // For tonic's `Request::remote_addr`.
            request.extensions_mut().insert(connection.tcp.clone());
        }
        let handled = connection.map(|c| c.calls_handled.enter());
        if self.is_exempt(request.uri().path()) {
            if let Some(handled) = handled {
                request.extensions_mut().insert(CallInProgress {
                    _held: Arc::new(handled),
                });
            }
            return Box::pin(self.inner.call(request));
        }
        let future = if request.body().is_end_stream() {
            self.inner.call(request)
        } else {
            let timeout = self.timeout;
            self.inner.call(request.map(|body| {
                Body::new(Bounded {
                    inner: body,
                    deadline: Some(Box::pin(tokio::time::sleep(timeout))),
                    expired: false,
                })
            }))
        };
        Box::pin(async move {
            let response = future.await;
            drop(handled);
            response
        })
    }
}

/// A long call's place among the calls handled on its connection: the handler moves it to
/// whatever runs the call, and drops it when the call ends.
#[derive(Debug, Clone)]
pub struct CallInProgress {
    _held: Arc<super::incoming::CallHandled>,
}

/// A request body that fails once its deadline passes before it has ended.
struct Bounded {
    inner: Body,
    /// None once the body has ended (or failed).
    deadline: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        // What has arrived is always delivered, even late.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                if frame.is_err() {
                    this.deadline = None;
                }
                Poll::Ready(Some(frame))
            }
            Poll::Pending => {
                let Some(deadline) = this.deadline.as_mut() else {
                    return Poll::Pending;
                };
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.deadline = None;
                this.expired = true;
                tracing::debug!("request half not ended within the request timeout");
                Poll::Ready(Some(Err(simple_status(
                    Reason::RequestTimedOut,
                    "the request was not received in full within the request timeout; nothing was written, and a retry with the same request_id is safe",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
