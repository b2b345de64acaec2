//! GetParticipant: every role reads within its reach; contact data only for writers.

use participants::pb::{ParticipantContact, ParticipantStatus, UpsertParticipantRequest};
use tonic::Code;

use crate::helpers::{
    Backend, JUNO, OHIO, TEXAS, TestApp, at_ohio, expect_failure, get_site, get_study, site, study,
};

const ROLES: [&str; 7] = ["dm", "ds", "dep", "crc", "inv", "monitor", "viewer"];

fn writes(role: &str) -> bool {
    !matches!(role, "monitor" | "viewer")
}

async fn seed(app: &TestApp) {
    let mut ohio = at_ohio("OHIO-1");
    ohio.contact = Some(ParticipantContact {
        first_name: Some("Ada".into()),
        ..Default::default()
    });
    app.upsert("crc.ohio", ohio).await.expect("create at Ohio");
    app.upsert(
        "crc.texas",
        UpsertParticipantRequest {
            scope: site(JUNO, TEXAS),
            subject_key: "TEX-1".into(),
            ..Default::default()
        },
    )
    .await
    .expect("create at Texas");
    app.upsert(
        "dm.juno",
        UpsertParticipantRequest {
            scope: study(JUNO),
            subject_key: "STUDY-1".into(),
            secondary_id: Some("SEC-1".into()),
            ..Default::default()
        },
    )
    .await
    .expect("create at the study level");
}

async fn role_and_scope_table(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed(&app).await;

    for role in ROLES {
        // Study-level roles reach the whole study.
        let user = format!("{role}.juno");
        let p = app
            .get(&user, get_study(JUNO, "OHIO-1"))
            .await
            .expect(&user);
        assert_eq!(p.site_oid, OHIO);
        assert_eq!(p.status, ParticipantStatus::Available as i32);
        assert_eq!(
            p.contact.as_ref().and_then(|c| c.first_name.as_deref()),
            writes(role).then_some("Ada"),
            "{user} contact"
        );
        let p = app
            .get(&user, get_study(JUNO, "study-1"))
            .await
            .expect(&user);
        assert_eq!(
            (p.site_oid.as_str(), p.secondary_id.as_deref()),
            ("", Some("SEC-1"))
        );
        assert!(p.contact.is_none());
        app.get(&user, get_site(JUNO, OHIO, "OHIO-1"))
            .await
            .expect(&user);
        app.get(&user, get_site(JUNO, TEXAS, "TEX-1"))
            .await
            .expect(&user);
        // A site-scoped call reaches that site only.
        let r = app.get(&user, get_site(JUNO, OHIO, "TEX-1")).await;
        expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");
        let r = app.get(&user, get_site(JUNO, OHIO, "STUDY-1")).await;
        expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");

        // Site-level roles reach their own site only.
        let user = format!("{role}.ohio");
        let p = app
            .get(&user, get_site(JUNO, OHIO, "ohio-1"))
            .await
            .expect(&user);
        assert_eq!(p.subject_key, "OHIO-1");
        assert_eq!(
            p.contact.as_ref().and_then(|c| c.first_name.as_deref()),
            writes(role).then_some("Ada"),
            "{user} contact"
        );
        let r = app.get(&user, get_study(JUNO, "OHIO-1")).await;
        expect_failure(r, Code::PermissionDenied, "NO_SUFFICIENT_PRIVILEGES");
        let r = app.get(&user, get_site(JUNO, OHIO, "STUDY-1")).await;
        expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");
        let r = app.get(&user, get_site(JUNO, OHIO, "TEX-1")).await;
        expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");
        let r = app.get(&user, get_site(JUNO, TEXAS, "TEX-1")).await;
        expect_failure(r, Code::PermissionDenied, "NO_ROLE_SET_UP");
    }

    let r = app.get("stranger", get_site(JUNO, OHIO, "OHIO-1")).await;
    expect_failure(r, Code::PermissionDenied, "NO_ROLE_SET_UP");
    let r = app.get("dm.juno", get_site(JUNO, OHIO, "NOBODY")).await;
    expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");
    let r = app.get("dm.juno", get_study("S_NOPE", "OHIO-1")).await;
    expect_failure(r, Code::NotFound, "STUDY_NOT_EXIST");
    let r = app
        .get("dm.juno", get_site(JUNO, "S_VEGA_BOS", "OHIO-1"))
        .await;
    let f = expect_failure(r, Code::NotFound, "SITE_NOT_EXIST");
    assert_eq!(f.metadata.get("studyOid").map(String::as_str), Some(JUNO));
    assert_eq!(
        f.metadata.get("siteOid").map(String::as_str),
        Some("S_VEGA_BOS")
    );
}

/// What one get should answer: the subject key, site and first name it returns, or the reason
/// it is refused with.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Found(&'static str, &'static str, Option<&'static str>),
    Refused(&'static str),
}

/// Gets that arrive together share a statement (see `service::reader`); each still gets exactly
/// its own answer: its own participant, its own contact data or none, its own refusal.
async fn gets_that_arrive_together_each_get_their_own_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed(&app).await;
    let cases: Vec<(&str, participants::pb::GetParticipantRequest, Expect)> = vec![
        (
            "dm.juno",
            get_study(JUNO, "OHIO-1"),
            Expect::Found("OHIO-1", OHIO, Some("Ada")),
        ),
        (
            "viewer.juno",
            get_study(JUNO, "ohio-1"),
            Expect::Found("OHIO-1", OHIO, None),
        ),
        (
            "crc.ohio",
            get_site(JUNO, OHIO, "OHIO-1"),
            Expect::Found("OHIO-1", OHIO, Some("Ada")),
        ),
        (
            "monitor.ohio",
            get_site(JUNO, OHIO, "OHIO-1"),
            Expect::Found("OHIO-1", OHIO, None),
        ),
        (
            "dm.juno",
            get_study(JUNO, "TEX-1"),
            Expect::Found("TEX-1", TEXAS, None),
        ),
        (
            "dm.juno",
            get_study(JUNO, "STUDY-1"),
            Expect::Found("STUDY-1", "", None),
        ),
        (
            "dm.juno",
            get_site(JUNO, OHIO, "TEX-1"),
            Expect::Refused("PARTICIPANT_NOT_FOUND"),
        ),
        (
            "dm.juno",
            get_site(JUNO, OHIO, "NOBODY"),
            Expect::Refused("PARTICIPANT_NOT_FOUND"),
        ),
        (
            "dm.juno",
            get_study(JUNO, "NOBODY-2"),
            Expect::Refused("PARTICIPANT_NOT_FOUND"),
        ),
        (
            "crc.ohio",
            get_site(JUNO, OHIO, "STUDY-1"),
            Expect::Refused("PARTICIPANT_NOT_FOUND"),
        ),
    ];
    let before = app.participants.read_stats();
    let rounds = 6;
    let calls: Vec<_> = (0..rounds)
        .flat_map(|_| cases.iter().cloned())
        .map(|(user, req, expect)| {
            let mut client = app.client.clone();
            let req = app.authed(user, req);
            let call = tokio::spawn(async move {
                client
                    .get_participant(req)
                    .await
                    .map(tonic::Response::into_inner)
            });
            (user, expect, call)
        })
        .collect();
    for (user, expect, call) in calls {
        let got = match call.await.expect("task") {
            Ok(p) => Expect::Found(
                if p.subject_key == "OHIO-1" {
                    "OHIO-1"
                } else if p.subject_key == "TEX-1" {
                    "TEX-1"
                } else if p.subject_key == "STUDY-1" {
                    "STUDY-1"
                } else {
                    "another"
                },
                match p.site_oid.as_str() {
                    s if s == OHIO => OHIO,
                    s if s == TEXAS => TEXAS,
                    "" => "",
                    _ => "another",
                },
                match p.contact.as_ref().and_then(|c| c.first_name.as_deref()) {
                    Some("Ada") => Some("Ada"),
                    Some(_) => Some("another"),
                    None => None,
                },
            ),
            Err(status) => {
                Expect::Refused(match crate::helpers::failure(&status).reason.as_str() {
                    "PARTICIPANT_NOT_FOUND" => "PARTICIPANT_NOT_FOUND",
                    _ => "another",
                })
            }
        };
        assert_eq!(got, expect, "{user}");
    }
    let after = app.participants.read_stats();
    assert_eq!(
        after.lookups - before.lookups,
        u64::try_from(cases.len() * rounds).unwrap(),
        "every get looked its participant up through the readers: {before:?} -> {after:?}"
    );
    assert!(after.statements - before.statements <= after.lookups - before.lookups);
}

/// On PostgreSQL a get with no other lookup in flight runs at once in its caller, in a
/// statement of its own, instead of waiting on a reader lane (on SQLite it goes through a
/// lane): each is one statement, and answered.
async fn a_get_with_none_other_in_flight_runs_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed(&app).await;
    let before = app.participants.read_stats();
    for key in ["OHIO-1", "NOBODY"] {
        for _ in 0..3 {
            let got = app
                .client
                .clone()
                .get_participant(app.authed("crc.ohio", get_site(JUNO, OHIO, key)))
                .await;
            match key {
                "OHIO-1" => assert_eq!(got.expect("found").into_inner().subject_key, key),
                _ => assert_eq!(got.expect_err("not found").code(), Code::NotFound),
            }
        }
    }
    let after = app.participants.read_stats();
    let alone = match backend {
        Backend::Postgres => 6,
        Backend::Sqlite => 0,
    };
    assert_eq!(after.alone - before.alone, alone, "{before:?} -> {after:?}");
    assert_eq!(
        after.statements - before.statements,
        6,
        "{before:?} -> {after:?}"
    );
}

crate::on_both_backends!(
    role_and_scope_table,
    gets_that_arrive_together_each_get_their_own_answer,
    a_get_with_none_other_in_flight_runs_at_once
);

/// A pooled PostgreSQL connection cut while idle (a failover, a restart, a proxy that shuts
/// sessions down) is replaced at its next checkout, before a statement fails on it: the gets
/// right after the cut are answered, not refused UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set PARTICIPANTS_TEST_POSTGRES_URL (.ci/run does)"]
async fn gets_right_after_the_database_cut_its_sessions_are_answered() {
    let app = TestApp::spawn(Backend::Postgres).await;
    seed(&app).await;
    // Open several pooled connections.
    let warm: Vec<_> = (0..24)
        .map(|_| {
            let mut client = app.client.clone();
            let req = app.authed("dm.juno", get_study(JUNO, "OHIO-1"));
            tokio::spawn(async move { client.get_participant(req).await })
        })
        .collect();
    for call in warm {
        call.await.expect("task").expect("a get before the cut");
    }
    let cut = app
        .scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    assert!(cut >= 1, "the pool had other connections to cut");
    for i in 0..8 {
        app.get("dm.juno", get_study(JUNO, "OHIO-1"))
            .await
            .unwrap_or_else(|s| panic!("get {i} after the cut: {s:?}"));
    }
}
