//! ListAuditEvents (SPEC section 14): a study's or a site's trail, oldest first, in keyset
//! pages behind tamper-proof tokens; contact values opened only for roles that see contact
//! data in GetParticipant, masked for the others.

use super::{
    Caller, Participants, check_role, load_scope,
    page_token::{Binding, PageTokens, page_size},
};
use crate::domain::{
    Access, Reason, Role, ServiceError,
    audit::{
        AuditEventView, AuditPage, AuditQuery, DEFAULT_PAGE_SIZE, EventType, MASK, MAX_PAGE_SIZE,
    },
    validate::{ContactField, SubjectKey},
};
use crate::store::{
    audit_log::{self, StoredEvent, TrailFilter},
    legacy, queries, to_service_error,
};
use std::collections::HashSet;

/// Whether `role` may read the trail of a call of this scope: data managers, data specialists
/// and monitors at study or site scope; investigators and CRCs at site scope only.
fn may_read_trail(role: Role, site_scoped: bool) -> bool {
    match role {
        Role::DataManager | Role::DataSpecialist | Role::Monitor => true,
        Role::Investigator | Role::ClinicalResearchCoordinator => site_scoped,
        Role::DataEntryPerson | Role::Viewer => false,
    }
}

fn is_contact(field: Option<&str>) -> bool {
    field.is_some_and(|f| ContactField::ALL.iter().any(|c| c.name() == f))
}

impl Participants {
    /// One page of the trail; abandoned (nothing to undo) when `deadline` passes.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        query: AuditQuery,
        deadline: tokio::time::Instant,
    ) -> Result<AuditPage, ServiceError> {
        super::read_until(deadline, self.read_trail(caller, query)).await
    }

    async fn read_trail(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> Result<AuditPage, ServiceError> {
        let conn = self.store.connection();
        let catalog = self.catalog().await?;
        let scope = load_scope(&catalog, &query.study_oid, query.site_oid.as_deref())?;
        let role = check_role(&catalog, caller, &scope, Access::Read)?;
        if !may_read_trail(role, scope.site.is_some()) {
            return Err(scope.tag(ServiceError::rejected(
                Reason::NoSufficientPrivileges,
                "your role does not allow reading the audit trail here",
            )));
        }

        let not_found = || {
            scope.tag(ServiceError::rejected(
                Reason::ParticipantNotFound,
                "no participant has this ID within your reach",
            ))
        };
        let mut filter = TrailFilter {
            site_id: scope.site.as_ref().map(|s| s.id),
            participant_id: None,
            start: query.start,
            end: query.end,
        };
        let mut subject_norm = None;
        if let Some(raw) = query.subject_key.as_deref().filter(|k| !k.is_empty()) {
            let Ok(Some(key)) = SubjectKey::parse(raw, "subject_key") else {
                return Err(not_found());
            };
            let found = queries::participant_by_key(conn, scope.study.id, &key.normalized())
                .await
                .map_err(to_service_error)?
                .ok_or_else(not_found)?;
            if let Some(site) = &scope.site
                && found.site_id != Some(site.id)
            {
                return Err(not_found());
            }
            filter.participant_id = Some(found.id);
            subject_norm = Some(key.normalized());
        }

        // The token is bound to everything but the page size.
        let micros =
            |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_micros().to_string());
        let binding = || {
            Binding::new("audit_events")
                .part(&caller.user)
                .part(&scope.study.oid)
                .opt(scope.site_oid())
                .opt(subject_norm.as_deref())
                .opt(micros(query.start).as_deref())
                .opt(micros(query.end).as_deref())
        };
        let tokens = PageTokens::new(&self.cipher);
        let after = match query.page_token.as_deref().filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => tokens.open(token, binding()).map_err(|e| {
                scope.tag(ServiceError::rejected(
                    Reason::InvalidPageToken,
                    e.to_string(),
                ))
            })?,
        };
        let size = page_size(query.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|e| scope.tag(e))?;
        let mut rows =
            audit_log::page_filtered(conn, scope.study.id, filter, after, u64::from(size) + 1)
                .await
                .map_err(to_service_error)?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => Some(tokens.issue(binding(), last.id)),
            _ => None,
        };
        let opens = role.may_write();
        let clear = if opens {
            let clear = rows
                .iter()
                .filter(|e| {
                    is_contact(e.field_name.as_deref())
                        && (legacy::is_clear(e.old_value.as_deref())
                            || legacy::is_clear(e.new_value.as_deref()))
                })
                .map(|e| e.id);
            legacy::clear_legacy_events(conn, clear)
                .await
                .map_err(to_service_error)?
        } else {
            HashSet::new()
        };
        let events = rows
            .into_iter()
            .map(|e| self.view(&scope.study.oid, e, opens, &clear))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage {
            events,
            next_page_token,
        })
    }

    fn view(
        &self,
        study_oid: &str,
        e: StoredEvent,
        open_contact: bool,
        clear_legacy: &HashSet<i64>,
    ) -> Result<AuditEventView, ServiceError> {
        let (old_value, new_value) = if is_contact(e.field_name.as_deref()) {
            if open_contact {
                let context = legacy::audit_context(
                    e.participant_id,
                    e.field_name.as_deref().unwrap_or_default(),
                );
                let open = |v: Option<&str>| {
                    legacy::open_audit_value(&self.cipher, clear_legacy, e.id, &context, v).map_err(
                        |err| ServiceError::Internal(format!("audit event {}: {err}", e.id)),
                    )
                };
                (open(e.old_value.as_deref())?, open(e.new_value.as_deref())?)
            } else {
                let mask = |v: &Option<String>| v.as_ref().map(|_| MASK.to_owned());
                (mask(&e.old_value), mask(&e.new_value))
            }
        } else {
            (e.old_value.clone(), e.new_value.clone())
        };
        let reason_for_change = e.reason_text().map(str::to_owned);
        Ok(AuditEventView {
            event_id: e.id,
            study_oid: study_oid.to_owned(),
            site_oid: e.site_oid,
            subject_key: e.subject_key.unwrap_or_default(),
            event_type: EventType::parse(&e.event_type),
            field: e.field_name,
            old_value,
            new_value,
            user: e.actor,
            time: e.occurred_at,
            request_id: e.request_id,
            reason_for_change,
            hash: e.hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_readers() {
        for role in Role::ALL {
            let study = may_read_trail(role, false);
            let site = may_read_trail(role, true);
            match role {
                Role::DataManager | Role::DataSpecialist | Role::Monitor => {
                    assert!(study && site, "{role:?}")
                }
                Role::Investigator | Role::ClinicalResearchCoordinator => {
                    assert!(!study && site, "{role:?}")
                }
                Role::DataEntryPerson | Role::Viewer => assert!(!study && !site, "{role:?}"),
            }
        }
    }
}
