//! Rust client for the OpenClinica participant service
//! (`openclinica.participants.v1.ParticipantService`).
//!
//! - [`v1`]: the messages, enums and the tonic client generated from the service's protos;
//! - [`connect`] / [`BearerToken`]: a client that sends `authorization: Bearer <token>` with every
//!   call (the token may be a function, asked once per call) and a default deadline;
//! - [`ParticipantsError`]: a failed call decoded from its `google.rpc.Status` — the typed
//!   [`ErrorReason`], the OpenClinica `errorCode`, the ErrorInfo metadata, every field violation
//!   and the retry delay;
//! - [`connect_audit`] / [`AuditClient`]: the same for `AuditService` (the audit trail);
//! - [`ParticipantPages`] / [`AuditEventPages`] and [`list_all_participants`] /
//!   [`list_all_audit_events`]: every page of a list, following `next_page_token`;
//! - [`import_participants`] / [`ImportResults`]: streams rows to `ImportParticipants` and one
//!   [`ImportRowResult`] per row back, a refused row's error decoded as a [`ParticipantsError`].
//!
//! ```no_run
//! use participants_client::{ParticipantsError, v1};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = participants_client::connect("127.0.0.1:50051", "a JWT".to_owned()).await?;
//! let request = v1::GetParticipantRequest {
//!     scope: Some(v1::get_participant_request::Scope::Site(v1::SiteScope {
//!         study_oid: "S_JUNO(PROD)".into(),
//!         site_oid: "S_OHI0(TEST)".into(),
//!     })),
//!     subject_key: "OHIO-5".into(),
//! };
//! match client.get_participant(request).await {
//!     Ok(response) => println!("{}", response.into_inner().subject_oid),
//!     Err(status) => {
//!         let e = ParticipantsError::from(status);
//!         println!("{:?} {} {:?}", e.code, e.reason.as_str_name(), e.error_code());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use prost::Message as _;
use tonic::{
    Request, Status,
    codec::Streaming,
    codegen::{Bytes, tokio_stream::Stream},
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt;

/// The generated code of `openclinica.participants.v1`: messages, enums and
/// [`participant_service_client::ParticipantServiceClient`].
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("openclinica.participants.v1");
}

/// The `Stream` trait and its helpers (`tokio_stream::iter` makes the rows of
/// [`import_participants`] from an iterator), as tonic uses them: no dependency of your own needed.
pub use tonic::codegen::tokio_stream;
pub use v1::ErrorReason;
pub use v1::audit_service_client::AuditServiceClient;
pub use v1::participant_service_client::ParticipantServiceClient;

/// The `google.rpc.ErrorInfo` domain of every error the service sends.
pub const ERROR_DOMAIN: &str = "participants.openclinica.v1";

/// The deadline of a call that sets none itself (`Request::set_timeout` overrides it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The encoded `FileDescriptorSet` of the service's protos (with comments), for dynamic messages
/// and proto3 JSON through a reflection library.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/participants_client_descriptor.bin"
));

const REASON_PREFIX: &str = "ERROR_REASON_";

/// Where the bearer token of a call comes from; asked once per call, so a refreshed token is
/// used as soon as the source returns it. An empty token sends no authorization metadata.
pub trait TokenSource: Send + Sync + 'static {
    /// The token for the next call, or the status the call fails with instead.
    fn token(&self) -> Result<String, Status>;
}

impl TokenSource for String {
    fn token(&self) -> Result<String, Status> {
        Ok(self.clone())
    }
}

impl TokenSource for &'static str {
    fn token(&self) -> Result<String, Status> {
        Ok((*self).to_owned())
    }
}

impl<F> TokenSource for F
where
    F: Fn() -> Result<String, Status> + Send + Sync + 'static,
{
    fn token(&self) -> Result<String, Status> {
        self()
    }
}

/// A tonic interceptor that adds `authorization: Bearer <token>` to every call, and the
/// [`DEFAULT_TIMEOUT`] deadline to a call that has none (except an [`import_participants`]
/// stream, which a deadline would cut short).
#[derive(Clone)]
pub struct BearerToken {
    source: Arc<dyn TokenSource>,
    timeout: Option<Duration>,
}

impl BearerToken {
    /// An interceptor taking its token from `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self {
            source: Arc::new(source),
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Sets the deadline given to calls that set none (`None`: no deadline).
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself.
        f.debug_struct("BearerToken")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.source.token()?;
        if !token.is_empty() {
            let value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| {
                    Status::unauthenticated(
                        "the bearer token holds characters not allowed in metadata",
                    )
                })?;
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(timeout) = self.timeout
            && !request.metadata().contains_key("grpc-timeout")
            && request.extensions().get::<NoDefaultDeadline>().is_none()
        {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// The client [`connect`] returns: the generated client over a channel with [`BearerToken`].
pub type Client = ParticipantServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connects to `addr` (`host:port`, plaintext; or a full `http://` / `https://` URI — enable
/// one of tonic's `tls-*` features for https) and authenticates every call with `token`.
pub async fn connect(
    addr: &str,
    token: impl TokenSource,
) -> Result<Client, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let channel = Endpoint::from_shared(uri)?
        .connect_timeout(DEFAULT_TIMEOUT)
        .connect()
        .await?;
    Ok(with_channel(channel, token))
}

/// The generated client over your own channel, with [`BearerToken`].
pub fn with_channel(channel: Channel, token: impl TokenSource) -> Client {
    ParticipantServiceClient::with_interceptor(channel, BearerToken::new(token))
}

/// The `AuditService` client [`connect_audit`] returns: over a channel with [`BearerToken`].
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connects to `addr` as [`connect`] does, for `AuditService` (`ListAuditEvents`).
pub async fn connect_audit(
    addr: &str,
    token: impl TokenSource,
) -> Result<AuditClient, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let channel = Endpoint::from_shared(uri)?
        .connect_timeout(DEFAULT_TIMEOUT)
        .connect()
        .await?;
    Ok(audit_with_channel(channel, token))
}

/// The generated `AuditService` client over your own channel (it may be the one of a
/// [`Client`]: channels are cheap to clone), with [`BearerToken`].
pub fn audit_with_channel(channel: Channel, token: impl TokenSource) -> AuditClient {
    AuditServiceClient::with_interceptor(channel, BearerToken::new(token))
}

/// The pages of a `ListParticipants` query, one call per page, following `next_page_token`:
///
/// ```no_run
/// # async fn run(client: &mut participants_client::Client, request: participants_client::v1::ListParticipantsRequest) -> Result<(), tonic::Status> {
/// let mut pages = participants_client::ParticipantPages::new(client, request);
/// while let Some(page) = pages.next_page().await {
///     for participant in page? {
///         println!("{}", participant.subject_key);
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ParticipantPages<'a> {
    client: &'a mut Client,
    request: v1::ListParticipantsRequest,
    done: bool,
}

impl<'a> ParticipantPages<'a> {
    /// Starts at `request.page_token` (empty: the first page), `request.page_size` per call.
    pub fn new(client: &'a mut Client, request: v1::ListParticipantsRequest) -> Self {
        Self {
            client,
            request,
            done: false,
        }
    }

    /// The next page's Participants; `None` after the last page or after an error.
    pub async fn next_page(&mut self) -> Option<Result<Vec<v1::Participant>, Status>> {
        if self.done {
            return None;
        }
        match self.client.list_participants(self.request.clone()).await {
            Ok(response) => {
                let page = response.into_inner();
                self.done = page.next_page_token.is_empty();
                self.request.page_token = page.next_page_token;
                Some(Ok(page.participants))
            }
            Err(status) => {
                self.done = true;
                Some(Err(status))
            }
        }
    }
}

/// The pages of a `ListAuditEvents` query (oldest event first), as [`ParticipantPages`].
#[derive(Debug)]
pub struct AuditEventPages<'a> {
    client: &'a mut AuditClient,
    request: v1::ListAuditEventsRequest,
    done: bool,
}

impl<'a> AuditEventPages<'a> {
    /// Starts at `request.page_token` (empty: the first page), `request.page_size` per call.
    pub fn new(client: &'a mut AuditClient, request: v1::ListAuditEventsRequest) -> Self {
        Self {
            client,
            request,
            done: false,
        }
    }

    /// The next page's events; `None` after the last page or after an error.
    pub async fn next_page(&mut self) -> Option<Result<Vec<v1::AuditEvent>, Status>> {
        if self.done {
            return None;
        }
        match self.client.list_audit_events(self.request.clone()).await {
            Ok(response) => {
                let page = response.into_inner();
                self.done = page.next_page_token.is_empty();
                self.request.page_token = page.next_page_token;
                Some(Ok(page.events))
            }
            Err(status) => {
                self.done = true;
                Some(Err(status))
            }
        }
    }
}

/// Every Participant of a `ListParticipants` query, all pages collected (for long lists, walk
/// [`ParticipantPages`] instead, one page in memory at a time).
pub async fn list_all_participants(
    client: &mut Client,
    request: v1::ListParticipantsRequest,
) -> Result<Vec<v1::Participant>, Status> {
    let mut all = Vec::new();
    let mut pages = ParticipantPages::new(client, request);
    while let Some(page) = pages.next_page().await {
        all.extend(page?);
    }
    Ok(all)
}

/// Every audit event of a `ListAuditEvents` query, oldest first, all pages collected.
pub async fn list_all_audit_events(
    client: &mut AuditClient,
    request: v1::ListAuditEventsRequest,
) -> Result<Vec<v1::AuditEvent>, Status> {
    let mut all = Vec::new();
    let mut pages = AuditEventPages::new(client, request);
    while let Some(page) = pages.next_page().await {
        all.extend(page?);
    }
    Ok(all)
}

/// Marks a call that [`BearerToken`] must not give its default deadline: a long import.
#[derive(Debug, Clone, Copy)]
struct NoDefaultDeadline;

/// Streams `rows` to `ImportParticipants` and returns the stream of per-row answers, in the order
/// the server commits them (not necessarily the input order: see [`ImportRowResult::index`]):
///
/// ```no_run
/// # async fn run(client: &mut participants_client::Client, rows: Vec<participants_client::v1::UpsertParticipantRequest>) -> Result<(), tonic::Status> {
/// use participants_client::tokio_stream;
///
/// let mut results = participants_client::import_participants(client, tokio_stream::iter(rows)).await?;
/// while let Some(row) = results.next().await {
///     let row = row?; // Err: the whole stream failed (ParticipantsError::from decodes it)
///     match row.outcome {
///         Ok(response) => println!("{} {}", row.index, response.created),
///         Err(e) => println!("{} {} {:?}", row.index, e.reason_name, e.error_code()),
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// `rows` is any `Stream` (an iterator through `tokio_stream::iter`, a channel through the
/// tokio-stream crate's `wrappers::ReceiverStream`): the transport polls it for the next row only when
/// HTTP/2 flow control has room, so a large input is never read into memory. A refused row is an
/// answer with its [`ParticipantsError`], and the stream goes on; a failure of the whole stream
/// (no token, the server going away) ends it with an `Err` status, as the other calls return. Give every row a `request_id` so that
/// re-sending the input after such a failure writes nothing twice. The call gets no default
/// deadline (the server cuts a client that stays silent instead). Dropping the [`ImportResults`]
/// cancels the stream; rows the server had already committed stay written.
pub async fn import_participants<S>(client: &mut Client, rows: S) -> Result<ImportResults, Status>
where
    S: Stream<Item = v1::UpsertParticipantRequest> + Send + 'static,
{
    let mut request = Request::new(rows);
    request.extensions_mut().insert(NoDefaultDeadline);
    let response = client.import_participants(request).await?;
    Ok(ImportResults {
        inner: response.into_inner(),
    })
}

/// The answers of [`import_participants`], one [`ImportRowResult`] per row; also a `Stream`.
#[derive(Debug)]
pub struct ImportResults {
    inner: Streaming<v1::ImportResult>,
}

impl ImportResults {
    /// The next row's answer; `None` once every row is answered, `Some(Err(_))` when the whole
    /// stream failed (then `None`).
    pub async fn next(&mut self) -> Option<Result<ImportRowResult, Status>> {
        self.inner
            .message()
            .await
            .transpose()
            .map(|result| result.map(ImportRowResult::from))
    }
}

impl Stream for ImportResults {
    type Item = Result<ImportRowResult, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|result| result.map(ImportRowResult::from)))
    }
}

/// The answer for one row of [`import_participants`].
#[derive(Debug, Clone)]
pub struct ImportRowResult {
    /// The row's 0-based position in the input.
    pub index: i64,
    /// What `UpsertParticipant` would have answered: the response, or the same
    /// [`ParticipantsError`] a unary call gives.
    pub outcome: Result<v1::UpsertParticipantResponse, ParticipantsError>,
}

impl From<v1::ImportResult> for ImportRowResult {
    fn from(result: v1::ImportResult) -> Self {
        let outcome = match result.outcome {
            Some(v1::import_result::Outcome::Response(response)) => Ok(response),
            Some(v1::import_result::Outcome::Error(status)) => {
                Err(ParticipantsError::from_rpc_status(&status))
            }
            // An outcome of a newer server that this SDK does not know.
            None => Err(ParticipantsError::from_status(&Status::unknown(
                "the row's outcome is not known to this SDK",
            ))),
        };
        Self {
            index: result.index,
            outcome,
        }
    }
}

/// One broken validation rule: a `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request path, e.g. `contact.first_name` or `subject_key`.
    pub field: String,
    /// The typed reason; [`ErrorReason::Unspecified`] when unknown to this version.
    pub reason: ErrorReason,
    /// The reason as sent, e.g. `FIRST_NAME_TOO_LONG`.
    pub reason_name: String,
    /// A human-readable English description.
    pub description: String,
}

/// A failed call, decoded from its `google.rpc.Status`.
#[derive(Debug, Clone)]
pub struct ParticipantsError {
    /// The gRPC status code.
    pub code: tonic::Code,
    /// The status message (plain English, no personal data).
    pub message: String,
    /// `ErrorInfo.reason` as the generated enum; [`ErrorReason::Unspecified`] when absent or
    /// unknown to this version (a newer server), while [`Self::reason_name`] keeps the string.
    pub reason: ErrorReason,
    /// `ErrorInfo.reason` as sent, e.g. `FIRST_NAME_TOO_LONG`.
    pub reason_name: String,
    /// `ErrorInfo.domain` ([`ERROR_DOMAIN`]).
    pub domain: String,
    /// `ErrorInfo.metadata`: `errorCode`, plus `studyOid` / `siteOid` where known.
    pub metadata: BTreeMap<String, String>,
    /// Every broken validation rule (empty unless a validation error).
    pub field_violations: Vec<FieldViolation>,
    /// `google.rpc.RetryInfo`'s delay (`STORAGE_UNAVAILABLE`, `OVERLOADED`).
    pub retry_delay: Option<Duration>,
}

impl ParticipantsError {
    /// Decodes the details of `status`.
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        let (reason_name, domain, metadata) = match details.error_info() {
            Some(info) => (
                info.reason.clone(),
                info.domain.clone(),
                info.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => (String::new(), String::new(), BTreeMap::new()),
        };
        let field_violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        reason: reason_from_name(&v.reason),
                        reason_name: v.reason.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            reason: reason_from_name(&reason_name),
            reason_name,
            domain,
            metadata,
            field_violations,
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        }
    }

    /// Decodes a `google.rpc.Status` message, such as the error of an `ImportResult`, as a
    /// failed call's status is decoded.
    pub fn from_rpc_status(status: &tonic_types::pb::Status) -> Self {
        // The details travel as the encoded google.rpc.Status itself (`grpc-status-details-bin`).
        let details = Bytes::from(status.encode_to_vec());
        Self::from_status(&Status::with_details(
            tonic::Code::from(status.code),
            status.message.clone(),
            details,
        ))
    }

    /// The OpenClinica error code, e.g. `errorCode.firstNameTooLong`.
    pub fn error_code(&self) -> Option<&str> {
        self.metadata.get("errorCode").map(String::as_str)
    }
}

impl From<Status> for ParticipantsError {
    fn from(status: Status) -> Self {
        Self::from_status(&status)
    }
}

impl From<&Status> for ParticipantsError {
    fn from(status: &Status) -> Self {
        Self::from_status(status)
    }
}

impl fmt::Display for ParticipantsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if !self.reason_name.is_empty() {
            write!(f, " [{}]", self.reason_name)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParticipantsError {}

/// Maps a reason as sent (`FIRST_NAME_TOO_LONG`) to the generated enum; an unknown or empty
/// name gives [`ErrorReason::Unspecified`].
pub fn reason_from_name(name: &str) -> ErrorReason {
    if name.is_empty() {
        return ErrorReason::Unspecified;
    }
    ErrorReason::from_str_name(&format!("{REASON_PREFIX}{name}"))
        .unwrap_or(ErrorReason::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn decodes_reason_error_code_and_violations() {
        let mut details = ErrorDetails::with_error_info(
            "INVALID_EMAIL_ADDRESS",
            ERROR_DOMAIN,
            [(
                "errorCode".to_owned(),
                "errorCode.invalidEmailAddress".to_owned(),
            )],
        );
        details.set_bad_request(vec![tonic_types::FieldViolation {
            reason: "INVALID_EMAIL_ADDRESS".to_owned(),
            ..tonic_types::FieldViolation::new("contact.email_address", "not an email address")
        }]);
        let status =
            Status::with_error_details(tonic::Code::InvalidArgument, "invalid request", details);
        let e = ParticipantsError::from(status);
        assert_eq!(e.code, tonic::Code::InvalidArgument);
        assert_eq!(e.reason, ErrorReason::InvalidEmailAddress);
        assert_eq!(e.error_code(), Some("errorCode.invalidEmailAddress"));
        assert_eq!(e.domain, ERROR_DOMAIN);
        assert_eq!(e.field_violations.len(), 1);
        assert_eq!(
            e.field_violations[0].reason,
            ErrorReason::InvalidEmailAddress
        );
        assert_eq!(e.field_violations[0].field, "contact.email_address");
        assert_eq!(
            e.to_string(),
            "InvalidArgument: invalid request [INVALID_EMAIL_ADDRESS]"
        );
    }

    #[test]
    fn an_unknown_reason_keeps_its_name() {
        assert_eq!(
            reason_from_name("FROM_A_NEWER_SERVER"),
            ErrorReason::Unspecified
        );
        assert_eq!(reason_from_name(""), ErrorReason::Unspecified);
        assert_eq!(reason_from_name("UNSPECIFIED"), ErrorReason::Unspecified);
        let status = Status::with_error_details(
            tonic::Code::FailedPrecondition,
            "m",
            ErrorDetails::with_error_info("FROM_A_NEWER_SERVER", ERROR_DOMAIN, []),
        );
        let e = ParticipantsError::from(&status);
        assert_eq!(e.reason, ErrorReason::Unspecified);
        assert_eq!(e.reason_name, "FROM_A_NEWER_SERVER");
        assert_eq!(e.error_code(), None);
    }

    #[test]
    fn a_status_without_details_decodes_to_its_code() {
        let e = ParticipantsError::from(Status::unavailable("down"));
        assert_eq!(e.code, tonic::Code::Unavailable);
        assert_eq!(e.reason, ErrorReason::Unspecified);
        assert!(e.field_violations.is_empty());
        assert_eq!(e.to_string(), "Unavailable: down");
    }

    #[test]
    fn the_interceptor_adds_the_token_and_a_default_deadline() {
        let mut interceptor = BearerToken::new("t0k3n");
        let request = interceptor.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer t0k3n"
        );
        assert!(request.metadata().contains_key("grpc-timeout"));

        let mut own = Request::new(());
        own.set_timeout(Duration::from_millis(250));
        let request = interceptor.call(own).unwrap();
        assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "250000u");
    }

    #[test]
    fn an_empty_token_sends_no_authorization_and_a_function_is_asked_per_call() {
        let mut none = BearerToken::new(String::new()).with_default_timeout(None);
        let request = none.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(request.metadata().get("grpc-timeout").is_none());

        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let mut refreshing = BearerToken::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(format!("token-{n}"))
        });
        for expected in ["Bearer token-0", "Bearer token-1"] {
            let request = refreshing.call(Request::new(())).unwrap();
            assert_eq!(request.metadata().get("authorization").unwrap(), expected);
        }
    }

    #[test]
    fn a_token_that_is_not_valid_metadata_fails_without_echoing_it() {
        let mut interceptor = BearerToken::new("bad\ntoken-secret");
        let status = interceptor.call(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(!status.message().contains("secret"));
        assert!(!format!("{interceptor:?}").contains("secret"));
    }

    #[test]
    fn the_descriptor_set_names_the_service() {
        let needle = b"openclinica.participants.v1";
        assert!(
            FILE_DESCRIPTOR_SET
                .windows(needle.len())
                .any(|w| w == needle)
        );
    }
}
