//! The accept loop: a bounded number of connections, each of which must send the HTTP/2
//! client preface within the handshake timeout before tonic ever sees it.
//!
//! - Over the cap a connection is accepted and closed at once: no queue, no file descriptor
//!   held. The cap's permit travels with the connection and is released when it closes.
//! - A connection that has not sent the 24-byte preface within the handshake timeout is
//!   closed; so are all such connections the moment draining begins, so a shutdown does not
//!   wait for them.
//! - A connection still open `close_after` after it was established (its maximum age plus a
//!   grace) is closed hard, unless a call is still being handled on it (a write that has
//!   started, an import until its last row is answered): then it is checked again every second.
//!   An answer that is ready but cannot be sent does not count. The GOAWAY at the maximum age and the request-half deadline end nearly every
//!   connection well before; this is for a peer that keeps a stream open otherwise, e.g. by
//!   never granting the flow-control window a response needs.
//! - Accept errors (EMFILE, ENFILE, ENOBUFS…) never end the stream and never spin: the loop
//!   sleeps with a doubling delay (1 ms up to 1 s) and warns at most every 10 s.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    task::{JoinHandle, JoinSet},
    time::Sleep,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The HTTP/2 client preface (RFC 9113 section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often a connection past `close_after` that still has a call being handled is checked again.
const RECHECK_LONG_CALLS: Duration = Duration::from_secs(1);

/// File descriptors kept free of client connections: the listener, the SQLite journal files,
/// logs, files read at run time (JWKS) and the runtime's own; the pool comes on top.
pub const FD_HEADROOM: u64 = 64;

/// The connection cap that fits under an open-file limit of `fd_limit`, with room for
/// `db_connections` pooled connections and `FD_HEADROOM`; never above `wanted`, never 0.
pub fn fit_connection_cap(wanted: usize, fd_limit: u64, db_connections: u32) -> usize {
    let room = fd_limit.saturating_sub(FD_HEADROOM + u64::from(db_connections));
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(wanted)
        .max(1)
}

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct IncomingConfig {
    /// Connections held at once, handshaking or established.
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// TCP keepalive idle time on accepted sockets.
    pub tcp_keepalive: Duration,
    /// A connection open this long (from its preface) with no call being handled is closed hard
    /// (`None`: never).
    pub close_after: Option<Duration>,
}

/// The calls being handled on one connection (from arrival until the handler has its answer;
/// an import until its last row is answered): while there is one, the connection is
/// not closed hard.
#[derive(Debug, Clone, Default)]
pub struct CallsHandled(Arc<AtomicUsize>);

impl CallsHandled {
    /// Counts a call until the guard is dropped.
    pub fn enter(&self) -> CallHandled {
        self.0.fetch_add(1, Ordering::SeqCst);
        CallHandled(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// One call being handled on a connection, counted while it lives.
#[derive(Debug)]
pub struct CallHandled(Arc<AtomicUsize>);

impl Drop for CallHandled {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a call knows of its connection (in the request's extensions).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The addresses, as tonic's `Request::remote_addr` reads them (put beside this one).
    pub tcp: TcpConnectInfo,
    pub calls_handled: CallsHandled,
}

/// An accepted connection that has sent its preface; it holds one permit of the cap.
pub struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// When to close it hard, unless a call is being handled on it.
    close_at: Option<Pin<Box<Sleep>>>,
    closed: bool,
    calls_handled: CallsHandled,
}

impl Connection {
    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.peer_addr()
    }

    /// Whether the connection is to be closed now; otherwise its timer is registered with
    /// `cx`, so that the connection's task wakes up when the time comes.
    fn must_close(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return true;
        }
        let Some(close_at) = self.close_at.as_mut() else {
            return false;
        };
        while close_at.as_mut().poll(cx).is_ready() {
            if self.calls_handled.count() == 0 {
                self.closed = true;
                tracing::debug!("connection past its maximum age and grace: closed");
                return true;
            }
            let next = tokio::time::Instant::now() + RECHECK_LONG_CALLS;
            close_at.as_mut().reset(next);
        }
        false
    }

    fn closed_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "connection past its maximum age and grace",
        )
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.stream.connect_info(),
            calls_handled: self.calls_handled.clone(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.must_close(cx) {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.must_close(cx) {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.must_close(cx) {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.must_close(cx) {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Starts the accept loop on `listener` and returns the stream of connections for
/// `serve_with_incoming_shutdown`, with the loop's task. The loop ends (closing the listening
/// socket and every connection still handshaking) when `draining` turns true or the stream is
/// dropped; a server awaits the task before it returns, so that the socket is closed by then
/// (the task runs on its own and may not have run since `draining` turned).
pub fn incoming(
    listener: TcpListener,
    config: IncomingConfig,
    draining: watch::Receiver<bool>,
) -> (
    ReceiverStream<Result<Connection, io::Error>>,
    JoinHandle<()>,
) {
    spawn_accept_loop(listener, config, draining)
}

fn spawn_accept_loop(
    listener: impl Accept,
    config: IncomingConfig,
    draining: watch::Receiver<bool>,
) -> (
    ReceiverStream<Result<Connection, io::Error>>,
    JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(accept_loop(listener, config, draining, tx));
    (ReceiverStream::new(rx), task)
}

/// What the end of an edge's accept loop says about the edge: an error when it panicked.
pub fn accept_loop_ended(
    ended: Result<(), tokio::task::JoinError>,
    edge: &str,
) -> Result<(), String> {
    match ended {
        Err(e) if e.is_panic() => Err(format!("the {edge} accept loop failed: {e}")),
        _ => Ok(()),
    }
}

/// Where connections come from: a `TcpListener`, or a stand-in in tests.
trait Accept: Send + 'static {
    fn accept(&mut self) -> impl Future<Output = io::Result<TcpStream>> + Send;
}

impl Accept for TcpListener {
    async fn accept(&mut self) -> io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// Whether an accept error concerns only the connection being accepted (retry at once)
/// rather than the process (back off).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn accept_loop(
    mut listener: impl Accept,
    config: IncomingConfig,
    mut draining: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<Connection, io::Error>>,
) {
    let cap = Arc::new(Semaphore::new(config.max_connections.max(1)));
    // Connections waiting for their preface; dropping the set closes them all.
    let mut handshaking = JoinSet::new();
    let mut backoff = FIRST_BACKOFF;
    let mut last_warn: Option<Instant> = None;
    let mut suppressed = 0u64;
    let mut last_cap_warn: Option<Instant> = None;
    let mut refused_over_cap = 0u64;
    loop {
        if *draining.borrow() {
            break;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = draining.changed() => break,
            _ = tx.closed() => break,
            Some(_) = handshaking.join_next(), if !handshaking.is_empty() => continue,
        };
        let stream = match accepted {
            Ok(stream) => {
                backoff = FIRST_BACKOFF;
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let now = Instant::now();
                if last_warn.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
                    tracing::warn!(
                        error = %e,
                        errors_since_last_warning = suppressed,
                        retry_in_ms = backoff.as_millis() as u64,
                        "cannot accept connections; backing off"
                    );
                    last_warn = Some(now);
                    suppressed = 0;
                } else {
                    suppressed += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = draining.changed() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            // Over the cap: close at once (dropping the stream), count, and warn rarely.
            refused_over_cap += 1;
            let now = Instant::now();
            if last_cap_warn.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
                tracing::warn!(
                    max_connections = config.max_connections,
                    refused_so_far = refused_over_cap,
                    "connection cap reached; closing new connections"
                );
                last_cap_warn = Some(now);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(config.tcp_keepalive);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let tx = tx.clone();
        let timeout = config.handshake_timeout;
        let close_after = config.close_after;
        handshaking.spawn(async move {
            match tokio::time::timeout(timeout, wait_for_preface(&stream)).await {
                Ok(true) => {
                    let _ = tx
                        .send(Ok(Connection {
                            stream,
                            _permit: permit,
                            close_at: close_after.map(|d| Box::pin(tokio::time::sleep(d))),
                            closed: false,
                            calls_handled: CallsHandled::default(),
                        }))
                        .await;
                }
                Ok(false) => {}
                Err(_) => tracing::debug!("no HTTP/2 preface within the handshake timeout"),
            }
        });
    }
    tracing::debug!(
        handshaking = handshaking.len(),
        "accept loop stopped; closing connections that never sent a preface"
    );
}

/// Waits until the peer has sent the whole HTTP/2 preface (true), or sent something else or
/// closed (false). The bytes stay in the socket for hyper to read.
async fn wait_for_preface(stream: &TcpStream) -> bool {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n] != PREFACE[..n] {
            // Not HTTP/2 (e.g. HTTP/1 or TLS): hyper answers or closes it as before.
            return true;
        }
        if n == PREFACE.len() {
            return true;
        }
        // Part of the preface: peek would return at once again; poll gently.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio_stream::StreamExt;

    use super::*;

    /// A listener out of file descriptors: every accept fails with EMFILE.
    struct OutOfFiles(Arc<AtomicUsize>);

    impl Accept for OutOfFiles {
        async fn accept(&mut self) -> io::Result<TcpStream> {
            if self.0.fetch_add(1, Ordering::SeqCst) >= 1000 {
                // A hot loop would get here; stop it so the test ends and fails.
                std::future::pending::<()>().await;
            }
            Err(io::Error::from_raw_os_error(24))
        }
    }

    /// A listener that never accepts, and tells when it is dropped (its socket closed).
    struct Silent(Arc<AtomicUsize>);

    impl Accept for Silent {
        async fn accept(&mut self) -> io::Result<TcpStream> {
            std::future::pending().await
        }
    }

    impl Drop for Silent {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn config() -> IncomingConfig {
        IncomingConfig {
            max_connections: 4,
            handshake_timeout: Duration::from_secs(5),
            tcp_keepalive: Duration::from_secs(60),
            close_after: None,
        }
    }

    /// Waits (at most 5 s) for the loop's task to end cleanly, then checks the listener was
    /// dropped exactly once.
    async fn ends_and_closes(task: JoinHandle<()>, dropped: &AtomicUsize, cause: &str) {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap_or_else(|_| panic!("{cause} ends the loop"))
            .expect("the loop ends cleanly");
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "closed once the task ended"
        );
    }

    /// Once the loop's task has ended, the listener is closed, whether draining ended it or
    /// the server dropping the stream did.
    #[tokio::test]
    async fn the_listener_is_closed_when_the_accept_loop_task_ends() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (draining_tx, draining) = watch::channel(false);
        let (_stream, task) = spawn_accept_loop(Silent(dropped.clone()), config(), draining);
        tokio::task::yield_now().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "open while serving");
        draining_tx.send(true).expect("the loop listens");
        ends_and_closes(task, &dropped, "draining").await;

        let dropped = Arc::new(AtomicUsize::new(0));
        let (_draining_tx, draining) = watch::channel(false);
        let (stream, task) = spawn_accept_loop(Silent(dropped.clone()), config(), draining);
        drop(stream);
        ends_and_closes(task, &dropped, "dropping the stream").await;
    }

    /// A listener whose accept panics (a bug in the loop, as it would show).
    struct Broken;

    impl Accept for Broken {
        async fn accept(&mut self) -> io::Result<TcpStream> {
            panic!("a bug in the accept loop")
        }
    }

    /// A loop that panicked ends the stream as a clean end would: the server that awaits it
    /// reports an error instead of a clean stop; a loop that ended by draining reports none.
    #[tokio::test]
    async fn an_accept_loop_that_panicked_is_an_error_of_its_edge() {
        let (_draining_tx, draining) = watch::channel(false);
        let (mut stream, task) = spawn_accept_loop(Broken, config(), draining);
        assert!(
            stream.next().await.is_none(),
            "the stream ends with the loop"
        );
        let ended = accept_loop_ended(task.await, "gRPC");
        let error = ended.expect_err("a panic is an error");
        assert!(error.contains("the gRPC accept loop failed"), "{error}");

        let (draining_tx, draining) = watch::channel(false);
        let (_stream, task) = spawn_accept_loop(Silent(Arc::default()), config(), draining);
        draining_tx.send(true).expect("the loop listens");
        assert_eq!(accept_loop_ended(task.await, "gRPC"), Ok(()));
    }

    #[test]
    fn the_connection_cap_fits_under_the_open_file_limit() {
        // The usual soft limit: 1,024 descriptors, a pool of 10.
        assert_eq!(fit_connection_cap(1024, 1024, 10), 950);
        // Raised to a container's hard limit: the wanted cap stands.
        assert_eq!(fit_connection_cap(1024, 1_048_576, 10), 1024);
        assert_eq!(fit_connection_cap(1024, u64::MAX, 10), 1024);
        // Hardly any room: one connection still.
        assert_eq!(fit_connection_cap(1024, 50, 10), 1);
    }

    #[tokio::test]
    async fn accept_errors_back_off_and_never_end_the_stream() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (_draining_tx, draining) = watch::channel(false);
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(accept_loop(
            OutOfFiles(calls.clone()),
            config(),
            draining,
            tx,
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // 1 ms doubling to 1 s: 11 tries in the first 1.023 s, then one a second (a hot loop
        // would make hundreds of thousands).
        let n = calls.load(Ordering::SeqCst);
        assert!((10..=16).contains(&n), "{n} accepts in 2.5 s");
        // The stream is still open: nothing was sent, nothing ended.
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        assert!(!task.is_finished());
        task.abort();
    }
}
