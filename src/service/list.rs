//! ListParticipants (SPEC section 12): the Participants of a study or a site in id order, in
//! keyset pages behind tamper-proof tokens, with GetParticipant's role rules and contact masking.
//! Ids only grow, so a page never repeats or skips a Participant while others are added.

use std::collections::HashMap;

use super::{
    Caller, Participants, check_role, load_scope,
    model::{ListInput, ParticipantPage, ParticipantView},
    page_token::{Binding, PageTokens, page_size},
    participant_view, scope_oids,
};
use crate::domain::{Access, Reason, ServiceError};
use crate::store::{personal::Contacts, queries, to_service_error};

/// Page size when the caller names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page.
pub const MAX_PAGE_SIZE: u32 = 1000;

impl Participants {
    /// One page of Participants; abandoned (nothing to undo) when `deadline` passes.
    pub async fn list(
        &self,
        caller: &Caller,
        input: ListInput,
        deadline: tokio::time::Instant,
    ) -> Result<ParticipantPage, ServiceError> {
        super::read_until(deadline, self.read_page(caller, input)).await
    }

    async fn read_page(
        &self,
        caller: &Caller,
        input: ListInput,
    ) -> Result<ParticipantPage, ServiceError> {
        let conn = self.store.connection();
        let (study_oid, site_oid) = scope_oids(input.scope.as_ref())?;
        let catalog = self.catalog().await?;
        let scope = load_scope(&catalog, study_oid, site_oid)?;
        let role = check_role(&catalog, caller, &scope, Access::Read)?;
        let size = page_size(input.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|e| scope.tag(e))?;
        let status = match input.status {
            None => None,
            Some(s) => Some(s.as_stored().ok_or_else(|| {
                scope.tag(ServiceError::invalid(vec![
                    crate::domain::validate::Violation::new(
                        "status",
                        Reason::MalformedRequest,
                        "status must be AVAILABLE, SIGNED or REMOVED when given",
                    ),
                ]))
            })?),
        };

        // The token is bound to everything but the page size.
        let binding = || {
            Binding::new("participants")
                .part(&caller.user)
                .part(&scope.study.oid)
                .opt(scope.site_oid())
                .opt(status)
        };
        let tokens = PageTokens::new(&self.cipher);
        let after = match input.page_token.as_str() {
            "" => 0,
            token => tokens.open(token, binding()).map_err(|e| {
                scope.tag(ServiceError::rejected(
                    Reason::InvalidPageToken,
                    e.to_string(),
                ))
            })?,
        };
        let mut rows = queries::participants_page(
            conn,
            scope.study.id,
            scope.site.as_ref().map(|s| s.id),
            status,
            after,
            u64::from(size) + 1,
        )
        .await
        .map_err(to_service_error)?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => Some(tokens.issue(binding(), last.id)),
            _ => None,
        };

        // Contact data only for roles that may write it (minimum necessary), in one statement.
        let mut contacts = HashMap::new();
        if role.may_write() {
            let ids: Vec<i64> = rows
                .iter()
                .filter(|p| p.site_id.is_some())
                .map(|p| p.id)
                .collect();
            let opener = Contacts::new(&self.cipher);
            for stored in queries::contacts_of(conn, &ids)
                .await
                .map_err(to_service_error)?
            {
                contacts.insert(stored.participant_id, opener.open(&stored)?);
            }
        }
        let sites = catalog.sites_of_study(scope.study.id);
        let participants: Vec<ParticipantView> = rows
            .iter()
            .map(|p| {
                let site_oid = p
                    .site_id
                    .and_then(|id| sites.get(&id))
                    .map(|s| s.oid.as_str());
                participant_view(&scope.study.oid, site_oid, p, contacts.get(&p.id))
            })
            .collect();
        Ok(ParticipantPage {
            participants,
            next_page_token,
        })
    }
}
