//! The admin endpoint: `/metrics` counts known calls of both edges by method, code and reason;
//! `/livez` and `/readyz` answer.

use participants::pb::UpsertParticipantRequest;

use crate::helpers::{Backend, JUNO, OHIO, TestApp, at_ohio, contact, get_site, with_token};

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

async fn metrics_count_calls_by_method_code_and_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("M-1")).await.unwrap();
    app.upsert("crc.ohio", at_ohio("M-2")).await.unwrap();
    let too_long = UpsertParticipantRequest {
        contact: contact(|c| c.first_name = Some("x".repeat(36))),
        ..at_ohio("M-3")
    };
    app.upsert("crc.ohio", too_long).await.unwrap_err();
    app.get("crc.ohio", get_site(JUNO, OHIO, "NOBODY"))
        .await
        .unwrap_err();
    app.client
        .clone()
        .upsert_participant(with_token(at_ohio("M-4"), "not-a-token"))
        .await
        .unwrap_err();
    let rest = format!(
        "{}/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/sites/S_OHI0(TEST)/participants",
        app.http
    );
    for body in [r#"{"subjectKey":"M-5"}"#, r#"{"subjectKey":"<b>"}"#] {
        reqwest::Client::new()
            .post(&rest)
            .bearer_auth(app.token("crc.ohio"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
    }

    let text = reqwest::get(format!("{}/metrics", app.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |labels: &str| sample(&text, &format!("participants_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"method="UpsertParticipant",code="OK",reason="""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="UpsertParticipant",code="InvalidArgument",reason="FIRST_NAME_TOO_LONG""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"method="UpsertParticipant",code="Unauthenticated",reason="UNAUTHENTICATED""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"method="GetParticipant",code="NotFound",reason="PARTICIPANT_NOT_FOUND""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"method="rest:UpsertParticipant",code="200",reason="""#),
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"method="rest:UpsertParticipant",code="400",reason="PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER""#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"participants_request_duration_seconds_count{method="UpsertParticipant"}"#
        ),
        Some(4.0)
    );
    // Three creations were written, in at least one and at most three transactions.
    let batches = sample(&text, "participants_write_batch_size_count").unwrap_or(0.0);
    let commands = sample(&text, "participants_write_batch_size_sum").unwrap_or(0.0);
    assert!((1.0..=3.0).contains(&batches), "{text}");
    assert_eq!(commands, 3.0);
    assert!(sample(&text, r#"participants_db_pool_connections{state="idle"}"#).is_some());
    assert!(text.contains(&format!(
        r#"participants_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));

    for path in ["livez", "readyz"] {
        let r = reqwest::get(format!("{}/{path}", app.admin)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // A database that stops answering makes the replica not ready (but still alive).
    app.store
        .connection()
        .close_by_ref()
        .await
        .expect("close the pool");
    let r = reqwest::get(format!("{}/readyz", app.admin)).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let r = reqwest::get(format!("{}/livez", app.admin)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

crate::on_both_backends!(metrics_count_calls_by_method_code_and_reason);
