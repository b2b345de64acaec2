//! UpsertParticipant: the rules of SPEC section 4, one test per rule.

use participants::pb::{
    ParticipantContact, ParticipantStatus, ParticipateStatus, UpsertParticipantRequest,
};
use tonic::Code;

use crate::helpers::{
    Backend, JUNO, OHIO, TEXAS, TestApp, at_ohio, expect_failure, get_site, seed_request, site,
    study,
};

async fn the_seed_request_creates_then_updates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .upsert("crc.ohio", seed_request())
        .await
        .expect("create");
    assert!(r.created);
    assert!(r.access_code.is_empty(), "no access code without register");
    let p = r.participant.expect("participant");
    assert_eq!(p.study_oid, JUNO);
    assert_eq!(p.site_oid, OHIO);
    assert_eq!(p.subject_key, "OHIO-5");
    assert_eq!(p.subject_oid, "SS_OHIO5");
    assert_eq!(p.status, ParticipantStatus::Available as i32);
    assert_eq!(p.participate_status, ParticipateStatus::Unspecified as i32);
    let c = p.contact.expect("contact");
    assert_eq!(c.last_name.as_deref(), Some("ОНІО"));
    assert_eq!(c.email_address.as_deref(), Some("OHIOS@openclinica.com"));
    assert_eq!(c.phone_number.as_deref(), Some("+1 1234567890"));
    assert_eq!(c.first_name, None);
    assert!(!p.etag.is_empty());
    assert_eq!(p.create_time, p.update_time);

    // The same request again is a no-op update.
    let again = app.upsert("crc.ohio", seed_request()).await.expect("again");
    assert!(!again.created);
    let q = again.participant.unwrap();
    assert_eq!(q.etag, p.etag);
    assert_eq!(q.update_time, p.update_time);
    assert_eq!(app.participant_count().await, 1);
}

async fn lookup_is_trimmed_and_case_insensitive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", seed_request())
        .await
        .expect("create");
    let mut update = at_ohio("  ohio-5 ");
    update.contact = Some(ParticipantContact {
        first_name: Some("Olga".into()),
        ..Default::default()
    });
    let r = app.upsert("crc.ohio", update).await.expect("update");
    assert!(!r.created);
    let p = r.participant.unwrap();
    assert_eq!(p.subject_key, "OHIO-5", "stored as first given");
    let c = p.contact.unwrap();
    assert_eq!(c.first_name.as_deref(), Some("Olga"));
    assert_eq!(
        c.last_name.as_deref(),
        Some("ОНІО"),
        "absent fields are unchanged"
    );
    assert_eq!(app.participant_count().await, 1);

    // A new key is stored trimmed.
    let r = app
        .upsert("crc.ohio", at_ohio("  OHIO-6\t"))
        .await
        .expect("create");
    assert_eq!(r.participant.unwrap().subject_key, "OHIO-6");
}

async fn absent_leaves_empty_clears(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.secondary_id = Some("SEC-9".into());
    let first = app
        .upsert("crc.ohio", req)
        .await
        .unwrap()
        .participant
        .unwrap();

    // Empty email clears it; an absent phone is left; an empty phone would be no format error.
    let mut req = at_ohio("OHIO-5");
    req.contact = Some(ParticipantContact {
        email_address: Some(String::new()),
        full_dob: Some(String::new()),
        ..Default::default()
    });
    let p = app
        .upsert("crc.ohio", req)
        .await
        .unwrap()
        .participant
        .unwrap();
    let c = p.contact.unwrap();
    assert_eq!(c.email_address, None);
    assert_eq!(c.phone_number.as_deref(), Some("+1 1234567890"));
    assert_eq!(c.last_name.as_deref(), Some("ОНІО"));
    assert_eq!(p.secondary_id.as_deref(), Some("SEC-9"));
    assert_ne!(p.etag, first.etag, "a change makes a new etag");

    let mut req = at_ohio("OHIO-5");
    req.secondary_id = Some(String::new());
    let p = app
        .upsert("crc.ohio", req)
        .await
        .unwrap()
        .participant
        .unwrap();
    assert_eq!(p.secondary_id, None);
}

async fn role_matrix_for_upsert(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for role in ["dm", "ds", "dep", "crc", "inv"] {
        for (user, scope) in [
            (format!("{role}.juno"), site(JUNO, OHIO)),
            (format!("{role}.juno"), site(JUNO, TEXAS)),
            (format!("{role}.juno"), study(JUNO)),
            (format!("{role}.ohio"), site(JUNO, OHIO)),
        ] {
            let key = format!("{user}-{}", app.participant_count().await);
            let req = UpsertParticipantRequest {
                scope,
                subject_key: key,
                ..Default::default()
            };
            let r = app
                .upsert(&user, req)
                .await
                .unwrap_or_else(|e| panic!("{user}: {e:?}"));
            assert!(r.created);
        }
        // Site-level users never act at the study level, nor at another site.
        let user = format!("{role}.ohio");
        let r = app
            .upsert(
                &user,
                UpsertParticipantRequest {
                    scope: study(JUNO),
                    subject_key: "X-1".into(),
                    ..Default::default()
                },
            )
            .await;
        expect_failure(r, Code::PermissionDenied, "NO_SUFFICIENT_PRIVILEGES");
        let r = app
            .upsert(
                &user,
                UpsertParticipantRequest {
                    scope: site(JUNO, TEXAS),
                    subject_key: "X-1".into(),
                    ..Default::default()
                },
            )
            .await;
        expect_failure(r, Code::PermissionDenied, "NO_ROLE_SET_UP");
    }
    for user in ["monitor.juno", "viewer.juno", "monitor.ohio", "viewer.ohio"] {
        let r = app.upsert(user, at_ohio("X-2")).await;
        expect_failure(r, Code::PermissionDenied, "NO_SUFFICIENT_PRIVILEGES");
    }
    let r = app.upsert("stranger", at_ohio("X-3")).await;
    expect_failure(r, Code::PermissionDenied, "NO_ROLE_SET_UP");
    assert_eq!(app.participant_count().await, 20);
}

async fn an_id_at_another_scope_already_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("SHARED-1"))
        .await
        .expect("at Ohio");
    app.upsert(
        "dm.juno",
        UpsertParticipantRequest {
            scope: study(JUNO),
            subject_key: "STUDY-1".into(),
            ..Default::default()
        },
    )
    .await
    .expect("at the study");

    // Another site, in another letter case.
    let r = app
        .upsert(
            "crc.texas",
            UpsertParticipantRequest {
                scope: site(JUNO, TEXAS),
                subject_key: "shared-1".into(),
                ..Default::default()
            },
        )
        .await;
    let f = expect_failure(r, Code::AlreadyExists, "PARTICIPANT_ID_ALREADY_EXISTS");
    assert_eq!(f.metadata.get("siteOid").map(String::as_str), Some(TEXAS));
    // The study level, for a site participant.
    let r = app
        .upsert(
            "dm.juno",
            UpsertParticipantRequest {
                scope: study(JUNO),
                subject_key: "SHARED-1".into(),
                ..Default::default()
            },
        )
        .await;
    expect_failure(r, Code::AlreadyExists, "PARTICIPANT_ID_ALREADY_EXISTS");
    // A site, for a study-level participant.
    let r = app.upsert("dm.juno", at_ohio("study-1")).await;
    expect_failure(r, Code::AlreadyExists, "PARTICIPANT_ID_ALREADY_EXISTS");
    // Another study may use the same ID.
    app.upsert(
        "dm.plain",
        UpsertParticipantRequest {
            scope: site("S_PLAIN", "S_PLAIN_A"),
            subject_key: "SHARED-1".into(),
            ..Default::default()
        },
    )
    .await
    .expect("another study");
    assert_eq!(app.participant_count().await, 3);
}

async fn removed_participants_are_not_available(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("GONE-1")).await.unwrap();
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'GONE-1'")
        .await;
    let mut req = at_ohio("gone-1");
    req.secondary_id = Some("S".into());
    let r = app.upsert("crc.ohio", req).await;
    expect_failure(r, Code::FailedPrecondition, "PARTICIPANT_ID_NOT_AVAILABLE");
}

async fn study_level_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Secondary ID is allowed.
    let r = app
        .upsert(
            "dm.juno",
            UpsertParticipantRequest {
                scope: study(JUNO),
                subject_key: "SL-1".into(),
                secondary_id: Some("X".into()),
                ..Default::default()
            },
        )
        .await
        .expect("study level");
    assert_eq!(r.participant.unwrap().site_oid, "");

    // Any contact field present, even empty, is refused.
    let r = app
        .upsert(
            "dm.juno",
            UpsertParticipantRequest {
                scope: study(JUNO),
                subject_key: "SL-2".into(),
                contact: Some(ParticipantContact {
                    city: Some(String::new()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
    let f = expect_failure(
        r,
        Code::InvalidArgument,
        "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED",
    );
    assert_eq!(
        f.violations,
        vec![(
            "contact".to_owned(),
            "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED".to_owned()
        )]
    );

    let r = app
        .upsert(
            "dm.juno",
            UpsertParticipantRequest {
                scope: study(JUNO),
                subject_key: "SL-3".into(),
                register: true,
                ..Default::default()
            },
        )
        .await;
    expect_failure(
        r,
        Code::InvalidArgument,
        "STUDY_LEVEL_PARTICIPANT_REGISTRATION_NOT_ALLOWED",
    );

    // Both: the first in table order is the reason, both are listed.
    let r = app
        .upsert(
            "dm.juno",
            UpsertParticipantRequest {
                scope: study(JUNO),
                subject_key: "SL-4".into(),
                register: true,
                contact: Some(ParticipantContact {
                    city: Some("Oslo".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
    let f = expect_failure(
        r,
        Code::InvalidArgument,
        "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED",
    );
    assert_eq!(f.violations.len(), 2);
    assert_eq!(app.participant_count().await, 1);
}

async fn registration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.register = true;
    let r = app
        .upsert("crc.ohio", req.clone())
        .await
        .expect("register on create");
    let code = r.access_code.clone();
    assert_eq!(code.len(), 9);
    assert!(
        code.chars()
            .all(|c| "23456789ABCDEFGHJKLMNPQRSTUVWXYZ".contains(c)),
        "{code}"
    );
    let p = r.participant.unwrap();
    assert_eq!(p.participate_status, ParticipateStatus::Created as i32);

    // Registering again changes nothing and returns the same code.
    let again = app.upsert("crc.ohio", req).await.unwrap();
    assert_eq!(again.access_code, code);
    assert_eq!(again.participant.unwrap().etag, p.etag);

    // register = false never un-registers, and does not show the code.
    let r = app.upsert("crc.ohio", at_ohio("OHIO-5")).await.unwrap();
    assert_eq!(r.access_code, "");
    assert_eq!(
        r.participant.unwrap().participate_status,
        ParticipateStatus::Created as i32
    );

    // Registering an existing participant later.
    app.upsert("crc.ohio", at_ohio("OHIO-6")).await.unwrap();
    let mut req = at_ohio("ohio-6");
    req.register = true;
    let r = app.upsert("crc.ohio", req).await.unwrap();
    assert_eq!(r.access_code.len(), 9);
    assert_ne!(r.access_code, code);

    // The module must be on.
    let r = app
        .upsert(
            "dm.plain",
            UpsertParticipantRequest {
                scope: site("S_PLAIN", "S_PLAIN_A"),
                subject_key: "P-1".into(),
                register: true,
                ..Default::default()
            },
        )
        .await;
    expect_failure(r, Code::FailedPrecondition, "PARTICIPATE_NOT_ENABLED");
}

async fn validate_only_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.validate_only = true;
    req.register = true;
    let r = app.upsert("crc.ohio", req).await.expect("validate_only");
    assert!(r.created);
    assert_eq!(r.access_code, "", "no access code is stored or shown");
    assert_eq!(r.participant.unwrap().subject_oid, "SS_OHIO5");
    assert_eq!(app.participant_count().await, 0);
    assert_eq!(app.audit_count().await, 0);

    // Every check still runs.
    let mut bad = seed_request();
    bad.validate_only = true;
    bad.contact.as_mut().unwrap().email_address = Some("nope".into());
    expect_failure(
        app.upsert("crc.ohio", bad).await,
        Code::InvalidArgument,
        "INVALID_EMAIL_ADDRESS",
    );
    let mut monitor = seed_request();
    monitor.validate_only = true;
    expect_failure(
        app.upsert("monitor.juno", monitor).await,
        Code::PermissionDenied,
        "NO_SUFFICIENT_PRIVILEGES",
    );

    // On an existing participant it shows the change without making it.
    app.upsert("crc.ohio", seed_request()).await.unwrap();
    let mut req = at_ohio("OHIO-5");
    req.contact = Some(ParticipantContact {
        city: Some("Columbus".into()),
        ..Default::default()
    });
    req.validate_only = true;
    let r = app.upsert("crc.ohio", req).await.unwrap();
    assert_eq!(
        r.participant.unwrap().contact.unwrap().city.as_deref(),
        Some("Columbus")
    );
    let stored = app
        .get("crc.ohio", get_site(JUNO, OHIO, "OHIO-5"))
        .await
        .unwrap();
    assert_eq!(stored.contact.unwrap().city, None);
}

async fn etag_guards_updates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = app
        .upsert("crc.ohio", seed_request())
        .await
        .unwrap()
        .participant
        .unwrap();
    let mut req = at_ohio("OHIO-5");
    req.etag = "stale".into();
    req.secondary_id = Some("A".into());
    expect_failure(
        app.upsert("crc.ohio", req.clone()).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    req.etag = p.etag.clone();
    let q = app
        .upsert("crc.ohio", req.clone())
        .await
        .expect("current etag")
        .participant
        .unwrap();
    assert_ne!(q.etag, p.etag);
    // The old etag is stale now.
    req.secondary_id = Some("B".into());
    expect_failure(
        app.upsert("crc.ohio", req).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    // A creation has no etag to match.
    let mut create = at_ohio("NEW-1");
    create.etag = p.etag;
    expect_failure(
        app.upsert("crc.ohio", create).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
}

crate::on_both_backends!(
    the_seed_request_creates_then_updates,
    lookup_is_trimmed_and_case_insensitive,
    absent_leaves_empty_clears,
    role_matrix_for_upsert,
    an_id_at_another_scope_already_exists,
    removed_participants_are_not_available,
    study_level_rules,
    registration,
    validate_only_writes_nothing,
    etag_guards_updates,
);
