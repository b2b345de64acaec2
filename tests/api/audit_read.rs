//! AuditService/ListAuditEvents: who reads the trail, what they see, and paging.

use participants::{
    pb::{
        AuditEvent, AuditEventType, ListAuditEventsRequest, ListAuditEventsResponse, SiteScope,
        StudyScope, audit_service_client::AuditServiceClient, list_audit_events_request::Scope,
    },
    service::audit_trail,
};
use tonic::{Code, Status};

use crate::helpers::{
    Backend, JUNO, OHIO, TEXAS, TestApp, at_ohio, contact, expect_failure, with_token,
};

fn site_scope(site: &str) -> Option<Scope> {
    Some(Scope::Site(SiteScope {
        study_oid: JUNO.into(),
        site_oid: site.into(),
    }))
}

fn study_scope() -> Option<Scope> {
    Some(Scope::Study(StudyScope {
        study_oid: JUNO.into(),
    }))
}

async fn list(
    app: &TestApp,
    user: &str,
    req: ListAuditEventsRequest,
) -> Result<ListAuditEventsResponse, Status> {
    AuditServiceClient::new(app.channel.clone())
        .list_audit_events(app.authed(user, req))
        .await
        .map(tonic::Response::into_inner)
}

/// Every page of a query, following the tokens.
async fn all_pages(app: &TestApp, user: &str, mut req: ListAuditEventsRequest) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    for _ in 0..100 {
        let page = list(app, user, req.clone()).await.unwrap();
        assert!(page.events.len() <= req.page_size.max(1) as usize || req.page_size == 0);
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        req.page_token = page.next_page_token;
    }
    panic!("paging does not end");
}

/// OHIO-A created with contact data, then its city and secondary ID changed with a reason;
/// OHIO-B created; a study-level participant created.
async fn app_with_history(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let mut a = at_ohio("OHIO-A");
    a.contact = contact(|c| {
        c.first_name = Some("Ada".into());
        c.email_address = Some("ada@example.org".into());
    });
    app.upsert("crc.ohio", a).await.unwrap();
    let mut change = at_ohio("OHIO-A");
    change.secondary_id = Some("SEC-1".into());
    change.contact = contact(|c| c.city = Some("Lyon".into()));
    change.reason_for_change = "moved".into();
    change.request_id = "rid-change".into();
    app.upsert("crc.ohio", change).await.unwrap();
    app.upsert("crc.ohio", at_ohio("OHIO-B")).await.unwrap();
    let mut study_level = at_ohio("STUDY-1");
    study_level.scope = crate::helpers::study(JUNO);
    app.upsert("dm.juno", study_level).await.unwrap();
    app
}

async fn a_monitor_reads_a_participants_history_masked(backend: Backend) {
    let app = app_with_history(backend).await;
    let req = ListAuditEventsRequest {
        scope: site_scope(OHIO),
        subject_key: "ohio-a".into(),
        ..Default::default()
    };
    let seen = list(&app, "monitor.juno", req.clone()).await.unwrap();
    assert!(seen.next_page_token.is_empty());
    let summary: Vec<(i32, &str, Option<&str>, Option<&str>)> = seen
        .events
        .iter()
        .map(|e| {
            (
                e.r#type,
                e.field.as_str(),
                e.old_value.as_deref(),
                e.new_value.as_deref(),
            )
        })
        .collect();
    let created = AuditEventType::ParticipantCreated as i32;
    let changed = AuditEventType::FieldChanged as i32;
    assert_eq!(
        summary,
        vec![
            (created, "subject_key", None, Some("OHIO-A")),
            (changed, "first_name", None, Some("***")),
            (changed, "email_address", None, Some("***")),
            (changed, "secondary_id", None, Some("SEC-1")),
            (changed, "city", None, Some("***")),
        ]
    );
    for e in &seen.events {
        assert_eq!(e.study_oid, JUNO);
        assert_eq!(e.site_oid, OHIO);
        assert_eq!(e.subject_key, "OHIO-A");
        assert_eq!(e.user, "crc.ohio");
        assert_eq!(e.hash.len(), 64);
        assert!(e.time.is_some());
    }
    let last = seen.events.last().unwrap();
    assert_eq!(last.reason_for_change, "moved");
    assert_eq!(last.request_id, "rid-change");
    assert!(
        seen.events
            .windows(2)
            .all(|w| w[0].event_id < w[1].event_id),
        "oldest first"
    );

    // A data manager sees the values; a site CRC too.
    for user in ["dm.juno", "crc.ohio"] {
        let open = list(&app, user, req.clone()).await.unwrap();
        let values: Vec<Option<&str>> =
            open.events.iter().map(|e| e.new_value.as_deref()).collect();
        assert_eq!(
            values,
            vec![
                Some("OHIO-A"),
                Some("Ada"),
                Some("ada@example.org"),
                Some("SEC-1"),
                Some("Lyon")
            ],
            "{user}"
        );
    }
    // The hash of the last event of the study is the chain's head that verify reports.
    let whole = all_pages(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: study_scope(),
            ..Default::default()
        },
    )
    .await;
    let report = audit_trail::verify(&app.store, Some(JUNO)).await.unwrap();
    assert_eq!(
        Some(whole.last().unwrap().hash.as_str()),
        report[0].head.as_deref()
    );
    assert_eq!(whole.len() as i64, app.audit_count().await);
}

async fn scope_and_filters_narrow_the_trail(backend: Backend) {
    let app = app_with_history(backend).await;
    let study = all_pages(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: study_scope(),
            ..Default::default()
        },
    )
    .await;
    let ohio = all_pages(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: site_scope(OHIO),
            ..Default::default()
        },
    )
    .await;
    assert!(study.iter().any(|e| e.subject_key == "STUDY-1"));
    assert!(ohio.iter().all(|e| e.site_oid == OHIO));
    assert_eq!(
        study.len(),
        ohio.len() + 1,
        "the study-level one is not at Ohio"
    );
    let texas = list(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: site_scope(TEXAS),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(texas.events.is_empty());

    // Time range: [start, end).
    let third = study[2].time.unwrap();
    let from_third = all_pages(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: study_scope(),
            start_time: Some(third),
            ..Default::default()
        },
    )
    .await;
    assert!(from_third.iter().all(|e| {
        let t = e.time.unwrap();
        (t.seconds, t.nanos) >= (third.seconds, third.nanos)
    }));
    assert!(from_third.len() < study.len() || study[0].time == study[2].time);
    let before_third = all_pages(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            scope: study_scope(),
            end_time: Some(third),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(before_third.len() + from_third.len(), study.len());

    // A Participant of another site, or nobody, is not found.
    for key in ["OHIO-NOBODY", "STUDY-1", "<bad>"] {
        expect_failure(
            list(
                &app,
                "dm.juno",
                ListAuditEventsRequest {
                    scope: site_scope(OHIO),
                    subject_key: key.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::NotFound,
            "PARTICIPANT_NOT_FOUND",
        );
    }
}

async fn pages_follow_tokens_that_cannot_be_reused_elsewhere(backend: Backend) {
    let app = app_with_history(backend).await;
    let query = ListAuditEventsRequest {
        scope: study_scope(),
        page_size: 3,
        ..Default::default()
    };
    let paged = all_pages(&app, "dm.juno", query.clone()).await;
    let whole = list(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            page_size: 500,
            ..query.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(paged, whole.events, "pages add up to the whole, in order");
    assert!(paged.len() > 6);

    let first = list(&app, "dm.juno", query.clone()).await.unwrap();
    assert_eq!(first.events.len(), 3);
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    assert!(
        !token.contains("dm.juno") && !token.contains(JUNO),
        "the token is opaque"
    );
    // The same token with another scope, filter or user; altered; or made up.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let misuses: Vec<(&str, ListAuditEventsRequest)> = vec![
        (
            "dm.juno",
            ListAuditEventsRequest {
                scope: site_scope(OHIO),
                page_token: token.clone(),
                ..query.clone()
            },
        ),
        (
            "dm.juno",
            ListAuditEventsRequest {
                subject_key: "OHIO-A".into(),
                page_token: token.clone(),
                ..query.clone()
            },
        ),
        (
            "ds.juno",
            ListAuditEventsRequest {
                page_token: token.clone(),
                ..query.clone()
            },
        ),
        (
            "dm.juno",
            ListAuditEventsRequest {
                page_token: String::from_utf8(altered).unwrap(),
                ..query.clone()
            },
        ),
        (
            "dm.juno",
            ListAuditEventsRequest {
                page_token: "AQAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA".into(),
                ..query.clone()
            },
        ),
        (
            "dm.juno",
            ListAuditEventsRequest {
                page_token: "not a token".into(),
                ..query.clone()
            },
        ),
    ];
    for (user, req) in misuses {
        let f = expect_failure(
            list(&app, user, req.clone()).await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert!(f.message.contains("page_token"), "{}", f.message);
    }
    // A negative page size is refused; a huge one is the largest.
    expect_failure(
        list(
            &app,
            "dm.juno",
            ListAuditEventsRequest {
                page_size: -1,
                ..query.clone()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_SIZE",
    );
    let huge = list(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            page_size: i32::MAX,
            ..query.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(huge.events, whole.events);
    // The page size may change between pages.
    let rest = list(
        &app,
        "dm.juno",
        ListAuditEventsRequest {
            page_token: token,
            page_size: 500,
            ..query
        },
    )
    .await
    .unwrap();
    assert_eq!(rest.events.len(), paged.len() - 3);
    assert_eq!(rest.events[0], paged[3]);
}

async fn only_the_trails_readers_read_it(backend: Backend) {
    let app = app_with_history(backend).await;
    let at = |scope| ListAuditEventsRequest {
        scope,
        ..Default::default()
    };
    for user in ["dm.juno", "ds.juno", "monitor.juno"] {
        list(&app, user, at(study_scope())).await.unwrap();
        list(&app, user, at(site_scope(OHIO))).await.unwrap();
    }
    for user in [
        "dm.ohio",
        "ds.ohio",
        "monitor.ohio",
        "inv.ohio",
        "crc.ohio",
        "crc.juno",
    ] {
        list(&app, user, at(site_scope(OHIO))).await.unwrap();
    }
    let denied = [
        ("viewer.juno", study_scope(), "NO_SUFFICIENT_PRIVILEGES"),
        ("dep.juno", study_scope(), "NO_SUFFICIENT_PRIVILEGES"),
        ("viewer.ohio", site_scope(OHIO), "NO_SUFFICIENT_PRIVILEGES"),
        ("dep.ohio", site_scope(OHIO), "NO_SUFFICIENT_PRIVILEGES"),
        ("crc.juno", study_scope(), "NO_SUFFICIENT_PRIVILEGES"),
        ("inv.juno", study_scope(), "NO_SUFFICIENT_PRIVILEGES"),
        ("monitor.ohio", study_scope(), "NO_SUFFICIENT_PRIVILEGES"),
        ("crc.ohio", site_scope(TEXAS), "NO_ROLE_SET_UP"),
        ("dm.vega", study_scope(), "NO_ROLE_SET_UP"),
    ];
    for (user, scope, reason) in denied {
        let f = expect_failure(
            list(&app, user, at(scope)).await,
            Code::PermissionDenied,
            reason,
        );
        assert!(!f.message.is_empty(), "{user}");
    }
    let r = AuditServiceClient::new(app.channel.clone())
        .list_audit_events(tonic::Request::new(at(study_scope())))
        .await;
    expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    let r = AuditServiceClient::new(app.channel.clone())
        .list_audit_events(with_token(at(study_scope()), "not-a-jwt"))
        .await;
    expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    expect_failure(
        list(&app, "dm.juno", at(None)).await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
}

crate::on_both_backends!(
    a_monitor_reads_a_participants_history_masked,
    scope_and_filters_narrow_the_trail,
    pages_follow_tokens_that_cannot_be_reused_elsewhere,
    only_the_trails_readers_read_it,
);
