//! Health and reflection need no token.

use crate::helpers::{Backend, TestApp};
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
    let status = app
        .upsert("crc.ohio", req)
        .await
        .expect_err("over the 64 KiB limit");
    // tonic refuses it while decoding, before any handler runs.
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert_eq!(app.participant_count().await, 0);
}

crate::on_both_backends!(
    health_is_serving,
    reflection_lists_the_service_and_error_details,
    an_oversized_request_is_refused,
);
