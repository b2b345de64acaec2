//! The ParticipantService handlers: thin — take the caller, call the use case, map the result.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::pb::{
    GetParticipantRequest, ImportResult, ListParticipantsRequest, ListParticipantsResponse,
    Participant, UpsertParticipantRequest, UpsertParticipantResponse,
    participant_service_server::ParticipantService,
};
use crate::service::{Caller, Participants};

pub struct ParticipantApi {
    participants: Participants,
    request_timeout: Duration,
}

impl ParticipantApi {
    /// `request_timeout` bounds every call; a client's shorter `grpc-timeout` bounds it more.
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

/// When a call must be answered: `request_timeout` from now, or the client's shorter
/// `grpc-timeout`.
pub(crate) fn call_deadline<T>(req: &Request<T>, request_timeout: Duration) -> Instant {
    let client = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    Instant::now() + client.map_or(request_timeout, |c| c.min(request_timeout))
}

/// Parses a `grpc-timeout` header: at most 8 digits and a unit (H, M, S, m, u, n).
pub(super) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(super) fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    // The auth interceptor puts the caller there; its absence is a wiring fault.
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("internal error"))
}

#[tonic::async_trait]
impl ParticipantService for ParticipantApi {
    async fn upsert_participant(
        &self,
        request: Request<UpsertParticipantRequest>,
    ) -> Result<Response<UpsertParticipantResponse>, Status> {
        let caller = caller(&request)?;
        crate::telemetry::trace::record_request_id(&request.get_ref().request_id);
        let deadline = self.deadline(&request);
        let response = self
            .participants
            .upsert(&caller, request.into_inner().into(), deadline)
            .await
            .map_err(|e| {
                tracing::info!(user = %caller.user, reason = %e.reason(), "upsert refused");
                Status::from(e)
            })?;
        tracing::info!(
            user = %caller.user,
            subject_oid = %response.participant.subject_oid,
            created = response.created,
            "upsert done"
        );
        Ok(Response::new(response.into()))
    }

    async fn get_participant(
        &self,
        request: Request<GetParticipantRequest>,
    ) -> Result<Response<Participant>, Status> {
        let caller = caller(&request)?;
        let deadline = self.deadline(&request);
        let participant = self
            .participants
            .get(&caller, request.into_inner().into(), deadline)
            .await
            .map_err(|e| {
                tracing::info!(user = %caller.user, reason = %e.reason(), "get refused");
                Status::from(e)
            })?;
        Ok(Response::new(participant.into()))
    }

    async fn list_participants(
        &self,
        request: Request<ListParticipantsRequest>,
    ) -> Result<Response<ListParticipantsResponse>, Status> {
        let caller = caller(&request)?;
        let deadline = self.deadline(&request);
        let page = self
            .participants
            .list(&caller, request.into_inner().into(), deadline)
            .await
            .map_err(|e| {
                tracing::info!(user = %caller.user, reason = %e.reason(), "list refused");
                Status::from(e)
            })?;
        Ok(Response::new(page.into()))
    }

    type ImportParticipantsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<ImportResult, Status>> + Send + 'static>,
    >;

    async fn import_participants(
        &self,
        _request: Request<tonic::Streaming<UpsertParticipantRequest>>,
    ) -> Result<Response<Self::ImportParticipantsStream>, Status> {
        Err(Status::unimplemented(
            "ImportParticipants is not available yet",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("1ü"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
