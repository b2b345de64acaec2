//! The ParticipantService handlers: thin — take the caller, call the use case, map the result.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::{sync::watch, time::Instant};
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::domain::{Reason, ServiceError};
use crate::pb::{
    GetParticipantRequest, ImportResult, ListParticipantsRequest, ListParticipantsResponse,
    Participant, UpsertParticipantRequest, UpsertParticipantResponse, import_result,
    participant_service_server::ParticipantService,
};
use crate::service::{
    Caller, Participants,
    import::{ImportConfig, ImportItem},
};

pub struct ParticipantApi {
    participants: Participants,
    request_timeout: Duration,
    import: ImportConfig,
    imports: std::sync::Arc<crate::service::import::ImportGate>,
    draining: Option<watch::Receiver<bool>>,
}

impl ParticipantApi {
    /// `request_timeout` bounds every call; a client's shorter `grpc-timeout` bounds it more.
    pub fn new(participants: Participants, request_timeout: Duration) -> Self {
        Self {
            participants,
            request_timeout,
            import: ImportConfig {
                row_timeout: request_timeout,
                ..ImportConfig::default()
            },
            imports: Default::default(),
            draining: None,
        }
    }

    /// Import settings (the row timeout is always `request_timeout`).
    pub fn with_import(mut self, import: ImportConfig) -> Self {
        self.import = ImportConfig {
            row_timeout: self.request_timeout,
            ..import
        };
        self
    }

    /// `draining` turns true when the server starts draining: imports stop reading then.
    pub fn with_draining(mut self, draining: watch::Receiver<bool>) -> Self {
        self.draining = Some(draining);
        self
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

/// The client's own `grpc-timeout` for a call, as a deadline from now.
fn client_deadline<T>(req: &Request<T>) -> Option<Instant> {
    req.metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| Instant::now() + d)
}

/// Answers to hold for a client that reads them slower than rows commit; beyond this the
/// import stops reading rows.
const IMPORT_ANSWERS_BUFFERED: usize = 64;

/// A row of the request stream that tonic could not take: the contract's error for it.
fn row_error(status: &Status) -> ServiceError {
    match status.code() {
        Code::OutOfRange | Code::ResourceExhausted => ServiceError::rejected(
            Reason::MessageTooLarge,
            "a row of the import is larger than the largest accepted message",
        ),
        Code::Cancelled => {
            ServiceError::rejected(Reason::MalformedRequest, "the call was cancelled")
        }
        _ => ServiceError::rejected(
            Reason::MalformedRequest,
            "a row of the import could not be decoded",
        ),
    }
}

/// A refused row's answer: the very `google.rpc.Status` a unary call carries in its details.
fn rpc_status(e: ServiceError) -> tonic_types::pb::Status {
    use prost::Message;
    let status = Status::from(e);
    tonic_types::pb::Status::decode(status.details()).unwrap_or_else(|_| tonic_types::pb::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    })
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

    /// Not bounded by `request_timeout` (each row has its own deadline); bounded by the
    /// client's `grpc-timeout` when it sets one, and by the idle timeout.
    async fn import_participants(
        &self,
        mut request: Request<tonic::Streaming<UpsertParticipantRequest>>,
    ) -> Result<Response<Self::ImportParticipantsStream>, Status> {
        let caller = caller(&request)?;
        // A place among the imports open now, before anything is read or held.
        let Some(place) = self.imports.enter(&caller.user, &self.import) else {
            tracing::info!(user = %caller.user, "import refused: too many imports open");
            return Err(crate::grpc::status::overloaded_status(Duration::from_secs(
                1,
            )));
        };
        let call_deadline = client_deadline(&request);
        // The call counts as in flight (for admission and the drain) until its last answer.
        let permit = request
            .extensions_mut()
            .remove::<crate::grpc::admission::CallPermit>();
        // And as handled on its connection, which is not closed hard while it runs.
        let in_progress = request
            .extensions_mut()
            .remove::<crate::grpc::request_deadline::CallInProgress>();
        let rows = request
            .into_inner()
            .map(|row| row.map(Into::into).map_err(|s| row_error(&s)));
        // One more place than answers held: the call's last word (see `import`).
        let (tx, rx) = tokio::sync::mpsc::channel(IMPORT_ANSWERS_BUFFERED + 1);
        let participants = self.participants.clone();
        let config = self.import;
        let draining = self.draining.clone();
        let drained = async move {
            match draining {
                Some(mut d) => {
                    let _ = d.wait_for(|d| *d).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        // The call's span lives as long as the import, and ends with it.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let started = std::time::Instant::now();
                let summary = participants
                    .import(&caller, rows, config, call_deadline, drained, tx)
                    .await;
                tracing::info!(
                    user = %caller.user,
                    rows = summary.rows,
                    written = summary.written,
                    refused = summary.refused,
                    took_ms = started.elapsed().as_millis() as u64,
                    "import done"
                );
                drop(permit);
                drop(place);
                drop(in_progress);
            }
            .instrument(span),
        );
        let answers = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| match item {
            ImportItem::Row { index, answer } => Ok(ImportResult {
                index,
                outcome: Some(match *answer {
                    Ok(response) => import_result::Outcome::Response(response.into()),
                    Err(e) => import_result::Outcome::Error(rpc_status(e)),
                }),
            }),
            ImportItem::End(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(answers)))
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
