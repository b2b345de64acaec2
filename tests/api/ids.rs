//! Participant IDs made by the service, and subject OIDs.

use participants::pb::UpsertParticipantRequest;
use tonic::Code;

use crate::helpers::{Backend, JUNO, OHIO, TestApp, at_ohio, expect_failure, site, study};

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

/// Inserts participants of Juno / Ohio directly, as rows written before the OID counters
/// existed: keys `LEGACY-<n>`, OIDs `oid(n)` for n in `range`.
async fn insert_legacy_rows(
    app: &TestApp,
    range: std::ops::RangeInclusive<u32>,
    oid: impl Fn(u32) -> String,
) {
    let numbers: Vec<u32> = range.collect();
    for chunk in numbers.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| {
                format!(
                    "((SELECT id FROM studies WHERE oid = '{JUNO}'), (SELECT id FROM sites WHERE oid = '{OHIO}'), \
                     'LEGACY-{n}', 'legacy-{n}', '{oid}', 'available', '', 'e', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
                    oid = oid(*n)
                )
            })
            .collect();
        app.execute(&format!(
            "INSERT INTO participants (study_id, site_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
}

async fn counter(app: &TestApp, base: &str) -> i64 {
    app.scalar(&format!(
        "SELECT issued FROM subject_oid_counters WHERE base = '{base}'"
    ))
    .await
}

/// More than 10,000 keys sharing one OID base all get distinct OIDs (probing gave INTERNAL at the
/// 10,001st), and rows from before the counter are skipped in one step, not one probe each.
async fn ten_thousand_keys_with_one_base_get_distinct_oids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    insert_legacy_rows(&app, 1..=10_050, |n| {
        if n == 1 {
            "SS_SAMEBASE".to_owned()
        } else {
            format!("SS_SAMEBASE_{n}")
        }
    })
    .await;
    let mut oids = std::collections::BTreeSet::new();
    for i in 0..30 {
        let r = app
            .upsert("crc.ohio", at_ohio(&format!("SAMEBASE-{i}")))
            .await
            .expect("created, not INTERNAL");
        oids.insert(r.participant.unwrap().subject_oid);
    }
    assert_eq!(oids.len(), 30);
    assert!(oids.contains("SS_SAMEBASE_10051"), "{oids:?}");
    assert!(oids.contains("SS_SAMEBASE_10080"), "{oids:?}");
    // The counter holds the last suffix issued: each creation moved it by one.
    assert_eq!(counter(&app, "SS_SAMEBASE").await, 10_080);
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT subject_oid) FROM participants")
            .await,
        10_080
    );
}

/// Allocation reads and moves a per-base counter; it is not a probe per taken OID. Non-ASCII
/// keys share the `SS_` base and its counter.
async fn subject_oids_come_from_a_counter_per_base(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for key in ["ОНІО", "ΔΕΛΤΑ", "日本"] {
        app.upsert("crc.ohio", at_ohio(key)).await.unwrap();
    }
    assert_eq!(counter(&app, "SS_").await, 3);
    // A hole left by a legacy row further up the chain is skipped once, then never probed again.
    insert_legacy_rows(&app, 5..=5, |n| format!("SS__{n}")).await;
    let mut oids = Vec::new();
    for key in ["Ωμέγα", "Ψ", "Φ"] {
        let r = app.upsert("crc.ohio", at_ohio(key)).await.unwrap();
        oids.push(r.participant.unwrap().subject_oid);
    }
    assert_eq!(oids, ["SS__4", "SS__6", "SS__7"]);
    assert_eq!(counter(&app, "SS_").await, 7);
    // A counter moved past the chain by hand is followed, not probed back down.
    app.execute("UPDATE subject_oid_counters SET issued = 500 WHERE base = 'SS_'")
        .await;
    let r = app.upsert("crc.ohio", at_ohio("Σ")).await.unwrap();
    assert_eq!(r.participant.unwrap().subject_oid, "SS__501");
}

crate::on_both_backends!(
    system_generated_ids_come_in_sequence,
    a_study_template_with_site_applies_at_sites_only,
    subject_oids_get_suffixes_on_collision,
    ten_thousand_keys_with_one_base_get_distinct_oids,
    subject_oids_come_from_a_counter_per_base,
);
