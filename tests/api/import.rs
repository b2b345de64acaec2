//! ImportParticipants (SPEC section 13): every row answered exactly as a unary call, re-runs
//! write nothing, a malformed row ends the stream, a client that never reads is held back.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use participants::pb::{
    ImportResult, ParticipantContact, UpsertParticipantRequest, UpsertParticipantResponse,
    import_result::Outcome, participant_service_client::ParticipantServiceClient,
};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::{AppOptions, Backend, TestApp, expect_failure, site, study, with_token};

const CATALOG: &str = r#"
[[study]]
oid = "S_JUNO(PROD)"
participant_id_method = "manual"
participate_enabled = true
  [[study.site]]
  oid = "S_OHI0(TEST)"
  [[study.site]]
  oid = "S_TEXAS(TEST)"
  [[study.site]]
  oid = "S_CLOSED"
  status = "locked"

[[study]]
oid = "S_CAPPED"
enrollment_cap = 6
participate_enabled = true
  [[study.site]]
  oid = "S_CAPPED_A"
  [[study.site]]
  oid = "S_CAPPED_B"
  enrollment_cap = 2

[[study]]
oid = "S_FROZEN"
status = "frozen"

[[study]]
oid = "S_PLAIN"
participate_enabled = false
  [[study.site]]
  oid = "S_PLAIN_A"

[[study]]
oid = "S_VEGA"
participant_id_method = "system"
  [[study.site]]
  oid = "S_VEGA_BOS"

[[study]]
oid = "S_WATCH"
  [[study.site]]
  oid = "S_WATCH_A"

[[role]]
user = "importer"
study = "S_JUNO(PROD)"
site = "S_OHI0(TEST)"
role = "clinical_research_coordinator"

[[role]]
user = "crc.texas"
study = "S_JUNO(PROD)"
site = "S_TEXAS(TEST)"
role = "clinical_research_coordinator"

[[role]]
user = "importer"
study = "S_CAPPED"
role = "data_manager"

[[role]]
user = "importer"
study = "S_FROZEN"
role = "data_manager"

[[role]]
user = "importer"
study = "S_PLAIN"
role = "data_manager"

[[role]]
user = "importer"
study = "S_VEGA"
role = "data_manager"

[[role]]
user = "importer"
study = "S_WATCH"
role = "monitor"
"#;

const JUNO: &str = "S_JUNO(PROD)";
const OHIO: &str = "S_OHI0(TEST)";
const TEXAS: &str = "S_TEXAS(TEST)";

fn ohio(key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site(JUNO, OHIO),
        subject_key: key.into(),
        ..Default::default()
    }
}

fn at(study_oid: &str, site_oid: &str, key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site(study_oid, site_oid),
        subject_key: key.into(),
        ..Default::default()
    }
}

fn with_contact(
    mut req: UpsertParticipantRequest,
    f: impl FnOnce(&mut ParticipantContact),
) -> UpsertParticipantRequest {
    f(req.contact.get_or_insert_with(Default::default));
    req
}

/// One row per way a row can be refused, and the rows around them that succeed.
fn every_kind_of_row() -> Vec<UpsertParticipantRequest> {
    let long = |n: usize| "x".repeat(n);
    let mut rows = vec![
        with_contact(ohio("IMP-1"), |c| {
            c.first_name = Some("Ada".into());
            c.email_address = Some("ada@example.org".into());
            c.phone_number = Some("+44 2071234567".into());
            c.full_dob = Some("1970-01-31".into());
        }),
        // Duplicate keys in the file: an update, then a no-op (trimmed, case-insensitive).
        with_contact(ohio("IMP-1"), |c| c.last_name = Some("Lovelace".into())),
        with_contact(ohio(" imp-1 "), |c| c.last_name = Some("Lovelace".into())),
        // A key taken at another site.
        ohio("TX-1"),
        // Wrong role: no role at Texas; a site-only user at the study level; a monitor.
        at(JUNO, TEXAS, "IMP-2"),
        UpsertParticipantRequest {
            scope: study(JUNO),
            subject_key: "IMP-3".into(),
            ..Default::default()
        },
        at("S_WATCH", "S_WATCH_A", "W-1"),
        // Scope.
        at("S_FROZEN", "", "F-1"),
        at("S_NOPE", "S_NOPE_A", "N-1"),
        at(JUNO, "S_CLOSED", "C-1"),
        at(JUNO, "S_NOPE", "C-2"),
        UpsertParticipantRequest {
            subject_key: "NO-SCOPE".into(),
            ..Default::default()
        },
        // Shape.
        UpsertParticipantRequest {
            register: true,
            ..at("S_PLAIN", "S_PLAIN_A", "P-1")
        },
        UpsertParticipantRequest {
            scope: study("S_CAPPED"),
            subject_key: "SL-1".into(),
            register: true,
            contact: Some(ParticipantContact {
                city: Some("Oslo".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Identifiers.
        ohio(""),
        ohio("A<B"),
        ohio(&long(31)),
        ohio(&long(30)),
        at("S_VEGA", "S_VEGA_BOS", "VEGA-UNKNOWN"),
        at("S_VEGA", "S_VEGA_BOS", ""),
        // Removed participant.
        ohio("GONE-1"),
        // Etag.
        UpsertParticipantRequest {
            etag: "not-the-etag".into(),
            ..ohio("IMP-1")
        },
        // Register: an access code.
        UpsertParticipantRequest {
            register: true,
            ..ohio("IMP-REG")
        },
        // validate_only: answered, nothing written.
        UpsertParticipantRequest {
            validate_only: true,
            ..ohio("IMP-VALIDATE")
        },
        // request_id: first use, exact repeat (a replay), reuse for another row.
        UpsertParticipantRequest {
            request_id: "rid-1".into(),
            ..ohio("IMP-RID")
        },
        UpsertParticipantRequest {
            request_id: "rid-1".into(),
            ..ohio("IMP-RID")
        },
        UpsertParticipantRequest {
            request_id: "rid-1".into(),
            ..ohio("IMP-OTHER")
        },
        UpsertParticipantRequest {
            request_id: long(65),
            ..ohio("IMP-RID-LONG")
        },
        UpsertParticipantRequest {
            reason_for_change: long(1001),
            ..ohio("IMP-RFC")
        },
        ohio("IMP\u{0}NUL"),
        // Several violations at once.
        with_contact(ohio(&long(31)), |c| {
            c.first_name = Some(long(36));
            c.email_address = Some("not-an-email".into());
            c.phone_number = Some("12345".into());
        }),
    ];
    // Every contact rule, one row each.
    type Set = fn(&mut ParticipantContact, String);
    let fields: [(Set, usize); 13] = [
        (|c, v| c.first_name = Some(v), 35),
        (|c, v| c.last_name = Some(v), 35),
        (|c, v| c.middle_name = Some(v), 35),
        (|c, v| c.email_address = Some(v), 255),
        (|c, v| c.phone_number = Some(v), 17),
        (|c, v| c.street_address1 = Some(v), 155),
        (|c, v| c.street_address2 = Some(v), 155),
        (|c, v| c.city = Some(v), 155),
        (|c, v| c.state = Some(v), 155),
        (|c, v| c.country = Some(v), 155),
        (|c, v| c.postal_code = Some(v), 35),
        (|c, v| c.full_dob = Some(v), 10),
        (|c, v| c.hospital_number = Some(v), 35),
    ];
    for (i, (set, max)) in fields.into_iter().enumerate() {
        rows.push(with_contact(ohio(&format!("LONG-{i}")), |c| {
            set(c, long(max + 1))
        }));
    }
    rows.push(with_contact(ohio("BAD-EMAIL"), |c| {
        c.email_address = Some("a@@b".into())
    }));
    rows.push(with_contact(ohio("BAD-PHONE"), |c| {
        c.phone_number = Some("+1-555".into())
    }));
    rows.push(with_contact(ohio("BAD-DOB"), |c| {
        c.full_dob = Some("2001-02-30".into())
    }));
    rows.push(with_contact(ohio("FUTURE-DOB"), |c| {
        c.full_dob = Some("2999-01-01".into())
    }));
    rows.push(UpsertParticipantRequest {
        secondary_id: Some(long(36)),
        ..ohio("LONG-SECONDARY")
    });
    // A cap reached mid-file: site B holds 2, the study 6; updates are never refused.
    for key in ["B-1", "B-2", "B-3"] {
        rows.push(at("S_CAPPED", "S_CAPPED_B", key));
    }
    rows.push(with_contact(at("S_CAPPED", "S_CAPPED_B", "B-1"), |c| {
        c.city = Some("Bergen".into())
    }));
    for i in 1..=6 {
        rows.push(at("S_CAPPED", "S_CAPPED_A", &format!("A-{i}")));
    }
    rows
}

/// Each twin starts from the same state: a participant of Texas, and a removed one at Ohio.
async fn twin(backend: Backend) -> TestApp {
    let mut options = AppOptions::new(backend);
    options.catalog = CATALOG;
    let app = TestApp::spawn_with(options).await;
    app.upsert("crc.texas", at(JUNO, TEXAS, "TX-1"))
        .await
        .expect("a participant at Texas");
    app.upsert("importer", ohio("GONE-1"))
        .await
        .expect("a participant to remove");
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'GONE-1'")
        .await;
    app
}

/// Streams `rows` as `user`, reading every answer: the answers by index and how the call ended.
async fn import(
    app: &TestApp,
    user: &str,
    rows: Vec<UpsertParticipantRequest>,
) -> (
    BTreeMap<i64, Result<UpsertParticipantResponse, Status>>,
    Result<(), Status>,
) {
    let request = with_token(futures_util::stream::iter(rows), &app.token(user));
    let mut answers = BTreeMap::new();
    let mut stream = match app.client.clone().import_participants(request).await {
        Ok(r) => r.into_inner(),
        Err(e) => return (answers, Err(e)),
    };
    loop {
        match stream.message().await {
            Ok(Some(ImportResult { index, outcome })) => {
                let answer = match outcome.expect("an outcome") {
                    Outcome::Response(r) => Ok(r),
                    Outcome::Error(s) => Err(Status::with_details(
                        Code::from(s.code),
                        s.message.clone(),
                        s.encode_to_vec().into(),
                    )),
                };
                assert!(
                    answers.insert(index, answer).is_none(),
                    "row {index} answered twice"
                );
            }
            Ok(None) => return (answers, Ok(())),
            Err(e) => return (answers, Err(e)),
        }
    }
}

/// What must be equal between a unary answer and a streamed one: times, etags and access
/// codes are made afresh by each database, so only their presence is compared.
fn comparable(answer: &Result<UpsertParticipantResponse, Status>) -> String {
    match answer {
        Ok(r) => {
            let mut r = r.clone();
            let code = !r.access_code.is_empty();
            r.access_code.clear();
            if let Some(p) = r.participant.as_mut() {
                assert!(!p.etag.is_empty());
                p.etag.clear();
                assert!(p.create_time.is_some() && p.update_time.is_some());
                let unchanged = p.create_time == p.update_time;
                p.create_time = None;
                p.update_time = None;
                return format!("ok {r:?} access_code={code} unchanged_since_create={unchanged}");
            }
            format!("ok {r:?} access_code={code}")
        }
        Err(s) => {
            let details = s.get_error_details();
            let info = details.error_info().map(|i| {
                let metadata: BTreeMap<_, _> = i.metadata.iter().collect();
                format!("{} {} {metadata:?}", i.reason, i.domain)
            });
            let violations = details.bad_request().map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| format!("{}|{}|{}", v.field, v.reason, v.description))
                    .collect::<Vec<_>>()
            });
            let retry = details.retry_info().is_some();
            format!(
                "error {:?} {:?} {info:?} {violations:?} retry={retry}",
                s.code(),
                s.message()
            )
        }
    }
}

async fn every_row_is_answered_as_a_unary_call_would_be(backend: Backend) {
    let rows = every_kind_of_row();
    let unary = twin(backend).await;
    let mut expected = Vec::new();
    for row in rows.clone() {
        expected.push(unary.upsert("importer", row).await);
    }
    let streamed = twin(backend).await;
    let (answers, end) = import(&streamed, "importer", rows.clone()).await;
    end.expect("the stream ends OK: a refused row never stops it");
    assert_eq!(answers.len(), rows.len(), "one answer per row");
    for (i, want) in expected.iter().enumerate() {
        let got = &answers[&(i as i64)];
        assert_eq!(comparable(got), comparable(want), "row {i}: {:?}", rows[i]);
    }
    // Each kind of refusal is really there (the list above reaches them all).
    let reasons: std::collections::BTreeSet<String> = expected
        .iter()
        .filter_map(|a| a.as_ref().err())
        .filter_map(|s| s.get_details_error_info().map(|i| i.reason))
        .collect();
    for reason in [
        "PARTICIPANT_ID_ALREADY_EXISTS",
        "NO_ROLE_SET_UP",
        "NO_SUFFICIENT_PRIVILEGES",
        "STUDY_NOT_AVAILABLE",
        "STUDY_NOT_EXIST",
        "SITE_NOT_AVAILABLE",
        "SITE_NOT_EXIST",
        "PARTICIPATE_NOT_ENABLED",
        "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED",
        "MISSING_PARTICIPANT_ID_DATA",
        "PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER",
        "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS",
        "PARTICIPANT_NOT_FOUND",
        "PARTICIPANT_ID_NOT_AVAILABLE",
        "ETAG_MISMATCH",
        "REQUEST_ID_REUSED",
        "REQUEST_ID_TOO_LONG",
        "REASON_FOR_CHANGE_TOO_LONG",
        "UNSUPPORTED_CHARACTER",
        "FIRST_NAME_TOO_LONG",
        "LAST_NAME_TOO_LONG",
        "MIDDLE_NAME_TOO_LONG",
        "EMAIL_ADDRESS_TOO_LONG",
        "INVALID_EMAIL_ADDRESS",
        "PHONE_NUMBER_TOO_LONG",
        "INVALID_PHONE_NUMBER",
        "STREET_ADDRESS1_TOO_LONG",
        "STREET_ADDRESS2_TOO_LONG",
        "CITY_TOO_LONG",
        "STATE_TOO_LONG",
        "COUNTRY_TOO_LONG",
        "POSTAL_CODE_TOO_LONG",
        "HOSPITAL_NUMBER_TOO_LONG",
        "SECONDARY_ID_TOO_LONG",
        "INVALID_FULL_DOB",
        "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
    ] {
        assert!(reasons.contains(reason), "no row reached {reason}");
    }
    // Both twins hold the same rows and audit events.
    assert_eq!(
        streamed.participant_count().await,
        unary.participant_count().await
    );
    assert_eq!(streamed.audit_count().await, unary.audit_count().await);
    streamed.assert_counters_match().await;
}

fn keyed_rows(n: usize) -> Vec<UpsertParticipantRequest> {
    (0..n)
        .map(|i| UpsertParticipantRequest {
            request_id: format!("import-test-{i}"),
            ..with_contact(ohio(&format!("K-{i:05}")), |c| {
                c.first_name = Some(format!("Name{i}"));
                c.email_address = Some(format!("p{i}@example.org"));
            })
        })
        .collect()
}

async fn a_rerun_writes_nothing(backend: Backend) {
    let app = twin(backend).await;
    let rows = keyed_rows(600);
    let (first, end) = import(&app, "importer", rows.clone()).await;
    end.expect("first run");
    assert!(first.values().all(|a| a.as_ref().is_ok_and(|r| r.created)));
    let participants = app.participant_count().await;
    let audit = app.audit_count().await;
    let (again, end) = import(&app, "importer", rows).await;
    end.expect("second run");
    assert_eq!(again.len(), first.len());
    for (i, a) in &again {
        let a = a.as_ref().expect("a replay");
        let b = first[i].as_ref().expect("first");
        assert_eq!(a, b, "row {i} is answered with its first answer");
    }
    assert_eq!(app.participant_count().await, participants);
    assert_eq!(app.audit_count().await, audit, "no audit event on a re-run");

    // Both imports ended OK, and are counted with the label value unary successes have.
    let text = app.metrics_text().await;
    assert!(
        text.lines().any(|l| l
            == "participants_requests_total{method=\"ImportParticipants\",code=\"OK\",reason=\"\"} 2"),
        "{text}"
    );
}

async fn a_malformed_row_ends_the_stream_after_the_rows_before_it(backend: Backend) {
    let app = twin(backend).await;
    // Two good rows, then bytes that are no UpsertParticipantRequest.
    let body = vec![
        ohio("MAL-1").encode_to_vec(),
        ohio("MAL-2").encode_to_vec(),
        vec![0xff, 0xff, 0xff],
    ];
    let path = http::uri::PathAndQuery::from_static(
        "/openclinica.participants.v1.ParticipantService/ImportParticipants",
    );
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let mut answers = grpc
        .streaming(
            with_token(futures_util::stream::iter(body), &app.token("importer")),
            path,
            crate::transport::RawCodec,
        )
        .await
        .expect("the call starts")
        .into_inner();
    let mut rows = 0;
    let end = loop {
        match answers.message().await {
            Ok(Some(_)) => rows += 1,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert_eq!(rows, 2, "the rows before the bad one are answered");
    expect_failure(end, Code::InvalidArgument, "MALFORMED_REQUEST");
    assert_eq!(app.participant_count().await, 2 + 2);
}

/// Waits until `sent` has not grown for 2 s (fails after a minute); the count then.
async fn wait_until_held_back(sent: &AtomicU64) -> u64 {
    let mut last = 0;
    let mut stable_for = Duration::ZERO;
    let step = Duration::from_millis(500);
    for _ in 0..120 {
        tokio::time::sleep(step).await;
        let now = sent.load(Ordering::Relaxed);
        if now == last && now > 0 {
            stable_for += step;
            if stable_for >= Duration::from_secs(2) {
                return now;
            }
        } else {
            stable_for = Duration::ZERO;
        }
        last = now;
    }
    panic!("the client kept sending ({last} rows) while not reading");
}

async fn a_client_that_does_not_read_is_held_back(backend: Backend) {
    // Rows have 2 s each; the client reads nothing for longer: rows in flight must still be
    // written meanwhile, not left to time out.
    let (app, channel) = small_windows(backend, Default::default(), Duration::from_secs(2)).await;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rows = {
        let (sent, stop) = (sent.clone(), stop.clone());
        futures_util::stream::iter(0u64..)
            .take_while(move |_| std::future::ready(!stop.load(Ordering::Relaxed)))
            .map(move |i| {
                sent.fetch_add(1, Ordering::Relaxed);
                UpsertParticipantRequest {
                    validate_only: true,
                    // About 1 KiB a row: the server's HTTP/2 window then holds a thousand.
                    reason_for_change: "r".repeat(1000),
                    ..ohio(&format!("FLOW-{i}"))
                }
            })
    };
    let request = with_token(rows, &app.token("importer"));
    let mut client = ParticipantServiceClient::new(channel);
    let mut answers = client
        .import_participants(request)
        .await
        .expect("import")
        .into_inner();
    // Not reading: the count of rows the client could send must stop growing.
    let last = wait_until_held_back(&sent).await;
    assert!(last < 200_000, "held back after {last} rows");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Reading again: every row sent is answered, and the call ends OK.
    stop.store(true, Ordering::Relaxed);
    let mut received = 0u64;
    while let Some(r) = answers.message().await.expect("answers") {
        assert!(
            matches!(r.outcome, Some(Outcome::Response(_))),
            "row {} was refused: {r:?}",
            r.index
        );
        received += 1;
    }
    assert_eq!(received, sent.load(Ordering::Relaxed));
    assert_eq!(
        app.participant_count().await,
        0,
        "validate_only wrote nothing"
    );
}

/// An import opened with `token`: the sender of its rows and the stream of its answers.
async fn open_import(
    app: &TestApp,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<UpsertParticipantRequest>,
    tonic::Streaming<ImportResult>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = with_token(tokio_stream::wrappers::ReceiverStream::new(rx), token);
    let answers = app
        .client
        .clone()
        .import_participants(request)
        .await
        .expect("import")
        .into_inner();
    (tx, answers)
}

async fn a_silent_client_is_cut_after_the_idle_timeout(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.catalog = CATALOG;
    options.server = Some(participants::grpc::server::ServerConfig {
        // Shorter than the idle timeout below, to show it does not cut the import.
        request_timeout: Duration::from_secs(1),
        import: participants::service::import::ImportConfig {
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    let (tx, mut answers) = open_import(&app, &app.token("importer")).await;
    // Rows 0.8 s apart: past the 1 s per-call timeout in total, never idle for 1 s.
    for i in 0..3 {
        tx.send(ohio(&format!("SLOW-{i}"))).await.expect("send");
        let r = answers.message().await.expect("answer").expect("a row");
        assert!(matches!(r.outcome, Some(Outcome::Response(_))), "{r:?}");
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    // Then silence: the call ends with DEADLINE_EXCEEDED, the rows answered are written.
    let started = std::time::Instant::now();
    let end = answers.message().await;
    expect_failure(end, Code::DeadlineExceeded, "REQUEST_TIMED_OUT");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(app.participant_count().await, 3);
    drop(tx);

    // The call is counted once, when it ends, with the status it ended with.
    let text = app.metrics_text().await;
    let imports: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("participants_requests_total{method=\"ImportParticipants\""))
        .collect();
    assert_eq!(
        imports,
        vec![
            "participants_requests_total{method=\"ImportParticipants\",code=\"DeadlineExceeded\",reason=\"REQUEST_TIMED_OUT\"} 1"
        ],
        "{text}"
    );
}

/// A server with `import` settings, and a channel to it with small HTTP/2 windows, so that
/// unread answers back up after a few hundred rows.
async fn small_windows(
    backend: Backend,
    import: participants::service::import::ImportConfig,
    request_timeout: Duration,
) -> (TestApp, tonic::transport::Channel) {
    let mut options = AppOptions::new(backend);
    options.catalog = CATALOG;
    options.server = Some(participants::grpc::server::ServerConfig {
        import,
        request_timeout,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    options.listener = Some(listener);
    let app = TestApp::spawn_with(options).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    (app, channel)
}

async fn a_client_that_reads_nothing_is_cut_after_the_idle_timeout(backend: Backend) {
    let (app, channel) = small_windows(
        backend,
        participants::service::import::ImportConfig {
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        Duration::from_secs(10),
    )
    .await;
    // More rows than the client can ever send while it reads nothing, 1 KiB each.
    let rows = 200_000;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let requests = futures_util::stream::iter(0..rows).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        UpsertParticipantRequest {
            validate_only: true,
            reason_for_change: "r".repeat(1000),
            ..ohio(&format!("UNREAD-{i}"))
        }
    });
    let mut answers = ParticipantServiceClient::new(channel)
        .import_participants(with_token(requests, &app.token("importer")))
        .await
        .expect("import")
        .into_inner();
    // Until the client is held back, then past the idle timeout.
    wait_until_held_back(&sent).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut read = 0;
    let end = loop {
        match answers.message().await {
            Ok(Some(_)) => read += 1,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(read < rows, "the call was cut ({read} answers)");
    let f = expect_failure(end, Code::DeadlineExceeded, "REQUEST_TIMED_OUT");
    assert!(f.message.contains("unread"), "{f:?}");
}

/// Clients that send each row in its own small DATA frame (grpc-go, grpc-python, Node) while
/// the server holds them back must not trip HTTP/2's guard against floods of small frames: the
/// rows it has not read yet are bounded by the stream window, and the guard's budget by the
/// connection window. With hyper's 1 MiB stream window the connection ended with
/// ENHANCE_YOUR_CALM after about 3,500 rows.
async fn rows_in_small_frames_are_all_answered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tcp = tokio::net::TcpStream::connect(app.addr).await.expect("tcp");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!(
        "http://{}/openclinica.participants.v1.ParticipantService/ImportParticipants",
        app.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {}", app.token("dm.juno")))
    .body(())
    .expect("request");
    let (response, mut rows) = client.send_request(request, false).expect("send");
    const ROWS: usize = 8_000;
    for n in 0..ROWS {
        let mut row = crate::helpers::at_ohio(&format!("F{n}"));
        row.validate_only = true;
        let body = row.encode_to_vec();
        let mut frame = Vec::with_capacity(5 + body.len());
        frame.push(0);
        frame.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(&body);
        assert!(frame.len() < 256, "a small frame: {} bytes", frame.len());
        rows.send_data(bytes::Bytes::from(frame), n + 1 == ROWS)
            .expect("queue a row: the connection is still up");
    }
    let response = response.await.expect("response headers");
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the connection stays up while every row is answered");
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    let (mut answered, mut at) = (0, 0);
    while at + 5 <= received.len() {
        let len =
            u32::from_be_bytes(received[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        let result = ImportResult::decode(&received[at + 5..at + 5 + len]).expect("a result");
        assert!(
            matches!(result.outcome, Some(Outcome::Response(_))),
            "row {} is answered: {result:?}",
            result.index
        );
        answered += 1;
        at += 5 + len;
    }
    assert_eq!(answered, ROWS);
}

/// Imports are bounded in number, per user and in all, before any row is read: a caller (here
/// one with no role at all) cannot take every admission slot by opening silent imports.
async fn open_imports_are_bounded_per_user_and_in_all(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.catalog = CATALOG;
    options.server = Some(participants::grpc::server::ServerConfig {
        max_in_flight: 8,
        import: participants::service::import::ImportConfig {
            max_concurrent: 3,
            max_per_user: 2,
            // Silent imports end after this, and give their places back.
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    });
    let app = TestApp::spawn_with(options).await;
    let open = |user: &'static str| {
        let app = &app;
        async move {
            ParticipantServiceClient::new(app.channel.clone())
                .import_participants(app.authed(
                    user,
                    futures_util::stream::pending::<UpsertParticipantRequest>(),
                ))
                .await
        }
    };
    let first = open("nobody").await.expect("a first import");
    let second = open("nobody").await.expect("a second import");
    let refused = open("nobody").await.expect_err("a third of one user's");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.get_details_retry_info().is_some(), "{refused:?}");
    let other = open("importer").await.expect("another user's");
    let full = open("crc.texas").await.expect_err("a fourth in all");
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    // Unary calls still have their slots.
    let mut unary = crate::helpers::at_ohio("UNARY-1");
    unary.scope = site("S_JUNO(PROD)", "S_OHI0(TEST)");
    app.upsert("importer", unary)
        .await
        .expect("a unary call is admitted");
    // A place is given back when its import ends (here: silent past the idle timeout).
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(r) = open("crc.texas").await {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "a place freed by an ended import is taken again"
    );
    drop((second, other, again));
}

crate::on_both_backends!(
    open_imports_are_bounded_per_user_and_in_all,
    rows_in_small_frames_are_all_answered,
    a_client_that_reads_nothing_is_cut_after_the_idle_timeout,
    every_row_is_answered_as_a_unary_call_would_be,
    a_rerun_writes_nothing,
    a_malformed_row_ends_the_stream_after_the_rows_before_it,
    a_client_that_does_not_read_is_held_back,
    a_silent_client_is_cut_after_the_idle_timeout,
    an_import_ends_when_its_token_expires,
);

/// A token is checked when the stream opens; an import must not keep writing on it once it has
/// expired. Rows read before the expiry are answered (and written), the call then ends
/// UNAUTHENTICATED, and rows sent later are not written.
async fn an_import_ends_when_its_token_expires(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.catalog = CATALOG;
    let app = TestApp::spawn_with(options).await;
    // The verifier allows 30 s of clock skew: this token is accepted for about 2 s more.
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"preferred_username": "importer", "iat": now - 60, "exp": now - 28}),
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
    )
    .expect("sign");
    let (tx, mut answers) = open_import(&app, &token).await;
    let started = std::time::Instant::now();
    let mut answered: i64 = 0;
    let end = loop {
        // A row every 250 ms, each answered before the next is sent, for up to 8 s.
        if started.elapsed() > Duration::from_secs(8) {
            panic!("the import outlived its token by {answered} rows");
        }
        if tx.send(ohio(&format!("EXPIRY-{answered}"))).await.is_err() {
            break answers.message().await;
        }
        match answers.message().await {
            Ok(Some(r)) => {
                assert!(matches!(r.outcome, Some(Outcome::Response(_))), "{r:?}");
                answered += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break other,
        }
    };
    expect_failure(end, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(
        answered >= 1,
        "rows sent while the token was valid are answered"
    );
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.participant_count().await,
        answered,
        "exactly the answered rows are written"
    );
}
