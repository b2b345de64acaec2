//! The original's REST route (SPEC section 11): the seed's call, every reason of the table
//! answered as gRPC answers it, and hostile HTTP input refused without writing.

use participants::{
    domain::Reason,
    pb::{self, UpsertParticipantRequest},
    service::model::UpsertInput,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, JUNO, OHIO, TestApp, at_ohio, contact, expect_failure, failure, seed_request, site,
    study,
};

const BASE: &str = "/OpenClinica/pages/auth/api/clinicaldata/studies";

/// An OID as a URL path segment.
fn enc(oid: &str) -> String {
    percent_encoding::utf8_percent_encode(oid, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The REST twin of a gRPC UpsertParticipant request: path from the scope, `register`,
/// `Idempotency-Key`, `If-Match` and the seed's body.
fn rest_upsert(
    app: &TestApp,
    user: &str,
    req: &UpsertParticipantRequest,
) -> reqwest::RequestBuilder {
    let input = UpsertInput::from(req.clone());
    let scope = input.scope.expect("REST calls always name a scope");
    let path = match &scope.site_oid {
        Some(site) => format!(
            "{}{BASE}/{}/sites/{}/participants",
            app.http,
            enc(&scope.study_oid),
            enc(site)
        ),
        None => format!("{}{BASE}/{}/participants", app.http, enc(&scope.study_oid)),
    };
    let mut body = serde_json::Map::new();
    if !input.subject_key.is_empty() {
        body.insert("subjectKey".into(), input.subject_key.clone().into());
    }
    if let Some(s) = &input.secondary_id {
        body.insert("secondaryId".into(), s.clone().into());
    }
    if !input.reason_for_change.is_empty() {
        body.insert(
            "reasonForChange".into(),
            input.reason_for_change.clone().into(),
        );
    }
    for (field, value) in input.contact.unwrap_or_default().fields() {
        if let Some(v) = value {
            body.insert(camel(field.name()), v.into());
        }
    }
    let mut request = reqwest::Client::new()
        .post(format!(
            "{path}?register={}",
            if input.register { "y" } else { "n" }
        ))
        .bearer_auth(app.token(user))
        .json(&Value::Object(body));
    if !input.request_id.is_empty() {
        request = request.header("Idempotency-Key", input.request_id);
    }
    if !input.etag.is_empty() {
        request = request.header("If-Match", format!("\"{}\"", input.etag));
    }
    request
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("the REST route answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn reason_named(name: &str) -> Reason {
    *Reason::ALL
        .iter()
        .find(|r| r.as_str() == name)
        .unwrap_or_else(|| panic!("no reason {name}"))
}

/// Sends `req` through both edges (a refusal writes nothing, so the second call sees what the
/// first saw) and checks that they agree: HTTP status from the table, `errorCode`, params,
/// and the violated fields' reasons.
async fn both_edges_refuse(app: &TestApp, user: &str, req: UpsertParticipantRequest) -> String {
    let grpc = match app.upsert(user, req.clone()).await {
        Err(status) => status,
        Ok(_) => panic!("the gRPC call of {user} was not refused: {req:?}"),
    };
    let f = failure(&grpc);
    let (status, headers, body) = send(rest_upsert(app, user, &req)).await;
    let reason = reason_named(&f.reason);
    assert_eq!(
        status.as_u16(),
        reason.http_status(),
        "{}: {body}",
        f.reason
    );
    assert_eq!(body["message"], json!(f.error_code()), "{body}");
    assert_eq!(body["reason"], json!(f.reason));
    for key in ["studyOid", "siteOid"] {
        assert_eq!(
            body["params"].get(key).and_then(Value::as_str),
            f.metadata.get(key).map(String::as_str),
            "{key} of {}",
            f.reason
        );
    }
    let rest_reasons: Vec<&str> = body["violations"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["reason"].as_str()).collect())
        .unwrap_or_default();
    let grpc_reasons: Vec<&str> = f.violations.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(rest_reasons, grpc_reasons, "{}", f.reason);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(headers.contains_key("retry-after"));
    }
    f.reason
}

async fn the_seed_call_creates_ohio5_and_registers_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Byte for byte the original's call, but for the host and the token.
    let (status, headers, body) = send(
        reqwest::Client::new()
            .post(format!(
                "{}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants?register=y",
                app.http
            ))
            .header("Authorization", format!("Bearer {}", app.token("crc.ohio")))
            .header("Content-Type", "application/json")
            .body(r#"{"subjectKey":"OHIO-5","lastName":"ОНІО","emailAddress":"OHIOS@openclinica.com","phoneNumber":"+1 1234567890"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subjectKey"], "OHIO-5");
    assert_eq!(body["subjectOid"], "SS_OHIO5");
    assert_eq!(body["status"], "AVAILABLE");
    assert_eq!(body["participateStatus"], "Created");
    let code = body["accessCode"].as_str().expect("an access code");
    assert!(!code.is_empty());

    // The gRPC edge sees the same participant, with the ETag the route gave.
    let p = app
        .get("crc.ohio", crate::helpers::get_site(JUNO, OHIO, "OHIO-5"))
        .await
        .unwrap();
    assert_eq!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{}\"", p.etag).as_str())
    );
    assert_eq!(p.participate_status(), pb::ParticipateStatus::Created);
    assert_eq!(
        p.contact.unwrap().email_address.as_deref(),
        Some("OHIOS@openclinica.com")
    );

    // Both GET forms answer it; a monitor sees no contact data.
    for path in [
        format!("{BASE}/S_JUNO%28PROD%29/sites/S_OHI0%28TEST%29/participants/OHIO-5"),
        format!(
            "/any/prefix{BASE}/S_JUNO(PROD)/sites/S_OHI0(TEST)/participant?participantID=ohio-5"
        ),
    ] {
        let (status, _, body) = send(
            reqwest::Client::new()
                .get(format!("{}{path}", app.http))
                .bearer_auth(app.token("crc.ohio")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["subjectOid"], "SS_OHIO5");
        assert_eq!(body["contact"]["lastName"], "ОНІО");
    }
    let (status, _, body) = send(
        reqwest::Client::new()
            .get(format!(
                "{}{BASE}/S_JUNO(PROD)/participants/OHIO-5",
                app.http
            ))
            .bearer_auth(app.token("monitor.juno")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["siteOid"], "S_OHI0(TEST)");
    assert!(body.get("contact").is_none(), "{body}");
}

/// Presence: absent and `null` keep, `""` clears; `identifier` is `secondaryId`;
/// `Idempotency-Key` replays, `If-Match` guards.
async fn presence_idempotency_and_if_match(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", seed_request()).await.unwrap();
    let url = format!(
        "{}{BASE}/{}/sites/{}/participants",
        app.http,
        enc(JUNO),
        enc(OHIO)
    );
    let post = |body: Value| {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(app.token("crc.ohio"))
            .json(&body)
    };
    let (status, headers, _) = send(post(json!({
        "subjectKey": "OHIO-5", "identifier": "MRN-1", "lastName": null, "phoneNumber": "",
        "city": "Dayton", "somethingElse": {"nested": true}
    })))
    .await;
    assert_eq!(status, StatusCode::OK);
    let p = app
        .get("crc.ohio", crate::helpers::get_site(JUNO, OHIO, "OHIO-5"))
        .await
        .unwrap();
    assert_eq!(p.secondary_id.as_deref(), Some("MRN-1"));
    let c = p.contact.clone().unwrap();
    assert_eq!(c.last_name.as_deref(), Some("ОНІО"), "null keeps");
    assert_eq!(c.phone_number, None, "\"\" clears");
    assert_eq!(c.city.as_deref(), Some("Dayton"));
    let etag = headers["etag"].to_str().unwrap().to_owned();

    // If-Match: a stale etag is refused (412), the current one is accepted.
    let (status, _, body) = send(
        post(json!({"subjectKey": "OHIO-5", "city": "Akron"})).header("If-Match", "\"stale\""),
    )
    .await;
    assert_eq!(
        status.as_u16(),
        Reason::EtagMismatch.http_status(),
        "{body}"
    );
    let (status, _, _) =
        send(post(json!({"subjectKey": "OHIO-5", "city": "Akron"})).header("If-Match", &etag))
            .await;
    assert_eq!(status, StatusCode::OK);

    // Idempotency-Key: the same call answers the same; another body with it is a reuse.
    let keyed = |body: Value| post(body).header("Idempotency-Key", "rest-key-1");
    let first = send(keyed(json!({"subjectKey": "REST-1"}))).await;
    let again = send(keyed(json!({"subjectKey": "REST-1"}))).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(first.2, again.2);
    assert_eq!(first.1["etag"], again.1["etag"]);
    let (status, _, body) = send(keyed(json!({"subjectKey": "REST-2"}))).await;
    assert_eq!(status.as_u16(), Reason::RequestIdReused.http_status());
    assert_eq!(body["reason"], "REQUEST_ID_REUSED");
    // The same key through gRPC with the same request is the same call.
    let mut grpc = at_ohio("REST-1");
    grpc.request_id = "rest-key-1".into();
    grpc.contact = None;
    let replay = app.upsert("crc.ohio", grpc).await.unwrap();
    assert_eq!(replay.participant.unwrap().subject_key, "REST-1");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participants WHERE subject_key LIKE 'REST-%'")
            .await,
        1
    );
}

/// Every reason a REST call can reach answers with the table's HTTP status and errorCode,
/// and as the gRPC edge answers the same input.
async fn rest_and_grpc_refuse_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let crc = "crc.ohio";
    let long = |n: usize| "x".repeat(n);
    app.upsert(crc, at_ohio("TAKEN")).await.unwrap();
    app.upsert(crc, at_ohio("GONE")).await.unwrap();
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'GONE'")
        .await;
    let keyed = UpsertParticipantRequest {
        request_id: "k-1".into(),
        ..at_ohio("KEYED")
    };
    app.upsert(crc, keyed).await.unwrap();

    let with = |f: fn(&mut pb::ParticipantContact)| UpsertParticipantRequest {
        contact: contact(f),
        ..at_ohio("A")
    };
    let scoped = |scope, key: &str| UpsertParticipantRequest {
        scope,
        subject_key: key.into(),
        ..Default::default()
    };
    let cases: Vec<(&str, UpsertParticipantRequest)> = vec![
        (crc, scoped(study("S_NOPE"), "A")),
        ("dm.frozen", scoped(study("S_FROZEN"), "A")),
        (crc, scoped(site(JUNO, "S_NOPE"), "A")),
        ("dm.juno", scoped(site(JUNO, "S_CLOSED"), "A")),
        ("nobody", at_ohio("A")),
        ("viewer.ohio", at_ohio("A")),
        (
            "dm.plain",
            UpsertParticipantRequest {
                register: true,
                ..scoped(site("S_PLAIN", "S_PLAIN_A"), "A")
            },
        ),
        (
            "dm.juno",
            UpsertParticipantRequest {
                contact: contact(|c| c.city = Some("Paris".into())),
                ..scoped(study(JUNO), "A")
            },
        ),
        (
            "dm.juno",
            UpsertParticipantRequest {
                register: true,
                ..scoped(study(JUNO), "A")
            },
        ),
        (crc, at_ohio("")),
        (crc, at_ohio("<b>")),
        (crc, at_ohio(&long(31))),
        (crc, with(|c| c.first_name = Some("x".repeat(36)))),
        (crc, with(|c| c.last_name = Some("x".repeat(36)))),
        (crc, with(|c| c.email_address = Some("not-an-email".into()))),
        (crc, with(|c| c.phone_number = Some("555".into()))),
        (crc, with(|c| c.full_dob = Some("1990-02-30".into()))),
        (crc, with(|c| c.postal_code = Some("x".repeat(36)))),
        (crc, with(|c| c.middle_name = Some("x".repeat(36)))),
        (crc, with(|c| c.email_address = Some("x".repeat(256)))),
        (crc, with(|c| c.phone_number = Some("1".repeat(18)))),
        (crc, with(|c| c.street_address1 = Some("x".repeat(156)))),
        (crc, with(|c| c.street_address2 = Some("x".repeat(156)))),
        (crc, with(|c| c.city = Some("x".repeat(156)))),
        (crc, with(|c| c.state = Some("x".repeat(156)))),
        (crc, with(|c| c.country = Some("x".repeat(156)))),
        (crc, with(|c| c.hospital_number = Some("x".repeat(36)))),
        (
            crc,
            with(|c| {
                c.first_name = Some("x".repeat(36));
                c.email_address = Some("bad".into());
            }),
        ),
        (
            crc,
            UpsertParticipantRequest {
                secondary_id: Some(long(36)),
                ..at_ohio("A")
            },
        ),
        (
            crc,
            UpsertParticipantRequest {
                reason_for_change: long(1001),
                ..at_ohio("A")
            },
        ),
        (crc, at_ohio("A\u{200B}B")),
        (
            crc,
            UpsertParticipantRequest {
                request_id: "k-1".into(),
                ..at_ohio("OTHER")
            },
        ),
        (
            crc,
            UpsertParticipantRequest {
                request_id: long(129),
                ..at_ohio("A")
            },
        ),
        (
            "crc.boston",
            scoped(site("S_VEGA", "S_VEGA_BOS"), "S_VEGA_BOS-9999"),
        ),
        ("crc.texas", scoped(site(JUNO, "S_TEXAS(TEST)"), "taken")),
        (crc, at_ohio("GONE")),
        (
            crc,
            UpsertParticipantRequest {
                etag: "old".into(),
                ..at_ohio("TAKEN")
            },
        ),
    ];
    let mut reached = std::collections::BTreeSet::new();
    for (user, req) in cases {
        reached.insert(both_edges_refuse(&app, user, req).await);
    }
    app.execute("UPDATE sites SET enrollment_cap = 0 WHERE oid = 'S_OHI0(TEST)'")
        .await;
    reached.insert(both_edges_refuse(&app, crc, at_ohio("CAPPED")).await);

    // Every reason a call with a valid token and a parsable body can reach.
    let expected: std::collections::BTreeSet<String> = Reason::ALL
        .iter()
        .filter(|r| {
            !matches!(
                r,
                Reason::Unauthenticated
                    | Reason::StorageUnavailable
                    | Reason::Internal
                    | Reason::RequestTimedOut
                    | Reason::ServerOverloaded
                    | Reason::MessageTooLarge
                    | Reason::MalformedRequest
                    // Listings only (see the paging tests).
                    | Reason::InvalidPageToken
                    | Reason::InvalidPageSize
            )
        })
        .map(|r| r.as_str().to_owned())
        .collect();
    let missing: Vec<_> = expected.difference(&reached).collect();
    assert!(missing.is_empty(), "not reached through REST: {missing:?}");
    assert_eq!(app.participant_count().await, 3, "no refusal wrote");

    // Storage down: 503 with Retry-After on both edges alike.
    app.store
        .connection()
        .close_by_ref()
        .await
        .expect("close the pool");
    assert_eq!(
        both_edges_refuse(&app, crc, at_ohio("LATE")).await,
        "STORAGE_UNAVAILABLE"
    );
}

/// Hostile HTTP input: a clear refusal with the table's status, and nothing written.
async fn bad_http_input_is_refused_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = format!(
        "{}{BASE}/{}/sites/{}/participants",
        app.http,
        enc(JUNO),
        enc(OHIO)
    );
    let post = || {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(app.token("crc.ohio"))
    };
    let json_post = |body: &str| {
        post()
            .header("Content-Type", "application/json")
            .body(body.to_owned())
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "malformed JSON",
            json_post(r#"{"subjectKey":"A""#),
            "MALFORMED_REQUEST",
        ),
        ("not an object", json_post(r#"["A"]"#), "MALFORMED_REQUEST"),
        ("empty body", json_post(""), "MALFORMED_REQUEST"),
        (
            "wrong type",
            json_post(r#"{"subjectKey":"A","firstName":5}"#),
            "MALFORMED_REQUEST",
        ),
        (
            "duplicate key",
            json_post(r#"{"subjectKey":"A","subjectKey":"B"}"#),
            "MALFORMED_REQUEST",
        ),
        (
            "an alias and its field",
            json_post(r#"{"subjectKey":"A","secondaryId":"1","identifier":"2"}"#),
            "MALFORMED_REQUEST",
        ),
        (
            "no content type",
            post().body(r#"{"subjectKey":"A"}"#),
            "MALFORMED_REQUEST",
        ),
        (
            "text/plain",
            post()
                .header("Content-Type", "text/plain")
                .body(r#"{"subjectKey":"A"}"#),
            "MALFORMED_REQUEST",
        ),
        (
            "a 1 MB body",
            json_post(&format!(
                r#"{{"subjectKey":"A","city":"{}"}}"#,
                "x".repeat(1 << 20)
            )),
            "MESSAGE_TOO_LARGE",
        ),
        (
            "no token",
            reqwest::Client::new()
                .post(&url)
                .header("Content-Type", "application/json")
                .body(r#"{"subjectKey":"A"}"#),
            "UNAUTHENTICATED",
        ),
        (
            "a forged token",
            reqwest::Client::new()
                .post(&url)
                .bearer_auth("eyJhbGciOiJub25lIn0.eyJzdWIiOiJjcmMub2hpbyJ9.")
                .header("Content-Type", "application/json")
                .body(r#"{"subjectKey":"A"}"#),
            "UNAUTHENTICATED",
        ),
        (
            "two Idempotency-Key headers",
            json_post(r#"{"subjectKey":"A"}"#)
                .header("Idempotency-Key", "a")
                .header("Idempotency-Key", "b"),
            "MALFORMED_REQUEST",
        ),
    ];
    for (what, request, reason) in cases {
        let (status, headers, body) = send(request).await;
        let expected = reason_named(reason);
        assert_eq!(status.as_u16(), expected.http_status(), "{what}: {body}");
        assert_eq!(body["reason"], reason, "{what}: {body}");
        assert_eq!(body["message"], expected.error_code(), "{what}");
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{what}"
        );
        if reason == "UNAUTHENTICATED" {
            assert_eq!(headers["www-authenticate"], "Bearer", "{what}");
        }
    }
    // Routes and methods that do not exist.
    let (status, _, _) = send(
        reqwest::Client::new()
            .get(format!("{}{BASE}/{}/nothing", app.http, enc(JUNO)))
            .bearer_auth(app.token("crc.ohio")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = reqwest::Client::new()
        .request(Method::DELETE, &url)
        .bearer_auth(app.token("crc.ohio"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_eq!(app.participant_count().await, 0);
    assert_eq!(app.audit_count().await, 0);
    // The route still serves after all of that.
    expect_failure(
        app.get("crc.ohio", crate::helpers::get_site(JUNO, OHIO, "A"))
            .await,
        tonic::Code::NotFound,
        "PARTICIPANT_NOT_FOUND",
    );
}

crate::on_both_backends!(
    the_seed_call_creates_ohio5_and_registers_it,
    presence_idempotency_and_if_match,
    rest_and_grpc_refuse_alike,
    bad_http_input_is_refused_and_writes_nothing,
);
