//! The audit trail: every change, in the same transaction, append-only.

use participants::{crypto::DataCipher, pb::ParticipantContact, service::Fault};
use sea_orm::ConnectionTrait;

use crate::helpers::{AppOptions, Backend, DATA_KEY, TestApp, at_ohio, seed_request};

/// (event_type, field, old, new, actor, request_id, reason) of every event, in order, with
/// sealed values opened with the test data key. The reason is the event's own column (events
/// written before reasons were stored once per write) or its write's shared `change_reasons` row.
async fn events(app: &TestApp) -> Vec<[String; 7]> {
    let conn = app.store.connection();
    let cipher = DataCipher::new(&DATA_KEY, &[]);
    let sql = "SELECT e.event_type, COALESCE(e.field_name, ''), COALESCE(e.old_value, '~'), COALESCE(e.new_value, '~'), e.actor, COALESCE(e.request_id, ''), COALESCE(e.reason_for_change, r.reason, ''), CAST(e.participant_id AS TEXT) FROM audit_events e LEFT JOIN change_reasons r ON r.id = e.reason_id ORDER BY e.id";
    conn.query_all_raw(sea_orm::Statement::from_string(
        conn.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .expect("events")
    .into_iter()
    .map(|row| {
        let cell = |i| row.try_get_by_index::<String>(i).expect("text");
        let context = format!("audit_events/{}/{}", cell(7), cell(1));
        // Contact values are sealed; the other fields' values are stored as they are.
        let open = |v: String| {
            if DataCipher::is_sealed(&v) {
                cipher.open(&v, &context).expect("opens")
            } else {
                v
            }
        };
        [
            cell(0),
            cell(1),
            open(cell(2)),
            open(cell(3)),
            cell(4),
            cell(5),
            cell(6),
        ]
    })
    .collect()
}

fn ev(e: &[&str; 7]) -> [String; 7] {
    e.map(str::to_owned)
}

async fn every_change_is_audited_and_no_ops_are_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "req-1".into();
    req.reason_for_change = "enrolment visit".into();
    app.upsert("crc.ohio", req).await.unwrap();
    let created = events(&app).await;
    assert_eq!(
        created,
        vec![
            ev(&[
                "PARTICIPANT_CREATED",
                "subject_key",
                "~",
                "OHIO-5",
                "crc.ohio",
                "req-1",
                "enrolment visit"
            ]),
            ev(&[
                "FIELD_CHANGED",
                "last_name",
                "~",
                "ОНІО",
                "crc.ohio",
                "req-1",
                "enrolment visit"
            ]),
            ev(&[
                "FIELD_CHANGED",
                "email_address",
                "~",
                "OHIOS@openclinica.com",
                "crc.ohio",
                "req-1",
                "enrolment visit"
            ]),
            ev(&[
                "FIELD_CHANGED",
                "phone_number",
                "~",
                "+1 1234567890",
                "crc.ohio",
                "req-1",
                "enrolment visit"
            ]),
        ]
    );

    // A change: old and new value, who and why.
    let mut update = at_ohio("ohio-5");
    update.contact = Some(ParticipantContact {
        email_address: Some(String::new()),
        city: Some("Columbus".into()),
        last_name: Some("ОНІО".into()),
        ..Default::default()
    });
    update.reason_for_change = "participant moved".into();
    update.register = true;
    app.upsert("dm.ohio", update.clone()).await.unwrap();
    let after = events(&app).await;
    assert_eq!(
        after[4..],
        [
            ev(&[
                "FIELD_CHANGED",
                "email_address",
                "OHIOS@openclinica.com",
                "~",
                "dm.ohio",
                "",
                "participant moved"
            ]),
            ev(&[
                "FIELD_CHANGED",
                "city",
                "~",
                "Columbus",
                "dm.ohio",
                "",
                "participant moved"
            ]),
            ev(&[
                "PARTICIPATE_REGISTERED",
                "participate_status",
                "~",
                "created",
                "dm.ohio",
                "",
                "participant moved"
            ]),
        ]
    );

    // The same again is a no-op: no event.
    app.upsert("dm.ohio", update).await.unwrap();
    assert_eq!(events(&app).await.len(), after.len());

    // Every event has a UTC time.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_events WHERE occurred_at IS NULL")
            .await,
        0
    );
}

async fn the_trail_is_append_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", seed_request()).await.unwrap();
    let conn = app.store.connection();
    assert!(
        conn.execute_unprepared("UPDATE audit_events SET actor = 'someone else'")
            .await
            .is_err()
    );
    assert!(
        conn.execute_unprepared("DELETE FROM audit_events")
            .await
            .is_err()
    );
    assert_eq!(app.audit_count().await, 4);
}

async fn a_failure_after_the_audit_insert_leaves_nothing(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.fault = Fault::AfterAudit;
    let app = TestApp::spawn_with(options).await;
    let mut req = seed_request();
    req.register = true;
    req.request_id = "f-1".into();
    assert!(app.upsert("crc.ohio", req).await.is_err());
    assert_eq!(app.participant_count().await, 0);
    assert_eq!(app.audit_count().await, 0);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participant_contacts")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM idempotency_records").await,
        0
    );
}

/// SQLite `INSERT OR REPLACE` deletes the old row without firing DELETE triggers, and PostgreSQL
/// `TRUNCATE` fires no row trigger: both must be refused, for the events and their reasons.
async fn the_trail_cannot_be_replaced_or_truncated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.reason_for_change = "first visit".into();
    app.upsert("crc.ohio", req).await.unwrap();
    let before = events(&app).await;
    assert_eq!(before.len(), 4);
    let conn = app.store.connection();
    let attacks: &[&str] = match backend {
        Backend::Sqlite => &[
            "INSERT OR REPLACE INTO audit_events (id, participant_id, study_id, event_type, actor, occurred_at) \
             SELECT id, participant_id, study_id, 'FORGED', 'mallory', occurred_at FROM audit_events",
            "REPLACE INTO audit_events (id, participant_id, study_id, event_type, actor, occurred_at) \
             SELECT id, participant_id, study_id, 'FORGED', 'mallory', occurred_at FROM audit_events \
             WHERE id = (SELECT MIN(id) FROM audit_events)",
            "INSERT OR REPLACE INTO change_reasons (id, reason) SELECT id, 'forged' FROM change_reasons",
            "UPDATE change_reasons SET reason = 'forged'",
            "DELETE FROM change_reasons",
        ],
        Backend::Postgres => &[
            "TRUNCATE audit_events",
            "TRUNCATE audit_events, change_reasons",
            "TRUNCATE participants CASCADE",
            "TRUNCATE change_reasons CASCADE",
            "UPDATE change_reasons SET reason = 'forged'",
            "DELETE FROM change_reasons",
        ],
    };
    for sql in attacks {
        assert!(
            conn.execute_unprepared(sql).await.is_err(),
            "{sql} was not refused"
        );
    }
    if backend == Backend::Postgres {
        // Replication mode skips ordinary triggers; the guards fire always (found by attack).
        use sea_orm::TransactionTrait;
        for sql in [
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DELETE FROM change_reasons",
        ] {
            let tx = conn.begin().await.expect("begin");
            tx.execute_unprepared("SET LOCAL session_replication_role = replica")
                .await
                .expect("set (the test user may)");
            assert!(
                tx.execute_unprepared(sql).await.is_err(),
                "{sql} in replication mode was not refused"
            );
            tx.rollback().await.expect("rollback");
        }
    }
    assert_eq!(events(&app).await, before, "the trail is unchanged");

    // Ordinary appends still work, one row or many.
    let mut update = at_ohio("ohio-5");
    update.contact = Some(ParticipantContact {
        city: Some("Columbus".into()),
        state: Some("OH".into()),
        ..Default::default()
    });
    app.upsert("dm.ohio", update).await.unwrap();
    assert_eq!(app.audit_count().await, 6);
}

/// The reason for change is stored once per write, however many fields the write changes,
/// and every event of the write resolves to it; events from before keep their inline reason.
async fn the_reason_is_stored_once_per_write(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reason = format!("consent re-signed {}", "r".repeat(900));
    let mut req = seed_request();
    req.reason_for_change = reason.clone();
    app.upsert("crc.ohio", req).await.unwrap();

    let copies = |table: &str, column: &str| {
        format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} = '{reason}'",
            reason = reason
        )
    };
    assert_eq!(app.scalar(&copies("change_reasons", "reason")).await, 1);
    assert_eq!(
        app.scalar(&copies("audit_events", "reason_for_change"))
            .await,
        0
    );
    let created = events(&app).await;
    assert_eq!(created.len(), 4);
    assert!(created.iter().all(|e| e[6] == reason), "{created:?}");

    // A write without a reason stores none; another write gets its own row.
    let mut update = at_ohio("ohio-5");
    update.secondary_id = Some("S-1".into());
    app.upsert("crc.ohio", update).await.unwrap();
    let mut update = at_ohio("ohio-5");
    update.secondary_id = Some("S-2".into());
    update.contact = Some(ParticipantContact {
        city: Some("Columbus".into()),
        ..Default::default()
    });
    update.reason_for_change = "typo".into();
    app.upsert("crc.ohio", update).await.unwrap();
    assert_eq!(app.scalar("SELECT COUNT(*) FROM change_reasons").await, 2);
    let all = events(&app).await;
    let reasons: Vec<&str> = all[4..].iter().map(|e| e[6].as_str()).collect();
    assert_eq!(reasons, ["", "typo", "typo"]);

    // An event written before the shared rows existed keeps its own column, still readable.
    app.execute(
        "INSERT INTO audit_events (participant_id, study_id, event_type, field_name, actor, occurred_at, reason_for_change) \
         SELECT participant_id, study_id, 'FIELD_CHANGED', 'secondary_id', 'legacy', occurred_at, 'legacy reason' \
         FROM audit_events WHERE event_type = 'PARTICIPANT_CREATED'",
    )
    .await;
    let all = events(&app).await;
    assert_eq!(all.last().map(|e| e[6].as_str()), Some("legacy reason"));
}

crate::on_both_backends!(
    every_change_is_audited_and_no_ops_are_not,
    the_trail_is_append_only,
    a_failure_after_the_audit_insert_leaves_nothing,
    the_trail_cannot_be_replaced_or_truncated,
    the_reason_is_stored_once_per_write,
);
