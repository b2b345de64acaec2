//! The audit trail: every change, in the same transaction, append-only.

use participants::{crypto::DataCipher, pb::ParticipantContact, service::Fault};
use sea_orm::ConnectionTrait;

use crate::helpers::{AppOptions, Backend, DATA_KEY, TestApp, at_ohio, seed_request};

/// (event_type, field, old, new, actor, request_id, reason) of every event, in order, with
/// sealed values opened with the test data key.
async fn events(app: &TestApp) -> Vec<[String; 7]> {
    let conn = app.store.connection();
    let cipher = DataCipher::new(DATA_KEY, &[]);
    let sql = "SELECT event_type, COALESCE(field_name, ''), COALESCE(old_value, '~'), COALESCE(new_value, '~'), actor, COALESCE(request_id, ''), COALESCE(reason_for_change, ''), CAST(participant_id AS TEXT) FROM audit_events ORDER BY id";
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
        let open = |v: String| cipher.open(&v, &context).expect("opens");
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

crate::on_both_backends!(
    every_change_is_audited_and_no_ops_are_not,
    the_trail_is_append_only,
    a_failure_after_the_audit_insert_leaves_nothing,
);
