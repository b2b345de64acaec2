//! Reads shared by the use cases. Each takes any connection or transaction.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
    sea_query::{LikeExpr, SelectStatement, UnionType},
};

use super::entity::{idempotency_record, participant, participant_contact, site, study};

/// Statuses that count toward enrollment caps.
pub const ENROLLED_STATUSES: [&str; 2] = ["available", "signed"];

pub async fn site_by_id(c: &impl ConnectionTrait, id: i64) -> Result<Option<site::Model>, DbErr> {
    site::Entity::find_by_id(id).one(c).await
}

/// The sites with these ids (one statement; an id no site has is left out).
pub async fn sites_by_ids(
    c: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<Vec<site::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    site::Entity::find()
        .filter(site::Column::Id.is_in(ids.iter().copied()))
        .all(c)
        .await
}

/// Reads the study row and, on PostgreSQL, locks it until the transaction ends: every write
/// of a study's Participants takes this lock first, which makes caps and lookups exact.
/// (SQLite write transactions are `IMMEDIATE` and already hold the database's write lock.)
pub async fn lock_study(c: &impl ConnectionTrait, id: i64) -> Result<study::Model, DbErr> {
    study::Entity::find_by_id(id)
        .lock_exclusive()
        .one(c)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("study {id}")))
}

pub async fn participant_by_key(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norm: &str,
) -> Result<Option<participant::Model>, DbErr> {
    participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::SubjectKeyNorm.eq(subject_key_norm))
        .one(c)
        .await
}

/// The participant of a study with this normalized key, and its contact row if it has one:
/// one statement (a LEFT JOIN) instead of two.
pub async fn participant_with_contact_by_key(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norm: &str,
) -> Result<Option<(participant::Model, Option<participant_contact::Model>)>, DbErr> {
    participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::SubjectKeyNorm.eq(subject_key_norm))
        .find_also_related(participant_contact::Entity)
        .one(c)
        .await
}

/// The participants of a study with any of these normalized keys, each with its contact row
/// if it has one: one statement with every key in its `IN (…)` list, on both backends. For
/// the write path, whose batches have any number of keys: PostgreSQL would plan a
/// `UNION ALL` of one query per key (see `by_each_key`) anew for each size (measured: the
/// p99 of creations rose from 50 to 115 ms).
pub async fn participants_by_keys(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norms: &[String],
) -> Result<Vec<(participant::Model, Option<participant_contact::Model>)>, DbErr> {
    if subject_key_norms.is_empty() {
        return Ok(Vec::new());
    }
    with_keys_and_contact(study_id, &mut subject_key_norms.iter())
        .all(c)
        .await
}

/// The participants of a study with any of these normalized keys, each with its contact row
/// if it has one (one statement: see `by_each_key`).
pub async fn participants_by_each_key(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norms: &[String],
) -> Result<Vec<(participant::Model, Option<participant_contact::Model>)>, DbErr> {
    match by_each_key(c, subject_key_norms, |keys| {
        with_keys_and_contact(study_id, keys)
    }) {
        Some(select) => select.all(c).await,
        None => Ok(Vec::new()),
    }
}

fn with_keys_and_contact(
    study_id: i64,
    norms: &mut dyn Iterator<Item = &String>,
) -> sea_orm::SelectTwo<participant::Entity, participant_contact::Entity> {
    participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::SubjectKeyNorm.is_in(norms.cloned()))
        .find_also_related(participant_contact::Entity)
}

/// The participants of a study with any of these normalized keys, without their contact data
/// (one statement: see `by_each_key`).
pub async fn participants_by_each_key_alone(
    c: &impl ConnectionTrait,
    study_id: i64,
    subject_key_norms: &[String],
) -> Result<Vec<participant::Model>, DbErr> {
    let with_keys = |norms: &mut dyn Iterator<Item = &String>| {
        participant::Entity::find()
            .filter(participant::Column::StudyId.eq(study_id))
            .filter(participant::Column::SubjectKeyNorm.is_in(norms.cloned()))
    };
    match by_each_key(c, subject_key_norms, with_keys) {
        Some(select) => select.all(c).await,
        None => Ok(Vec::new()),
    }
}

/// One statement that finds the rows of all `keys` (`None` when there are none), from
/// `with_keys`, a query of the rows whose key is in the list it is given. Keep the number of
/// keys to a few sizes (each size is a statement of its own, prepared and planned apart).
///
/// SQLite gets one query with every key in its `IN (…)` list. PostgreSQL gets one query per key,
/// joined by `UNION ALL`: it plans an `IN (…)` list from the table's statistics, and until they
/// are gathered after a burst of inserts it scanned the whole study instead of probing the
/// unique index key by key (measured: 64 keys read all 8,725 rows of the study), while a single
/// key is always an index probe.
fn by_each_key<'k, Q>(
    c: &impl ConnectionTrait,
    keys: &'k [String],
    with_keys: impl Fn(&mut dyn Iterator<Item = &'k String>) -> Q,
) -> Option<Q>
where
    Q: QueryTrait<QueryStatement = SelectStatement>,
{
    let (first, rest) = keys.split_first()?;
    if c.get_database_backend() != DbBackend::Postgres {
        return Some(with_keys(&mut keys.iter()));
    }
    let mut select = with_keys(&mut std::iter::once(first));
    select.query().unions(rest.iter().map(|key| {
        (
            UnionType::All,
            with_keys(&mut std::iter::once(key)).into_query(),
        )
    }));
    Some(select)
}

/// One keyset page of a study's (or one site's) Participants in id order: those after `after`,
/// at most `limit`, with `status` when given.
pub async fn participants_page(
    c: &impl ConnectionTrait,
    study_id: i64,
    site_id: Option<i64>,
    status: Option<&str>,
    after: i64,
    limit: u64,
) -> Result<Vec<participant::Model>, DbErr> {
    let mut q = participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::Id.gt(after));
    if let Some(site) = site_id {
        q = q.filter(participant::Column::SiteId.eq(site));
    }
    if let Some(status) = status {
        q = q.filter(participant::Column::Status.eq(status));
    }
    q.order_by_asc(participant::Column::Id)
        .limit(limit)
        .all(c)
        .await
}

/// The contact rows of several Participants, in one statement.
pub async fn contacts_of(
    c: &impl ConnectionTrait,
    participant_ids: &[i64],
) -> Result<Vec<participant_contact::Model>, DbErr> {
    if participant_ids.is_empty() {
        return Ok(Vec::new());
    }
    participant_contact::Entity::find()
        .filter(participant_contact::Column::ParticipantId.is_in(participant_ids.iter().copied()))
        .all(c)
        .await
}

pub async fn contact_of(
    c: &impl ConnectionTrait,
    participant_id: i64,
) -> Result<Option<participant_contact::Model>, DbErr> {
    participant_contact::Entity::find_by_id(participant_id)
        .one(c)
        .await
}

/// Reads one counter column of one row.
async fn counter(c: &impl ConnectionTrait, sql: &str, id: i64) -> Result<u64, DbErr> {
    let backend = c.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => sql.replace('?', "$1"),
        _ => sql.to_owned(),
    };
    let row = c
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("counter of {id}")))?;
    let n = row
        .try_get_by_index::<i64>(0)
        .map_err(|e| DbErr::Type(format!("{e:?}")))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Participants of the study counting toward its cap: a counter the database keeps by trigger
/// (migration `enrolled_counters`), so the cost does not grow with the study.
pub async fn enrolled_in_study(c: &impl ConnectionTrait, study_id: i64) -> Result<u64, DbErr> {
    counter(c, "SELECT enrolled FROM studies WHERE id = ?", study_id).await
}

/// Participants of the site counting toward its cap (a counter, as for the study).
pub async fn enrolled_at_site(c: &impl ConnectionTrait, site_id: i64) -> Result<u64, DbErr> {
    counter(c, "SELECT enrolled FROM sites WHERE id = ?", site_id).await
}

/// Counts enrolled participants row by row: what the counters must always equal (tests and
/// `audit`-style checks; never on the write path).
pub async fn count_enrolled(
    c: &impl ConnectionTrait,
    study_id: i64,
    site_id: Option<i64>,
) -> Result<u64, DbErr> {
    let mut q = participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::Status.is_in(ENROLLED_STATUSES));
    if let Some(site) = site_id {
        q = q.filter(participant::Column::SiteId.eq(site));
    }
    q.count(c).await
}

pub async fn subject_oid_taken(c: &impl ConnectionTrait, oid: &str) -> Result<bool, DbErr> {
    Ok(participant::Entity::find()
        .filter(participant::Column::SubjectOid.eq(oid))
        .count(c)
        .await?
        > 0)
}

/// Moves the counter of an OID base forward by one and returns the new value: 1 for a base
/// never seen. One statement; the row stays locked until the transaction ends (PostgreSQL), so
/// concurrent creations with the same base in other studies take turns on it.
pub async fn next_subject_oid_suffix(c: &impl ConnectionTrait, base: &str) -> Result<i64, DbErr> {
    let sql = match c.get_database_backend() {
        DbBackend::Postgres => {
            "INSERT INTO subject_oid_counters (base, issued) VALUES ($1, 1) \
             ON CONFLICT (base) DO UPDATE SET issued = subject_oid_counters.issued + 1 \
             RETURNING issued"
        }
        _ => {
            "INSERT INTO subject_oid_counters (base, issued) VALUES (?, 1) \
             ON CONFLICT (base) DO UPDATE SET issued = subject_oid_counters.issued + 1 \
             RETURNING issued"
        }
    };
    let row = c
        .query_one_raw(Statement::from_sql_and_values(
            c.get_database_backend(),
            sql,
            [base.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject OID counter".into()))?;
    row.try_get_by_index::<i64>(0)
}

/// `n` participant ids no row has and none will be given by the database: for a write
/// transaction that inserts its participants together, with their ids chosen first (their
/// contact rows and audit events refer to them). SQLite: above the highest id ever given (the
/// transaction holds the database's write lock, so nobody else takes them meanwhile);
/// PostgreSQL: taken from the table's sequence.
pub async fn allocate_participant_ids(
    c: &impl ConnectionTrait,
    n: usize,
) -> Result<Vec<i64>, DbErr> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let backend = c.get_database_backend();
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    if backend == DbBackend::Postgres {
        let rows = c
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT nextval(pg_get_serial_sequence('participants', 'id')) FROM generate_series(1, $1)",
                [count.into()],
            ))
            .await?;
        return rows
            .iter()
            .map(|r| {
                r.try_get_by_index::<i64>(0)
                    .map_err(|e| DbErr::Type(format!("{e:?}")))
            })
            .collect();
    }
    let row = c
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'participants'), 0), \
             COALESCE((SELECT MAX(id) FROM participants), 0))",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("participant ids".into()))?;
    let highest = row
        .try_get_by_index::<i64>(0)
        .map_err(|e| DbErr::Type(format!("{e:?}")))?;
    Ok((1..=count).map(|i| highest + i).collect())
}

/// The counters of these OID bases as stored (a base never seen has none). One statement.
pub async fn subject_oid_counters(
    c: &impl ConnectionTrait,
    bases: &[String],
) -> Result<Vec<(String, i64)>, DbErr> {
    if bases.is_empty() {
        return Ok(Vec::new());
    }
    let backend = c.get_database_backend();
    let marks: Vec<String> = (1..=bases.len())
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => format!("?{i}"),
        })
        .collect();
    let sql = format!(
        "SELECT base, issued FROM subject_oid_counters WHERE base IN ({})",
        marks.join(", ")
    );
    let rows = c
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            bases.iter().map(|b| b.as_str().into()),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get_by_index::<String>(0)?,
                row.try_get_by_index::<i64>(1)?,
            ))
        })
        .collect()
}

/// Moves each base's counter to at least its `issued` value, creating the ones never seen, in
/// one statement. The bases are written in order, so that writers lock counter rows in one
/// order (PostgreSQL).
pub async fn raise_subject_oid_counters(
    c: &impl ConnectionTrait,
    counters: &[(String, i64)],
) -> Result<(), DbErr> {
    if counters.is_empty() {
        return Ok(());
    }
    let backend = c.get_database_backend();
    let mut sorted = counters.to_vec();
    sorted.sort();
    let (marks, greatest) = match backend {
        DbBackend::Postgres => (
            (0..sorted.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>(),
            "GREATEST",
        ),
        _ => (
            (0..sorted.len())
                .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>(),
            "max",
        ),
    };
    let sql = format!(
        "INSERT INTO subject_oid_counters (base, issued) VALUES {} \
         ON CONFLICT (base) DO UPDATE SET issued = {greatest}(subject_oid_counters.issued, excluded.issued)",
        marks.join(", ")
    );
    let values = sorted
        .into_iter()
        .flat_map(|(base, issued)| [base.into(), issued.into()]);
    c.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// Moves the counter of an OID base to at least `issued`.
pub async fn skip_subject_oid_suffixes(
    c: &impl ConnectionTrait,
    base: &str,
    issued: i64,
) -> Result<(), DbErr> {
    let sql = match c.get_database_backend() {
        DbBackend::Postgres => {
            "UPDATE subject_oid_counters SET issued = $1 WHERE base = $2 AND issued < $1"
        }
        _ => "UPDATE subject_oid_counters SET issued = ?1 WHERE base = ?2 AND issued < ?1",
    };
    c.execute_raw(Statement::from_sql_and_values(
        c.get_database_backend(),
        sql,
        [issued.into(), base.into()],
    ))
    .await?;
    Ok(())
}

/// Every stored subject OID of a base's chain (`base`, `base_2`, …), and any other OID that
/// starts with `base_`. One statement, read once per base whose counter met a taken OID.
pub async fn subject_oids_of_base(
    c: &impl ConnectionTrait,
    base: &str,
) -> Result<Vec<String>, DbErr> {
    let escaped: String = base
        .chars()
        .flat_map(|ch| match ch {
            '!' | '%' | '_' => vec!['!', ch],
            _ => vec![ch],
        })
        .collect();
    participant::Entity::find()
        .select_only()
        .column(participant::Column::SubjectOid)
        .filter(
            Condition::any()
                .add(participant::Column::SubjectOid.eq(base))
                .add(
                    participant::Column::SubjectOid
                        .like(LikeExpr::new(format!("{escaped}!_%")).escape('!')),
                ),
        )
        .into_tuple::<String>()
        .all(c)
        .await
}

/// Whether a participant of the study has the access code whose lookup hash is `hash`.
pub async fn access_code_taken(
    c: &impl ConnectionTrait,
    study_id: i64,
    hash: &str,
) -> Result<bool, DbErr> {
    Ok(participant::Entity::find()
        .filter(participant::Column::StudyId.eq(study_id))
        .filter(participant::Column::AccessCodeHash.eq(hash))
        .count(c)
        .await?
        > 0)
}

/// What a user's request ids are remembered with (one statement).
pub async fn idempotency_records(
    c: &impl ConnectionTrait,
    user: &str,
    request_ids: &[String],
) -> Result<Vec<idempotency_record::Model>, DbErr> {
    let with_ids = |ids: &mut dyn Iterator<Item = &String>| {
        idempotency_record::Entity::find()
            .filter(idempotency_record::Column::UserName.eq(user))
            .filter(idempotency_record::Column::RequestId.is_in(ids.cloned()))
    };
    match by_each_key(c, request_ids, with_ids) {
        Some(select) => select.all(c).await,
        None => Ok(Vec::new()),
    }
}

pub async fn idempotency_record(
    c: &impl ConnectionTrait,
    user: &str,
    request_id: &str,
) -> Result<Option<idempotency_record::Model>, DbErr> {
    idempotency_record::Entity::find()
        .filter(idempotency_record::Column::UserName.eq(user))
        .filter(idempotency_record::Column::RequestId.eq(request_id))
        .one(c)
        .await
}
