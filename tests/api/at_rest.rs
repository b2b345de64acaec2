//! Personal data is encrypted at rest with per-value random nonces; keys can rotate.

use std::sync::Arc;

use participants::{
    crypto::DataCipher,
    pb::{
        AuditEvent, ListAuditEventsRequest, StudyScope, audit_service_client::AuditServiceClient,
        list_audit_events_request::Scope,
    },
    service::{Caller, Participants},
};
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::helpers::{Backend, DATA_KEY, JUNO, OHIO, TestApp, at_ohio, get_site, seed_request};

/// Every text and blob cell of the tables that may hold personal data.
async fn stored_text(app: &TestApp) -> String {
    let conn = app.store.connection();
    let mut out = String::new();
    for sql in [
        "SELECT COALESCE(first_name, ''), COALESCE(last_name, ''), COALESCE(email_address, ''), COALESCE(phone_number, '') FROM participant_contacts",
        "SELECT COALESCE(old_value, ''), COALESCE(new_value, ''), '', '' FROM audit_events",
        "SELECT COALESCE(access_code, ''), COALESCE(access_code_hash, ''), subject_key, '' FROM participants",
    ] {
        for row in conn
            .query_all_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
        {
            for i in 0..4 {
                out.push_str(&row.try_get_by_index::<String>(i).expect("text"));
                out.push('\n');
            }
        }
    }
    for row in conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT response FROM idempotency_records".to_owned(),
        ))
        .await
        .expect("query")
    {
        let bytes = row.try_get_by_index::<Vec<u8>>(0).expect("blob");
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

async fn personal_data_is_encrypted_at_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.register = true;
    req.request_id = "at-rest-1".into();
    let created = app.upsert("crc.ohio", req).await.unwrap();
    let text = stored_text(&app).await;
    assert!(text.contains("enc:v1:"), "values are sealed: {text}");
    for plain in [
        "ОНІО",
        "OHIOS@openclinica.com",
        "+1 1234567890",
        created.access_code.as_str(),
    ] {
        assert!(!text.contains(plain), "{plain:?} is stored in the clear");
    }
    // Equal values do not look equal.
    let mut twin = seed_request();
    twin.subject_key = "OHIO-TWIN".into();
    app.upsert("crc.ohio", twin).await.unwrap();
    let c = app
        .scalar("SELECT COUNT(DISTINCT last_name) FROM participant_contacts")
        .await;
    assert_eq!(c, 2);
    // Reads see the plain values.
    let p = app
        .get("crc.ohio", get_site(JUNO, OHIO, "ohio-5"))
        .await
        .unwrap();
    assert_eq!(p.contact.unwrap().last_name.as_deref(), Some("ОНІО"));
}

async fn data_keys_rotate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", seed_request()).await.unwrap();
    let caller = Caller {
        user: "crc.ohio".into(),
        ..Default::default()
    };
    let later = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let new_key = [9u8; 32];

    // A service with only a new key cannot read old data: INTERNAL, nothing leaked.
    let wrong = Participants::new(app.store.clone(), Arc::new(DataCipher::new(&new_key, &[])));
    let err = wrong
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5").into(), later())
        .await
        .unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), Code::Internal);

    // With the old key as a previous key it reads, and new writes use the new key.
    let rotated = Participants::new(
        app.store.clone(),
        Arc::new(DataCipher::new(&new_key, &[DATA_KEY])),
    );
    let p = rotated
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5").into(), later())
        .await
        .unwrap();
    assert_eq!(
        p.contact.unwrap().email_address.as_deref(),
        Some("OHIOS@openclinica.com")
    );
    let mut change = seed_request();
    change.contact.as_mut().unwrap().city = Some("Dayton".into());
    rotated
        .upsert(&caller, change.into(), later())
        .await
        .unwrap();
    let only_new = Participants::new(app.store.clone(), Arc::new(DataCipher::new(&new_key, &[])));
    let p = only_new
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5").into(), later())
        .await
        .unwrap();
    assert_eq!(p.contact.unwrap().city.as_deref(), Some("Dayton"));
}

/// The access code is sealed like the contact data; uniqueness per study holds through a keyed
/// hash, and registering again still returns the code.
async fn access_codes_are_sealed_and_stay_unique(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut codes = Vec::new();
    for key in ["OHIO-5", "OHIO-6"] {
        let mut req = at_ohio(key);
        req.register = true;
        codes.push(app.upsert("crc.ohio", req).await.unwrap().access_code);
    }
    let text = stored_text(&app).await;
    for code in &codes {
        assert_eq!(code.len(), 9);
        assert!(
            !text.contains(code.as_str()),
            "{code:?} is stored in the clear"
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participants WHERE access_code LIKE 'enc:v1:%'")
            .await,
        2
    );
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT access_code_hash) FROM participants")
            .await,
        2
    );
    // Registering again answers the same code.
    let mut again = at_ohio("ohio-5");
    again.register = true;
    assert_eq!(
        app.upsert("crc.ohio", again).await.unwrap().access_code,
        codes[0]
    );

    // The database refuses two participants of a study with one code.
    let conn = app.store.connection();
    let copy = "UPDATE participants SET access_code_hash = \
        (SELECT access_code_hash FROM participants WHERE subject_key = 'OHIO-5') \
        WHERE subject_key = 'OHIO-6'";
    assert!(conn.execute_unprepared(copy).await.is_err(), "unique index");
    // The clear code is no longer indexed, or stored, anywhere.
    let code_index = app
        .scalar(match backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'ux_participants_study_access_code'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'ux_participants_study_access_code'"
            }
        })
        .await;
    assert_eq!(code_index, 0);
}

/// A code stored in the clear before sealing is sealed, and hashed, by the start-up step; the
/// participant keeps the code.
async fn a_clear_legacy_access_code_is_sealed_at_start_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("OHIO-5")).await.unwrap();
    app.execute(
        "UPDATE participants SET participate_status = 'created', access_code = 'LEGACY234', access_code_hash = NULL",
    )
    .await;
    let cipher = DataCipher::new(&DATA_KEY, &[]);
    let sealed = app
        .store
        .seal_access_codes(&cipher)
        .await
        .expect("start-up step");
    assert_eq!(sealed, 1);
    assert!(!stored_text(&app).await.contains("LEGACY234"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM participants WHERE access_code LIKE 'enc:v1:%' AND access_code_hash IS NOT NULL"
        )
        .await,
        1
    );
    // Nothing is left to do on the next start.
    assert_eq!(app.store.seal_access_codes(&cipher).await.unwrap(), 0);
    let mut again = at_ohio("ohio-5");
    again.register = true;
    assert_eq!(
        app.upsert("crc.ohio", again).await.unwrap().access_code,
        "LEGACY234"
    );

    // After a key rotation the step re-hashes under the new key (the old key still opens).
    let rotated = DataCipher::new(&[9u8; 32], &[DATA_KEY]);
    assert_eq!(app.store.seal_access_codes(&rotated).await.unwrap(), 1);
    assert_eq!(app.store.seal_access_codes(&rotated).await.unwrap(), 0);
    let hash = app
        .store
        .connection()
        .query_one_raw(sea_orm::Statement::from_string(
            app.store.backend(),
            "SELECT access_code_hash FROM participants".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert!(
        hash.starts_with(&format!("{}:", rotated.current_key_id())),
        "{hash}"
    );
}

/// A byte string as an SQL literal of the backend.
fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

async fn juno_trail(app: &TestApp, user: &str) -> Result<Vec<AuditEvent>, tonic::Status> {
    AuditServiceClient::new(app.channel.clone())
        .list_audit_events(app.authed(
            user,
            ListAuditEventsRequest {
                scope: Some(Scope::Study(StudyScope {
                    study_oid: JUNO.into(),
                })),
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().events)
}

/// A value written in the clear into a sealed column (by someone with database rights) is
/// refused on every read, never passed through as data, and never echoed in the error.
async fn a_value_planted_in_the_clear_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "planted-1".into();
    app.upsert("crc.ohio", req.clone()).await.unwrap();

    // A clear remembered answer: the retry is refused, not replayed from the planted bytes.
    app.execute(&format!(
        "UPDATE idempotency_records SET response = {}",
        bytes_literal(backend, br#"{"planted":"PLANTED-ANSWER"}"#)
    ))
    .await;
    let err = app.upsert("crc.ohio", req).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains("PLANTED"), "{err:?}");

    // A clear contact value.
    app.execute("UPDATE participant_contacts SET first_name = 'PLANTED-NAME'")
        .await;
    let err = app
        .get("dm.juno", get_site(JUNO, OHIO, "ohio-5"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains("PLANTED"), "{err:?}");

    // A clear contact value in the trail, in an event that was written sealed.
    crate::helpers::drop_audit_guards(&app, backend).await;
    app.execute(
        "UPDATE audit_events SET new_value = 'PLANTED-EVENT' WHERE field_name = 'last_name'",
    )
    .await;
    let err = juno_trail(&app, "dm.juno").await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains("PLANTED"), "{err:?}");
}

/// Clear values stored before sealing existed: migration 13 lists them, the start-up step seals
/// contact data and remembered answers (once), and the audit events that held clear values stay
/// readable — only those.
async fn clear_values_from_before_sealing_are_sealed_at_start_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "legacy-1".into();
    let first = app.upsert("crc.ohio", req.clone()).await.unwrap();
    let cipher = DataCipher::new(&DATA_KEY, &[]);

    // Turn the stored values into what a database from before sealing held.
    let conn = app.store.connection();
    let stored = conn
        .query_one_raw(sea_orm::Statement::from_string(
            app.store.backend(),
            "SELECT response FROM idempotency_records".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Vec<u8>>(0)
        .unwrap();
    let answer = cipher
        .open_bytes(&stored, "idempotency_records/crc.ohio/legacy-1")
        .unwrap();
    app.execute(&format!(
        "UPDATE idempotency_records SET response = {}",
        bytes_literal(backend, &answer)
    ))
    .await;
    app.execute("UPDATE participant_contacts SET last_name = 'LEGACY-NAME'")
        .await;
    crate::helpers::drop_audit_guards(&app, backend).await;
    app.execute("UPDATE audit_events SET new_value = 'LEGACY-NAME' WHERE field_name = 'last_name'")
        .await;
    // ... and has not met migration 13 yet.
    app.execute("DROP TABLE unsealed_legacy").await;
    app.execute("DELETE FROM seaql_migrations WHERE version = 'm20261128_000013_unsealed_legacy'")
        .await;
    app.store.migrate().await.unwrap();
    assert_eq!(app.scalar("SELECT COUNT(*) FROM unsealed_legacy").await, 3);

    assert_eq!(app.store.seal_legacy_values(&cipher).await.unwrap(), 2);
    assert_eq!(app.store.seal_legacy_values(&cipher).await.unwrap(), 0);
    // A clear value planted later, and listed by hand, is not sealed as if it were genuine.
    let other = app.upsert("crc.ohio", at_ohio("OHIO-77")).await.unwrap();
    let planted_id = app
        .scalar("SELECT id FROM participants WHERE subject_key = 'OHIO-77'")
        .await;
    app.execute(&format!(
        "UPDATE participant_contacts SET last_name = 'PLANTED' WHERE participant_id = {planted_id}"
    ))
    .await;
    app.execute(&format!(
        "INSERT INTO unsealed_legacy (table_name, row_id) VALUES ('participant_contacts', {planted_id})"
    ))
    .await;
    assert_eq!(app.store.seal_legacy_values(&cipher).await.unwrap(), 0);
    let err = app
        .get(
            "dm.juno",
            get_site(JUNO, OHIO, &other.participant.unwrap().subject_key),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "still refused: {err:?}");
    app.execute(&format!(
        "DELETE FROM unsealed_legacy WHERE table_name = 'participant_contacts' AND row_id = {planted_id}"
    ))
    .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participant_contacts WHERE last_name LIKE 'enc:v1:%'")
            .await,
        1
    );
    // The participant reads as before, and the retry replays the first answer.
    let p = app
        .get("dm.juno", get_site(JUNO, OHIO, "ohio-5"))
        .await
        .unwrap();
    assert_eq!(p.contact.unwrap().last_name.as_deref(), Some("LEGACY-NAME"));
    let again = app.upsert("crc.ohio", req).await.unwrap();
    assert_eq!(again.participant, first.participant);
    // The legacy event reads in the clear; the one event list stays the only exception.
    let trail = juno_trail(&app, "dm.juno").await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.new_value.as_deref() == Some("LEGACY-NAME")),
        "{trail:?}"
    );
    // The legacy audit event, and the marker that the step ran.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM unsealed_legacy").await, 2);
}

crate::on_both_backends!(
    personal_data_is_encrypted_at_rest,
    data_keys_rotate,
    access_codes_are_sealed_and_stay_unique,
    a_clear_legacy_access_code_is_sealed_at_start_up,
    a_value_planted_in_the_clear_is_refused,
    clear_values_from_before_sealing_are_sealed_at_start_up,
);
