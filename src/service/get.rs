//! GetParticipant: every role may read within its reach; contact data only for roles that may
//! write it (minimum necessary).

use super::{Caller, Participants, check_role, load_scope, participant_message, scope_oids};
use crate::domain::{Access, Reason, ServiceError, validate::normalize_subject_key};
use crate::pb;
use crate::store::{queries, to_service_error};

impl Participants {
    pub async fn get(
        &self,
        caller: &Caller,
        req: pb::GetParticipantRequest,
    ) -> Result<pb::Participant, ServiceError> {
        let conn = self.store.connection();
        let (study, site) = match &req.scope {
            Some(pb::get_participant_request::Scope::Study(s)) => (Some(s), None),
            Some(pb::get_participant_request::Scope::Site(s)) => (None, Some(s)),
            None => (None, None),
        };
        let (study_oid, site_oid) = scope_oids(study, site)?;
        let scope = load_scope(conn, study_oid, site_oid).await?;
        let role = check_role(conn, caller, &scope, Access::Read).await?;

        let not_found = || {
            scope.tag(ServiceError::rejected(
                Reason::ParticipantNotFound,
                "no participant has this ID within your reach",
            ))
        };
        let norm = normalize_subject_key(&req.subject_key);
        if norm.is_empty() {
            return Err(not_found());
        }
        let found = queries::participant_by_key(conn, scope.study.id, &norm)
            .await
            .map_err(to_service_error)?
            .ok_or_else(not_found)?;
        // A site-scoped call reaches that site's participants only.
        if let Some(site) = &scope.site
            && found.site_id != Some(site.id)
        {
            return Err(not_found());
        }
        // A site-scoped call already loaded the participant's site.
        let site_oid = match (found.site_id, &scope.site) {
            (None, _) => None,
            (Some(_), Some(site)) => Some(site.oid.clone()),
            (Some(id), None) => queries::site_by_id(conn, id)
                .await
                .map_err(to_service_error)?
                .map(|s| s.oid),
        };
        let contact = if role.may_write() && found.site_id.is_some() {
            match queries::contact_of(conn, found.id)
                .await
                .map_err(to_service_error)?
            {
                Some(stored) => Some(super::open_contact(&self.cipher, &stored)?),
                None => None,
            }
        } else {
            None
        };
        Ok(participant_message(
            &scope.study.oid,
            site_oid.as_deref(),
            &found,
            contact.as_ref(),
        ))
    }
}
