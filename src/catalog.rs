//! The catalog (SPEC section 7): studies, sites and role assignments declared in TOML and
//! applied idempotently, in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;

use crate::domain::{
    Role,
    id::IdTemplate,
    validate::{OID_MAX, plausible_oid},
};
use crate::store::{
    self, Store,
    entity::{role_assignment, site, study},
};

/// The catalog shipped for `serve --demo`.
pub const DEMO_CATALOG: &str = include_str!("../catalog/demo.toml");

pub const STATUSES: [&str; 5] = ["available", "pending", "frozen", "locked", "removed"];
pub const ID_METHODS: [&str; 2] = ["manual", "system"];

/// A catalog that was refused or could not be applied. The message names the entry.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog: {0}")]
    Invalid(String),
    #[error("catalog cannot be read: {0}")]
    Unreadable(String),
    #[error("catalog cannot be applied: {0}")]
    Storage(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    study: Vec<RawStudy>,
    #[serde(default)]
    role: Vec<RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    oid: Option<String>,
    name: Option<String>,
    status: Option<String>,
    participant_id_method: Option<String>,
    participant_id_template: Option<String>,
    participate_enabled: Option<bool>,
    enrollment_cap: Option<i64>,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    oid: Option<String>,
    name: Option<String>,
    status: Option<String>,
    enrollment_cap: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    user: Option<String>,
    study: Option<String>,
    site: Option<String>,
    role: Option<String>,
}

/// A validated study entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudySpec {
    pub oid: String,
    pub name: String,
    pub status: String,
    pub participant_id_method: String,
    pub participant_id_template: Option<String>,
    pub participate_enabled: bool,
    pub enrollment_cap: Option<i64>,
    pub sites: Vec<SiteSpec>,
}

/// A validated site entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    pub oid: String,
    pub name: String,
    pub status: String,
    pub enrollment_cap: Option<i64>,
}

/// A validated role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub user: String,
    pub study_oid: String,
    pub site_oid: Option<String>,
    pub role: Role,
}

/// A catalog that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub studies: Vec<StudySpec>,
    pub roles: Vec<RoleSpec>,
}

fn invalid(msg: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(msg.into())
}

/// OIDs are printable, without white space or `<`/`>`; parentheses are allowed (`S_JUNO(PROD)`).
fn check_oid(oid: &str, what: &str) -> Result<(), CatalogError> {
    // The same rule the service applies to the OIDs of a request.
    if plausible_oid(oid) {
        return Ok(());
    }
    Err(invalid(format!(
        "{what}: the oid must have 1 to {OID_MAX} characters, without white space, '<', '>' or control or formatting characters"
    )))
}

fn check_status(status: Option<String>, what: &str) -> Result<String, CatalogError> {
    let status = status.unwrap_or_else(|| "available".to_owned());
    if !STATUSES.contains(&status.as_str()) {
        return Err(invalid(format!(
            "{what}: unknown status {status:?} (expected one of {})",
            STATUSES.join(", ")
        )));
    }
    Ok(status)
}

fn check_cap(cap: Option<i64>, what: &str) -> Result<Option<i64>, CatalogError> {
    match cap {
        Some(n) if n < 0 => Err(invalid(format!(
            "{what}: enrollment_cap must be zero or more"
        ))),
        other => Ok(other),
    }
}

impl Catalog {
    /// Parses and checks a catalog file's text.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if table.contains_key("site") {
            return Err(invalid(
                "found a [[site]] without a study: declare each site as [[study.site]] after the [[study]] it belongs to",
            ));
        }
        if let Some(toml::Value::Table(_)) = table.get("study") {
            return Err(invalid(
                "found a [[study.site]] without a study: declare each site after the [[study]] it belongs to",
            ));
        }
        let raw: RawCatalog = table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;

        let mut seen_oids = HashSet::new();
        let mut studies = Vec::with_capacity(raw.study.len());
        for (n, s) in raw.study.into_iter().enumerate() {
            let Some(oid) = s.oid.filter(|o| !o.is_empty()) else {
                let hint = match s.site.first().and_then(|site| site.oid.as_deref()) {
                    Some(site) => format!(" (site {site:?} is declared without a study)"),
                    None => String::new(),
                };
                return Err(invalid(format!("study entry #{} has no oid{hint}", n + 1)));
            };
            let what = format!("study {oid:?}");
            check_oid(&oid, &what)?;
            if !seen_oids.insert(oid.clone()) {
                return Err(invalid(format!("{what}: duplicate oid")));
            }
            let status = check_status(s.status, &what)?;
            let method = s
                .participant_id_method
                .unwrap_or_else(|| "manual".to_owned());
            if !ID_METHODS.contains(&method.as_str()) {
                return Err(invalid(format!(
                    "{what}: unknown participant_id_method {method:?} (expected manual or system)"
                )));
            }
            if let Some(t) = &s.participant_id_template {
                IdTemplate::parse(t).map_err(|e| invalid(format!("{what}: {e}")))?;
            }
            let enrollment_cap = check_cap(s.enrollment_cap, &what)?;
            let mut sites = Vec::with_capacity(s.site.len());
            for (m, site) in s.site.into_iter().enumerate() {
                let Some(site_oid) = site.oid.filter(|o| !o.is_empty()) else {
                    return Err(invalid(format!("{what}: site entry #{} has no oid", m + 1)));
                };
                let site_what = format!("site {site_oid:?} of study {oid:?}");
                check_oid(&site_oid, &site_what)?;
                if !seen_oids.insert(site_oid.clone()) {
                    return Err(invalid(format!("{site_what}: duplicate oid")));
                }
                sites.push(SiteSpec {
                    name: site.name.unwrap_or_else(|| site_oid.clone()),
                    status: check_status(site.status, &site_what)?,
                    enrollment_cap: check_cap(site.enrollment_cap, &site_what)?,
                    oid: site_oid,
                });
            }
            studies.push(StudySpec {
                name: s.name.unwrap_or_else(|| oid.clone()),
                oid,
                status,
                participant_id_method: method,
                participant_id_template: s.participant_id_template,
                participate_enabled: s.participate_enabled.unwrap_or(false),
                enrollment_cap,
                sites,
            });
        }

        let mut roles = Vec::with_capacity(raw.role.len());
        let mut seen_roles = HashSet::new();
        for (n, r) in raw.role.into_iter().enumerate() {
            let user = r
                .user
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| invalid(format!("role entry #{}: missing user", n + 1)))?;
            let what = format!("role entry #{} (user {user:?})", n + 1);
            let study_oid = r
                .study
                .ok_or_else(|| invalid(format!("{what}: missing study")))?;
            let Some(study) = studies.iter().find(|s| s.oid == study_oid) else {
                return Err(invalid(format!(
                    "{what}: study {study_oid:?} is not declared in this file"
                )));
            };
            if let Some(site) = &r.site
                && !study.sites.iter().any(|s| &s.oid == site)
            {
                return Err(invalid(format!(
                    "{what}: site {site:?} is not a site of study {study_oid:?}"
                )));
            }
            let role_name = r
                .role
                .ok_or_else(|| invalid(format!("{what}: missing role")))?;
            let role = Role::parse(&role_name).ok_or_else(|| {
                invalid(format!(
                    "{what}: unknown role {role_name:?} (expected one of {})",
                    Role::ALL.map(Role::as_str).join(", ")
                ))
            })?;
            if !seen_roles.insert((user.clone(), study_oid.clone(), r.site.clone())) {
                return Err(invalid(format!(
                    "{what}: the user already has a role at this {}",
                    if r.site.is_some() { "site" } else { "study" }
                )));
            }
            roles.push(RoleSpec {
                user,
                study_oid,
                site_oid: r.site,
                role,
            });
        }
        Ok(Self { studies, roles })
    }

    /// Reads and checks a catalog file.
    pub fn load(path: &std::path::Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CatalogError::Unreadable(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            CatalogError::Invalid(msg) => {
                CatalogError::Invalid(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }
}

/// What an apply changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub studies_written: usize,
    pub sites_written: usize,
    pub sites_removed: usize,
    pub roles_written: usize,
    pub roles_revoked: usize,
}

impl ApplyReport {
    pub fn is_noop(&self) -> bool {
        *self == ApplyReport::default()
    }
}

fn storage(e: sea_orm::DbErr) -> CatalogError {
    CatalogError::Storage(store::describe_db_err(&e))
}

/// Applies a catalog in one transaction. Applying the same catalog again changes nothing.
pub async fn apply(store: &Store, catalog: &Catalog) -> Result<ApplyReport, CatalogError> {
    let write = store.begin_write().await.map_err(storage)?;
    let tx = &write.tx;
    store::lock_schema(tx).await.map_err(storage)?;
    let mut report = ApplyReport::default();

    for spec in &catalog.studies {
        let existing = study::Entity::find()
            .filter(study::Column::Oid.eq(&spec.oid))
            .one(tx)
            .await
            .map_err(storage)?;
        let study_id = match existing {
            Some(row) => {
                let wanted = study::Model {
                    name: spec.name.clone(),
                    status: spec.status.clone(),
                    participant_id_method: spec.participant_id_method.clone(),
                    participant_id_template: spec.participant_id_template.clone(),
                    participate_enabled: spec.participate_enabled,
                    enrollment_cap: spec.enrollment_cap,
                    ..row.clone()
                };
                if wanted != row {
                    let mut active: study::ActiveModel = row.clone().into();
                    active.name = Set(wanted.name);
                    active.status = Set(wanted.status);
                    active.participant_id_method = Set(wanted.participant_id_method);
                    active.participant_id_template = Set(wanted.participant_id_template);
                    active.participate_enabled = Set(wanted.participate_enabled);
                    active.enrollment_cap = Set(wanted.enrollment_cap);
                    active.update(tx).await.map_err(storage)?;
                    report.studies_written += 1;
                }
                row.id
            }
            None => {
                let row = study::ActiveModel {
                    oid: Set(spec.oid.clone()),
                    name: Set(spec.name.clone()),
                    status: Set(spec.status.clone()),
                    participant_id_method: Set(spec.participant_id_method.clone()),
                    participant_id_template: Set(spec.participant_id_template.clone()),
                    participate_enabled: Set(spec.participate_enabled),
                    enrollment_cap: Set(spec.enrollment_cap),
                    next_seq: Set(1),
                    ..Default::default()
                }
                .insert(tx)
                .await
                .map_err(storage)?;
                report.studies_written += 1;
                row.id
            }
        };

        // Sites: write the listed ones, mark the others of this study removed.
        let mut site_ids: HashMap<String, i64> = HashMap::new();
        for site_spec in &spec.sites {
            let existing = site::Entity::find()
                .filter(site::Column::Oid.eq(&site_spec.oid))
                .one(tx)
                .await
                .map_err(storage)?;
            let id = match existing {
                Some(row) if row.study_id != study_id => {
                    let owner = study::Entity::find_by_id(row.study_id)
                        .one(tx)
                        .await
                        .map_err(storage)?
                        .map_or_else(|| row.study_id.to_string(), |s| s.oid);
                    return Err(invalid(format!(
                        "site {:?} of study {:?}: the oid already belongs to study {owner:?}",
                        site_spec.oid, spec.oid
                    )));
                }
                Some(row) => {
                    if row.name != site_spec.name
                        || row.status != site_spec.status
                        || row.enrollment_cap != site_spec.enrollment_cap
                    {
                        let mut active: site::ActiveModel = row.clone().into();
                        active.name = Set(site_spec.name.clone());
                        active.status = Set(site_spec.status.clone());
                        active.enrollment_cap = Set(site_spec.enrollment_cap);
                        active.update(tx).await.map_err(storage)?;
                        report.sites_written += 1;
                    }
                    row.id
                }
                None => {
                    let row = site::ActiveModel {
                        study_id: Set(study_id),
                        oid: Set(site_spec.oid.clone()),
                        name: Set(site_spec.name.clone()),
                        status: Set(site_spec.status.clone()),
                        enrollment_cap: Set(site_spec.enrollment_cap),
                        next_seq: Set(1),
                        ..Default::default()
                    }
                    .insert(tx)
                    .await
                    .map_err(storage)?;
                    report.sites_written += 1;
                    row.id
                }
            };
            site_ids.insert(site_spec.oid.clone(), id);
        }
        let unlisted = site::Entity::find()
            .filter(site::Column::StudyId.eq(study_id))
            .all(tx)
            .await
            .map_err(storage)?;
        for row in unlisted {
            if !site_ids.contains_key(&row.oid) && row.status != "removed" {
                let mut active: site::ActiveModel = row.into();
                active.status = Set("removed".to_owned());
                active.update(tx).await.map_err(storage)?;
                report.sites_removed += 1;
            }
        }

        // Roles: the file is the whole desired state of this study's assignments.
        let mut wanted: BTreeMap<(String, Option<i64>), Role> = BTreeMap::new();
        for r in catalog.roles.iter().filter(|r| r.study_oid == spec.oid) {
            let site_id = match &r.site_oid {
                Some(oid) => Some(site_ids.get(oid).copied().ok_or_else(|| {
                    invalid(format!("role of user {:?}: unknown site {oid:?}", r.user))
                })?),
                None => None,
            };
            wanted.insert((r.user.clone(), site_id), r.role);
        }
        let existing = role_assignment::Entity::find()
            .filter(role_assignment::Column::StudyId.eq(study_id))
            .all(tx)
            .await
            .map_err(storage)?;
        let mut present = HashSet::new();
        for row in existing {
            let key = (row.user_name.clone(), row.site_id);
            match wanted.get(&key) {
                Some(role) if present.insert(key) => {
                    if row.role != role.as_str() || !row.active {
                        let mut active: role_assignment::ActiveModel = row.into();
                        active.role = Set(role.as_str().to_owned());
                        active.active = Set(true);
                        active.update(tx).await.map_err(storage)?;
                        report.roles_written += 1;
                    }
                }
                _ => {
                    if row.active {
                        let mut active: role_assignment::ActiveModel = row.into();
                        active.active = Set(false);
                        active.update(tx).await.map_err(storage)?;
                        report.roles_revoked += 1;
                    }
                }
            }
        }
        for ((user, site_id), role) in wanted {
            if present.contains(&(user.clone(), site_id)) {
                continue;
            }
            role_assignment::ActiveModel {
                user_name: Set(user),
                study_id: Set(study_id),
                site_id: Set(site_id),
                role: Set(role.as_str().to_owned()),
                active: Set(true),
                ..Default::default()
            }
            .insert(tx)
            .await
            .map_err(storage)?;
            report.roles_written += 1;
        }
    }

    write.tx.commit().await.map_err(storage)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid() {
        let c = Catalog::parse(DEMO_CATALOG).unwrap();
        assert_eq!(c.studies.len(), 2);
        assert_eq!(c.studies[0].oid, "S_JUNO(PROD)");
        assert_eq!(c.studies[0].sites[0].oid, "S_OHI0(TEST)");
    }

    fn refused(text: &str) -> String {
        match Catalog::parse(text) {
            Err(CatalogError::Invalid(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn invalid_catalogs_name_the_entry() {
        let msg = refused("[[study]]\noid = \"S_A\"\nstatus = \"open\"\n");
        assert!(msg.contains("S_A") && msg.contains("\"open\""), "{msg}");

        let msg = refused(
            "[[study]]\noid = \"S_A\"\n[[role]]\nuser = \"u1\"\nstudy = \"S_A\"\nrole = \"boss\"\n",
        );
        assert!(msg.contains("u1") && msg.contains("\"boss\""), "{msg}");

        let msg = refused("[[study.site]]\noid = \"S_SITE\"\n");
        assert!(msg.contains("without a study"), "{msg}");

        let msg = refused("[[site]]\noid = \"S_SITE\"\n");
        assert!(msg.contains("without a study"), "{msg}");

        let msg = refused("[[study]]\noid = \"S_A\"\n[[study]]\noid = \"S_A\"\n");
        assert!(msg.contains("S_A") && msg.contains("duplicate"), "{msg}");

        let msg = refused(
            "[[study]]\noid = \"S_A\"\n  [[study.site]]\n  oid = \"X\"\n[[study]]\noid = \"S_B\"\n  [[study.site]]\n  oid = \"X\"\n",
        );
        assert!(msg.contains("\"X\"") && msg.contains("duplicate"), "{msg}");

        let msg = refused(
            "[[study]]\noid = \"S_A\"\n[[role]]\nuser = \"u\"\nstudy = \"S_A\"\nsite = \"S_NOPE\"\nrole = \"viewer\"\n",
        );
        assert!(msg.contains("S_NOPE"), "{msg}");

        let msg = refused("[[study]]\noid = \"S_A\"\nparticipant_id_template = \"{x}-{seq}\"\n");
        assert!(msg.contains("S_A") && msg.contains("{x}"), "{msg}");
    }
}
