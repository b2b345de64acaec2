//! Health and reflection need no token.

use crate::helpers::{Backend, JUNO, OHIO, TestApp};
use participants::grpc::server::SERVICE_NAME;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

async fn health_is_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", SERVICE_NAME] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
}

async fn reflection_lists_the_service_and_error_details(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = tokio_stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "google.rpc.ErrorInfo".into(),
        )),
        ask(MessageRequest::FileContainingSymbol(
            "openclinica.participants.v1.ErrorReason".into(),
        )),
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("reflection")
        .into_inner();
    let first = responses
        .message()
        .await
        .expect("stream")
        .expect("a response");
    match first.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
            assert!(names.contains(&SERVICE_NAME.to_owned()), "{names:?}");
            assert!(
                names.contains(&"grpc.health.v1.Health".to_owned()),
                "{names:?}"
            );
        }
        other => panic!("expected a service list, got {other:?}"),
    }
    for _ in 0..2 {
        let r = responses
            .message()
            .await
            .expect("stream")
            .expect("a response");
        match r.message_response {
            Some(MessageResponse::FileDescriptorResponse(fd)) => {
                assert!(!fd.file_descriptor_proto.is_empty())
            }
            other => panic!("expected a file descriptor, got {other:?}"),
        }
    }
}

async fn an_oversized_request_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = crate::helpers::at_ohio("BIG-1");
    req.reason_for_change = "x".repeat(100 * 1024);
    // tonic refuses it while decoding, before any handler runs; the answer is typed.
    let f = crate::helpers::expect_failure(
        app.upsert("crc.ohio", req).await,
        tonic::Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
    );
    assert!(f.message.contains("65536 bytes"), "{f:?}");
    assert_eq!(app.participant_count().await, 0);
}

async fn a_call_past_the_request_timeout_writes_nothing(backend: Backend) {
    let mut options = crate::helpers::AppOptions::new(backend);
    options.server = Some(participants::grpc::server::ServerConfig {
        request_timeout: std::time::Duration::ZERO,
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    let f = crate::helpers::expect_failure(
        app.upsert("crc.ohio", crate::helpers::seed_request()).await,
        tonic::Code::DeadlineExceeded,
        "REQUEST_TIMED_OUT",
    );
    assert!(f.message.contains("nothing was written"), "{f:?}");
    crate::helpers::expect_failure(
        app.get("crc.ohio", crate::helpers::get_site(JUNO, OHIO, "OHIO-5"))
            .await,
        tonic::Code::DeadlineExceeded,
        "REQUEST_TIMED_OUT",
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.participant_count().await, 0);
}

/// A write that started before the request timeout is finished and answered, however slow its
/// commit: before, the server's timeout dropped the call, even while its commit was under way,
/// and answered CANCELLED for writes that had happened, so a caller retrying without a
/// request_id created a duplicate.
async fn a_committed_write_is_never_answered_as_a_failure(backend: Backend) {
    let mut options = crate::helpers::AppOptions::new(backend);
    options.fault =
        participants::service::Fault::SlowCommit(std::time::Duration::from_millis(1000));
    options.server = Some(participants::grpc::server::ServerConfig {
        request_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    // Warm the pool (the answer does not matter), so the checks finish within the timeout.
    let _ = app
        .get("crc.ohio", crate::helpers::get_site(JUNO, OHIO, "NOBODY"))
        .await;
    let created = app
        .upsert("crc.ohio", crate::helpers::seed_request())
        .await
        .expect("the write started in time, so it finishes and is answered");
    assert!(created.created);
    assert_eq!(app.participant_count().await, 1);
}

/// A client that gives up (its deadline passes) after the write started does not undo or cut
/// the write short: it commits, and a retry with the same request_id gets the first answer.
async fn a_write_outlives_a_caller_that_gave_up(backend: Backend) {
    let mut options = crate::helpers::AppOptions::new(backend);
    options.fault = participants::service::Fault::SlowCommit(std::time::Duration::from_millis(900));
    let app = TestApp::spawn_with(options).await;
    // Warm the pool, so the timed call's checks finish well within its deadline.
    app.upsert("crc.ohio", crate::helpers::at_ohio("WARM-1"))
        .await
        .expect("warm-up");
    let mut req = crate::helpers::seed_request();
    req.request_id = "gave-up-1".into();
    let mut call = app.authed("crc.ohio", req.clone());
    call.set_timeout(std::time::Duration::from_millis(400));
    let status = app
        .client
        .clone()
        .upsert_participant(call)
        .await
        .expect_err("the client's deadline passes first");
    // tonic's client reports its own expired deadline as CANCELLED.
    assert!(
        matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{status:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(app.participant_count().await, 2, "the write committed");
    let again = app.upsert("crc.ohio", req).await.expect("retry");
    assert!(again.created, "the retry is answered with the first answer");
    assert_eq!(app.participant_count().await, 2);
}

/// One semaphore for all connections: over the limit a call is refused at once, typed, with a
/// retry delay, and writes nothing.
async fn calls_over_the_in_flight_limit_are_shed(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut options = crate::helpers::AppOptions::new(backend);
    options.server = Some(participants::grpc::server::ServerConfig {
        max_in_flight: 2,
        ..Default::default()
    });
    options.listener = Some(listener);
    let app = TestApp::spawn_with(options).await;
    // Several connections, so a per-connection limit could not explain the shedding.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        clients.push(
            participants::pb::participant_service_client::ParticipantServiceClient::new(channel),
        );
    }
    let calls: Vec<_> = (0..80)
        .map(|n| {
            let mut client = clients[n % clients.len()].clone();
            let req = app.authed("crc.ohio", crate::helpers::at_ohio(&format!("SHED-{n}")));
            tokio::spawn(async move { client.upsert_participant(req).await })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        match call.await.expect("task") {
            Ok(_) => ok += 1,
            Err(s) => {
                let f = crate::helpers::expect_failure::<()>(
                    Err(s),
                    tonic::Code::ResourceExhausted,
                    "SERVER_OVERLOADED",
                );
                let delay = f.retry_delay.expect("a RetryInfo");
                assert!(
                    delay >= std::time::Duration::from_millis(100)
                        && delay <= std::time::Duration::from_secs(1),
                    "{delay:?}"
                );
                shed += 1;
            }
        }
    }
    assert!(ok >= 2 && shed >= 1, "ok {ok}, shed {shed}");
    assert_eq!(app.participant_count().await, ok);
    // Health is never shed.
    let mut health = HealthClient::new(app.channel.clone());
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health");
}

crate::on_both_backends!(
    a_call_past_the_request_timeout_writes_nothing,
    a_committed_write_is_never_answered_as_a_failure,
    a_write_outlives_a_caller_that_gave_up,
    calls_over_the_in_flight_limit_are_shed,
    health_is_serving,
    reflection_lists_the_service_and_error_details,
    an_oversized_request_is_refused,
);
