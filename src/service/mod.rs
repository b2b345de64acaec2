//! Use cases, one file each. They take the caller and a request, and talk to the store.

pub mod audit;
pub mod audit_read;
pub mod audit_trail;
pub mod catalog_cache;
pub mod get;
pub mod import;
pub mod list;
pub mod model;
pub mod page_token;
pub mod reader;
pub mod remembered;
pub mod upsert;
pub mod writer;

use std::sync::Arc;

use crate::crypto::DataCipher;

use crate::domain::{Access, Reason, ServiceError, role::resolve_role, validate::plausible_oid};
use crate::store::{
    Store,
    entity::{participant, participant_contact, site, study},
    to_service_error,
};
use catalog_cache::Snapshot;

/// The authenticated user of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    /// The first Unix second at which the caller's token is no longer accepted (the verifier's
    /// leeway included), if it says. A unary call is checked once; a long call (an import) stops
    /// taking rows at this time.
    pub expires_at: Option<i64>,
}

/// Faults that tests can inject to prove that a failed write leaves nothing behind. A test
/// seam: it exists only with the `fault-injection` feature, which the package's own tests turn on.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Fail every write after its audit events were inserted, before commit.
    AfterAudit,
    /// Hold every write this long just before its commit, as a slow disk would.
    SlowCommit(std::time::Duration),
    /// On SQLite, end the transaction in every insert of a batch run together, and fail it, as
    /// SQLite itself does on a full disk or an I/O error (the batch then runs with savepoints).
    InsertEndsTransaction,
}

/// Runs `work`, which only reads, until `deadline`: a deadline already past answers at once
/// (a ready future would otherwise win), and one that passes meanwhile drops the work, with
/// `timed_out` as the answer. Nothing is lost, since nothing was written.
pub(crate) async fn until<T>(
    deadline: tokio::time::Instant,
    timed_out: impl FnOnce() -> ServiceError,
    work: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    if tokio::time::Instant::now() >= deadline {
        return Err(timed_out());
    }
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// Runs a read-only use case until `deadline` (see `until`), answering `REQUEST_TIMED_OUT`.
pub(crate) async fn read_until<T>(
    deadline: tokio::time::Instant,
    work: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let timed_out = || ServiceError::rejected(Reason::RequestTimedOut, "the request timed out");
    until(deadline, timed_out, work).await
}

/// How often each replica checks whether the catalog changed.
pub const CATALOG_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The participant use cases over one store.
#[derive(Clone)]
pub struct Participants {
    pub(crate) store: Store,
    pub(crate) cipher: Arc<DataCipher>,
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Fault,
    pub(crate) writer: writer::Writer,
    pub(crate) reader: reader::Reader,
    pub(crate) catalog: Arc<catalog_cache::CatalogCache>,
    /// Where the writers and the catalog poll run.
    tasks: crate::tasks::Background,
}

impl Participants {
    /// `cipher` seals personal data before it is stored and opens it when read. Writes are
    /// group-committed with the default settings (`with_batching` changes them). Needs a
    /// Tokio runtime: the writers are tasks, of their own, that end when the last clone is
    /// dropped (an `App` starts its use cases with `start`, on its own tasks).
    pub fn new(store: Store, cipher: Arc<DataCipher>) -> Self {
        Self::start(
            store,
            cipher,
            writer::BatchConfig::default(),
            CATALOG_POLL,
            &crate::tasks::Background::new(),
        )
    }

    /// The use cases with their writers and catalog poll (every `catalog_poll`) on `tasks`.
    pub fn start(
        store: Store,
        cipher: Arc<DataCipher>,
        batching: writer::BatchConfig,
        catalog_poll: std::time::Duration,
        tasks: &crate::tasks::Background,
    ) -> Self {
        let catalog = catalog_cache::CatalogCache::new(store.clone());
        catalog.watch(catalog_poll, tasks);
        Self {
            writer: writer::Writer::start(store.clone(), batching, tasks),
            reader: reader::Reader::start(store.clone(), tasks),
            catalog,
            store,
            cipher,
            #[cfg(feature = "fault-injection")]
            fault: Fault::None,
            tasks: tasks.clone(),
        }
    }

    /// Reloads the catalog now if it changed, instead of at the next poll (tests and tools
    /// that edit catalog rows by hand).
    pub async fn refresh_catalog(&self) -> Result<(), ServiceError> {
        self.catalog
            .refresh()
            .await
            .map(|_| ())
            .map_err(to_service_error)
    }

    /// The catalog snapshot a call works with.
    pub(crate) async fn catalog(&self) -> Result<Arc<catalog_cache::Snapshot>, ServiceError> {
        self.catalog.snapshot().await.map_err(to_service_error)
    }

    /// What group commit has done so far.
    pub fn batch_stats(&self) -> writer::BatchStats {
        self.writer.stats()
    }

    /// What grouped reads have done so far.
    pub fn read_stats(&self) -> reader::ReadStats {
        self.reader.stats()
    }

    /// The writers' figures for the metrics endpoint.
    pub fn write_metrics(&self) -> writer::WriteMetrics {
        self.writer.metrics()
    }

    /// Group-commit settings.
    pub fn with_batching(mut self, config: writer::BatchConfig) -> Self {
        self.writer = writer::Writer::start(self.store.clone(), config, &self.tasks);
        self
    }

    /// Makes writes fail as `fault` says. For tests.
    #[cfg(feature = "fault-injection")]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The study and (for a site-scoped call) the site a call acts on, both checked available.
#[derive(Debug, Clone)]
pub(crate) struct ScopeRows {
    pub study: study::Model,
    pub site: Option<site::Model>,
}

impl ScopeRows {
    pub fn site_oid(&self) -> Option<&str> {
        self.site.as_ref().map(|s| s.oid.as_str())
    }

    pub fn tag(&self, err: ServiceError) -> ServiceError {
        err.in_scope(&self.study.oid, self.site_oid())
    }
}

/// The OIDs named by a request's scope.
pub(crate) fn scope_oids(
    scope: Option<&model::ScopeRef>,
) -> Result<(&str, Option<&str>), ServiceError> {
    match scope {
        Some(s) => Ok((s.study_oid.as_str(), s.site_oid.as_deref())),
        None => Err(ServiceError::rejected(
            Reason::StudyNotExist,
            "scope is required: set either study or site",
        )),
    }
}

/// Stage 2 of every call: the study exists and is available; the site exists, belongs to the
/// study and is available. Answered from the catalog in memory.
pub(crate) fn load_scope(
    catalog: &Snapshot,
    study_oid: &str,
    site_oid: Option<&str>,
) -> Result<ScopeRows, ServiceError> {
    let tag = |e: ServiceError| e.in_scope(study_oid, site_oid);
    // An OID no study could have is not looked up (nor echoed back).
    let study = plausible_oid(study_oid)
        .then(|| catalog.study(study_oid))
        .flatten()
        .cloned()
        .ok_or_else(|| {
            tag(ServiceError::rejected(
                Reason::StudyNotExist,
                "no study has this OID",
            ))
        })?;
    if study.status != "available" {
        return Err(tag(ServiceError::rejected(
            Reason::StudyNotAvailable,
            format!("the study is {}, not available", study.status),
        )));
    }
    let site = match site_oid {
        None => None,
        Some(oid) => {
            let site = plausible_oid(oid)
                .then(|| catalog.site(oid))
                .flatten()
                .filter(|s| s.study_id == study.id)
                .cloned()
                .ok_or_else(|| {
                    tag(ServiceError::rejected(
                        Reason::SiteNotExist,
                        "no site of this study has this OID",
                    ))
                })?;
            if site.status != "available" {
                return Err(tag(ServiceError::rejected(
                    Reason::SiteNotAvailable,
                    format!("the site is {}, not available", site.status),
                )));
            }
            Some(site)
        }
    };
    Ok(ScopeRows { study, site })
}

/// Stage 3: the caller's role allows the access.
pub(crate) fn check_role(
    catalog: &Snapshot,
    caller: &Caller,
    scope: &ScopeRows,
    access: Access,
) -> Result<crate::domain::Role, ServiceError> {
    let assignments = catalog.assignments(&caller.user, scope.study.id);
    resolve_role(assignments, scope.site_oid(), access).map_err(|reason| {
        let message = match reason {
            Reason::NoRoleSetUp => "you have no role at this study or site",
            _ => "your role does not allow this operation",
        };
        scope.tag(ServiceError::rejected(reason, message))
    })
}

/// The view of a stored (opened) contact row.
pub(crate) fn contact_view(c: &participant_contact::Model) -> model::Contact {
    model::Contact {
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        middle_name: c.middle_name.clone(),
        email_address: c.email_address.clone(),
        phone_number: c.phone_number.clone(),
        street_address1: c.street_address1.clone(),
        street_address2: c.street_address2.clone(),
        city: c.city.clone(),
        state: c.state.clone(),
        country: c.country.clone(),
        postal_code: c.postal_code.clone(),
        full_dob: c.full_dob.clone(),
        hospital_number: c.hospital_number.clone(),
    }
}

/// The view of a stored Participant; `contact` is `None` when the caller may not see it.
pub(crate) fn participant_view(
    study_oid: &str,
    site_oid: Option<&str>,
    p: &participant::Model,
    contact: Option<&participant_contact::Model>,
) -> model::ParticipantView {
    model::ParticipantView {
        study_oid: study_oid.to_owned(),
        site_oid: site_oid.map(str::to_owned),
        subject_key: p.subject_key.clone(),
        subject_oid: p.subject_oid.clone(),
        secondary_id: p.secondary_id.clone(),
        status: model::ParticipantStatus::from_stored(&p.status),
        participate_status: model::ParticipateStatus::from_stored(&p.participate_status),
        contact: contact.map(contact_view),
        create_time: p.create_time,
        update_time: p.update_time,
        etag: p.etag.clone(),
    }
}
