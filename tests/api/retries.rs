//! Safe retries: request_id replays and reuse.

use participants::pb::{ParticipantContact, UpsertParticipantRequest};
use tonic::Code;

use crate::helpers::{Backend, TestApp, at_ohio, expect_failure, seed_request};

async fn a_replay_returns_the_first_response_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "7d0c9a36-1f0e-4b8e-9d3a-2b1f5c7e8a90".into();
    req.register = true;
    let first = app.upsert("crc.ohio", req.clone()).await.expect("first");
    assert!(first.created);
    let audit = app.audit_count().await;

    // Someone else changes the participant; the replay still answers the first response.
    let mut other = at_ohio("OHIO-5");
    other.contact = Some(ParticipantContact {
        city: Some("Columbus".into()),
        ..Default::default()
    });
    app.upsert("crc.ohio", other).await.unwrap();
    let audit_after_other = app.audit_count().await;
    assert!(audit_after_other > audit);

    let replay = app.upsert("crc.ohio", req.clone()).await.expect("replay");
    assert_eq!(replay, first);
    assert_eq!(
        app.audit_count().await,
        audit_after_other,
        "a replay writes nothing"
    );
    assert_eq!(app.participant_count().await, 1);

    // The same key with a different request is refused.
    let mut changed = req.clone();
    changed.contact.as_mut().unwrap().first_name = Some("Other".into());
    expect_failure(
        app.upsert("crc.ohio", changed).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );

    // Keys belong to one user: another user's identical key is a new call.
    let mut mine = at_ohio("OHIO-77");
    mine.request_id = req.request_id.clone();
    assert!(app.upsert("dep.ohio", mine).await.unwrap().created);
}

/// A remembered answer holds contact data and the access code: it is given back only to a
/// caller whose role still allows the write, at a study and site still available.
async fn a_replay_is_answered_only_after_scope_and_role_checks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "once".into();
    req.register = true;
    let first = app.upsert("crc.ohio", req.clone()).await.unwrap();
    assert!(!first.access_code.is_empty());
    assert_eq!(app.upsert("crc.ohio", req.clone()).await.unwrap(), first);

    // The role is revoked: no answer with the participant's data comes back.
    app.execute("UPDATE role_assignments SET active = false WHERE user_name = 'crc.ohio'")
        .await;
    let f = expect_failure(
        app.upsert("crc.ohio", req.clone()).await,
        Code::PermissionDenied,
        "NO_ROLE_SET_UP",
    );
    assert!(f.violations.is_empty());
    // Nor does a reused key tell a caller without the role anything.
    let mut other = req.clone();
    other.subject_key = "OHIO-6".into();
    expect_failure(
        app.upsert("crc.ohio", other).await,
        Code::PermissionDenied,
        "NO_ROLE_SET_UP",
    );
    app.execute("UPDATE role_assignments SET active = true WHERE user_name = 'crc.ohio'")
        .await;

    // The site closes: the scope check answers first.
    app.execute("UPDATE sites SET status = 'frozen' WHERE oid = 'S_OHI0(TEST)'")
        .await;
    expect_failure(
        app.upsert("crc.ohio", req).await,
        Code::FailedPrecondition,
        "SITE_NOT_AVAILABLE",
    );
}

/// A viewer learns nothing about request ids: the role check answers before them, and an
/// over-long request_id is reported with the other field violations.
async fn request_id_errors_come_after_the_role_check(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = at_ohio("R-1");
    req.request_id = "x".repeat(65);
    expect_failure(
        app.upsert("viewer.ohio", req.clone()).await,
        Code::PermissionDenied,
        "NO_SUFFICIENT_PRIVILEGES",
    );
    req.contact = Some(ParticipantContact {
        email_address: Some("not-an-email".into()),
        ..Default::default()
    });
    let f = expect_failure(
        app.upsert("crc.ohio", req).await,
        Code::InvalidArgument,
        "INVALID_EMAIL_ADDRESS",
    );
    let fields: Vec<&str> = f.violations.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(fields, ["contact.email_address", "request_id"]);
}

async fn failed_and_validate_only_calls_are_not_remembered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bad = seed_request();
    bad.request_id = "k-1".into();
    bad.contact.as_mut().unwrap().email_address = Some("bad".into());
    expect_failure(
        app.upsert("crc.ohio", bad).await,
        Code::InvalidArgument,
        "INVALID_EMAIL_ADDRESS",
    );
    let mut dry = seed_request();
    dry.request_id = "k-1".into();
    dry.validate_only = true;
    app.upsert("crc.ohio", dry).await.unwrap();
    // The key is still free for the real call.
    let mut good = seed_request();
    good.request_id = "k-1".into();
    assert!(app.upsert("crc.ohio", good).await.unwrap().created);
}

/// A request id is composed like every text: a retry from a client that spells `é` as `e` and
/// U+0301 is the same call, answered as the first, not a second write.
async fn a_request_id_spelled_otherwise_is_the_same_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "caf\u{e9}-retry".into();
    let first = app.upsert("crc.ohio", req.clone()).await.expect("first");
    assert!(first.created);
    let audit = app.audit_count().await;

    let mut retry = req.clone();
    retry.request_id = "cafe\u{301}-retry".into();
    let replay = app.upsert("crc.ohio", retry).await.expect("replay");
    assert_eq!(replay, first, "the remembered answer, created = true");
    assert_eq!(app.audit_count().await, audit, "a replay writes nothing");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM idempotency_records").await,
        1,
        "one request id remembered"
    );
}

crate::on_both_backends!(
    a_request_id_spelled_otherwise_is_the_same_call,
    a_replay_returns_the_first_response_and_writes_nothing,
    a_replay_is_answered_only_after_scope_and_role_checks,
    request_id_errors_come_after_the_role_check,
    failed_and_validate_only_calls_are_not_remembered,
    remembered_answers_expire_after_the_retention,
    answers_remembered_as_protobuf_are_still_replayed,
    the_stored_request_hash_is_keyed_and_survives_a_key_rotation,
);

/// The stored request hash of a call with contact data cannot be recomputed without the data
/// key (else whoever reads the table confirms a guessed date of birth), and a retry after a
/// key rotation still replays; a row hashed before the hash was keyed still matches.
async fn the_stored_request_hash_is_keyed_and_survives_a_key_rotation(backend: Backend) {
    use participants::crypto::DataCipher;
    use participants::service::{Caller, Participants, model::UpsertInput};
    use participants::store::entity::idempotency_record::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use sha2::{Digest, Sha256};
    use std::{sync::Arc, time::Duration};

    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "keyed-1".into();
    let first = app.upsert("crc.ohio", req.clone()).await.expect("first");
    let stored = Entity::find()
        .filter(Column::RequestId.eq("keyed-1"))
        .one(app.store.connection())
        .await
        .unwrap()
        .expect("remembered")
        .request_hash;
    let unkeyed = hex::encode(Sha256::digest(
        serde_json::to_vec(&UpsertInput::from(req.clone())).unwrap(),
    ));
    assert!(
        !stored.contains(&unkeyed),
        "the stored hash is the bare SHA-256 of the request"
    );
    let key_id = DataCipher::new(&crate::helpers::DATA_KEY, &[])
        .current_key_id()
        .to_owned();
    assert!(stored.starts_with(&format!("{key_id}:")), "{stored}");

    // The service restarted with a new data key; the old one only opens.
    let rotated = Participants::new(
        app.store.clone(),
        Arc::new(DataCipher::new(&[9; 32], &[crate::helpers::DATA_KEY])),
    );
    rotated.refresh_catalog().await.unwrap();
    let caller = Caller {
        user: "crc.ohio".into(),
        ..Default::default()
    };
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(10);
    let replay = rotated
        .upsert(&caller, req.clone().into(), deadline())
        .await
        .expect("a retry after the rotation replays");
    assert_eq!(
        participants::pb::UpsertParticipantResponse::from(replay),
        first
    );
    let mut changed = req.clone();
    changed.register = true;
    let refused = rotated
        .upsert(&caller, changed.into(), deadline())
        .await
        .expect_err("a changed request is a reuse");
    assert!(
        format!("{refused:?}").contains("RequestIdReused"),
        "{refused:?}"
    );

    // A replica that does not have the key the row was hashed under cannot tell a retry from a
    // reuse: it must not answer REQUEST_ID_REUSED (a definite, false answer for a write that
    // committed), but fail as it does for any value sealed under a key it lacks.
    let unaware = Participants::new(app.store.clone(), Arc::new(DataCipher::new(&[5; 32], &[])));
    unaware.refresh_catalog().await.unwrap();
    let unsure = unaware
        .upsert(&caller, req.clone().into(), deadline())
        .await
        .expect_err("the key is unknown");
    assert!(
        matches!(unsure, participants::domain::ServiceError::Internal(_)),
        "{unsure:?}"
    );

    // A row stored with an unkeyed hash, before the hash was keyed, still matches its retry.
    Entity::update_many()
        .col_expr(Column::RequestHash, Expr::value(unkeyed))
        .filter(Column::RequestId.eq("keyed-1"))
        .exec(app.store.connection())
        .await
        .unwrap();
    assert_eq!(
        app.upsert("crc.ohio", req).await.expect("legacy replay"),
        first
    );
    assert_eq!(app.participant_count().await, 1);
}

async fn remembered_answers_expire_after_the_retention(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for key in ["old", "new"] {
        let req = UpsertParticipantRequest {
            request_id: key.into(),
            ..at_ohio(key)
        };
        app.upsert("crc.ohio", req).await.unwrap();
    }
    {
        use participants::store::entity::idempotency_record::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let two_days_ago = chrono::Utc::now() - chrono::Duration::days(2);
        Entity::update_many()
            .col_expr(Column::CreatedAt, Expr::value(two_days_ago))
            .filter(Column::RequestId.eq("old"))
            .exec(app.store.connection())
            .await
            .unwrap();
    }
    let purged = app
        .store
        .purge_idempotency_records(std::time::Duration::from_secs(36 * 3600))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM idempotency_records WHERE request_id = 'new'")
            .await,
        1
    );
}

/// Answers remembered before the service had its own model were stored as protobuf (format 1):
/// after the upgrade a retry still gets them, a changed request is still a reuse, and new
/// answers are stored in the current format.
async fn answers_remembered_as_protobuf_are_still_replayed(backend: Backend) {
    use participants::crypto::DataCipher;
    use participants::pb::{Participant, UpsertParticipantResponse};
    use participants::store::entity::idempotency_record;
    use prost::Message;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    use sha2::{Digest, Sha256};

    let app = TestApp::spawn(backend).await;
    let mut req = seed_request();
    req.request_id = "written-by-v1".into();
    // An answer no call of this test could produce: only the stored row can give it back.
    let old_answer = UpsertParticipantResponse {
        participant: Some(Participant {
            study_oid: crate::helpers::JUNO.into(),
            site_oid: crate::helpers::OHIO.into(),
            subject_key: "OHIO-5".into(),
            subject_oid: "SS_FROM_V1".into(),
            etag: "v1-etag".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            update_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }),
        created: true,
        access_code: String::new(),
    };
    let cipher = DataCipher::new(&crate::helpers::DATA_KEY, &[]);
    idempotency_record::ActiveModel {
        user_name: Set("crc.ohio".into()),
        request_id: Set(req.request_id.clone()),
        request_hash: Set(hex::encode(Sha256::digest(req.encode_to_vec()))),
        response_format: Set(1),
        response: Set(cipher.seal_bytes(
            &old_answer.encode_to_vec(),
            "idempotency_records/crc.ohio/written-by-v1",
        )),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(app.store.connection())
    .await
    .unwrap();

    let replay = app.upsert("crc.ohio", req.clone()).await.expect("replay");
    assert_eq!(replay, old_answer);
    assert_eq!(app.participant_count().await, 0, "a replay writes nothing");

    let mut changed = req.clone();
    changed.register = true;
    expect_failure(
        app.upsert("crc.ohio", changed).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );

    let mut fresh = at_ohio("OHIO-6");
    fresh.request_id = "written-now".into();
    let first = app.upsert("crc.ohio", fresh.clone()).await.unwrap();
    assert_eq!(
        app.scalar(
            "SELECT CAST(response_format AS BIGINT) FROM idempotency_records WHERE request_id = 'written-now'"
        )
        .await,
        2
    );
    assert_eq!(app.upsert("crc.ohio", fresh).await.unwrap(), first);
}
