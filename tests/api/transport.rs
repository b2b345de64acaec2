//! The transport's own limits: the connection cap, the handshake timeout, draining, and
//! typed answers for bodies tonic cannot decode.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use participants::{
    app::{App, Settings},
    auth::JwtSettings,
    grpc::server::{self, ServerConfig},
};
use tokio::{io::AsyncReadExt, net::TcpStream, sync::oneshot, task::JoinHandle};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{
    AppOptions, Backend, SECRET, TestApp, expect_failure, fresh_database, test_settings, with_token,
};

/// A server whose end can be awaited.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<Result<(), String>>,
    _db: crate::helpers::TestDb,
}

/// The server with `config` on SQLite, gRPC only; `stop` starts `App::shutdown`.
async fn start(config: ServerConfig) -> Running {
    let db = fresh_database(Backend::Sqlite).await;
    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(config);
    let settings = Settings {
        http_listen: None,
        admin_listen: None,
        ..test_settings(&options, &db)
    };
    let app = App::build(settings).await.expect("the server starts");
    let addr = app.grpc_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let _ = rx.await;
        app.shutdown().await
    });
    Running {
        addr,
        stop: Some(tx),
        served,
        _db: db,
    }
}

async fn channel(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

async fn health(channel: Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
}

/// Whether the server closed `stream` within `within` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_and_closed_after_the_handshake_timeout() {
    let server = start(ServerConfig {
        max_connections: 4,
        handshake_timeout: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    // An established client keeps working whatever the silent ones do.
    let established = channel(server.addr).await.expect("connect");
    health(established.clone()).await.expect("health");

    // Three silent connections fill the cap (the established one holds the fourth place).
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr).await.expect("tcp"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Over the cap: accepted and closed at once.
    for _ in 0..5 {
        let mut over = TcpStream::connect(server.addr).await.expect("tcp");
        assert!(
            closed_within(&mut over, Duration::from_millis(300)).await,
            "a connection over the cap is closed at once"
        );
    }
    health(established.clone())
        .await
        .expect("health on the established connection while the cap is full");

    // The silent ones are held until the handshake timeout, then closed.
    for s in &mut silent {
        assert!(
            !closed_within(s, Duration::from_millis(100)).await,
            "held before the timeout ({:?})",
            opened.elapsed()
        );
    }
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "closed after the handshake timeout"
        );
    }
    assert!(opened.elapsed() >= Duration::from_millis(1500));

    // Their places are free again: a new connection is served.
    let fresh = channel(server.addr)
        .await
        .expect("connect after the timeout");
    health(fresh).await.expect("health on a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_the_preface_slowly_is_served() {
    let server = start(ServerConfig {
        handshake_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    // A raw HTTP/2 preface sent in two parts, then nothing: it counts as a handshake only
    // once complete, and the server then answers with its SETTINGS frame.
    let mut stream = TcpStream::connect(server.addr).await.expect("tcp");
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(b"\r\nSM\r\n\r\n").await.expect("write");
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut header))
        .await
        .expect("the server answers in time")
        .expect("a frame header");
    assert_eq!(header[3], 0x4, "a SETTINGS frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_silent_connections_open_finishes_fast() {
    let mut server = start(ServerConfig {
        handshake_timeout: Duration::from_secs(30),
        grace_period: Duration::from_secs(10),
        ..Default::default()
    })
    .await;
    let established = channel(server.addr).await.expect("connect");
    health(established.clone()).await.expect("health");
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(server.addr).await.expect("tcp"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let _ = server.stop.take().expect("running").send(());
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(2)).await,
            "a silent connection is closed when draining begins"
        );
    }
    drop(established);
    let result = tokio::time::timeout(Duration::from_secs(3), &mut server.served)
        .await
        .expect("the drain does not wait for connections that never sent a byte")
        .expect("task");
    assert_eq!(result, Ok(()));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A peer that sends the HTTP/2 preface and an empty SETTINGS frame, then never answers
/// (not even the server's GOAWAY), does not hold the drain for the whole grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_idle_http2_connections_open_finishes_fast() {
    use tokio::io::AsyncWriteExt;

    let mut server = start(ServerConfig {
        grace_period: Duration::from_secs(10),
        ..Default::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(server.addr).await.expect("tcp");
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("preface");
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .expect("settings");
        idle.push(s);
    }
    // A real call, finished before the drain.
    let established = channel(server.addr).await.expect("connect");
    health(established.clone()).await.expect("health");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let _ = server.stop.take().expect("running").send(());
    let result = tokio::time::timeout(Duration::from_secs(3), &mut server.served)
        .await
        .expect("the drain does not wait the grace period for idle connections")
        .expect("task");
    assert_eq!(result, Ok(()));
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(idle);
}

/// Passes bytes through untouched, to send what the generated client never would.
#[derive(Default)]
pub(crate) struct RawCodec;

pub(crate) struct RawEncoder;
pub(crate) struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Sends `body` as the UpsertParticipant request message, byte for byte.
pub(crate) async fn send_raw(
    app: &TestApp,
    user: &str,
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    let path = PathAndQuery::try_from(format!("/{}/UpsertParticipant", server::SERVICE_NAME))
        .expect("path");
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    grpc.unary(with_token(body, &app.token(user)), path, RawCodec)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_body_is_a_malformed_request() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token("crc.ohio");
    let path = PathAndQuery::try_from(format!("/{}/UpsertParticipant", server::SERVICE_NAME))
        .expect("path");
    // Bytes that are no protobuf message: an invalid wire type, and a truncated varint.
    for body in [vec![0xff; 16], vec![0x0a, 0xff, 0xff, 0xff]] {
        let mut grpc = tonic::client::Grpc::new(app.channel.clone());
        grpc.ready().await.expect("ready");
        let r = grpc
            .unary(with_token(body, &token), path.clone(), RawCodec)
            .await
            .map(|_| ());
        let f = expect_failure(r, Code::InvalidArgument, "MALFORMED_REQUEST");
        assert_eq!(f.message, "the request message could not be decoded");
    }
    // A body with no message at all (tonic: "Missing request message"; was INTERNAL).
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let nothing = tokio_stream::iter(Vec::<Vec<u8>>::new());
    let r = grpc
        .client_streaming(with_token(nothing, &token), path.clone(), RawCodec)
        .await
        .map(|_| ());
    expect_failure(r, Code::InvalidArgument, "MALFORMED_REQUEST");
    assert_eq!(app.participant_count().await, 0);
}

/// The status health reports for the whole server ("").
async fn serving_status(channel: Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
}

/// After SIGTERM, health turns NOT_SERVING while the listener still accepts and calls are
/// still served (a balancer has the drain delay to notice); only then does the listener close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_before_the_listener_closes() {
    use participants::pb::participant_service_client::ParticipantServiceClient;
    use tonic_health::pb::health_check_response::ServingStatus;

    let mut server = start(ServerConfig {
        drain_delay: Duration::from_millis(1500),
        grace_period: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let established = channel(server.addr).await.expect("connect");
    assert_eq!(
        serving_status(established.clone()).await.expect("health"),
        ServingStatus::Serving as i32
    );
    let token = participants::auth::mint_hs256(
        &JwtSettings {
            hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
            ..Default::default()
        },
        "crc.ohio",
        Duration::from_secs(600),
    )
    .expect("token");

    let stopped = Instant::now();
    let _ = server.stop.take().expect("running").send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        serving_status(established.clone())
            .await
            .expect("health on the established connection"),
        ServingStatus::NotServing as i32
    );
    // Within the drain delay a new connection is still accepted and served.
    let late = channel(server.addr)
        .await
        .expect("the listener is still open during the drain delay");
    assert_eq!(
        serving_status(late.clone()).await.expect("health"),
        ServingStatus::NotServing as i32
    );
    let answer = ParticipantServiceClient::new(late)
        .get_participant(crate::helpers::with_token(
            crate::helpers::get_site(crate::helpers::JUNO, crate::helpers::OHIO, "NOBODY"),
            &token,
        ))
        .await;
    expect_failure(answer, Code::NotFound, "PARTICIPANT_NOT_FOUND");
    assert!(stopped.elapsed() < Duration::from_millis(1500));

    // After the delay the listener is closed and the server ends.
    let result = tokio::time::timeout(Duration::from_secs(5), &mut server.served)
        .await
        .expect("the server ends after the drain delay")
        .expect("task");
    assert_eq!(result, Ok(()));
    assert!(stopped.elapsed() >= Duration::from_millis(1500));
    assert!(
        channel(server.addr).await.is_err(),
        "no connection is accepted once drained"
    );
}

/// Reads HTTP/2 frames from `stream` until a GOAWAY (type 7) arrives or `within` passes.
async fn goaway_within(stream: &mut TcpStream, within: Duration) -> bool {
    let read = async {
        loop {
            let mut header = [0u8; 9];
            if stream.read_exact(&mut header).await.is_err() {
                return false;
            }
            if header[3] == 0x7 {
                return true;
            }
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

/// A connection older than the maximum age is sent a GOAWAY, so clients and proxies open a new
/// one (and reach a replica that joined since); calls on a channel never fail because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_older_than_the_max_age_are_sent_a_goaway() {
    use tokio::io::AsyncWriteExt;

    let server = start(ServerConfig {
        max_connection_age: Some(Duration::from_millis(400)),
        ..Default::default()
    })
    .await;
    let mut raw = TcpStream::connect(server.addr).await.expect("tcp");
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    raw.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    let opened = Instant::now();
    assert!(
        goaway_within(&mut raw, Duration::from_secs(3)).await,
        "a GOAWAY once the connection is older than the maximum age"
    );
    assert!(opened.elapsed() >= Duration::from_millis(300));

    // A client keeps calling across several connection lifetimes. A call sent at the very
    // moment the GOAWAY arrives can fail in tonic's client (it does not retry a stream the
    // server never saw, as grpc-go does): such a failure is rare, and the next call, on the
    // new connection, succeeds.
    let client = channel(server.addr).await.expect("connect");
    let until = Instant::now() + Duration::from_millis(1500);
    let (mut calls, mut raced) = (0, Vec::new());
    while Instant::now() < until {
        if let Err(status) = health(client.clone()).await {
            raced.push(status);
            health(client.clone())
                .await
                .expect("the call after a connection reached its maximum age succeeds");
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls > 20);
    assert!(
        raced.len() <= 2,
        "{} of {calls} calls failed across connection ages: {raced:?}",
        raced.len()
    );
}

/// A raw HTTP/2 connection with one call on it whose request half is never ended: HEADERS,
/// and `message` (a gRPC frame) when given, but no END_STREAM. Resolves to the connection's
/// task, which ends when the server closes the connection, and the pending answer.
async fn half_open_call(
    addr: SocketAddr,
    path: &str,
    message: Option<Vec<u8>>,
) -> (
    JoinHandle<()>,
    h2::client::ResponseFuture,
    h2::SendStream<bytes::Bytes>,
) {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    if let Some(message) = message {
        let mut frame = vec![0];
        frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(&message);
        body.send_data(bytes::Bytes::from(frame), false)
            .expect("send the message");
    }
    (connection, response, body)
}

/// A raw HTTP/2 connection that grants no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0)
/// with one whole call on it: HEADERS (with `token` when given), `message` as one gRPC frame,
/// END_STREAM. Resolves, once the answer's headers came (they need no window; its messages never
/// can), to the connection's task, which ends when the server closes the connection, the time
/// the connection was opened, and the client's handles: the connection stays open while they
/// are held.
async fn windowless_call(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    message: Vec<u8>,
) -> (JoinHandle<()>, Instant, WindowlessHandles) {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("h2 handshake");
    let opened = Instant::now();
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(()).expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&message);
    body.send_data(bytes::Bytes::from(frame), true)
        .expect("send");
    let response = response.await.expect("headers");
    (connection, opened, (client, body, response))
}

/// What keeps a `windowless_call` connection open on the client's side.
type WindowlessHandles = (
    h2::client::SendRequest<bytes::Bytes>,
    h2::SendStream<bytes::Bytes>,
    http::Response<h2::RecvStream>,
);

/// Health/Check and reflection need no token. A client that opens such a call and never ends
/// its request half (no END_STREAM) does not hold its connection, nor a place under the
/// connection cap, past the maximum connection age: the call is answered `DEADLINE_EXCEEDED`
/// once the request timeout has passed, the GOAWAY'd connection then closes, and a new client
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_unauthenticated_calls_do_not_outlive_the_max_connection_age() {
    use prost::Message;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_reflection::pb::{v1, v1alpha};

    let server = start(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        max_connections: 4,
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let check = "/grpc.health.v1.Health/Check";
    let opened = Instant::now();
    let list = |host: &str| -> Vec<u8> {
        v1::ServerReflectionRequest {
            host: host.to_owned(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        }
        .encode_to_vec()
    };
    let calls = vec![
        half_open_call(
            server.addr,
            check,
            Some(HealthCheckRequest::default().encode_to_vec()),
        )
        .await,
        half_open_call(server.addr, check, None).await,
        half_open_call(
            server.addr,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            Some(list("")),
        )
        .await,
        half_open_call(
            server.addr,
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            Some(
                v1alpha::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(
                        v1alpha::server_reflection_request::MessageRequest::ListServices(
                            String::new(),
                        ),
                    ),
                }
                .encode_to_vec(),
            ),
        )
        .await,
    ];
    // The four connections fill the cap: one more is closed at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(server.addr).await.expect("tcp");
    assert!(
        closed_within(&mut over, Duration::from_millis(300)).await,
        "the half-open calls' connections fill the cap"
    );

    // The Check that sent its message is answered DEADLINE_EXCEEDED after the request timeout.
    let (connections, mut responses): (Vec<_>, Vec<_>) = calls
        .into_iter()
        .map(|(connection, response, body)| (connection, (response, body)))
        .unzip();
    let (first, _body) = responses.remove(0);
    let answer = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the half-open Check is answered")
        .expect("response headers");
    assert_eq!(
        answer.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{:?}",
        answer.headers()
    );
    assert!(opened.elapsed() >= Duration::from_millis(1900));

    // Every connection closes within the age plus the request timeout (and a margin).
    for connection in connections {
        tokio::time::timeout(
            Duration::from_secs(5).saturating_sub(opened.elapsed()),
            connection,
        )
        .await
        .expect("the connection closes soon after its maximum age")
        .expect("task");
    }
    drop(responses);

    // Their places are free again: a new client is served.
    let fresh = channel(server.addr).await.expect("connect");
    assert_eq!(
        serving_status(fresh)
            .await
            .expect("health on a new connection"),
        ServingStatus::Serving as i32
    );
}

/// A client that sends a whole Health/Check but never grants the flow-control window its answer
/// needs (SETTINGS_INITIAL_WINDOW_SIZE 0) holds the stream open without any deadline able to
/// end it: the connection is closed hard once it is three request timeouts past its age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_withholds_the_window_of_its_answer_is_closed_after_the_age_and_grace() {
    use prost::Message;

    let server = start(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        max_connections: 1,
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    let (connection, opened, _held) = windowless_call(
        addr,
        "/grpc.health.v1.Health/Check",
        None,
        HealthCheckRequest::default().encode_to_vec(),
    )
    .await;

    tokio::time::timeout(Duration::from_secs(6), connection)
        .await
        .expect("the connection is closed after its age and grace")
        .expect("task");
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_millis(3500),
        "closed after {closed:?}"
    );
    // Its place under the cap (of one) is free again.
    let fresh = channel(addr).await.expect("connect");
    health(fresh).await.expect("health on a new connection");
}

/// An import on a connection past its age and grace is not cut: the hard close waits for it,
/// and every row sent over several connection ages is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_an_old_connection_is_not_cut() {
    use futures_util::StreamExt;
    use participants::pb::{
        import_result::Outcome, participant_service_client::ParticipantServiceClient,
    };

    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    const ROWS: usize = 14;
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for n in 0..ROWS {
            let _ = tx.send(crate::helpers::at_ohio(&format!("OLD{n}"))).await;
            // 14 rows over 6.5 s: past the age (1 s) and the hard close (1 s + 3 × 1 s).
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut answers = ParticipantServiceClient::new(app.channel.clone())
        .import_participants(with_token(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            &app.token("dm.juno"),
        ))
        .await
        .expect("the import starts")
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("the import is not cut");
        assert!(
            matches!(answer.outcome, Some(Outcome::Response(_))),
            "{answer:?}"
        );
        answered += 1;
    }
    sender.await.expect("sender");
    assert_eq!(answered, ROWS);
    assert!(started.elapsed() >= Duration::from_secs(6));
}

/// An import that has ended no longer shields its connection from the hard close: a client
/// that sends one row with END_STREAM and never grants the window its answers need (so the
/// answer stream is never read off) is closed after the age and grace like any other. Before,
/// the import counted as running for as long as its unsent answer lived, so a token without any
/// role could pin connections, and fill the cap, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_import_whose_answers_are_never_read_does_not_pin_its_connection() {
    use prost::Message;

    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    let addr = app.addr;
    let (connection, opened, _held) = windowless_call(
        addr,
        "/openclinica.participants.v1.ParticipantService/ImportParticipants",
        Some(&app.token("nobody.at.all")),
        crate::helpers::at_ohio("PIN-1").encode_to_vec(),
    )
    .await;

    tokio::time::timeout(Duration::from_secs(7), connection)
        .await
        .expect("the connection is closed after its age and grace")
        .expect("task");
    assert!(opened.elapsed() >= Duration::from_millis(3500));
    let fresh = channel(addr).await.expect("connect");
    health(fresh).await.expect("health on a new connection");
}

/// A write that has started is answered, never cut: the hard close waits for a call whose
/// handler still runs. The call arrives before the age (1 s) and its commit takes until past
/// the hard close (1 s + 3 × 1 s); the caller still gets its answer, on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_running_at_the_hard_close_is_answered() {
    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    options.fault = participants::service::Fault::SlowCommit(Duration::from_millis(4500));
    let app = TestApp::spawn_with(options).await;
    let started = Instant::now();
    let answer = app
        .client
        .clone()
        .upsert_participant(app.authed("crc.ohio", crate::helpers::at_ohio("LATE-1")))
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer
            .expect("the started write is answered")
            .into_inner()
            .created
    );
}
