//! `grpc.health.v1.Health` with bounded watches. `Check` is answered as tonic-health does;
//! `Watch` streams, which never end by themselves and need no token, are capped in number and
//! end at the connection age and when draining begins: otherwise a client could open many and
//! hold them, filling the connection cap, defeating `--max-connection-age` and holding a drain.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::{
    pb::{HealthCheckRequest, HealthCheckResponse, health_server::Health},
    server::HealthService,
};

/// The health service with at most `max_watches` watches, each ending after `lifetime` (when
/// set) or once `end` is cancelled.
pub struct BoundedHealth {
    inner: HealthService,
    watches: Arc<Semaphore>,
    max_watches: usize,
    lifetime: Option<Duration>,
    end: CancellationToken,
}

impl BoundedHealth {
    pub fn new(
        inner: HealthService,
        max_watches: usize,
        lifetime: Option<Duration>,
        end: CancellationToken,
    ) -> Self {
        let max_watches = max_watches.max(1);
        Self {
            inner,
            watches: Arc::new(Semaphore::new(max_watches)),
            max_watches,
            lifetime,
            end,
        }
    }
}

#[tonic::async_trait]
impl Health for BoundedHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = BoundedWatch;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let Ok(permit) = self.watches.clone().try_acquire_owned() else {
            tracing::debug!(
                max_health_watches = self.max_watches,
                "health watch refused: too many open"
            );
            return Err(Status::resource_exhausted(
                "too many health watches are open: use Check, or watch again later",
            ));
        };
        let inner = self.inner.watch(request).await?.into_inner();
        let end = self.end.clone();
        let lifetime = self.lifetime;
        let ended: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            match lifetime {
                Some(lifetime) => {
                    tokio::select! {
                        _ = end.cancelled() => {}
                        _ = tokio::time::sleep(lifetime) => {}
                    }
                }
                None => end.cancelled().await,
            }
        });
        Ok(Response::new(BoundedWatch {
            inner: Box::pin(inner),
            ended,
            done: false,
            _permit: permit,
        }))
    }
}

type Statuses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

/// A watch that answers `UNAVAILABLE` (watch again, on a new connection) when it ends.
pub struct BoundedWatch {
    inner: Statuses,
    ended: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
    /// Its place among the watches, given back when the stream is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Stream for BoundedWatch {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.ended.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(Status::unavailable(
                "the health watch ended (connection age or shutdown): watch again",
            ))));
        }
        self.inner.as_mut().poll_next(cx)
    }
}
