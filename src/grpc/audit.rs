//! The AuditService handler: converts the request into a domain query, calls the use case,
//! converts the views back. Nothing else.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::participants::{call_deadline, caller};
use crate::domain::{
    Reason, ServiceError,
    audit::{AuditEventView, AuditQuery, EventType},
};
use crate::pb::{
    self, AuditEvent, AuditEventType, ListAuditEventsRequest, ListAuditEventsResponse,
    audit_service_server::AuditService, list_audit_events_request::Scope,
};
use crate::service::Participants;

pub struct AuditApi {
    participants: Participants,
    request_timeout: Duration,
}

impl AuditApi {
    pub fn new(participants: Participants, request_timeout: Duration) -> Self {
        Self {
            participants,
            request_timeout,
        }
    }

    fn deadline<T>(&self, req: &Request<T>) -> Instant {
        call_deadline(req, self.request_timeout)
    }
}

fn time(
    t: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ServiceError> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| chrono::DateTime::from_timestamp(t.seconds, nanos))
            .ok_or_else(|| {
                ServiceError::rejected(
                    Reason::MalformedRequest,
                    format!("{field} is not a valid timestamp"),
                )
            })
    })
    .transpose()
}

/// The request as a domain query.
fn query(req: ListAuditEventsRequest) -> Result<AuditQuery, ServiceError> {
    let (study_oid, site_oid) = match req.scope {
        Some(Scope::Study(s)) => (s.study_oid, None),
        Some(Scope::Site(s)) => (s.study_oid, Some(s.site_oid)),
        None => {
            return Err(ServiceError::rejected(
                Reason::StudyNotExist,
                "scope is required: set either study or site",
            ));
        }
    };
    Ok(AuditQuery {
        study_oid,
        site_oid,
        subject_key: Some(req.subject_key).filter(|k| !k.is_empty()),
        start: time(req.start_time, "start_time")?,
        end: time(req.end_time, "end_time")?,
        page_size: req.page_size,
        page_token: Some(req.page_token).filter(|t| !t.is_empty()),
    })
}

fn event_type(t: Option<EventType>) -> AuditEventType {
    match t {
        Some(EventType::ParticipantCreated) => AuditEventType::ParticipantCreated,
        Some(EventType::FieldChanged) => AuditEventType::FieldChanged,
        Some(EventType::ParticipateRegistered) => AuditEventType::ParticipateRegistered,
        None => AuditEventType::Unspecified,
    }
}

fn message(v: AuditEventView) -> AuditEvent {
    AuditEvent {
        event_id: v.event_id,
        study_oid: v.study_oid,
        site_oid: v.site_oid.unwrap_or_default(),
        subject_key: v.subject_key,
        r#type: event_type(v.event_type) as i32,
        field: v.field.unwrap_or_default(),
        old_value: v.old_value,
        new_value: v.new_value,
        user: v.user,
        time: Some(prost_types::Timestamp {
            seconds: v.time.timestamp(),
            nanos: i32::try_from(v.time.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        request_id: v.request_id.unwrap_or_default(),
        reason_for_change: v.reason_for_change.unwrap_or_default(),
        hash: v.hash.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let caller = caller(&request)?;
        let deadline = self.deadline(&request);
        let result = match query(request.into_inner()) {
            Ok(q) => {
                self.participants
                    .list_audit_events(&caller, q, deadline)
                    .await
            }
            Err(e) => Err(e),
        };
        let page = result.map_err(|e| {
            tracing::info!(user = %caller.user, reason = %e.reason(), "audit read refused");
            Status::from(e)
        })?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.events.into_iter().map(message).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_its_proto_value() {
        for t in EventType::ALL {
            assert_eq!(
                event_type(Some(t)).as_str_name(),
                format!("AUDIT_EVENT_TYPE_{}", t.as_str())
            );
        }
    }

    #[test]
    fn bad_timestamps_are_refused() {
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(time(Some(bad), "start_time").is_err());
        assert_eq!(time(None, "start_time").unwrap(), None);
    }
}
