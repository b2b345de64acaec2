//! Participant IDs made by the service, and subject OIDs.

use participants::pb::UpsertParticipantRequest;
use tonic::Code;

use crate::helpers::{Backend, TestApp, at_ohio, expect_failure, site, study};

fn vega(site_oid: &str, key: &str) -> UpsertParticipantRequest {
    UpsertParticipantRequest {
        scope: site("S_VEGA", site_oid),
        subject_key: key.into(),
        ..Default::default()
    }
}

async fn system_generated_ids_come_in_sequence(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let r = app
            .upsert("dm.vega", vega("S_VEGA_BOS", ""))
            .await
            .expect("generated");
        assert!(r.created);
        keys.push(r.participant.unwrap().subject_key);
    }
    assert_eq!(
        keys,
        ["S_VEGA_BOS-0001", "S_VEGA_BOS-0002", "S_VEGA_BOS-0003"]
    );
    // Each site counts on its own; the study level uses the study template.
    let r = app.upsert("dm.vega", vega("S_VEGA_NYC", "")).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "S_VEGA_NYC-0001");
    let r = app
        .upsert(
            "dm.vega",
            UpsertParticipantRequest {
                scope: study("S_VEGA"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "S_VEGA-0001");

    // A given key updates (any letter case) ...
    let mut update = vega("S_VEGA_BOS", "s_vega_bos-0002");
    update.secondary_id = Some("X".into());
    let r = app.upsert("dm.vega", update).await.expect("update by key");
    assert!(!r.created);
    assert_eq!(r.participant.unwrap().subject_key, "S_VEGA_BOS-0002");
    // ... and never creates.
    let r = app.upsert("dm.vega", vega("S_VEGA_BOS", "MY-OWN-ID")).await;
    expect_failure(r, Code::NotFound, "PARTICIPANT_NOT_FOUND");

    // Numbers are never reused, even after validate_only and failed calls.
    let mut dry = vega("S_VEGA_BOS", "");
    dry.validate_only = true;
    assert_eq!(
        app.upsert("dm.vega", dry)
            .await
            .unwrap()
            .participant
            .unwrap()
            .subject_key,
        "S_VEGA_BOS-0004"
    );
    let r = app.upsert("dm.vega", vega("S_VEGA_BOS", "")).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "S_VEGA_BOS-0004");
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key = 'S_VEGA_BOS-0004'")
        .await;
    let r = app.upsert("dm.vega", vega("S_VEGA_BOS", "")).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "S_VEGA_BOS-0005");
}

async fn a_study_template_with_site_applies_at_sites_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let at_site = UpsertParticipantRequest {
        scope: site("S_ORION", "S_ORION_A"),
        ..Default::default()
    };
    let r = app.upsert("dm.orion", at_site.clone()).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "ORI-S_ORION_A-001");
    let r = app.upsert("dm.orion", at_site).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "ORI-S_ORION_A-002");
    let r = app
        .upsert(
            "dm.orion",
            UpsertParticipantRequest {
                scope: study("S_ORION"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.participant.unwrap().subject_key, "S_ORION-0001");
}

async fn subject_oids_get_suffixes_on_collision(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut oids = Vec::new();
    for key in ["OHIO-5", "ohio_5", "O.H.I.O.5"] {
        let r = app.upsert("crc.ohio", at_ohio(key)).await.unwrap();
        oids.push(r.participant.unwrap().subject_oid);
    }
    assert_eq!(oids, ["SS_OHIO5", "SS_OHIO5_2", "SS_OHIO5_3"]);
    // Unique across studies too.
    let r = app
        .upsert(
            "dm.plain",
            UpsertParticipantRequest {
                scope: site("S_PLAIN", "S_PLAIN_A"),
                subject_key: "OHIO-5".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.participant.unwrap().subject_oid, "SS_OHIO5_4");
    // The OID never changes on update.
    let mut update = at_ohio("ohio-5");
    update.secondary_id = Some("X".into());
    assert_eq!(
        app.upsert("crc.ohio", update)
            .await
            .unwrap()
            .participant
            .unwrap()
            .subject_oid,
        "SS_OHIO5"
    );
}

crate::on_both_backends!(
    system_generated_ids_come_in_sequence,
    a_study_template_with_site_applies_at_sites_only,
    subject_oids_get_suffixes_on_collision,
);
