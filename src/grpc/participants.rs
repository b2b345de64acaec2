//! The ParticipantService handlers: thin — take the caller, call the use case, map the result.

use tonic::{Request, Response, Status};

use crate::pb::{
    GetParticipantRequest, Participant, UpsertParticipantRequest, UpsertParticipantResponse,
    participant_service_server::ParticipantService,
};
use crate::service::{Caller, Participants};

pub struct ParticipantApi {
    participants: Participants,
}

impl ParticipantApi {
    pub fn new(participants: Participants) -> Self {
        Self { participants }
    }
}

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
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
        let response = self
            .participants
            .upsert(&caller, request.into_inner())
            .await
            .map_err(|e| {
                tracing::info!(user = %caller.user, reason = %e.reason(), "upsert refused");
                Status::from(e)
            })?;
        tracing::info!(
            user = %caller.user,
            subject_oid = response.participant.as_ref().map(|p| p.subject_oid.as_str()).unwrap_or_default(),
            created = response.created,
            "upsert done"
        );
        Ok(Response::new(response))
    }

    async fn get_participant(
        &self,
        request: Request<GetParticipantRequest>,
    ) -> Result<Response<Participant>, Status> {
        let caller = caller(&request)?;
        let participant = self
            .participants
            .get(&caller, request.into_inner())
            .await
            .map_err(|e| {
                tracing::info!(user = %caller.user, reason = %e.reason(), "get refused");
                Status::from(e)
            })?;
        Ok(Response::new(participant))
    }
}
