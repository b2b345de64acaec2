//! The catalog (studies, sites, role assignments) served from memory.
//!
//! Every call needs its study, site and the caller's roles; reading them from the database cost
//! four statements per call. A snapshot of the whole catalog is kept instead, and reloaded when
//! the `catalog_version` row moves: every change of a catalog row bumps it (triggers, so hand
//! edits count too), and each replica polls it every `poll` (1 s by default), so a `catalog
//! apply` from any replica or the CLI reaches every replica within about a second.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, Weak},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Statement};

use crate::domain::{Assignment, Role};
use crate::store::{
    Store,
    entity::{role_assignment, site, study},
};

/// One consistent copy of the catalog.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    studies: HashMap<String, study::Model>,
    sites: HashMap<String, site::Model>,
    /// Site OIDs by id.
    site_oids: HashMap<i64, String>,
    /// Active assignments by (user, study id), with site OIDs resolved.
    roles: HashMap<(String, i64), Vec<Assignment>>,
}

impl Snapshot {
    pub fn study(&self, oid: &str) -> Option<&study::Model> {
        self.studies.get(oid)
    }

    pub fn site(&self, oid: &str) -> Option<&site::Model> {
        self.sites.get(oid)
    }

    /// The OID of the site with this id, if it was in the catalog when it was loaded.
    pub fn site_oid(&self, id: i64) -> Option<&str> {
        self.site_oids.get(&id).map(String::as_str)
    }

    /// The sites of one study, by id.
    pub fn sites_of_study(&self, study_id: i64) -> HashMap<i64, &site::Model> {
        self.sites
            .values()
            .filter(|s| s.study_id == study_id)
            .map(|s| (s.id, s))
            .collect()
    }

    /// The user's active role assignments within one study.
    pub fn assignments(&self, user: &str, study_id: i64) -> &[Assignment] {
        self.roles
            .get(&(user.to_owned(), study_id))
            .map_or(&[], Vec::as_slice)
    }
}

/// The current snapshot, shared by every call of one process.
pub struct CatalogCache {
    store: Store,
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

async fn version(c: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let row = c
        .query_one_raw(Statement::from_string(
            c.get_database_backend(),
            "SELECT version FROM catalog_version WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("catalog_version".into()))?;
    row.try_get_by_index::<i64>(0)
        .map_err(|e| DbErr::Type(format!("{e:?}")))
}

impl CatalogCache {
    /// An empty cache: the first `snapshot` loads it.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            current: RwLock::new(Arc::new(Snapshot {
                version: i64::MIN,
                ..Snapshot::default()
            })),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    fn loaded(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The catalog as last loaded; loads it on first use.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, DbErr> {
        let snapshot = self.loaded();
        if snapshot.version != i64::MIN {
            return Ok(snapshot);
        }
        self.refresh().await
    }

    /// Reloads the catalog if its version moved (or it was never loaded).
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, DbErr> {
        let _one = self.reloading.lock().await;
        let db = self.store.connection();
        let now = version(db).await?;
        let current = self.loaded();
        if current.version == now {
            return Ok(current);
        }
        let fresh = Arc::new(load(db, now).await?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        if current.version != i64::MIN {
            tracing::info!(version = now, "catalog changed: reloaded");
        }
        Ok(fresh)
    }

    /// Polls the version every `every` until the cache is dropped or `tasks` stop.
    pub fn watch(self: &Arc<Self>, every: Duration, tasks: &crate::tasks::Background) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tasks.spawn_until_stopped(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                if let Err(e) = cache.refresh().await {
                    tracing::debug!(error = %e, "catalog version check failed; will retry");
                }
            }
        });
    }
}

/// Reads the whole catalog. The version is read first: a change racing with this load bumps
/// it again, so the next poll reloads.
async fn load(c: &impl ConnectionTrait, version: i64) -> Result<Snapshot, DbErr> {
    let studies = study::Entity::find().all(c).await?;
    let sites = site::Entity::find().all(c).await?;
    let assignments = role_assignment::Entity::find().all(c).await?;
    let site_oids: HashMap<i64, &str> = sites.iter().map(|s| (s.id, s.oid.as_str())).collect();
    let mut roles: HashMap<(String, i64), Vec<Assignment>> = HashMap::new();
    for row in assignments.iter().filter(|r| r.active) {
        let Some(role) = Role::parse(&row.role) else {
            continue;
        };
        let site_oid = match row.site_id {
            Some(id) => match site_oids.get(&id) {
                Some(oid) => Some((*oid).to_owned()),
                None => continue,
            },
            None => None,
        };
        roles
            .entry((row.user_name.clone(), row.study_id))
            .or_default()
            .push(Assignment { site_oid, role });
    }
    Ok(Snapshot {
        version,
        studies: studies.into_iter().map(|s| (s.oid.clone(), s)).collect(),
        site_oids: sites.iter().map(|s| (s.id, s.oid.clone())).collect(),
        sites: sites.into_iter().map(|s| (s.oid.clone(), s)).collect(),
        roles,
    })
}
