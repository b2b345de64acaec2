//! The audit trail's event types and its per-study hash chain (SPEC section 14).

use participants::{domain::audit::EventType, pb::AuditEventType};

#[test]
fn event_types_match_the_proto_enum() {
    for t in EventType::ALL {
        let name = format!("AUDIT_EVENT_TYPE_{}", t.as_str());
        assert!(
            AuditEventType::from_str_name(&name).is_some(),
            "{name} is missing from the proto"
        );
    }
    // Every proto value but UNSPECIFIED is a Rust event type.
    let proto: Vec<_> = (1..64)
        .filter_map(|n| AuditEventType::try_from(n).ok())
        .collect();
    assert_eq!(proto.len(), EventType::ALL.len());
    for p in proto {
        let name = p.as_str_name().trim_start_matches("AUDIT_EVENT_TYPE_");
        assert!(EventType::parse(name).is_some(), "{name}");
    }
}

use std::{sync::Arc, time::Duration};

use participants::{
    crypto::DataCipher,
    pb::ParticipantContact,
    service::{
        Caller, Participants,
        audit_trail::{self, BreakKind, ChainReport},
        writer::BatchConfig,
    },
    store::{Store, migration::Migrator},
};
use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;

use crate::helpers::{
    AppOptions, Backend, DATA_KEY, JUNO, TestApp, at_ohio, contact, fresh_database,
};

async fn verify_juno(store: &Store) -> ChainReport {
    let mut reports = audit_trail::verify(store, Some(JUNO)).await.unwrap();
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

/// Three participants at Ohio, one updated twice: nine events or so on JUNO's chain.
async fn app_with_a_trail(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    for key in ["CH-1", "CH-2", "CH-3"] {
        let mut req = at_ohio(key);
        req.contact = contact(|c| c.first_name = Some("Ada".into()));
        app.upsert("crc.ohio", req).await.unwrap();
    }
    for city in ["Lyon", "Paris"] {
        let mut req = at_ohio("CH-2");
        req.contact = contact(|c| c.city = Some(city.into()));
        req.reason_for_change = format!("moved to {city}");
        app.upsert("crc.ohio", req).await.unwrap();
    }
    let report = verify_juno(&app.store).await;
    assert!(report.broken.is_none(), "{report}");
    assert_eq!(report.events, app.audit_count().await);
    assert!(report.events >= 8, "{report}");
    app
}

/// The id of the `n`-th event of the trail (1-based, in id order).
async fn nth_event(app: &TestApp, n: i64) -> i64 {
    app.scalar(&format!(
        "SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET {}",
        n - 1
    ))
    .await
}

async fn new_events_extend_the_chain_and_the_head(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    let last_hash: String = {
        let conn = app.store.connection();
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    };
    let report = verify_juno(&app.store).await;
    assert_eq!(report.head.as_deref(), Some(last_hash.as_str()));
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT chain_seq) FROM audit_events")
            .await,
        app.audit_count().await
    );
    // Every study is verified without --study; studies without events are intact too.
    let all = audit_trail::verify(&app.store, None).await.unwrap();
    assert!(all.len() > 1);
    assert!(all.iter().all(|r| r.broken.is_none()), "{all:?}");
    assert!(matches!(
        audit_trail::verify(&app.store, Some("S_NOPE")).await,
        Err(audit_trail::TrailError::NoSuchStudy(_))
    ));
}

async fn verify_catches_an_edited_event(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    let target = nth_event(&app, 4).await;
    app.execute(&format!(
        "UPDATE audit_events SET actor = 'someone.else' WHERE id = {target}"
    ))
    .await;
    let report = verify_juno(&app.store).await;
    let broken = report.broken.clone().expect("broken");
    assert_eq!(broken.kind, BreakKind::Edited, "{report}");
    assert_eq!(broken.event_id, target, "{report}");
    assert_eq!(report.events, 3);
}

async fn verify_catches_a_deleted_event(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    let target = nth_event(&app, 3).await;
    let next = nth_event(&app, 4).await;
    app.execute(&format!("DELETE FROM audit_events WHERE id = {target}"))
        .await;
    let broken = verify_juno(&app.store).await.broken.expect("broken");
    assert_eq!(broken.kind, BreakKind::Deleted);
    assert_eq!(broken.event_id, next, "named: the event after the gap");

    // The last event gone: the study's head still counts it.
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    app.execute("DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)")
        .await;
    let broken = verify_juno(&app.store).await.broken.expect("broken");
    assert_eq!(broken.kind, BreakKind::Deleted);
}

async fn verify_catches_an_inserted_event(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    // A copy of a real event, without a place in the chain.
    app.execute(
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, old_value, new_value, actor, occurred_at) \
         SELECT participant_id, study_id, event_type, field_name, old_value, 'forged', actor, occurred_at \
         FROM audit_events WHERE id = (SELECT MIN(id) FROM audit_events)",
    )
    .await;
    let forged = app.scalar("SELECT MAX(id) FROM audit_events").await;
    let broken = verify_juno(&app.store).await.broken.expect("broken");
    assert_eq!(broken.kind, BreakKind::Inserted);
    assert_eq!(broken.event_id, forged);

    // One given the next position and a hash of its own, without moving the head.
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    app.execute(
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, new_value, actor, occurred_at, chain_seq, hash) \
         SELECT participant_id, study_id, event_type, field_name, 'forged', actor, occurred_at, chain_seq + 1, hash \
         FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)",
    )
    .await;
    let broken = verify_juno(&app.store).await.broken.expect("broken");
    assert!(
        matches!(broken.kind, BreakKind::Inserted | BreakKind::Edited),
        "{broken:?}"
    );
}

async fn verify_catches_reordered_events(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    let (a, b) = (nth_event(&app, 2).await, nth_event(&app, 5).await);
    // Swap the two rows' places in the table (their ids), every value kept.
    for sql in [
        format!("UPDATE audit_events SET id = -1 WHERE id = {a}"),
        format!("UPDATE audit_events SET id = {a} WHERE id = {b}"),
        format!("UPDATE audit_events SET id = {b} WHERE id = -1"),
    ] {
        app.execute(&sql).await;
    }
    let broken = verify_juno(&app.store).await.broken.expect("broken");
    assert_eq!(broken.kind, BreakKind::Reordered, "{broken:?}");
}

async fn batched_writes_of_one_study_share_one_chain(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.batching = Some(BatchConfig {
        max_batch: 64,
        max_wait: Duration::from_millis(200),
        lanes: 1,
    });
    let app = TestApp::spawn_with(options).await;
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let mut client = app.client.clone();
            let mut req = at_ohio(&format!("B-{i}"));
            req.contact = contact(|c| c.last_name = Some(format!("N{i}")));
            let req = app.authed("crc.ohio", req);
            tokio::spawn(async move { client.upsert_participant(req).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert!(
        app.participants.batch_stats().largest > 1,
        "writes were batched"
    );
    let report = verify_juno(&app.store).await;
    assert!(report.broken.is_none(), "{report}");
    assert_eq!(report.events, app.audit_count().await);
}

async fn a_data_key_rotation_does_not_break_verification(backend: Backend) {
    let app = app_with_a_trail(backend).await;
    // The service restarted with a new data key; the old one only opens.
    let rotated = Participants::new(
        app.store.clone(),
        Arc::new(DataCipher::new(&[9; 32], &[DATA_KEY])),
    );
    rotated.refresh_catalog().await.unwrap();
    let mut req = at_ohio("CH-1");
    req.contact = Some(ParticipantContact {
        first_name: Some("Grace".into()),
        ..Default::default()
    });
    rotated
        .upsert(
            &Caller {
                user: "crc.ohio".into(),
                ..Default::default()
            },
            req.into(),
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
    let report = verify_juno(&app.store).await;
    assert!(report.broken.is_none(), "{report}");
    assert_eq!(report.events, app.audit_count().await);
}

async fn the_migration_chains_events_stored_before_it(backend: Backend) {
    let db = fresh_database(backend).await;
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    // Every migration before the chain's.
    Migrator::up(&conn, Some(9)).await.unwrap();
    for sql in [
        "INSERT INTO studies (oid, name, status, participant_id_method, participate_enabled, next_seq) VALUES ('S_OLD', 'Old', 'available', 'manual', false, 1)",
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) \
         SELECT id, 'OLD-1', 'old-1', 'SS_OLD1', 'available', '', 'e', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM studies",
        "INSERT INTO change_reasons (reason) VALUES ('legacy reason')",
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, new_value, actor, occurred_at) \
         SELECT id, study_id, 'PARTICIPANT_CREATED', 'subject_key', 'OLD-1', 'dm', create_time FROM participants",
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, old_value, new_value, actor, occurred_at, reason_for_change) \
         SELECT id, study_id, 'FIELD_CHANGED', 'secondary_id', NULL, 'x', 'dm', create_time, 'inline reason' FROM participants",
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, old_value, new_value, actor, occurred_at, reason_id) \
         SELECT p.id, p.study_id, 'FIELD_CHANGED', 'secondary_id', 'x', 'y', 'dm', p.create_time, r.id FROM participants p, change_reasons r",
    ] {
        conn.execute_unprepared(sql).await.expect(sql);
    }
    conn.close().await.unwrap();

    let mut config = participants::store::DbConfig::new(db.url.clone());
    config.max_connections = 2;
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    let mut reports = audit_trail::verify(&store, Some("S_OLD")).await.unwrap();
    let report = reports.remove(0);
    assert!(report.broken.is_none(), "{report}");
    assert_eq!(report.events, 3);
    // The guard is back: the chained rows cannot be updated.
    assert!(
        store
            .connection()
            .execute_unprepared("UPDATE audit_events SET actor = 'x'")
            .await
            .is_err()
    );
}

/// Verification while writes commit sees each study in one snapshot: rows and head together.
async fn verify_during_writes_never_reports_a_break(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut client = app.client.clone();
            let token = app.token("crc.ohio");
            tokio::spawn(async move {
                for i in 0..15 {
                    let mut req = at_ohio(&format!("LIVE-{w}-{i}"));
                    req.contact = contact(|c| c.city = Some(format!("C{i}")));
                    client
                        .upsert_participant(crate::helpers::with_token(req, &token))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut checks = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let report = verify_juno(&app.store).await;
        assert!(report.broken.is_none(), "{report}");
        checks += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    let report = verify_juno(&app.store).await;
    assert!(report.broken.is_none(), "{report}");
    assert_eq!(report.events, app.audit_count().await);
    assert!(checks > 1, "verified while writing");
}

crate::on_both_backends!(
    verify_during_writes_never_reports_a_break,
    new_events_extend_the_chain_and_the_head,
    verify_catches_an_edited_event,
    verify_catches_a_deleted_event,
    verify_catches_an_inserted_event,
    verify_catches_reordered_events,
    batched_writes_of_one_study_share_one_chain,
    a_data_key_rotation_does_not_break_verification,
    the_migration_chains_events_stored_before_it,
);
