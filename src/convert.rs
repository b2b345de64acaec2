//! Conversions between the generated protobuf types (`crate::pb`) and the service's model
//! (`crate::service::model`), kept beside the generated code so that the use cases never see
//! protobuf and the gRPC edge never sees a rule.

use chrono::{DateTime, Utc};

use crate::pb;
use crate::service::model::{
    Contact, GetInput, ListInput, ParticipantPage, ParticipantStatus, ParticipantView,
    ParticipateStatus, ScopeRef, UpsertInput, UpsertOutcome,
};

fn scope_ref(study: Option<&pb::StudyScope>, site: Option<&pb::SiteScope>) -> Option<ScopeRef> {
    match (study, site) {
        (Some(s), _) => Some(ScopeRef::study(&s.study_oid)),
        (None, Some(s)) => Some(ScopeRef::site(&s.study_oid, &s.site_oid)),
        (None, None) => None,
    }
}

impl From<pb::ParticipantContact> for Contact {
    fn from(c: pb::ParticipantContact) -> Self {
        Self {
            first_name: c.first_name,
            last_name: c.last_name,
            middle_name: c.middle_name,
            email_address: c.email_address,
            phone_number: c.phone_number,
            street_address1: c.street_address1,
            street_address2: c.street_address2,
            city: c.city,
            state: c.state,
            country: c.country,
            postal_code: c.postal_code,
            full_dob: c.full_dob,
            hospital_number: c.hospital_number,
        }
    }
}

impl From<Contact> for pb::ParticipantContact {
    fn from(c: Contact) -> Self {
        Self {
            first_name: c.first_name,
            last_name: c.last_name,
            middle_name: c.middle_name,
            email_address: c.email_address,
            phone_number: c.phone_number,
            street_address1: c.street_address1,
            street_address2: c.street_address2,
            city: c.city,
            state: c.state,
            country: c.country,
            postal_code: c.postal_code,
            full_dob: c.full_dob,
            hospital_number: c.hospital_number,
        }
    }
}

impl From<pb::UpsertParticipantRequest> for UpsertInput {
    fn from(r: pb::UpsertParticipantRequest) -> Self {
        use pb::upsert_participant_request::Scope;
        let scope = match &r.scope {
            Some(Scope::Study(s)) => scope_ref(Some(s), None),
            Some(Scope::Site(s)) => scope_ref(None, Some(s)),
            None => None,
        };
        Self {
            scope,
            subject_key: r.subject_key,
            secondary_id: r.secondary_id,
            contact: r.contact.map(Contact::from),
            register: r.register,
            request_id: r.request_id,
            validate_only: r.validate_only,
            etag: r.etag,
            reason_for_change: r.reason_for_change,
        }
    }
}

impl From<UpsertInput> for pb::UpsertParticipantRequest {
    fn from(i: UpsertInput) -> Self {
        use pb::upsert_participant_request::Scope;
        let scope = i.scope.map(|s| match s.site_oid {
            None => Scope::Study(pb::StudyScope {
                study_oid: s.study_oid,
            }),
            Some(site_oid) => Scope::Site(pb::SiteScope {
                study_oid: s.study_oid,
                site_oid,
            }),
        });
        Self {
            scope,
            subject_key: i.subject_key,
            secondary_id: i.secondary_id,
            contact: i.contact.map(pb::ParticipantContact::from),
            register: i.register,
            request_id: i.request_id,
            validate_only: i.validate_only,
            etag: i.etag,
            reason_for_change: i.reason_for_change,
        }
    }
}

impl From<pb::GetParticipantRequest> for GetInput {
    fn from(r: pb::GetParticipantRequest) -> Self {
        use pb::get_participant_request::Scope;
        let scope = match &r.scope {
            Some(Scope::Study(s)) => scope_ref(Some(s), None),
            Some(Scope::Site(s)) => scope_ref(None, Some(s)),
            None => None,
        };
        Self {
            scope,
            subject_key: r.subject_key,
        }
    }
}

impl From<pb::ListParticipantsRequest> for ListInput {
    fn from(r: pb::ListParticipantsRequest) -> Self {
        use pb::list_participants_request::Scope;
        let scope = match &r.scope {
            Some(Scope::Study(s)) => scope_ref(Some(s), None),
            Some(Scope::Site(s)) => scope_ref(None, Some(s)),
            None => None,
        };
        // UNSPECIFIED (or a number this version does not know) filters nothing.
        let status = r
            .status
            .and_then(|s| pb::ParticipantStatus::try_from(s).ok())
            .map(ParticipantStatus::from)
            .filter(|s| *s != ParticipantStatus::Unknown);
        Self {
            scope,
            page_size: r.page_size,
            page_token: r.page_token,
            status,
        }
    }
}

impl From<ParticipantPage> for pb::ListParticipantsResponse {
    fn from(p: ParticipantPage) -> Self {
        Self {
            participants: p.participants.into_iter().map(Into::into).collect(),
            next_page_token: p.next_page_token.unwrap_or_default(),
        }
    }
}

impl From<ParticipantStatus> for pb::ParticipantStatus {
    fn from(s: ParticipantStatus) -> Self {
        match s {
            ParticipantStatus::Available => Self::Available,
            ParticipantStatus::Signed => Self::Signed,
            ParticipantStatus::Removed => Self::Removed,
            ParticipantStatus::Unknown => Self::Unspecified,
        }
    }
}

impl From<pb::ParticipantStatus> for ParticipantStatus {
    fn from(s: pb::ParticipantStatus) -> Self {
        match s {
            pb::ParticipantStatus::Available => Self::Available,
            pb::ParticipantStatus::Signed => Self::Signed,
            pb::ParticipantStatus::Removed => Self::Removed,
            pb::ParticipantStatus::Unspecified => Self::Unknown,
        }
    }
}

impl From<ParticipateStatus> for pb::ParticipateStatus {
    fn from(s: ParticipateStatus) -> Self {
        match s {
            ParticipateStatus::None => Self::Unspecified,
            ParticipateStatus::Created => Self::Created,
            ParticipateStatus::Invited => Self::Invited,
            ParticipateStatus::Active => Self::Active,
            ParticipateStatus::Inactive => Self::Inactive,
        }
    }
}

impl From<pb::ParticipateStatus> for ParticipateStatus {
    fn from(s: pb::ParticipateStatus) -> Self {
        match s {
            pb::ParticipateStatus::Unspecified => Self::None,
            pb::ParticipateStatus::Created => Self::Created,
            pb::ParticipateStatus::Invited => Self::Invited,
            pb::ParticipateStatus::Active => Self::Active,
            pb::ParticipateStatus::Inactive => Self::Inactive,
        }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn from_timestamp(t: Option<prost_types::Timestamp>) -> Result<DateTime<Utc>, String> {
    let t = t.ok_or("a time is missing")?;
    let nanos = u32::try_from(t.nanos).map_err(|_| "a time has negative nanos")?;
    DateTime::from_timestamp(t.seconds, nanos).ok_or_else(|| "a time is out of range".to_owned())
}

impl From<ParticipantView> for pb::Participant {
    fn from(p: ParticipantView) -> Self {
        Self {
            study_oid: p.study_oid,
            site_oid: p.site_oid.unwrap_or_default(),
            subject_key: p.subject_key,
            subject_oid: p.subject_oid,
            secondary_id: p.secondary_id,
            status: pb::ParticipantStatus::from(p.status).into(),
            participate_status: pb::ParticipateStatus::from(p.participate_status).into(),
            contact: p.contact.map(pb::ParticipantContact::from),
            create_time: Some(timestamp(p.create_time)),
            update_time: Some(timestamp(p.update_time)),
            etag: p.etag,
        }
    }
}

impl TryFrom<pb::Participant> for ParticipantView {
    type Error = String;

    fn try_from(p: pb::Participant) -> Result<Self, Self::Error> {
        Ok(Self {
            status: p.status().into(),
            participate_status: p.participate_status().into(),
            study_oid: p.study_oid,
            site_oid: Some(p.site_oid).filter(|s| !s.is_empty()),
            subject_key: p.subject_key,
            subject_oid: p.subject_oid,
            secondary_id: p.secondary_id,
            contact: p.contact.map(Contact::from),
            create_time: from_timestamp(p.create_time)?,
            update_time: from_timestamp(p.update_time)?,
            etag: p.etag,
        })
    }
}

impl From<UpsertOutcome> for pb::UpsertParticipantResponse {
    fn from(o: UpsertOutcome) -> Self {
        Self {
            participant: Some(o.participant.into()),
            created: o.created,
            access_code: o.access_code.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::UpsertParticipantResponse> for UpsertOutcome {
    type Error = String;

    fn try_from(r: pb::UpsertParticipantResponse) -> Result<Self, Self::Error> {
        Ok(Self {
            participant: r
                .participant
                .ok_or("the participant is missing")?
                .try_into()?,
            created: r.created,
            access_code: Some(r.access_code).filter(|c| !c.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> UpsertOutcome {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap_or_default();
        UpsertOutcome {
            participant: ParticipantView {
                study_oid: "S_A".into(),
                site_oid: Some("S_B".into()),
                subject_key: "K-1".into(),
                subject_oid: "SS_K1".into(),
                secondary_id: Some(String::new()),
                status: ParticipantStatus::Available,
                participate_status: ParticipateStatus::Created,
                contact: Some(Contact {
                    first_name: Some("Ann".into()),
                    ..Contact::default()
                }),
                create_time: t,
                update_time: t,
                etag: "e".into(),
            },
            created: true,
            access_code: Some("ABC".into()),
        }
    }

    #[test]
    fn an_outcome_survives_the_round_trip_through_protobuf() {
        let back = UpsertOutcome::try_from(pb::UpsertParticipantResponse::from(outcome()));
        assert_eq!(back, Ok(outcome()));
    }

    #[test]
    fn an_input_survives_the_round_trip_through_protobuf() {
        let input = UpsertInput {
            scope: Some(ScopeRef::site("S_A", "S_B")),
            subject_key: "K".into(),
            secondary_id: None,
            contact: Some(Contact::default()),
            register: true,
            request_id: "r".into(),
            validate_only: false,
            etag: String::new(),
            reason_for_change: "why".into(),
        };
        let back = UpsertInput::from(pb::UpsertParticipantRequest::from(input.clone()));
        assert_eq!(back, input);
    }

    #[test]
    fn a_stored_answer_without_a_participant_is_refused() {
        let broken = pb::UpsertParticipantResponse::default();
        assert!(UpsertOutcome::try_from(broken).is_err());
    }
}
