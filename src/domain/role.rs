//! Roles and their resolution (SPEC section 3), as one pure function.

use super::reason::Reason;

/// A role held by a user at a study or at one site of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    DataManager,
    DataSpecialist,
    DataEntryPerson,
    ClinicalResearchCoordinator,
    Investigator,
    Monitor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::DataManager,
        Role::DataSpecialist,
        Role::DataEntryPerson,
        Role::ClinicalResearchCoordinator,
        Role::Investigator,
        Role::Monitor,
        Role::Viewer,
    ];

    /// The name used in the catalog and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::DataManager => "data_manager",
            Role::DataSpecialist => "data_specialist",
            Role::DataEntryPerson => "data_entry_person",
            Role::ClinicalResearchCoordinator => "clinical_research_coordinator",
            Role::Investigator => "investigator",
            Role::Monitor => "monitor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether the role may add and update Participants and see their contact data.
    pub fn may_write(self) -> bool {
        !matches!(self, Role::Monitor | Role::Viewer)
    }
}

/// What the call wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// One of the caller's role assignments within the study of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `None` for a study-level role, else the site's OID.
    pub site_oid: Option<String>,
    pub role: Role,
}

/// Resolves the caller's effective role for a call.
///
/// `assignments` are the caller's active assignments within the study of the call;
/// `site_oid` is the site of a site-scoped call, `None` for a study-scoped one.
pub fn resolve_role(
    assignments: &[Assignment],
    site_oid: Option<&str>,
    access: Access,
) -> Result<Role, Reason> {
    let study_role = assignments
        .iter()
        .find(|a| a.site_oid.is_none())
        .map(|a| a.role);
    let role = match site_oid {
        Some(site) => assignments
            .iter()
            .find(|a| a.site_oid.as_deref() == Some(site))
            .map(|a| a.role)
            .or(study_role)
            .ok_or(Reason::NoRoleSetUp)?,
        None => match study_role {
            Some(role) => role,
            // Site-level users never act at the study level.
            None if !assignments.is_empty() => return Err(Reason::NoSufficientPrivileges),
            None => return Err(Reason::NoRoleSetUp),
        },
    };
    if access == Access::Write && !role.may_write() {
        return Err(Reason::NoSufficientPrivileges);
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_study(role: Role) -> Vec<Assignment> {
        vec![Assignment {
            site_oid: None,
            role,
        }]
    }

    fn at_site(site: &str, role: Role) -> Vec<Assignment> {
        vec![Assignment {
            site_oid: Some(site.to_owned()),
            role,
        }]
    }

    /// Every role, held at the study and at site A, against study-, site A- and site B-scoped
    /// calls, for reads and writes.
    #[test]
    fn resolution_table() {
        use Access::*;
        for role in Role::ALL {
            let writer = role.may_write();
            let write_denied = |r: Result<Role, Reason>| {
                if writer {
                    assert_eq!(r, Ok(role), "{role:?}");
                } else {
                    assert_eq!(r, Err(Reason::NoSufficientPrivileges), "{role:?}");
                }
            };
            // role at the study level
            let study = at_study(role);
            assert_eq!(resolve_role(&study, None, Read), Ok(role));
            write_denied(resolve_role(&study, None, Write));
            assert_eq!(resolve_role(&study, Some("A"), Read), Ok(role));
            write_denied(resolve_role(&study, Some("A"), Write));
            assert_eq!(resolve_role(&study, Some("B"), Read), Ok(role));
            write_denied(resolve_role(&study, Some("B"), Write));

            // role at site A only
            let site = at_site("A", role);
            for access in [Read, Write] {
                assert_eq!(
                    resolve_role(&site, None, access),
                    Err(Reason::NoSufficientPrivileges),
                    "{role:?} at a site calling study-scoped"
                );
                assert_eq!(
                    resolve_role(&site, Some("B"), access),
                    Err(Reason::NoRoleSetUp),
                    "{role:?} at site A calling for site B"
                );
            }
            assert_eq!(resolve_role(&site, Some("A"), Read), Ok(role));
            write_denied(resolve_role(&site, Some("A"), Write));
        }
    }

    #[test]
    fn no_assignment_is_no_role_set_up() {
        for access in [Access::Read, Access::Write] {
            assert_eq!(resolve_role(&[], None, access), Err(Reason::NoRoleSetUp));
            assert_eq!(
                resolve_role(&[], Some("A"), access),
                Err(Reason::NoRoleSetUp)
            );
        }
    }

    #[test]
    fn the_site_role_wins_over_the_study_role() {
        let both = vec![
            Assignment {
                site_oid: None,
                role: Role::DataManager,
            },
            Assignment {
                site_oid: Some("A".into()),
                role: Role::Monitor,
            },
        ];
        assert_eq!(
            resolve_role(&both, Some("A"), Access::Write),
            Err(Reason::NoSufficientPrivileges)
        );
        assert_eq!(
            resolve_role(&both, Some("B"), Access::Write),
            Ok(Role::DataManager)
        );
        assert_eq!(
            resolve_role(&both, None, Access::Write),
            Ok(Role::DataManager)
        );
    }
}
