//! Traces and logs of the real binary: spans reach an OTLP collector started here, continue the
//! caller's `traceparent` on both edges, and log lines carry the trace and request ids; planted
//! personal data appears in no log line and no span, even at `trace` level.

#[path = "common/serve.rs"]
mod serve;

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use participants::pb::{
    ParticipantContact, SiteScope, UpsertParticipantRequest,
    participant_service_client::ParticipantServiceClient, upsert_participant_request::Scope,
};
use prost::Message;

const BIN: &str = env!("CARGO_BIN_EXE_participants");
const SECRET: &str = "telemetry-test-secret-of-32-bytes!!";
const DATA_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/catalog.toml");

/// Values no log line or span may ever hold.
const PLANTED: [&str; 3] = [
    "planted.9f3c@example.org",
    "Plantedsurname",
    "+1 5550199321",
];
const GRPC_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const REST_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(r): State<Received>, body: Bytes| async move {
                if let Ok(mut r) = r.lock() {
                    r.push(body.to_vec());
                }
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_the_collector_with_the_callers_trace_and_no_personal_data() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, log) = serve::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database-url")
            .arg(format!("sqlite://{}/t.db?mode=rwc", dir.path().display()))
            .args(["--catalog", CATALOG])
            .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
            .env("PARTICIPANTS_DATA_KEY", DATA_KEY)
            .env("PARTICIPANTS_LOG", "trace")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
    );
    let running = serve::wait_until_listening(child, log, Duration::from_secs(30));
    let mut lines: Vec<String> = Vec::new();
    // The REST address is logged too.
    let http = loop {
        let line = running
            .log
            .recv_timeout(Duration::from_secs(10))
            .expect("the REST address");
        let found = line
            .split("serving REST")
            .nth(1)
            .and_then(|_| line.split("\"addr\":\"").nth(1))
            .map(|rest| rest.split('"').next().unwrap_or_default().to_owned());
        lines.push(line);
        if let Some(addr) = found {
            break addr;
        }
    };

    let settings = participants::auth::JwtSettings {
        hs256_secret: Some(SECRET.as_bytes().to_vec().into()),
        ..Default::default()
    };
    let token =
        participants::auth::mint_hs256(&settings, "crc.ohio", Duration::from_secs(600)).unwrap();
    let mut client = ParticipantServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(UpsertParticipantRequest {
        scope: Some(Scope::Site(SiteScope {
            study_oid: "S_JUNO(PROD)".into(),
            site_oid: "S_OHI0(TEST)".into(),
        })),
        subject_key: "TRACE-1".into(),
        request_id: "req-traced-1".into(),
        contact: Some(ParticipantContact {
            email_address: Some(PLANTED[0].into()),
            last_name: Some(PLANTED[1].into()),
            phone_number: Some(PLANTED[2].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let md = request.metadata_mut();
    md.insert("authorization", format!("Bearer {token}").parse().unwrap());
    md.insert(
        "traceparent",
        format!("00-{GRPC_TRACE}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    client.upsert_participant(request).await.expect("created");

    let response = reqwest::Client::new()
        .post(format!(
            "http://{http}/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants"
        ))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{REST_TRACE}-00f067aa0ba902b7-01"))
        .header("Idempotency-Key", "req-rest-1")
        .json(&serde_json::json!({"subjectKey": "TRACE-2", "lastName": PLANTED[1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // SIGTERM: the server drains and the exporter sends what it holds before the exit.
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match running.log.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
    }

    // Logs: the call's lines carry its trace id and request id; no planted value anywhere.
    let joined = lines.join("\n");
    for value in PLANTED {
        assert!(!joined.contains(value), "a log line holds {value}");
    }
    assert!(
        joined.contains(&format!("\"trace_id\":\"{GRPC_TRACE}\"")),
        "{joined}"
    );
    assert!(joined.contains("\"request_id\":\"req-traced-1\""));
    assert!(joined.contains(&format!("\"trace_id\":\"{REST_TRACE}\"")));
    assert!(joined.contains("\"request_id\":\"req-rest-1\""));

    // Spans: both calls, in the callers' traces; no planted value in any exported byte.
    let bodies = received.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(!bodies.is_empty(), "nothing reached the collector");
    let mut spans = Vec::new();
    for body in &bodies {
        for value in PLANTED {
            let raw = value.as_bytes();
            assert!(
                !body.windows(raw.len()).any(|w| w == raw),
                "an exported span holds {value}"
            );
        }
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in export.resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((hex::encode(&span.trace_id), span.name));
                }
            }
        }
    }
    assert!(
        spans.contains(&(GRPC_TRACE.to_owned(), "UpsertParticipant".to_owned())),
        "{spans:?}"
    );
    assert!(
        spans.contains(&(REST_TRACE.to_owned(), "rest:UpsertParticipant".to_owned())),
        "{spans:?}"
    );
}
