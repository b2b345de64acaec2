//! Every row of the error table, reached through the generated client, and the proto
//! ErrorReason enum checked against the Rust table.

use std::collections::BTreeSet;

use participants::{
    domain::Reason,
    pb::{ErrorReason, UpsertParticipantRequest},
    service::Fault,
};
use tonic::Code;

use crate::helpers::{
    AppOptions, Backend, Failure, JUNO, OHIO, TestApp, at_ohio, contact, expect_failure, get_site,
    site, study,
};

#[test]
fn the_proto_enum_and_the_rust_table_list_the_same_reasons() {
    let proto: BTreeSet<String> = (1..1000)
        .filter_map(|n| ErrorReason::try_from(n).ok())
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("ERROR_REASON_")
                .to_owned()
        })
        .collect();
    let rust: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(proto, rust);
    // The proto numbers follow the table order.
    for (n, reason) in Reason::ALL.iter().enumerate() {
        let name = format!("ERROR_REASON_{}", reason.as_str());
        assert_eq!(
            ErrorReason::from_str_name(&name).map(|r| r as usize),
            Some(n + 1),
            "{name}"
        );
    }
}

async fn every_reason_is_reached(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut check = |f: Failure, field: Option<&str>| {
        if let Some(field) = field {
            assert!(
                f.violations
                    .iter()
                    .any(|(p, r)| p == field && *r == f.reason),
                "{f:?}"
            );
        }
        seen.insert(f.reason.clone());
    };
    let crc = "crc.ohio";

    // Scope.
    let req = UpsertParticipantRequest {
        scope: study("S_NOPE"),
        subject_key: "A".into(),
        ..Default::default()
    };
    let f = expect_failure(
        app.upsert(crc, req).await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
    assert_eq!(
        f.metadata.get("studyOid").map(String::as_str),
        Some("S_NOPE")
    );
    check(f, None);
    let req = UpsertParticipantRequest {
        scope: None,
        subject_key: "A".into(),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert(crc, req).await,
            Code::NotFound,
            "STUDY_NOT_EXIST",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: study("S_FROZEN"),
        subject_key: "A".into(),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("dm.frozen", req).await,
            Code::FailedPrecondition,
            "STUDY_NOT_AVAILABLE",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: site(JUNO, "S_NOPE"),
        subject_key: "A".into(),
        ..Default::default()
    };
    check(
        expect_failure(app.upsert(crc, req).await, Code::NotFound, "SITE_NOT_EXIST"),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: site(JUNO, "S_VEGA_BOS"),
        subject_key: "A".into(),
        ..Default::default()
    };
    check(
        expect_failure(app.upsert(crc, req).await, Code::NotFound, "SITE_NOT_EXIST"),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: site(JUNO, "S_CLOSED"),
        subject_key: "A".into(),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("dm.juno", req).await,
            Code::FailedPrecondition,
            "SITE_NOT_AVAILABLE",
        ),
        None,
    );

    // Roles.
    check(
        expect_failure(
            app.upsert("nobody", at_ohio("A")).await,
            Code::PermissionDenied,
            "NO_ROLE_SET_UP",
        ),
        None,
    );
    check(
        expect_failure(
            app.upsert("viewer.ohio", at_ohio("A")).await,
            Code::PermissionDenied,
            "NO_SUFFICIENT_PRIVILEGES",
        ),
        None,
    );

    // Shape.
    let req = UpsertParticipantRequest {
        scope: site("S_PLAIN", "S_PLAIN_A"),
        subject_key: "A".into(),
        register: true,
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("dm.plain", req).await,
            Code::FailedPrecondition,
            "PARTICIPATE_NOT_ENABLED",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: study(JUNO),
        subject_key: "A".into(),
        contact: contact(|c| c.city = Some("X".into())),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("dm.juno", req).await,
            Code::InvalidArgument,
            "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED",
        ),
        Some("contact"),
    );
    let req = UpsertParticipantRequest {
        scope: study(JUNO),
        subject_key: "A".into(),
        register: true,
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("dm.juno", req).await,
            Code::InvalidArgument,
            "STUDY_LEVEL_PARTICIPANT_REGISTRATION_NOT_ALLOWED",
        ),
        Some("register"),
    );

    // Validation: one field at a time.
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, &str, UpsertParticipantRequest)> = vec![
        ("MISSING_PARTICIPANT_ID_DATA", "subject_key", at_ohio("")),
        (
            "PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER",
            "subject_key",
            at_ohio("<b>"),
        ),
        (
            "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS",
            "subject_key",
            at_ohio(&long(31)),
        ),
        (
            "FIRST_NAME_TOO_LONG",
            "contact.first_name",
            UpsertParticipantRequest {
                contact: contact(|c| c.first_name = Some(long(36))),
                ..at_ohio("A")
            },
        ),
        (
            "LAST_NAME_TOO_LONG",
            "contact.last_name",
            UpsertParticipantRequest {
                contact: contact(|c| c.last_name = Some(long(36))),
                ..at_ohio("A")
            },
        ),
        (
            "MIDDLE_NAME_TOO_LONG",
            "contact.middle_name",
            UpsertParticipantRequest {
                contact: contact(|c| c.middle_name = Some(long(36))),
                ..at_ohio("A")
            },
        ),
        (
            "EMAIL_ADDRESS_TOO_LONG",
            "contact.email_address",
            UpsertParticipantRequest {
                contact: contact(|c| c.email_address = Some(long(256))),
                ..at_ohio("A")
            },
        ),
        (
            "INVALID_EMAIL_ADDRESS",
            "contact.email_address",
            UpsertParticipantRequest {
                contact: contact(|c| c.email_address = Some("x@".into())),
                ..at_ohio("A")
            },
        ),
        (
            "PHONE_NUMBER_TOO_LONG",
            "contact.phone_number",
            UpsertParticipantRequest {
                contact: contact(|c| c.phone_number = Some(long(18))),
                ..at_ohio("A")
            },
        ),
        (
            "INVALID_PHONE_NUMBER",
            "contact.phone_number",
            UpsertParticipantRequest {
                contact: contact(|c| c.phone_number = Some("555".into())),
                ..at_ohio("A")
            },
        ),
        (
            "STREET_ADDRESS1_TOO_LONG",
            "contact.street_address1",
            UpsertParticipantRequest {
                contact: contact(|c| c.street_address1 = Some(long(156))),
                ..at_ohio("A")
            },
        ),
        (
            "STREET_ADDRESS2_TOO_LONG",
            "contact.street_address2",
            UpsertParticipantRequest {
                contact: contact(|c| c.street_address2 = Some(long(156))),
                ..at_ohio("A")
            },
        ),
        (
            "CITY_TOO_LONG",
            "contact.city",
            UpsertParticipantRequest {
                contact: contact(|c| c.city = Some(long(156))),
                ..at_ohio("A")
            },
        ),
        (
            "STATE_TOO_LONG",
            "contact.state",
            UpsertParticipantRequest {
                contact: contact(|c| c.state = Some(long(156))),
                ..at_ohio("A")
            },
        ),
        (
            "COUNTRY_TOO_LONG",
            "contact.country",
            UpsertParticipantRequest {
                contact: contact(|c| c.country = Some(long(156))),
                ..at_ohio("A")
            },
        ),
        (
            "POSTAL_CODE_TOO_LONG",
            "contact.postal_code",
            UpsertParticipantRequest {
                contact: contact(|c| c.postal_code = Some(long(36))),
                ..at_ohio("A")
            },
        ),
        (
            "SECONDARY_ID_TOO_LONG",
            "secondary_id",
            UpsertParticipantRequest {
                secondary_id: Some(long(36)),
                ..at_ohio("A")
            },
        ),
        (
            "HOSPITAL_NUMBER_TOO_LONG",
            "contact.hospital_number",
            UpsertParticipantRequest {
                contact: contact(|c| c.hospital_number = Some(long(36))),
                ..at_ohio("A")
            },
        ),
        (
            "INVALID_FULL_DOB",
            "contact.full_dob",
            UpsertParticipantRequest {
                contact: contact(|c| c.full_dob = Some("1990-04-31".into())),
                ..at_ohio("A")
            },
        ),
        (
            "REQUEST_ID_TOO_LONG",
            "request_id",
            UpsertParticipantRequest {
                request_id: long(65),
                ..at_ohio("A")
            },
        ),
        (
            "UNSUPPORTED_CHARACTER",
            "subject_key",
            at_ohio("ZW\u{200B}"),
        ),
        (
            "REASON_FOR_CHANGE_TOO_LONG",
            "reason_for_change",
            UpsertParticipantRequest {
                reason_for_change: long(1001),
                ..at_ohio("A")
            },
        ),
    ];
    for (reason, field, req) in cases {
        let f = expect_failure(app.upsert(crc, req).await, Code::InvalidArgument, reason);
        assert_eq!(f.metadata.get("studyOid").map(String::as_str), Some(JUNO));
        check(f, Some(field));
    }

    // Retries.
    let req = UpsertParticipantRequest {
        request_id: "r-1".into(),
        ..at_ohio("RID-1")
    };
    app.upsert(crc, req).await.expect("first");
    let req = UpsertParticipantRequest {
        request_id: "r-1".into(),
        ..at_ohio("RID-2")
    };
    check(
        expect_failure(
            app.upsert(crc, req).await,
            Code::InvalidArgument,
            "REQUEST_ID_REUSED",
        ),
        None,
    );

    // Lookup.
    check(
        expect_failure(
            app.get(crc, get_site(JUNO, OHIO, "NOBODY")).await,
            Code::NotFound,
            "PARTICIPANT_NOT_FOUND",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: site("S_VEGA", "S_VEGA_BOS"),
        subject_key: "S_VEGA_BOS-9999".into(),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("crc.boston", req).await,
            Code::NotFound,
            "PARTICIPANT_NOT_FOUND",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        scope: site(JUNO, "S_TEXAS(TEST)"),
        subject_key: "rid-1".into(),
        ..Default::default()
    };
    check(
        expect_failure(
            app.upsert("crc.texas", req).await,
            Code::AlreadyExists,
            "PARTICIPANT_ID_ALREADY_EXISTS",
        ),
        None,
    );
    app.upsert(crc, at_ohio("GONE")).await.unwrap();
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'GONE'")
        .await;
    check(
        expect_failure(
            app.upsert(crc, at_ohio("GONE")).await,
            Code::FailedPrecondition,
            "PARTICIPANT_ID_NOT_AVAILABLE",
        ),
        None,
    );
    let req = UpsertParticipantRequest {
        etag: "old".into(),
        ..at_ohio("RID-1")
    };
    check(
        expect_failure(app.upsert(crc, req).await, Code::Aborted, "ETAG_MISMATCH"),
        None,
    );

    // Cap.
    app.execute("UPDATE sites SET enrollment_cap = 0 WHERE oid = 'S_OHI0(TEST)'")
        .await;
    check(
        expect_failure(
            app.upsert(crc, at_ohio("CAPPED")).await,
            Code::FailedPrecondition,
            "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
        ),
        None,
    );

    // Paging: a page token this service did not issue.
    let r = participants::pb::audit_service_client::AuditServiceClient::new(app.channel.clone())
        .list_audit_events(app.authed(
            "dm.juno",
            participants::pb::ListAuditEventsRequest {
                scope: Some(participants::pb::list_audit_events_request::Scope::Study(
                    participants::pb::StudyScope {
                        study_oid: "S_JUNO(PROD)".into(),
                    },
                )),
                page_token: "forged".into(),
                ..Default::default()
            },
        ))
        .await;
    check(
        expect_failure(r, Code::InvalidArgument, "INVALID_PAGE_TOKEN"),
        None,
    );
    let r = participants::pb::audit_service_client::AuditServiceClient::new(app.channel.clone())
        .list_audit_events(app.authed(
            "dm.juno",
            participants::pb::ListAuditEventsRequest {
                scope: Some(participants::pb::list_audit_events_request::Scope::Study(
                    participants::pb::StudyScope {
                        study_oid: "S_JUNO(PROD)".into(),
                    },
                )),
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    check(
        expect_failure(r, Code::InvalidArgument, "INVALID_PAGE_SIZE"),
        None,
    );

    // Token.
    let r = app
        .client
        .clone()
        .upsert_participant(tonic::Request::new(at_ohio("A")))
        .await;
    check(
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED"),
        None,
    );

    // Storage: the pool is closed under the server.
    app.store
        .connection()
        .close_by_ref()
        .await
        .expect("close the pool");
    let f = expect_failure(
        app.upsert(crc, at_ohio("LATE")).await,
        Code::Unavailable,
        "STORAGE_UNAVAILABLE",
    );
    assert!(f.retry_delay.is_some(), "RetryInfo is attached");
    check(f, None);
    drop(app);

    // Anything unexpected: INTERNAL, with no detail.
    let mut options = AppOptions::new(backend);
    options.fault = Fault::AfterAudit;
    let faulty = TestApp::spawn_with(options).await;
    let f = expect_failure(
        faulty.upsert(crc, at_ohio("A")).await,
        Code::Internal,
        "INTERNAL",
    );
    assert_eq!(f.message, "internal error");
    check(f, None);
    drop(faulty);

    // Transport: a message over the limit, and bytes that are no protobuf message.
    let big = UpsertParticipantRequest {
        reason_for_change: "x".repeat(100 * 1024),
        ..at_ohio("A")
    };
    let fresh = TestApp::spawn(backend).await;
    check(
        expect_failure(
            fresh.upsert(crc, big).await,
            Code::ResourceExhausted,
            "MESSAGE_TOO_LARGE",
        ),
        None,
    );
    check(
        expect_failure(
            crate::transport::send_raw(&fresh, crc, vec![0xff; 16]).await,
            Code::InvalidArgument,
            "MALFORMED_REQUEST",
        ),
        None,
    );
    drop(fresh);

    // Overload: one call in flight at most; a second one while it commits is refused.
    let mut options = AppOptions::new(backend);
    options.fault = Fault::SlowCommit(std::time::Duration::from_millis(800));
    options.server = Some(participants::grpc::server::ServerConfig {
        max_in_flight: 1,
        ..Default::default()
    });
    let busy = TestApp::spawn_with(options).await;
    let first = {
        let mut client = busy.client.clone();
        let req = busy.authed(crc, at_ohio("BUSY-1"));
        tokio::spawn(async move { client.upsert_participant(req).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let f = expect_failure(
        busy.upsert(crc, at_ohio("BUSY-2")).await,
        Code::ResourceExhausted,
        "SERVER_OVERLOADED",
    );
    assert!(f.retry_delay.is_some(), "RetryInfo is attached");
    check(f, None);
    first.await.expect("task").expect("the first call commits");
    drop(busy);

    // Time: no write starts after the request timeout.
    let mut options = AppOptions::new(backend);
    options.server = Some(participants::grpc::server::ServerConfig {
        request_timeout: std::time::Duration::ZERO,
        ..Default::default()
    });
    let slow = TestApp::spawn_with(options).await;
    check(
        expect_failure(
            slow.upsert(crc, at_ohio("A")).await,
            Code::DeadlineExceeded,
            "REQUEST_TIMED_OUT",
        ),
        None,
    );

    let all: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(seen, all, "every reason of the table was reached");
}

crate::on_both_backends!(every_reason_is_reached);
