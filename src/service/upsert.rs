//! UpsertParticipant (SPEC sections 4, 6 and 8).
//!
//! Stages run in the order of the SPEC: token (transport), study and site, role, request
//! shape, field validation, then one write transaction that does the lookup, the cap check,
//! the write and its audit events. The transaction step is `execute`, a function of
//! (transaction, command), so several commands could later share one transaction.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr,
    IntoActiveModel,
};
use tokio::time::Instant;

use super::audit::{Audit, Change};
use super::model::{Contact, UpsertInput, UpsertOutcome};
use super::remembered::{self, RequestHash};
use super::{Caller, Participants, ScopeRows, check_role, load_scope, scope_oids};
use crate::crypto::DataCipher;
use crate::domain::audit::EventType;
use crate::domain::{
    Access, Reason, ServiceError,
    id::{access_code, subject_oid_base, subject_oid_candidate, subject_oid_suffix, template_for},
    validate::{
        ContactField, ContactPatch, Patch, RequestId, SUBJECT_KEY_MAX, SubjectKey, Text, Violation,
        normalize_subject_key, parse_reason_for_change, parse_secondary_id,
    },
};
use crate::store::{
    access_codes,
    deferred::Deferred,
    entity::{participant, participant_contact, site, study},
    personal::{Contacts, Remembered, ToRemember, Write, map_contact},
    queries, to_service_error,
};

/// A request that passed every check before the transaction.
#[derive(Debug, Clone)]
pub struct UpsertCommand {
    pub user: String,
    pub study_id: i64,
    pub site_id: Option<i64>,
    pub subject_key: Option<SubjectKey>,
    pub secondary_id: Patch<Text>,
    pub contact: ContactPatch,
    pub register: bool,
    pub validate_only: bool,
    pub etag: Option<String>,
    pub reason_for_change: Option<String>,
    pub request_id: Option<RequestId>,
    pub request_hash: RequestHash,
    pub now: DateTime<Utc>,
    #[cfg(feature = "fault-injection")]
    pub fault: super::Fault,
    /// Seals personal data before it is written.
    pub cipher: Arc<DataCipher>,
}

/// Why a transaction did not complete.
#[derive(Debug)]
pub enum TxError {
    Db(DbErr),
    Rejected(ServiceError),
}

impl From<DbErr> for TxError {
    fn from(e: DbErr) -> Self {
        TxError::Db(e)
    }
}

impl From<ServiceError> for TxError {
    fn from(e: ServiceError) -> Self {
        TxError::Rejected(e)
    }
}

/// The current time, at the microsecond precision every backend stores.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Answers a repeated `request_id`: the first response, or `REQUEST_ID_REUSED`.
async fn replay(
    c: &impl ConnectionTrait,
    cipher: &DataCipher,
    user: &str,
    request_id: &RequestId,
    request_hash: &RequestHash,
) -> Result<Option<UpsertOutcome>, TxError> {
    let record = queries::idempotency_record(c, user, request_id.as_str()).await?;
    replay_record(record, cipher, request_hash)
}

/// `replay`, with the remembered record already read.
fn replay_record(
    record: Option<crate::store::entity::idempotency_record::Model>,
    cipher: &DataCipher,
    request_hash: &RequestHash,
) -> Result<Option<UpsertOutcome>, TxError> {
    let Some(record) = record else {
        return Ok(None);
    };
    match request_hash.matches(record.response_format, &record.request_hash, cipher) {
        Some(true) => {}
        Some(false) => {
            return Err(ServiceError::rejected(
                Reason::RequestIdReused,
                "request_id was already used for a different request",
            )
            .into());
        }
        None => {
            // The key id (a hash prefix, safe to log) tells the operator which key is missing.
            let kid = record
                .request_hash
                .split_once(':')
                .map_or("", |(kid, _)| kid);
            return Err(ServiceError::Internal(format!(
                "the remembered request was hashed under data key \"{kid}\", which is not configured"
            ))
            .into());
        }
    }
    let bytes = Remembered::new(cipher)
        .open(&record)
        .map_err(ServiceError::from)?;
    let response = remembered::decode(record.response_format, &bytes)
        .map_err(|e| ServiceError::Internal(format!("stored response cannot be decoded: {e}")))?;
    Ok(Some(response))
}

fn db_or_rejected(e: TxError) -> ServiceError {
    match e {
        TxError::Db(e) => to_service_error(e),
        TxError::Rejected(e) => e,
    }
}

/// Stage 4: the request's shape fits the scope and the study.
fn check_shape(req: &UpsertInput, scope: &ScopeRows) -> Result<(), ServiceError> {
    if req.register && !scope.study.participate_enabled {
        return Err(ServiceError::rejected(
            Reason::ParticipateNotEnabled,
            "register was asked but the study's Participate module is not enabled",
        ));
    }
    if scope.site.is_none() {
        let mut violations = Vec::new();
        let has_contact = req.contact.as_ref().is_some_and(Contact::any);
        if has_contact {
            violations.push(Violation::new(
                "contact",
                Reason::StudyLevelParticipantContactNotAllowed,
                "a study-level participant cannot have contact data: leave every contact field out",
            ));
        }
        if req.register {
            violations.push(Violation::new(
                "register",
                Reason::StudyLevelParticipantRegistrationNotAllowed,
                "a study-level participant cannot be registered for Participate",
            ));
        }
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations));
        }
    }
    Ok(())
}

/// The fields of a request once every rule of stage 5 holds.
struct Fields {
    subject_key: Option<SubjectKey>,
    secondary_id: Patch<Text>,
    contact: ContactPatch,
    request_id: Option<RequestId>,
    reason_for_change: Option<Text>,
}

/// Stage 5: every field rule, all violations collected.
fn validate(
    req: &UpsertInput,
    study: &study::Model,
    today: NaiveDate,
) -> Result<Fields, ServiceError> {
    let mut violations = Vec::new();
    let subject_key = match SubjectKey::parse(&req.subject_key, "subject_key") {
        Ok(Some(key)) => Some(key),
        Ok(None) => {
            if study.participant_id_method != "system" {
                violations.push(Violation::new(
                    "subject_key",
                    Reason::MissingParticipantIdData,
                    "subject_key is required: this study uses manual Participant IDs",
                ));
            }
            None
        }
        Err(v) => {
            violations.push(v);
            None
        }
    };
    let secondary_id = parse_secondary_id(req.secondary_id.as_deref()).unwrap_or_else(|v| {
        violations.push(v);
        Patch::Unchanged
    });
    let contact = match &req.contact {
        Some(c) => ContactPatch::parse(c.fields(), today, &mut violations),
        None => ContactPatch::default(),
    };
    let request_id = RequestId::parse(&req.request_id).unwrap_or_else(|v| {
        violations.push(v);
        None
    });
    let reason_for_change = parse_reason_for_change(&req.reason_for_change).unwrap_or_else(|v| {
        violations.push(v);
        None
    });
    if violations.is_empty() {
        Ok(Fields {
            subject_key,
            secondary_id,
            contact,
            request_id,
            reason_for_change,
        })
    } else {
        Err(ServiceError::invalid(violations))
    }
}

/// What the checks before the write decided.
enum Prepared {
    /// A repeated `request_id`: the first answer, written nothing.
    Replayed(Box<UpsertOutcome>),
    /// A write to run.
    Write(Box<UpsertCommand>, Box<ScopeRows>),
}

/// A write's place in a sequence: it waits for `previous` to be passed (or dropped), and
/// passes `next` once queued (or when it is dropped, having nothing to write).
#[derive(Default)]
pub(crate) struct Turn {
    pub previous: Option<tokio::sync::oneshot::Receiver<()>>,
    pub next: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Turn {
    async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = previous.await;
        }
    }

    fn pass(&mut self) {
        if let Some(next) = self.next.take() {
            let _ = next.send(());
        }
    }
}

pub(crate) fn timed_out() -> ServiceError {
    ServiceError::rejected(
        Reason::RequestTimedOut,
        "the request timed out before its write started; nothing was written, and a retry with the same request_id is safe",
    )
}

impl Participants {
    /// Adds or updates one Participant. The checks before the write only read, so they are
    /// abandoned when `deadline` passes; the write is started only before `deadline` and, once
    /// a writer took it, runs to its end even if the caller goes away, so that a committed
    /// write is always answered (or remembered for its `request_id`) as a success.
    pub async fn upsert(
        &self,
        caller: &Caller,
        req: UpsertInput,
        deadline: Instant,
    ) -> Result<UpsertOutcome, ServiceError> {
        self.upsert_in_turn(caller, req, deadline, Turn::default())
            .await
    }

    /// `upsert`, with its write queued only once `turn` says the previous one was: an import
    /// checks many rows at once yet writes them in input order, as one caller calling
    /// `upsert` row after row would.
    pub(crate) async fn upsert_in_turn(
        &self,
        caller: &Caller,
        req: UpsertInput,
        deadline: Instant,
        mut turn: Turn,
    ) -> Result<UpsertOutcome, ServiceError> {
        let prepared = super::until(deadline, timed_out, self.prepare(caller, req)).await;
        turn.wait().await;
        let (command, scope) = match prepared? {
            Prepared::Replayed(response) => return Ok(*response),
            Prepared::Write(command, scope) => (command, scope),
        };
        // Stage 8, the write, shared with the upserts that arrive together (group commit).
        let answer = self
            .writer
            .enqueue(Arc::from(command), deadline)
            .await
            .map_err(|e| scope.tag(e))?;
        turn.pass();
        answer.await.map_err(|e| scope.tag(e))
    }

    /// Stages 2 to 7 of the SPEC, up to the write: nothing here writes.
    async fn prepare(
        &self,
        caller: &Caller,
        mut req: UpsertInput,
    ) -> Result<Prepared, ServiceError> {
        let conn = self.store.connection();
        let (study_oid, site_oid) = scope_oids(req.scope.as_ref())?;
        let catalog = self.catalog().await?;
        let scope = load_scope(&catalog, study_oid, site_oid)?;
        check_role(&catalog, caller, &scope, Access::Write)?;

        // A repeat is answered only to a caller who may still act here: a revoked role gets no
        // remembered answer (with its contact data and access code) back.
        // The request id as remembered (composed): a retry that spells it otherwise is the
        // same request, with the same hash.
        let remembered = RequestId::parse(&req.request_id).ok().flatten();
        if let Some(rid) = &remembered {
            req.request_id = rid.as_str().to_owned();
        }
        let request_hash = RequestHash::of(&req, &self.cipher, &caller.user);
        if let Some(rid) = &remembered
            && let Some(response) = self
                .replay(caller, rid, &request_hash)
                .await
                .map_err(|e| scope.tag(e))?
        {
            return Ok(Prepared::Replayed(Box::new(response)));
        }

        check_shape(&req, &scope).map_err(|e| scope.tag(e))?;
        let now = now_micros();
        let fields = validate(&req, &scope.study, now.date_naive()).map_err(|e| scope.tag(e))?;
        if let Err(full) =
            full_before_lock(conn, &scope, fields.subject_key.as_ref(), &req.etag).await
        {
            // A twin call with the same request_id may have just filled the cap: it wins.
            if let Some(rid) = &remembered
                && let Some(response) = self
                    .replay(caller, rid, &request_hash)
                    .await
                    .map_err(|e| scope.tag(e))?
            {
                return Ok(Prepared::Replayed(Box::new(response)));
            }
            return Err(scope.tag(full));
        }

        let command = UpsertCommand {
            user: caller.user.clone(),
            study_id: scope.study.id,
            site_id: scope.site.as_ref().map(|s| s.id),
            subject_key: fields.subject_key,
            secondary_id: fields.secondary_id,
            contact: fields.contact,
            register: req.register,
            validate_only: req.validate_only,
            etag: Some(req.etag.clone()).filter(|e| !e.is_empty()),
            reason_for_change: fields.reason_for_change.map(|r| r.as_str().to_owned()),
            request_id: fields.request_id,
            request_hash,
            now,
            #[cfg(feature = "fault-injection")]
            fault: self.fault,
            cipher: self.cipher.clone(),
        };
        Ok(Prepared::Write(Box::new(command), Box::new(scope)))
    }
}

impl Participants {
    /// The first response to `rid`, if the caller used it before (see `replay`); the lookup
    /// shares a statement with those that arrive together (see `reader`).
    async fn replay(
        &self,
        caller: &Caller,
        rid: &RequestId,
        request_hash: &RequestHash,
    ) -> Result<Option<UpsertOutcome>, ServiceError> {
        let record = self.reader.remembered(&caller.user, rid.as_str()).await?;
        replay_record(record, &self.cipher, request_hash).map_err(db_or_rejected)
    }
}

/// Refuses a creation early, without taking the study lock, when the committed state already
/// fills a cap: under a burst against a full study, refusals then never queue behind writers.
/// Only a creation that would reach the cap check in `execute` is refused here, so the answer is
/// the one `execute` would give; the exact check still runs under the lock.
async fn full_before_lock(
    c: &impl ConnectionTrait,
    scope: &ScopeRows,
    subject_key: Option<&SubjectKey>,
    etag: &str,
) -> Result<(), ServiceError> {
    let study = &scope.study;
    if study.enrollment_cap.is_none()
        && scope
            .site
            .as_ref()
            .is_none_or(|s| s.enrollment_cap.is_none())
    {
        return Ok(());
    }
    let is_creation = match subject_key {
        None => true,
        Some(key) => {
            study.participant_id_method != "system"
                && etag.is_empty()
                && queries::participant_by_key(c, study.id, &key.normalized())
                    .await
                    .map_err(to_service_error)?
                    .is_none()
        }
    };
    if !is_creation {
        return Ok(());
    }
    let full = |count: u64, cap: i64| count >= u64::try_from(cap).unwrap_or(0);
    if let Some(cap) = study.enrollment_cap
        && full(
            queries::enrolled_in_study(c, study.id)
                .await
                .map_err(to_service_error)?,
            cap,
        )
    {
        return Err(cap_reached(CapOf::Study, cap));
    }
    if let Some(site) = &scope.site
        && let Some(cap) = site.enrollment_cap
        && full(
            queries::enrolled_at_site(c, site.id)
                .await
                .map_err(to_service_error)?,
            cap,
        )
    {
        return Err(cap_reached(CapOf::Site, cap));
    }
    Ok(())
}

/// Which enrollment cap refused a creation.
#[derive(Clone, Copy)]
enum CapOf {
    Study,
    Site,
}

/// The refusal of a creation by a cap, naming the cap and its size (both from the catalog).
fn cap_reached(of: CapOf, cap: i64) -> ServiceError {
    let whose = match of {
        CapOf::Study => "the study's",
        CapOf::Site => "the site's",
    };
    ServiceError::rejected(
        Reason::ParticipantsEnrollmentCapReached,
        format!(
            "{whose} enrollment cap of {cap} is reached: no participant can be added there until one is removed or the cap is raised in the catalog (updates are still accepted)"
        ),
    )
}

/// Applies the command's patches to the stored values, returning the new contact and the
/// changed fields in column order.
fn apply_contact(
    current: &participant_contact::Model,
    patch: &ContactPatch,
) -> (participant_contact::Model, Vec<Change>) {
    let mut changes = Vec::new();
    let next = map_contact(current, |name, old| {
        let old = old.map(str::to_owned);
        // map_contact names every column of ContactField::ALL.
        let Some(field) = ContactField::ALL.into_iter().find(|f| f.name() == name) else {
            return Ok(old);
        };
        let new = patch.get(field).map(str::to_owned).apply(old.clone());
        if new != old {
            changes.push(Change {
                field: field.name(),
                old,
                new: new.clone(),
            });
        }
        Ok::<_, std::convert::Infallible>(new)
    });
    match next {
        Ok(next) => (next, changes),
        Err(never) => match never {},
    }
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn rejected(reason: Reason, message: &str) -> TxError {
    TxError::Rejected(ServiceError::rejected(reason, message))
}

/// Counts toward caps and refuses a creation that would exceed either.
async fn check_caps(
    tx: &DatabaseTransaction,
    study: &study::Model,
    site: Option<&site::Model>,
) -> Result<(), TxError> {
    if let Some(cap) = study.enrollment_cap
        && queries::enrolled_in_study(tx, study.id).await? >= u64::try_from(cap).unwrap_or(0)
    {
        return Err(cap_reached(CapOf::Study, cap).into());
    }
    if let Some(site) = site
        && let Some(cap) = site.enrollment_cap
        && queries::enrolled_at_site(tx, site.id).await? >= u64::try_from(cap).unwrap_or(0)
    {
        return Err(cap_reached(CapOf::Site, cap).into());
    }
    Ok(())
}

/// The next free Participant ID from the study's template, and the sequence number it used;
/// reads only.
async fn next_free_key(
    tx: &DatabaseTransaction,
    rows: &BatchRows,
) -> Result<(SubjectKey, i64), TxError> {
    let (study, site) = (&rows.study, rows.site.as_ref());
    let template = template_for(study.participant_id_template.as_deref(), site.is_some())
        .map_err(|e| ServiceError::Internal(format!("study template: {e}")))?;
    let first = site.map_or(study.next_seq, |s| s.next_seq);
    for seq in first..first + 10_000 {
        let candidate = template.render(&study.oid, site.map(|s| s.oid.as_str()), seq);
        if candidate.chars().count() > SUBJECT_KEY_MAX {
            return Err(rejected(
                Reason::ParticipantIdLongerThan30Characters,
                "the generated Participant ID would be longer than 30 characters: the study's participant_id_template needs to be shorter",
            ));
        }
        let taken = queries::participant_by_key(tx, study.id, &normalize_subject_key(&candidate))
            .await?
            .is_some();
        if !taken {
            let key = SubjectKey::from_generated(candidate)
                .map_err(|v| ServiceError::invalid(vec![v]))?;
            return Ok((key, seq));
        }
    }
    Err(ServiceError::Internal("no free generated Participant ID".into()).into())
}

/// Moves the generated-ID counter (of the site, or of the study for a study-level
/// participant) past `seq`, in the database and in the batch's rows. Only the counter is
/// taken over: the study row as stored lags the batch's copy (its audit chain's head is
/// stored once, before the commit), so the row the UPDATE returns must not replace it.
async fn advance_seq(
    tx: &DatabaseTransaction,
    rows: &mut BatchRows,
    seq: i64,
) -> Result<(), DbErr> {
    match rows.site.as_mut() {
        Some(s) => {
            let mut row = s.clone().into_active_model();
            row.next_seq = Set(seq + 1);
            s.next_seq = row.update(tx).await?.next_seq;
        }
        None => {
            let mut row = rows.study.clone().into_active_model();
            row.next_seq = Set(seq + 1);
            rows.study.next_seq = row.update(tx).await?.next_seq;
        }
    }
    Ok(())
}

/// The subject OID of a new participant: `SS_<base>`, then `_2`, `_3`… (SPEC), the suffix from
/// a counter per base, so the cost does not grow with the number of keys sharing a base.
///
/// On the first attempt the counter's suffix is used as it is: the unique index over subject
/// OIDs is the check, and a suffix already taken by a row written before the counter existed
/// (or by hand) fails the insert, which runs the command again (`first` false). Then each
/// suffix is probed, and a taken one makes the counter jump past the chain's highest suffix,
/// read in one statement: each such row costs one retry, and the counter only moves forward.
async fn pick_subject_oid(
    tx: &DatabaseTransaction,
    key: &SubjectKey,
    first: bool,
    counters: Option<&mut OidCounters>,
) -> Result<String, DbErr> {
    let base = subject_oid_base(key.as_str());
    // The batch moves the counters it read in memory (its transaction holds the write lock on
    // SQLite; on PostgreSQL a writer of another study that took the same suffix meanwhile makes
    // the insert fail, and the batch runs again with a statement per creation).
    if first
        && let Some(counters) = counters
        && let Some((_, issued)) = counters.get_mut(&base)
    {
        *issued += 1;
        return Ok(subject_oid_candidate(&base, *issued));
    }
    for _ in 0..4 {
        let n = queries::next_subject_oid_suffix(tx, &base).await?;
        let candidate = subject_oid_candidate(&base, n);
        if first || !queries::subject_oid_taken(tx, &candidate).await? {
            return Ok(candidate);
        }
        let highest = queries::subject_oids_of_base(tx, &base)
            .await?
            .iter()
            .filter_map(|oid| subject_oid_suffix(&base, oid))
            .max()
            .unwrap_or(n);
        queries::skip_subject_oid_suffixes(tx, &base, highest).await?;
    }
    Err(DbErr::Custom("no free subject OID".into()))
}

/// A new access code, free in the study: (plain, sealed, lookup hash). Uniqueness is checked
/// through the keyed hash; the unique index over it stays the last word.
async fn pick_access_code(
    tx: &DatabaseTransaction,
    cipher: &DataCipher,
    study_id: i64,
    subject_oid: &str,
) -> Result<(String, String, String), DbErr> {
    for _ in 0..100 {
        // The thread-local CSPRNG is not Send: draw before the next await.
        let code = access_code(&mut rand::rng());
        let (sealed, hash) = access_codes::seal(cipher, study_id, subject_oid, &code);
        if !queries::access_code_taken(tx, study_id, &hash).await? {
            return Ok((code, sealed, hash));
        }
    }
    Err(DbErr::Custom("no free access code".into()))
}

/// The rows a command of a batch acts on, as the batch sees them. The batch locks and reads
/// its studies once, reads its sites once, and carries both from command to
/// command: a later command sees what earlier ones changed (the audit chain's head, the next
/// generated ID) without reading them again. A command that is rolled back leaves them as they
/// were.
#[derive(Debug, Clone)]
pub struct BatchRows {
    /// The command's study, read under the batch's study lock.
    pub study: study::Model,
    /// The command's site, for a site-level command.
    pub site: Option<site::Model>,
    /// Where the command leaves rows for the batch to insert together (its contact data, audit
    /// events and remembered response); `None` inserts them at once.
    pub deferred: Option<Deferred>,
    /// The participant with the command's key as the batch knows it (the row as stored, or
    /// `None` when there is none), read for the whole batch at once; `None` reads it here.
    pub known: Option<Option<participant::Model>>,
    /// The stored contact row of the participant in `known` (or `None`: no row), read with
    /// it; `None` reads it here.
    pub known_contact: Option<Option<participant_contact::Model>>,
    /// The participant row as this command stored it, for the batch to know.
    pub written: Option<participant::Model>,
    /// The batch's OID counters, read once for the bases its creations may need and written
    /// back before the commit; `None` moves the database's counter per creation.
    pub oid_counters: Option<OidCounters>,
    /// Ids for the batch's creations, chosen up front (last one first); with `deferred`, a
    /// creation takes one and leaves its row there instead of inserting it. `None`, or none
    /// left, inserts the row at once with an id from the database.
    pub participant_ids: Option<Vec<i64>>,
}

/// OID counters by base: (the value read, the highest suffix issued since).
pub type OidCounters = std::collections::HashMap<String, (i64, i64)>;

/// How `execute` ended without an error.
#[derive(Debug)]
pub enum Executed {
    /// The command ran: committed unless it is `validate_only`.
    Written(UpsertOutcome),
    /// The request id was used before: the first answer, and nothing of this run is kept.
    Replayed(UpsertOutcome),
}

/// Runs one upsert inside `tx`: lookup, cap, write, audit, and the remembered response. The
/// caller commits (or, for `validate_only` and a replay, rolls back).
///
/// A concurrent twin with the same request id may have committed since `prepare` looked. The
/// first attempt leaves that to the unique index over (user, request id): the remembered
/// response is inserted last, a twin makes it fail, and the retry (`first` false) looks the
/// request id up before anything else. A rejection on the first attempt looks it up too, since
/// the twin's own write may be what the rejection saw (an etag it moved, a cap it filled).
pub async fn execute(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &mut BatchRows,
    first: bool,
) -> Result<Executed, TxError> {
    if let Some(rid) = &cmd.request_id
        && (!first || cmd.validate_only)
        && let Some(response) = replay(tx, &cmd.cipher, &cmd.user, rid, &cmd.request_hash).await?
    {
        return Ok(Executed::Replayed(response));
    }
    match run(tx, cmd, rows, first).await {
        Err(TxError::Rejected(rejection)) if first && !cmd.validate_only => {
            if let Some(rid) = &cmd.request_id
                && let Some(response) =
                    replay(tx, &cmd.cipher, &cmd.user, rid, &cmd.request_hash).await?
            {
                return Ok(Executed::Replayed(response));
            }
            Err(TxError::Rejected(rejection))
        }
        other => other.map(Executed::Written),
    }
}

/// What a command will write, decided from reads alone. Every refusal of a command comes
/// from `decide`; `apply` only writes, and fails only with a database error. So a command that
/// is refused has written nothing, and a batch may run commands without a savepoint each (see
/// `writer`).
enum Plan {
    Create {
        key: SubjectKey,
        /// For a generated ID: the sequence number it used, which the counter moves past.
        generated: Option<i64>,
    },
    Update(Box<UpdatePlan>),
}

struct UpdatePlan {
    found: participant::Model,
    secondary_id: Option<String>,
    changes: Vec<Change>,
    /// The contact data after the update (plain), for a site-level participant.
    contact: Option<participant_contact::Model>,
    contact_row_exists: bool,
    contact_changed: bool,
    register_now: bool,
    /// The stored access code, opened.
    stored_code: Option<String>,
}

async fn run(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &mut BatchRows,
    first: bool,
) -> Result<UpsertOutcome, TxError> {
    let plan = decide(tx, cmd, rows).await?;
    Ok(apply(tx, cmd, rows, plan, first).await?)
}

/// Reads what the command needs and refuses it when a rule says so; writes nothing.
async fn decide(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &BatchRows,
) -> Result<Plan, TxError> {
    if rows.study.id != cmd.study_id || rows.site.as_ref().map(|s| s.id) != cmd.site_id {
        return Err(ServiceError::Internal(
            "the batch gave a command another study or site".into(),
        )
        .into());
    }
    let existing = match (&cmd.subject_key, &rows.known) {
        (Some(_), Some(known)) => known.clone(),
        (Some(key), None) => {
            queries::participant_by_key(tx, cmd.study_id, &key.normalized()).await?
        }
        (None, _) => None,
    };
    match existing {
        Some(found) => {
            if found.site_id != cmd.site_id {
                return Err(rejected(
                    Reason::ParticipantIdAlreadyExists,
                    "this Participant ID is already used at another site or at the study level of this study",
                ));
            }
            if found.status == "removed" {
                return Err(rejected(
                    Reason::ParticipantIdNotAvailable,
                    "the participant with this ID was removed; the ID cannot be used",
                ));
            }
            if cmd.etag.as_ref().is_some_and(|e| *e != found.etag) {
                return Err(rejected(
                    Reason::EtagMismatch,
                    "etag is not the participant's current etag: read it again and retry",
                ));
            }
            let contact = rows.known_contact.clone();
            Ok(Plan::Update(Box::new(
                plan_update(tx, cmd, found, contact).await?,
            )))
        }
        None => {
            if cmd.subject_key.is_some() && rows.study.participant_id_method == "system" {
                return Err(rejected(
                    Reason::ParticipantNotFound,
                    "no participant has this ID in this study: leave subject_key empty to create one with a generated ID",
                ));
            }
            if cmd.etag.is_some() {
                return Err(rejected(
                    Reason::EtagMismatch,
                    "etag was given but the participant does not exist yet",
                ));
            }
            check_caps(tx, &rows.study, rows.site.as_ref()).await?;
            Ok(match &cmd.subject_key {
                Some(key) => Plan::Create {
                    key: key.clone(),
                    generated: None,
                },
                None => {
                    let (key, seq) = next_free_key(tx, rows).await?;
                    Plan::Create {
                        key,
                        generated: Some(seq),
                    }
                }
            })
        }
    }
}

/// Writes what `decide` planned, its audit events and the remembered response.
async fn apply(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &mut BatchRows,
    plan: Plan,
    first: bool,
) -> Result<UpsertOutcome, DbErr> {
    let (row, contact, created) = match plan {
        Plan::Create { key, generated } => {
            if let Some(seq) = generated {
                advance_seq(tx, rows, seq).await?;
            }
            create(tx, cmd, rows, key, first).await?
        }
        Plan::Update(plan) => update(tx, cmd, rows, *plan).await?,
    };

    #[cfg(feature = "fault-injection")]
    if cmd.fault == super::Fault::AfterAudit {
        return Err(DbErr::Custom(
            "injected fault after the audit insert".into(),
        ));
    }

    let response = UpsertOutcome {
        participant: super::participant_view(
            &rows.study.oid,
            rows.site.as_ref().map(|s| s.oid.as_str()),
            &row,
            contact.as_ref(),
        ),
        created,
        access_code: if cmd.register && !cmd.validate_only {
            row.access_code.clone()
        } else {
            None
        },
    };

    if let Some(rid) = &cmd.request_id
        && !cmd.validate_only
    {
        let to = match rows.deferred.as_mut() {
            Some(deferred) => Write::Later(&mut deferred.remembered),
            None => Write::Now(tx),
        };
        Remembered::new(&cmd.cipher)
            .insert(
                to,
                ToRemember {
                    user: &cmd.user,
                    request_id: rid.as_str(),
                    request_hash: cmd.request_hash.current(),
                    format: remembered::CURRENT_FORMAT,
                    response: &remembered::encode(&response),
                    at: cmd.now,
                },
            )
            .await?;
    }
    Ok(response)
}

/// The participant as written, its contact data (plain), and whether it was created.
type Written = (participant::Model, Option<participant_contact::Model>, bool);

async fn create(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &mut BatchRows,
    key: SubjectKey,
    first: bool,
) -> Result<Written, DbErr> {
    let subject_oid = pick_subject_oid(tx, &key, first, rows.oid_counters.as_mut()).await?;
    let (study, site) = (&rows.study, rows.site.as_ref());
    let secondary_id = cmd
        .secondary_id
        .clone()
        .map(|t| t.as_str().to_owned())
        .apply(None);
    let (participate_status, code) = if cmd.register {
        let picked = pick_access_code(tx, &cmd.cipher, study.id, &subject_oid).await?;
        ("created", Some(picked))
    } else {
        ("", None)
    };
    let (plain_code, sealed_code, code_hash) = match code {
        Some((plain, sealed, hash)) => (Some(plain), Some(sealed), Some(hash)),
        None => (None, None, None),
    };
    let chosen_id = match (&rows.deferred, rows.participant_ids.as_mut()) {
        (Some(_), Some(ids)) => ids.pop(),
        _ => None,
    };
    let active = participant::ActiveModel {
        id: chosen_id.map_or(sea_orm::ActiveValue::NotSet, Set),
        study_id: Set(study.id),
        site_id: Set(site.map(|s| s.id)),
        subject_key: Set(key.as_str().to_owned()),
        subject_key_norm: Set(key.normalized()),
        subject_oid: Set(subject_oid),
        secondary_id: Set(secondary_id.clone()),
        status: Set("available".to_owned()),
        participate_status: Set(participate_status.to_owned()),
        access_code: Set(sealed_code),
        access_code_hash: Set(code_hash),
        etag: Set(new_etag()),
        create_time: Set(cmd.now),
        update_time: Set(cmd.now),
    };
    let mut row = match (chosen_id, rows.deferred.as_mut()) {
        (Some(_), Some(deferred)) => {
            let row = participant::Model::try_from(active.clone())?;
            deferred.participants.push(active);
            row
        }
        _ => active.insert(tx).await?,
    };
    rows.written = Some(row.clone());
    // The caller answers with the plain code; only the sealed one is stored.
    row.access_code = plain_code;

    let mut audit = Audit::new(cmd, row.id);
    audit.record(
        EventType::ParticipantCreated,
        Some("subject_key"),
        None,
        Some(row.subject_key.clone()),
    );
    if secondary_id.is_some() {
        audit.record(
            EventType::FieldChanged,
            Some("secondary_id"),
            None,
            secondary_id,
        );
    }
    let contact = match site {
        Some(_) => {
            let empty = participant_contact::Model {
                participant_id: row.id,
                ..Default::default()
            };
            let (contact, changes) = apply_contact(&empty, &cmd.contact);
            let to = match rows.deferred.as_mut() {
                Some(deferred) => Write::Later(&mut deferred.contacts),
                None => Write::Now(tx),
            };
            Contacts::new(&cmd.cipher).insert(to, &contact).await?;
            audit.changed(changes);
            Some(contact)
        }
        None => None,
    };
    if cmd.register {
        audit.registered();
    }
    audit
        .write(
            tx,
            &mut rows.study,
            rows.deferred.as_mut().map(|d| &mut d.audit_events),
        )
        .await?;
    Ok((row, contact, true))
}

/// The stored contact row of `found`: the one read with it when given, else from the database.
async fn stored_contact_of(
    tx: &DatabaseTransaction,
    found: &participant::Model,
    read_with_it: Option<Option<participant_contact::Model>>,
) -> Result<Option<participant_contact::Model>, DbErr> {
    match read_with_it {
        Some(stored) => Ok(stored),
        None => queries::contact_of(tx, found.id).await,
    }
}

/// What an update of `found` changes, from reads alone.
async fn plan_update(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    found: participant::Model,
    read_with_it: Option<Option<participant_contact::Model>>,
) -> Result<UpdatePlan, TxError> {
    let mut changes = Vec::new();
    let secondary_id = cmd
        .secondary_id
        .clone()
        .map(|t| t.as_str().to_owned())
        .apply(found.secondary_id.clone());
    if secondary_id != found.secondary_id {
        changes.push(Change {
            field: "secondary_id",
            old: found.secondary_id.clone(),
            new: secondary_id.clone(),
        });
    }
    // (the plain contact, whether a row is stored) for a site-level participant
    let stored_contact = match found.site_id {
        Some(_) => Some(match stored_contact_of(tx, &found, read_with_it).await? {
            Some(stored) => (
                Contacts::new(&cmd.cipher)
                    .open(&stored)
                    .map_err(ServiceError::from)?,
                true,
            ),
            None => (
                participant_contact::Model {
                    participant_id: found.id,
                    ..Default::default()
                },
                false,
            ),
        }),
        None => None,
    };
    let contact_row_exists = stored_contact.as_ref().is_some_and(|(_, exists)| *exists);
    let (contact, contact_changes) = match &stored_contact {
        Some((current, _)) => {
            let (next, c) = apply_contact(current, &cmd.contact);
            (Some(next), c)
        }
        None => (None, Vec::new()),
    };
    let contact_changed = !contact_changes.is_empty();
    changes.extend(contact_changes);
    let register_now = cmd.register && found.participate_status.is_empty();
    // The caller answers with the plain code; the stored one is sealed (or, before the start-up
    // step sealed it, in the clear, which opens as itself).
    let stored_code = access_codes::open(
        &cmd.cipher,
        found.id,
        &found.subject_oid,
        found.access_code.as_deref(),
    )
    .map_err(ServiceError::from)?;
    Ok(UpdatePlan {
        found,
        secondary_id,
        changes,
        contact,
        contact_row_exists,
        contact_changed,
        register_now,
        stored_code,
    })
}

async fn update(
    tx: &DatabaseTransaction,
    cmd: &UpsertCommand,
    rows: &mut BatchRows,
    plan: UpdatePlan,
) -> Result<Written, DbErr> {
    let UpdatePlan {
        found,
        secondary_id,
        changes,
        contact,
        contact_row_exists,
        contact_changed,
        register_now,
        stored_code,
    } = plan;
    if changes.is_empty() && !register_now {
        // A no-op writes nothing and keeps etag and update_time.
        let mut found = found;
        found.access_code = stored_code;
        return Ok((found, contact, false));
    }

    let new_code = if register_now {
        Some(pick_access_code(tx, &cmd.cipher, found.study_id, &found.subject_oid).await?)
    } else {
        None
    };
    let mut row = found.clone().into_active_model();
    row.secondary_id = Set(secondary_id);
    if let Some((_, sealed, hash)) = &new_code {
        row.participate_status = Set("created".to_owned());
        row.access_code = Set(Some(sealed.clone()));
        row.access_code_hash = Set(Some(hash.clone()));
    }
    row.etag = Set(new_etag());
    row.update_time = Set(cmd.now);
    let mut row = row.update(tx).await?;
    rows.written = Some(row.clone());
    row.access_code = match new_code {
        Some((plain, _, _)) => Some(plain),
        None => stored_code,
    };

    if contact_changed && let Some(next) = &contact {
        let contacts = Contacts::new(&cmd.cipher);
        if contact_row_exists {
            contacts.update(tx, next).await?;
        } else {
            contacts.insert(Write::Now(tx), next).await?;
        }
    }
    let mut audit = Audit::new(cmd, found.id);
    audit.changed(changes);
    if register_now {
        audit.registered();
    }
    audit
        .write(
            tx,
            &mut rows.study,
            rows.deferred.as_mut().map(|d| &mut d.audit_events),
        )
        .await?;
    Ok((row, contact, false))
}
