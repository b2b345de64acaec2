//! Caps and uniqueness hold exactly under concurrent calls.

use std::collections::BTreeMap;

use participants::pb::{ParticipantContact, UpsertParticipantRequest};
use tonic::Code;

use crate::helpers::{Backend, TestApp, capped, expect_failure, failure};

/// Runs the requests at once and counts the outcomes by code and reason.
async fn race(
    app: &TestApp,
    user: &str,
    requests: Vec<UpsertParticipantRequest>,
) -> BTreeMap<String, usize> {
    let mut tasks = Vec::new();
    for req in requests {
        let client = app.client.clone();
        let call = app.authed(user, req);
        tasks.push(tokio::spawn(async move {
            client.clone().upsert_participant(call).await
        }));
    }
    let mut outcomes = BTreeMap::new();
    for task in tasks {
        let key = match task.await.expect("task") {
            Ok(r) if r.get_ref().created => "created".to_owned(),
            Ok(_) => "updated".to_owned(),
            Err(status) => {
                let f = failure(&status);
                format!("{:?}/{}", f.code, f.reason)
            }
        };
        *outcomes.entry(key).or_insert(0) += 1;
    }
    outcomes
}

async fn fifty_creations_against_a_cap_of_ten(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let requests = (0..50)
        .map(|n| capped("S_CAPPED_A", &format!("C-{n:02}")))
        .collect();
    let outcomes = race(&app, "dm.capped", requests).await;
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("created".to_owned(), 10),
            (
                "FailedPrecondition/PARTICIPANTS_ENROLLMENT_CAP_REACHED".to_owned(),
                40
            ),
        ])
    );
    assert_eq!(app.participant_count().await, 10);
    app.assert_counters_match().await;
}

async fn caps_count_enrolled_participants_and_never_block_updates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Site B has a cap of 2.
    app.upsert("dm.capped", capped("S_CAPPED_B", "B-1"))
        .await
        .unwrap();
    app.upsert("dm.capped", capped("S_CAPPED_B", "B-2"))
        .await
        .unwrap();
    let full = expect_failure(
        app.upsert("dm.capped", capped("S_CAPPED_B", "B-3")).await,
        Code::FailedPrecondition,
        "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
    );
    // The message says which cap refused, and its size.
    assert!(
        full.message.contains("the site's enrollment cap of 2"),
        "{}",
        full.message
    );
    // Updates are never refused by a cap.
    let mut update = capped("S_CAPPED_B", "b-1");
    update.contact = Some(ParticipantContact {
        city: Some("Lyon".into()),
        ..Default::default()
    });
    app.upsert("dm.capped", update)
        .await
        .expect("update at a full site");
    // A removed participant no longer counts; a signed one does.
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'B-1'")
        .await;
    app.upsert("dm.capped", capped("S_CAPPED_B", "B-3"))
        .await
        .expect("room again");
    app.execute("UPDATE participants SET status = 'signed' WHERE subject_key = 'B-2'")
        .await;
    expect_failure(
        app.upsert("dm.capped", capped("S_CAPPED_B", "B-4")).await,
        Code::FailedPrecondition,
        "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
    );

    // The study cap (10) counts every site; 2 are enrolled at B.
    for n in 0..8 {
        app.upsert("dm.capped", capped("S_CAPPED_A", &format!("A-{n}")))
            .await
            .unwrap();
    }
    let full = expect_failure(
        app.upsert("dm.capped", capped("S_CAPPED_A", "A-8")).await,
        Code::FailedPrecondition,
        "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
    );
    assert!(
        full.message.contains("the study's enrollment cap of 10"),
        "{}",
        full.message
    );

    // While the cap is full, concurrent updates all succeed.
    let updates = (0..8)
        .map(|n| {
            let mut r = capped("S_CAPPED_A", &format!("a-{n}"));
            r.contact = Some(ParticipantContact {
                city: Some(format!("City {n}")),
                ..Default::default()
            });
            r
        })
        .collect();
    let outcomes = race(&app, "dm.capped", updates).await;
    assert_eq!(outcomes, BTreeMap::from([("updated".to_owned(), 8)]));
    // After removals and signatures by hand, and the races: counters equal counts. A move to
    // another site by hand moves the count too.
    app.assert_counters_match().await;
    app.execute("UPDATE participants SET site_id = (SELECT id FROM sites WHERE oid = 'S_CAPPED_B') WHERE subject_key = 'A-0'")
        .await;
    app.assert_counters_match().await;
}

async fn concurrent_upserts_of_one_key_create_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let requests = (0..30)
        .map(|n| {
            let key = if n % 2 == 0 { "SAME-KEY" } else { "same-key" };
            let mut r = capped("S_CAPPED_A", key);
            r.contact = Some(ParticipantContact {
                city: Some("Paris".into()),
                ..Default::default()
            });
            r
        })
        .collect();
    let outcomes = race(&app, "dm.capped", requests).await;
    assert_eq!(
        outcomes,
        BTreeMap::from([("created".to_owned(), 1), ("updated".to_owned(), 29)])
    );
    assert_eq!(app.participant_count().await, 1);
    app.assert_counters_match().await;
}

async fn one_request_id_at_once_writes_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let requests = (0..20)
        .map(|_| {
            let mut r = capped("S_CAPPED_A", "ONCE");
            r.request_id = "one-key".into();
            r
        })
        .collect();
    let outcomes = race(&app, "dm.capped", requests).await;
    // Every answer is the first response (created = true), written once.
    assert_eq!(outcomes, BTreeMap::from([("created".to_owned(), 20)]));
    assert_eq!(app.participant_count().await, 1);
    app.assert_counters_match().await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM idempotency_records").await,
        1
    );
    assert_eq!(app.audit_count().await, 1);
}

crate::on_both_backends!(
    fifty_creations_against_a_cap_of_ten,
    caps_count_enrolled_participants_and_never_block_updates,
    concurrent_upserts_of_one_key_create_once,
    one_request_id_at_once_writes_once,
);
