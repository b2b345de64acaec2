//! The composition root: what `App::shutdown` stops, which defaults the running server uses,
//! and the bounds on health watches.

use std::time::{Duration, Instant};

use clap::Parser;
use participants::{
    app::Settings,
    config::{Cli, Command},
    grpc::server::ServerConfig,
};
use sea_orm::TransactionTrait;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{
    AppOptions, Backend, JUNO, OHIO, TestApp, at_ohio, expect_failure, get_site, test_server_config,
};

/// A health watch of the whole server, after its first answer.
async fn watch(
    app: &TestApp,
) -> Result<tonic::Streaming<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
    let mut stream = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest::default())
        .await?
        .into_inner();
    let first = stream.message().await?.expect("the current status");
    assert_eq!(first.status, 1, "SERVING");
    Ok(stream)
}

/// Every task the App started (edges, admin endpoint, writers, catalog poll, request-id purge,
/// JWKS reload) has ended once `shutdown` returns, a health watch was ended, and the sockets
/// it listened with are closed.
async fn shutdown_ends_every_task_and_frees_the_listeners(backend: Backend) {
    let mut options = AppOptions::new(backend);
    // A JWKS file adds its reload task, which loops forever unless stopped.
    options.jwks = true;
    let app = TestApp::spawn_with(options).await;
    app.upsert("crc.ohio", at_ohio("SHUT-1"))
        .await
        .expect("a write goes through the writer");
    let mut watching = watch(&app).await.expect("a watch");
    let tasks = app.app().tasks();
    // serving edges, admin, catalog poll, purge, JWKS reload, at least one writer lane
    assert!(tasks.running() >= 6, "tasks tracked: {}", tasks.running());
    let addrs = [
        app.addr,
        app.app().http_addr().expect("REST"),
        app.app().admin_addr().expect("admin"),
    ];
    let listening: Vec<Vec<u64>> = addrs.iter().map(|a| listening_sockets(a.port())).collect();
    assert!(
        listening.iter().all(|sockets| !sockets.is_empty()),
        "each address has its listening socket in the kernel's tables: {listening:?}"
    );

    let stopped = tokio::time::timeout(Duration::from_secs(30), app.shutdown())
        .await
        .expect("shutdown ends: no task was left running");
    stopped.expect("a clean shutdown");
    assert_eq!(tasks.running(), 0, "every tracked task has ended");

    // The watcher was told NOT_SERVING, then the watch was ended, not left hanging.
    let last = tokio::time::timeout(Duration::from_secs(5), async {
        let mut last = None;
        while let Ok(Some(status)) = watching.message().await {
            last = Some(status.status);
        }
        last
    })
    .await
    .expect("the watch ended with the server");
    assert_eq!(last, Some(2), "NOT_SERVING was the last status");
    // Another test may be given a freed port at once, so the check is on the sockets this
    // server listened with, not on whether the port can be bound again.
    for (addr, sockets) in addrs.iter().zip(&listening) {
        let open = listening_sockets(addr.port());
        assert!(
            sockets.iter().all(|inode| !open.contains(inode)),
            "the socket that listened on {addr} is still open after shutdown"
        );
    }
}

/// The kernel's ids (inodes) of the sockets listening on `port`, from its TCP tables.
fn listening_sockets(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if on_port && *state == LISTEN {
                inodes.extend(inode.parse::<u64>().ok());
            }
        }
    }
    inodes
}

/// The pool's acquire timeout the server waits out is the one default of `Settings`, which is
/// also what the command line gives when no flag is set.
async fn the_default_acquire_timeout_is_the_one_the_pool_uses(backend: Backend) {
    let Command::Serve(args) = Cli::try_parse_from(["participants", "serve"])
        .expect("serve with no flags")
        .command
    else {
        panic!("the serve command");
    };
    let default = Settings::default().db.acquire_timeout;
    assert_eq!(args.settings().db.acquire_timeout, default);

    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("POOL-1"))
        .await
        .expect("created");
    // Every pooled connection (5 in the tests) is held by an open transaction.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(app.store.connection().begin().await.expect("a connection"));
    }
    let started = Instant::now();
    let r = app.get("crc.ohio", get_site(JUNO, OHIO, "POOL-1")).await;
    let waited = started.elapsed();
    expect_failure(r, Code::Unavailable, "STORAGE_UNAVAILABLE");
    assert!(
        waited >= default.saturating_sub(Duration::from_millis(100))
            && waited < default + Duration::from_millis(1500),
        "the call waited {waited:?} for a connection; the default acquire timeout is {default:?}"
    );
    drop(held);
    let again = app.get("crc.ohio", get_site(JUNO, OHIO, "POOL-1")).await;
    assert!(again.is_ok(), "served once connections are free: {again:?}");
}

crate::on_both_backends!(
    shutdown_ends_every_task_and_frees_the_listeners,
    the_default_acquire_timeout_is_the_one_the_pool_uses,
);

/// Health watches need no token: past the cap they are refused, so they cannot fill the
/// connection cap; a closed one gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watches_over_the_cap_are_refused() {
    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(ServerConfig {
        max_health_watches: 2,
        ..test_server_config()
    });
    let app = TestApp::spawn_with(options).await;
    let first = watch(&app).await.expect("first watch");
    let _second = watch(&app).await.expect("second watch");
    let third = watch(&app).await;
    let status = third.expect_err("a third watch is over the cap");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Check is never refused.
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("Check is answered");

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match watch(&app).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("a closed watch gives its place back: {s:?}"),
        }
    }
}

/// A watch ends at the connection age (UNAVAILABLE: watch again), so that it cannot keep its
/// connection open past `--max-connection-age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_watch_ends_at_the_connection_age() {
    let mut options = AppOptions::new(Backend::Sqlite);
    options.server = Some(ServerConfig {
        max_connection_age: Some(Duration::from_secs(1)),
        ..test_server_config()
    });
    let app = TestApp::spawn_with(options).await;
    let mut watching = watch(&app).await.expect("a watch");
    let end = tokio::time::timeout(Duration::from_secs(5), watching.message())
        .await
        .expect("the watch ends soon after the connection age");
    let status = end.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The server still answers, on a new connection.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("Check is answered");
}
