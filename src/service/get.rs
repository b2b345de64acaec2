//! GetParticipant: every role may read within its reach; contact data only for roles that may
//! write it (minimum necessary).

use super::model::{GetInput, ParticipantView};
use super::{Caller, Participants, check_role, load_scope, participant_view, scope_oids};
use crate::domain::{Access, Reason, ServiceError, validate::SubjectKey};
use crate::store::{personal::Contacts, queries, to_service_error};

impl Participants {
    /// Reads one Participant; abandoned (nothing to undo) when `deadline` passes.
    pub async fn get(
        &self,
        caller: &Caller,
        req: GetInput,
        deadline: tokio::time::Instant,
    ) -> Result<ParticipantView, ServiceError> {
        super::read_until(deadline, self.read_one(caller, req)).await
    }

    async fn read_one(
        &self,
        caller: &Caller,
        req: GetInput,
    ) -> Result<ParticipantView, ServiceError> {
        let (study_oid, site_oid) = scope_oids(req.scope.as_ref())?;
        let catalog = self.catalog().await?;
        let scope = load_scope(&catalog, study_oid, site_oid)?;
        let role = check_role(&catalog, caller, &scope, Access::Read)?;

        let not_found = || {
            scope.tag(ServiceError::rejected(
                Reason::ParticipantNotFound,
                "no participant has this ID within your reach",
            ))
        };
        // A key that breaks the ID rules cannot name anyone (and is never sent to the database).
        let Ok(Some(key)) = SubjectKey::parse(&req.subject_key, "subject_key") else {
            return Err(not_found());
        };
        // A role that may see contact data reads it with the participant, in one statement;
        // the others never load it.
        // Gets that arrive together share one statement (see `reader`).
        let may_see_contact = role.may_write();
        let (found, stored_contact) = self
            .reader
            .participant(scope.study.id, key.normalized(), may_see_contact)
            .await?
            .ok_or_else(not_found)?;
        // A site-scoped call reaches that site's participants only.
        if let Some(site) = &scope.site
            && found.site_id != Some(site.id)
        {
            return Err(not_found());
        }
        // A site-scoped call already loaded the participant's site; the catalog has the others
        // (a site added since it was loaded is read from the database).
        let site_oid = match (found.site_id, &scope.site) {
            (None, _) => None,
            (Some(_), Some(site)) => Some(site.oid.clone()),
            (Some(id), None) => match catalog.site_oid(id) {
                Some(oid) => Some(oid.to_owned()),
                None => queries::site_by_id(self.store.connection(), id)
                    .await
                    .map_err(to_service_error)?
                    .map(|s| s.oid),
            },
        };
        let contact = match stored_contact {
            Some(stored) if found.site_id.is_some() => {
                Some(Contacts::new(&self.cipher).open(&stored)?)
            }
            _ => None,
        };
        Ok(participant_view(
            &scope.study.oid,
            site_oid.as_deref(),
            &found,
            contact.as_ref(),
        ))
    }
}
