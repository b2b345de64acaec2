//! Personal data is encrypted at rest with per-value random nonces; keys can rotate.

use std::sync::Arc;

use participants::{
    crypto::DataCipher,
    service::{Caller, Participants},
};
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::helpers::{Backend, DATA_KEY, JUNO, OHIO, TestApp, get_site, seed_request};

/// Every text and blob cell of the tables that may hold personal data.
async fn stored_text(app: &TestApp) -> String {
    let conn = app.store.connection();
    let mut out = String::new();
    for sql in [
        "SELECT COALESCE(first_name, ''), COALESCE(last_name, ''), COALESCE(email_address, ''), COALESCE(phone_number, '') FROM participant_contacts",
        "SELECT COALESCE(old_value, ''), COALESCE(new_value, ''), '', '' FROM audit_events",
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
    };
    let later = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let new_key = [9u8; 32];

    // A service with only a new key cannot read old data: INTERNAL, nothing leaked.
    let wrong = Participants::new(app.store.clone(), Arc::new(DataCipher::new(new_key, &[])));
    let err = wrong
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5"), later())
        .await
        .unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), Code::Internal);

    // With the old key as a previous key it reads, and new writes use the new key.
    let rotated = Participants::new(
        app.store.clone(),
        Arc::new(DataCipher::new(new_key, &[DATA_KEY])),
    );
    let p = rotated
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5"), later())
        .await
        .unwrap();
    assert_eq!(
        p.contact.unwrap().email_address.as_deref(),
        Some("OHIOS@openclinica.com")
    );
    let mut change = seed_request();
    change.contact.as_mut().unwrap().city = Some("Dayton".into());
    rotated.upsert(&caller, change, later()).await.unwrap();
    let only_new = Participants::new(app.store.clone(), Arc::new(DataCipher::new(new_key, &[])));
    let p = only_new
        .get(&caller, get_site(JUNO, OHIO, "OHIO-5"), later())
        .await
        .unwrap();
    assert_eq!(p.contact.unwrap().city.as_deref(), Some("Dayton"));
}

crate::on_both_backends!(personal_data_is_encrypted_at_rest, data_keys_rotate);
