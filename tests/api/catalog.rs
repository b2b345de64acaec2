//! Catalog apply: idempotent, one transaction, whole desired state of the studies it lists.

use participants::catalog::{self, Catalog};

use crate::helpers::{Backend, CATALOG, TestApp};

/// Every row of the catalog tables, as text, in a stable order.
async fn dump(app: &TestApp) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let conn = app.store.connection();
    let mut out = Vec::new();
    for (table, count, columns) in [
        (
            "studies",
            9,
            "id, oid, name, status, participant_id_method, COALESCE(participant_id_template, ''), CAST(participate_enabled AS INTEGER), COALESCE(enrollment_cap, -1), next_seq",
        ),
        (
            "sites",
            7,
            "id, study_id, oid, name, status, COALESCE(enrollment_cap, -1), next_seq",
        ),
        (
            "role_assignments",
            6,
            "id, user_name, study_id, COALESCE(site_id, -1), role, CAST(active AS INTEGER)",
        ),
    ] {
        let sql = format!("SELECT {columns} FROM {table} ORDER BY id");
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                sql,
            ))
            .await
            .expect("dump");
        for row in rows {
            let mut line = table.to_owned();
            for i in 0..count {
                let cell = row
                    .try_get_by_index::<String>(i)
                    .or_else(|_| row.try_get_by_index::<i64>(i).map(|n| n.to_string()))
                    .or_else(|_| row.try_get_by_index::<i32>(i).map(|n| n.to_string()))
                    .expect("a text or integer cell");
                line.push('|');
                line.push_str(&cell);
            }
            out.push(line);
        }
    }
    out
}

async fn applying_twice_gives_the_same_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = dump(&app).await;
    assert!(
        before.iter().any(|l| l.contains("S_JUNO(PROD)")),
        "{before:?}"
    );
    assert!(before.iter().any(|l| l.contains("S_OHI0(TEST)")));
    let report = catalog::apply(&app.store, &Catalog::parse(CATALOG).unwrap())
        .await
        .expect("second apply");
    assert!(report.is_noop(), "{report:?}");
    assert_eq!(dump(&app).await, before);
}

async fn a_file_is_the_whole_state_of_the_studies_it_lists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Juno without Texas and with crc.ohio's role changed; the other studies are not listed.
    let juno_only = r#"
[[study]]
oid = "S_JUNO(PROD)"
participant_id_method = "manual"
participate_enabled = true
  [[study.site]]
  oid = "S_OHI0(TEST)"
  name = "Ohio"
  [[study.site]]
  oid = "S_CLOSED"
  name = "Closed site"
  status = "locked"
[[role]]
user = "crc.ohio"
study = "S_JUNO(PROD)"
site = "S_OHI0(TEST)"
role = "viewer"
"#;
    let report = catalog::apply(&app.store, &Catalog::parse(juno_only).unwrap())
        .await
        .expect("apply");
    assert_eq!(report.sites_removed, 1, "{report:?}");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sites WHERE oid = 'S_TEXAS(TEST)' AND status = 'removed'")
            .await,
        1
    );
    // Revoked, never dropped.
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM role_assignments WHERE user_name = 'dm.juno' AND active = false"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM role_assignments WHERE user_name = 'crc.ohio' AND role = 'viewer' AND active = true").await,
        1
    );
    // Studies the file does not list are left alone.
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM role_assignments WHERE user_name = 'dm.vega' AND active = true"
        )
        .await,
        1
    );
    // Re-applying the full catalog restores everything.
    catalog::apply(&app.store, &Catalog::parse(CATALOG).unwrap())
        .await
        .expect("apply");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sites WHERE status = 'removed'")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM role_assignments WHERE active = false")
            .await,
        0
    );
}

async fn a_site_cannot_move_to_another_study(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stolen = "[[study]]\noid = \"S_PLAIN\"\n  [[study.site]]\n  oid = \"S_OHI0(TEST)\"\n";
    let before = dump(&app).await;
    let err = catalog::apply(&app.store, &Catalog::parse(stolen).unwrap())
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("S_OHI0(TEST)") && msg.contains("S_JUNO(PROD)"),
        "{msg}"
    );
    // One transaction: nothing of the refused file stayed.
    assert_eq!(dump(&app).await, before);
}

/// The catalog is served from memory; an apply from elsewhere (the CLI, another replica)
/// reaches a replica at its next poll of the catalog version, within 2 s.
async fn a_catalog_apply_reaches_another_replica_within_two_seconds(backend: Backend) {
    use std::{sync::Arc, time::Duration};

    use participants::{crypto::DataCipher, service::Participants};
    use tokio::time::Instant;

    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", crate::helpers::at_ohio("CAT-1"))
        .await
        .unwrap();
    // A second replica on the same database, with its own cache.
    let replica = Participants::new(
        app.store.clone(),
        Arc::new(DataCipher::new(&crate::helpers::DATA_KEY, &[])),
    );
    let caller = participants::service::Caller {
        user: "crc.ohio".into(),
        ..Default::default()
    };
    let get = || {
        replica.get(
            &caller,
            crate::helpers::get_site(crate::helpers::JUNO, crate::helpers::OHIO, "CAT-1").into(),
            Instant::now() + Duration::from_secs(5),
        )
    };
    get().await.expect("the replica reads before the change");

    // The CLI's apply: the same file without crc.ohio's role.
    let revoked = CATALOG.replace(
        "[[role]]\nuser = \"crc.ohio\"\nstudy = \"S_JUNO(PROD)\"\nsite = \"S_OHI0(TEST)\"\nrole = \"clinical_research_coordinator\"\n",
        "",
    );
    assert_ne!(revoked, CATALOG, "the fixture names crc.ohio's role");
    let applied = Instant::now();
    catalog::apply(&app.store, &Catalog::parse(&revoked).unwrap())
        .await
        .unwrap();
    let seen = loop {
        match get().await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.reason(), participants::domain::Reason::NoRoleSetUp);
                break applied.elapsed();
            }
        }
        assert!(
            applied.elapsed() < Duration::from_secs(2),
            "the replica still answers with the revoked role after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("the revoked role reached the replica after {seen:?}");
}

crate::on_both_backends!(
    a_catalog_apply_reaches_another_replica_within_two_seconds,
    applying_twice_gives_the_same_database,
    a_file_is_the_whole_state_of_the_studies_it_lists,
    a_site_cannot_move_to_another_study,
);
