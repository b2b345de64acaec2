//! Schema migrations. The same migrations run on SQLite and PostgreSQL.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(AppendOnlyGuards),
            Box::new(ChangeReasons),
            Box::new(SubjectOidCounters),
            Box::new(SealedAccessCodes),
            Box::new(CaselessKeys),
            Box::new(CatalogVersion),
            Box::new(EnrolledCounters),
            Box::new(GuardsFireAlways),
            Box::new(AnswerFormats),
            Box::new(AuditChain),
            Box::new(ParticipantPages),
            Box::new(UnsealedLegacy),
            Box::new(DottedIKeys),
        ]
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m20261128_000001_initial"
    }
}

fn unique_index(name: &str, table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).unique();
    for column in columns {
        index.col(*column);
    }
    index
}

fn index(name: &str, table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("studies")
                    .col(big_pk_auto("id"))
                    .col(text_uniq("oid"))
                    .col(text("name"))
                    .col(text("status"))
                    .col(text("participant_id_method"))
                    .col(text_null("participant_id_template"))
                    .col(boolean("participate_enabled"))
                    .col(big_integer_null("enrollment_cap"))
                    .col(big_integer("next_seq").default(1))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sites")
                    .col(big_pk_auto("id"))
                    .col(big_integer("study_id"))
                    .col(text_uniq("oid"))
                    .col(text("name"))
                    .col(text("status"))
                    .col(big_integer_null("enrollment_cap"))
                    .col(big_integer("next_seq").default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sites_study")
                            .from("sites", "study_id")
                            .to("studies", "id"),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("role_assignments")
                    .col(big_pk_auto("id"))
                    .col(text("user_name"))
                    .col(big_integer("study_id"))
                    .col(big_integer_null("site_id"))
                    .col(text("role"))
                    .col(boolean("active"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_roles_study")
                            .from("role_assignments", "study_id")
                            .to("studies", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_roles_site")
                            .from("role_assignments", "site_id")
                            .to("sites", "id"),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_roles_user_study",
                "role_assignments",
                &["user_name", "study_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("participants")
                    .col(big_pk_auto("id"))
                    .col(big_integer("study_id"))
                    .col(big_integer_null("site_id"))
                    .col(text("subject_key"))
                    .col(text("subject_key_norm"))
                    .col(text_uniq("subject_oid"))
                    .col(text_null("secondary_id"))
                    .col(text("status"))
                    .col(text("participate_status"))
                    .col(text_null("access_code"))
                    .col(text("etag"))
                    .col(timestamp_with_time_zone("create_time"))
                    .col(timestamp_with_time_zone("update_time"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_participants_study")
                            .from("participants", "study_id")
                            .to("studies", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_participants_site")
                            .from("participants", "site_id")
                            .to("sites", "id"),
                    )
                    .take(),
            )
            .await?;
        // The Participant ID is unique per study, case-insensitively (defect 9.2 of the original).
        manager
            .create_index(unique_index(
                "ux_participants_study_key",
                "participants",
                &["study_id", "subject_key_norm"],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_participants_study_access_code",
                "participants",
                &["study_id", "access_code"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_participants_site_status",
                "participants",
                &["site_id", "status"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_participants_study_status",
                "participants",
                &["study_id", "status"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("participant_contacts")
                    .col(big_integer("participant_id").primary_key())
                    .col(text_null("first_name"))
                    .col(text_null("last_name"))
                    .col(text_null("middle_name"))
                    .col(text_null("email_address"))
                    .col(text_null("phone_number"))
                    .col(text_null("street_address1"))
                    .col(text_null("street_address2"))
                    .col(text_null("city"))
                    .col(text_null("state"))
                    .col(text_null("country"))
                    .col(text_null("postal_code"))
                    .col(text_null("full_dob"))
                    .col(text_null("hospital_number"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_contacts_participant")
                            .from("participant_contacts", "participant_id")
                            .to("participants", "id"),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(big_pk_auto("id"))
                    .col(big_integer("participant_id"))
                    .col(big_integer("study_id"))
                    .col(text("event_type"))
                    .col(text_null("field_name"))
                    .col(text_null("old_value"))
                    .col(text_null("new_value"))
                    .col(text("actor"))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(text_null("request_id"))
                    .col(text_null("reason_for_change"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_participant")
                            .from("audit_events", "participant_id")
                            .to("participants", "id"),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_audit_participant",
                "audit_events",
                &["participant_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("idempotency_records")
                    .col(big_pk_auto("id"))
                    .col(text("user_name"))
                    .col(text("request_id"))
                    .col(text("request_hash"))
                    .col(blob("response"))
                    .col(timestamp_with_time_zone("created_at"))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_idempotency_user_request",
                "idempotency_records",
                &["user_name", "request_id"],
            ))
            .await?;

        // The audit trail is append-only: the database itself refuses updates and deletes.
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'audit events are append-only'; END; \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
                )
                .await?;
            }
            _ => {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER audit_events_no_{} BEFORE {op} ON audit_events \
                         BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
                        op.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    // Migrations run in one transaction on every backend, so a half-applied schema never stays.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Refuses what the row triggers of the initial migration miss: on SQLite, `INSERT OR REPLACE`
/// (and `REPLACE`) over an existing id, which deletes the old row without firing DELETE
/// triggers; on PostgreSQL, `TRUNCATE`, which fires no row trigger.
struct AppendOnlyGuards;

impl MigrationName for AppendOnlyGuards {
    fn name(&self) -> &str {
        "m20261128_000002_append_only_guards"
    }
}

/// Makes `table` append-only: no update, no delete, no replace of an existing id, no truncate.
/// `table` and `key` are names from this file, never input.
async fn guard_append_only(
    db: &impl ConnectionTrait,
    table: &str,
    key: &str,
    row_triggers: bool,
) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            if row_triggers {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
                ))
                .await?;
            }
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change()"
            ))
            .await?;
        }
        _ => {
            if row_triggers {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_no_{} BEFORE {op} ON {table} \
                         BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
                        op.to_lowercase()
                    ))
                    .await?;
                }
            }
            // A new row has a NULL (or fresh) id: only an insert over an existing one is refused,
            // so single and multi-row inserts work as before.
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} \
                 WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) \
                 BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            ))
            .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for AppendOnlyGuards {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "CREATE FUNCTION refuse_append_only_change() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; \
                 $$ LANGUAGE plpgsql",
            )
            .await?;
        }
        // The initial migration's row triggers stay; only the missing guards are added.
        guard_append_only(db, "audit_events", "id", false).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// The reason for change is stored once per write in `change_reasons` (append-only), and the
/// write's events reference it. Events from before keep their inline `reason_for_change`.
struct ChangeReasons;

impl MigrationName for ChangeReasons {
    fn name(&self) -> &str {
        "m20261128_000003_change_reasons"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ChangeReasons {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("change_reasons")
                    .col(big_pk_auto("id"))
                    .col(text("reason"))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        // SQLite cannot add a foreign key with ALTER TABLE through the schema builder.
        let column_type = match db.get_database_backend() {
            DbBackend::Postgres => "BIGINT",
            _ => "INTEGER",
        };
        db.execute_unprepared(&format!(
            "ALTER TABLE audit_events ADD COLUMN reason_id {column_type} NULL \
             REFERENCES change_reasons (id)"
        ))
        .await?;
        guard_append_only(db, "change_reasons", "id", true).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// One counter per subject OID base: allocation is one upsert instead of a probe per taken
/// suffix.
struct SubjectOidCounters;

impl MigrationName for SubjectOidCounters {
    fn name(&self) -> &str {
        "m20261128_000004_subject_oid_counters"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SubjectOidCounters {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("subject_oid_counters")
                    .col(text("base").primary_key())
                    // The last suffix issued for the base (1 is the base itself).
                    .col(big_integer("issued"))
                    .take(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// The access code is sealed at rest; uniqueness per study moves to a keyed hash of it. The
/// start-up step `Store::seal_access_codes` seals and hashes the codes stored before.
struct SealedAccessCodes;

impl MigrationName for SealedAccessCodes {
    fn name(&self) -> &str {
        "m20261128_000005_sealed_access_codes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SealedAccessCodes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("participants")
                    .add_column(text_null("access_code_hash"))
                    .take(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_participants_study_access_code")
                    .table("participants")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_participants_study_access_code_hash",
                "participants",
                &["study_id", "access_code_hash"],
            ))
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Participant IDs compared by Unicode canonical caseless matching instead of lowercasing:
/// recomputes the stored comparison key of every participant.
struct CaselessKeys;

impl MigrationName for CaselessKeys {
    fn name(&self) -> &str {
        "m20261128_000006_caseless_subject_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CaselessKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recompute_subject_keys(manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Recomputes every participant's comparison key with today's `normalize_subject_key`, keeping
/// the old key (and logging the row id) where the new one is already taken in the study.
async fn recompute_subject_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    use std::collections::HashSet;

    use sea_orm::{Statement, TryGetable};

    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, study_id, subject_key, subject_key_norm FROM participants ORDER BY id",
        ))
        .await?;
    let mut rows_read = Vec::with_capacity(rows.len());
    for row in rows {
        let id = i64::try_get_by_index(&row, 0).map_err(|e| DbErr::Type(format!("{e:?}")))?;
        let study = i64::try_get_by_index(&row, 1).map_err(|e| DbErr::Type(format!("{e:?}")))?;
        let key = String::try_get_by_index(&row, 2).map_err(|e| DbErr::Type(format!("{e:?}")))?;
        let norm = String::try_get_by_index(&row, 3).map_err(|e| DbErr::Type(format!("{e:?}")))?;
        rows_read.push((id, study, key, norm));
    }
    let mut taken: HashSet<(i64, String)> = rows_read
        .iter()
        .map(|(_, study, _, norm)| (*study, norm.clone()))
        .collect();
    let update = match backend {
        DbBackend::Postgres => "UPDATE participants SET subject_key_norm = $1 WHERE id = $2",
        _ => "UPDATE participants SET subject_key_norm = ? WHERE id = ?",
    };
    for (id, study, key, old) in rows_read {
        let new = crate::domain::validate::normalize_subject_key(&key);
        if new == old {
            continue;
        }
        if taken.contains(&(study, new.clone())) {
            // Two IDs that were distinct under lowercasing but match now cannot share the
            // key: this one keeps its old key, and its row id (never the ID) is logged for
            // a data manager to resolve.
            tracing::warn!(
                participant = id,
                "participant ID matches an earlier one caselessly; its comparison key is kept"
            );
            continue;
        }
        taken.remove(&(study, old));
        taken.insert((study, new.clone()));
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            update,
            [new.into(), id.into()],
        ))
        .await?;
    }
    Ok(())
}

/// A version of the catalog that every change of a study, site or role assignment bumps (by
/// trigger, so a hand edit counts as much as `catalog apply`): replicas serve the catalog from
/// memory and reload it when the version moves.
struct CatalogVersion;

impl MigrationName for CatalogVersion {
    fn name(&self) -> &str {
        "m20261128_000007_catalog_version"
    }
}

/// The catalog columns of each table; `next_seq` is left out, since writes move it.
const CATALOG_COLUMNS: [(&str, &str); 3] = [
    (
        "studies",
        "oid, name, status, participant_id_method, participant_id_template, participate_enabled, enrollment_cap",
    ),
    ("sites", "study_id, oid, name, status, enrollment_cap"),
    (
        "role_assignments",
        "user_name, study_id, site_id, role, active",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for CatalogVersion {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("catalog_version")
                    .col(big_integer("id").primary_key())
                    .col(big_integer("version"))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("INSERT INTO catalog_version (id, version) VALUES (1, 1)")
            .await?;
        let bump = "UPDATE catalog_version SET version = version + 1 WHERE id = 1";
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION catalog_version_bump() RETURNS trigger AS $$ \
                     BEGIN {bump}; RETURN NULL; END; $$ LANGUAGE plpgsql"
                ))
                .await?;
                for (table, columns) in CATALOG_COLUMNS {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_catalog_version \
                         AFTER INSERT OR DELETE OR UPDATE OF {columns} ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()"
                    ))
                    .await?;
                }
            }
            _ => {
                for (table, columns) in CATALOG_COLUMNS {
                    for (name, event) in [
                        ("insert", "INSERT".to_owned()),
                        ("delete", "DELETE".to_owned()),
                        ("update", format!("UPDATE OF {columns}")),
                    ] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_catalog_version_{name} AFTER {event} ON {table} \
                             BEGIN {bump}; END"
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Per-study and per-site counts of enrolled participants (status available or signed), kept
/// by triggers in the same transaction as every insert, status change or delete of a
/// participant — a hand edit included — so a cap check reads one row instead of counting.
struct EnrolledCounters;

impl MigrationName for EnrolledCounters {
    fn name(&self) -> &str {
        "m20261128_000008_enrolled_counters"
    }
}

const ENROLLED: &str = "('available', 'signed')";

#[async_trait::async_trait]
impl MigrationTrait for EnrolledCounters {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["studies", "sites"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(big_integer("enrolled").default(0))
                        .take(),
                )
                .await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "UPDATE studies SET enrolled = (SELECT COUNT(*) FROM participants p \
             WHERE p.study_id = studies.id AND p.status IN {ENROLLED})"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "UPDATE sites SET enrolled = (SELECT COUNT(*) FROM participants p \
             WHERE p.site_id = sites.id AND p.status IN {ENROLLED})"
        ))
        .await?;
        let add = |row: &str, sign: &str| {
            format!(
                "UPDATE studies SET enrolled = enrolled {sign} 1 WHERE id = {row}.study_id AND {row}.status IN {ENROLLED}; \
                 UPDATE sites SET enrolled = enrolled {sign} 1 WHERE id = {row}.site_id AND {row}.status IN {ENROLLED};"
            )
        };
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION participants_enrolled() RETURNS trigger AS $$ BEGIN \
                     IF TG_OP IN ('UPDATE', 'DELETE') THEN {old} END IF; \
                     IF TG_OP IN ('UPDATE', 'INSERT') THEN {new} END IF; \
                     RETURN NULL; END; $$ LANGUAGE plpgsql",
                    old = add("OLD", "-"),
                    new = add("NEW", "+"),
                ))
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER participants_enrolled \
                     AFTER INSERT OR DELETE OR UPDATE OF status, study_id, site_id ON participants \
                     FOR EACH ROW EXECUTE FUNCTION participants_enrolled()",
                )
                .await?;
            }
            _ => {
                for (name, event, body) in [
                    ("insert", "INSERT", add("NEW", "+")),
                    ("delete", "DELETE", add("OLD", "-")),
                    (
                        "update",
                        "UPDATE OF status, study_id, site_id",
                        format!("{} {}", add("OLD", "-"), add("NEW", "+")),
                    ),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER participants_enrolled_{name} AFTER {event} ON participants \
                         BEGIN {body} END"
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// PostgreSQL skips ordinary triggers in replication mode (`session_replication_role =
/// replica`): the append-only guards are made to fire always. (SQLite has no such mode.)
struct GuardsFireAlways;

impl MigrationName for GuardsFireAlways {
    fn name(&self) -> &str {
        "m20261128_000009_guards_fire_always"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for GuardsFireAlways {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            for (table, trigger) in [
                ("audit_events", "audit_events_append_only"),
                ("audit_events", "audit_events_no_truncate"),
                ("change_reasons", "change_reasons_append_only"),
                ("change_reasons", "change_reasons_no_truncate"),
            ] {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}"
                ))
                .await?;
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Remembered answers name their encoding: rows written before have protobuf (format 1, the
/// column's default, so they stay readable); new rows hold the service's own model as JSON.
struct AnswerFormats;

impl MigrationName for AnswerFormats {
    fn name(&self) -> &str {
        "m20261128_000010_answer_formats"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AnswerFormats {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE idempotency_records \
                 ADD COLUMN response_format INTEGER NOT NULL DEFAULT 1",
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// A hash chain per study over its audit events (SPEC section 14): each event gets its position
/// and `hash`, the study row the chain's length and head. The events stored before are chained
/// here, in id order, with the append-only update guard lifted for this transaction only.
struct AuditChain;

impl MigrationName for AuditChain {
    fn name(&self) -> &str {
        "m20261128_000011_audit_chain"
    }
}

/// The SQLite trigger that refuses updates of audit events, as the initial migration made it.
const SQLITE_AUDIT_NO_UPDATE: &str = "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END";

#[async_trait::async_trait]
impl MigrationTrait for AuditChain {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use crate::domain::audit::GENESIS;
        use sea_orm::{Statement, TryGetable};

        manager
            .alter_table(
                Table::alter()
                    .table("studies")
                    .add_column(big_integer("audit_seq").default(0))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("studies")
                    .add_column(text_null("audit_head"))
                    .take(),
            )
            .await?;
        for column in [big_integer_null("chain_seq"), text_null("hash")] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_events")
                        .add_column(&mut column)
                        .take(),
                )
                .await?;
        }
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
                )
                .await?
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER audit_events_no_update")
                    .await?
            }
        };
        let (set_event, set_head) = match backend {
            DbBackend::Postgres => (
                "UPDATE audit_events SET chain_seq = $1, hash = $2 WHERE id = $3",
                "UPDATE studies SET audit_seq = $1, audit_head = $2 WHERE id = $3",
            ),
            _ => (
                "UPDATE audit_events SET chain_seq = ?, hash = ? WHERE id = ?",
                "UPDATE studies SET audit_seq = ?, audit_head = ? WHERE id = ?",
            ),
        };
        let studies = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id FROM studies ORDER BY id",
            ))
            .await?;
        for row in studies {
            let study =
                i64::try_get_by_index(&row, 0).map_err(|e| DbErr::Type(format!("{e:?}")))?;
            let (mut seq, mut head, mut after) = (0i64, GENESIS, 0i64);
            loop {
                let page = super::audit_log::page_by_id(db, study, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for event in &page {
                    seq += 1;
                    head = event.chained(seq).hash(&head);
                    db.execute_raw(Statement::from_sql_and_values(
                        backend,
                        set_event,
                        [seq.into(), hex::encode(head).into(), event.id.into()],
                    ))
                    .await?;
                }
            }
            if seq > 0 {
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    set_head,
                    [seq.into(), hex::encode(head).into(), study.into()],
                ))
                .await?;
            }
        }
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only",
                )
                .await?
            }
            _ => db.execute_unprepared(SQLITE_AUDIT_NO_UPDATE).await?,
        };
        // One event per position: a second writer extending the same head fails instead of forking.
        manager
            .create_index(unique_index(
                "ux_audit_study_chain",
                "audit_events",
                &["study_id", "chain_seq"],
            ))
            .await?;
        // Keyset pages of a study's trail in id order.
        manager
            .create_index(index(
                "ix_audit_study_id",
                "audit_events",
                &["study_id", "id"],
            ))
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// ListParticipants reads keyset pages in id order within a study or a site: indexes that
/// serve `WHERE study_id = ? AND id > ? ORDER BY id` at a constant cost however deep the page.
struct ParticipantPages;

impl MigrationName for ParticipantPages {
    fn name(&self) -> &str {
        "m20261128_000012_participant_pages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ParticipantPages {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "ix_participants_study_id",
                "participants",
                &["study_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_participants_site_id",
                "participants",
                &["site_id", "id"],
            ))
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Personal data is never read in the clear (`DataCipher::open` refuses unsealed values), so the
/// rows that still hold clear values from before sealing are listed here, by SQL, for the start-up
/// step that seals them (`service::at_rest::seal_legacy_values`, which needs the data key a
/// migration does not have). Listing them once keeps that step free on every later start.
///
/// Audit events cannot be sealed afterwards: they are append-only and hash-chained, so sealing
/// one would rewrite history. Their clear contact values stay readable, but only for the events
/// listed here; a clear value in any other event is refused as planted.
struct UnsealedLegacy;

/// The contact columns as they were when this migration was written.
const LEGACY_CONTACT_COLUMNS: [&str; 13] = [
    "first_name",
    "last_name",
    "middle_name",
    "email_address",
    "phone_number",
    "street_address1",
    "street_address2",
    "city",
    "state",
    "country",
    "postal_code",
    "full_dob",
    "hospital_number",
];

impl MigrationName for UnsealedLegacy {
    fn name(&self) -> &str {
        "m20261128_000013_unsealed_legacy"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for UnsealedLegacy {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE unsealed_legacy (\
               table_name TEXT NOT NULL, \
               row_id BIGINT NOT NULL, \
               PRIMARY KEY (table_name, row_id))",
        )
        .await?;
        let clear =
            |column: &str| format!("({column} IS NOT NULL AND {column} NOT LIKE 'enc:v1:%')");
        let contacts = LEGACY_CONTACT_COLUMNS
            .iter()
            .map(|c| clear(c))
            .collect::<Vec<_>>()
            .join(" OR ");
        db.execute_unprepared(&format!(
            "INSERT INTO unsealed_legacy (table_name, row_id) \
             SELECT 'participant_contacts', participant_id FROM participant_contacts WHERE {contacts}"
        ))
        .await?;
        let clear_bytes = match db.get_database_backend() {
            DbBackend::Postgres => "substring(response from 1 for 7) <> 'enc:v1:'::bytea",
            _ => "substr(response, 1, 7) <> CAST('enc:v1:' AS BLOB)",
        };
        db.execute_unprepared(&format!(
            "INSERT INTO unsealed_legacy (table_name, row_id) \
             SELECT 'idempotency_records', id FROM idempotency_records WHERE {clear_bytes}"
        ))
        .await?;
        let fields = LEGACY_CONTACT_COLUMNS
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", ");
        db.execute_unprepared(&format!(
            "INSERT INTO unsealed_legacy (table_name, row_id) \
             SELECT 'audit_events', id FROM audit_events \
             WHERE field_name IN ({fields}) AND ({} OR {})",
            clear("old_value"),
            clear("new_value")
        ))
        .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// `İ` lower-cased outside Turkish is `i` + U+0307, which the comparison key now folds to `i`
/// as it folds `İ`: recomputes the keys stored before, so such IDs match their other spellings.
struct DottedIKeys;

impl MigrationName for DottedIKeys {
    fn name(&self) -> &str {
        "m20261128_000014_dotted_i_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DottedIKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recompute_subject_keys(manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
