//! The one mapping from a service error to `google.rpc.Status` with rich details.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorDetail, ErrorInfo, FieldViolation, RetryInfo, StatusExt};

use crate::domain::{Reason, ServiceError, reason::GrpcCode};

/// The `ErrorInfo.domain` of every error.
pub const ERROR_DOMAIN: &str = "participants.openclinica.v1";

pub fn grpc_code(code: GrpcCode) -> Code {
    match code {
        GrpcCode::InvalidArgument => Code::InvalidArgument,
        GrpcCode::NotFound => Code::NotFound,
        GrpcCode::AlreadyExists => Code::AlreadyExists,
        GrpcCode::PermissionDenied => Code::PermissionDenied,
        GrpcCode::FailedPrecondition => Code::FailedPrecondition,
        GrpcCode::Aborted => Code::Aborted,
        GrpcCode::Unauthenticated => Code::Unauthenticated,
        GrpcCode::Unavailable => Code::Unavailable,
        GrpcCode::ResourceExhausted => Code::ResourceExhausted,
        GrpcCode::DeadlineExceeded => Code::DeadlineExceeded,
        GrpcCode::Internal => Code::Internal,
    }
}

fn error_info(reason: Reason, study_oid: Option<String>, site_oid: Option<String>) -> ErrorInfo {
    let mut metadata = HashMap::from([("errorCode".to_owned(), reason.error_code().to_owned())]);
    if let Some(study) = study_oid {
        metadata.insert("studyOid".to_owned(), study);
    }
    if let Some(site) = site_oid {
        metadata.insert("siteOid".to_owned(), site);
    }
    ErrorInfo::new(reason.as_str(), ERROR_DOMAIN, metadata)
}

/// An error answer for a reason with no further detail (used by the auth layer).
pub fn simple_status(reason: Reason, message: &str) -> Status {
    Status::with_error_details_vec(
        grpc_code(reason.grpc_code()),
        message,
        [ErrorDetail::from(error_info(reason, None, None))],
    )
}

/// The answer to a call refused by admission control: try again after `retry_after`.
pub fn overloaded_status(retry_after: std::time::Duration) -> Status {
    Status::with_error_details_vec(
        grpc_code(Reason::ServerOverloaded.grpc_code()),
        "the server is at capacity; retry later",
        [
            ErrorDetail::from(error_info(Reason::ServerOverloaded, None, None)),
            RetryInfo::new(Some(retry_after)).into(),
        ],
    )
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Rejected {
                reason,
                message,
                violations,
                study_oid,
                site_oid,
            } => {
                let mut details = vec![ErrorDetail::from(error_info(reason, study_oid, site_oid))];
                if !violations.is_empty() {
                    let field_violations: Vec<FieldViolation> = violations
                        .into_iter()
                        .map(|v| FieldViolation {
                            field: v.field.to_owned(),
                            description: v.description,
                            reason: v.reason.as_str().to_owned(),
                            localized_message: None,
                        })
                        .collect();
                    details.push(BadRequest::new(field_violations).into());
                }
                Status::with_error_details_vec(grpc_code(reason.grpc_code()), message, details)
            }
            ServiceError::Unavailable { retry_after } => Status::with_error_details_vec(
                Code::Unavailable,
                "the database is unavailable; retry later",
                [
                    ErrorDetail::from(error_info(Reason::StorageUnavailable, None, None)),
                    RetryInfo::new(Some(retry_after)).into(),
                ],
            ),
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                simple_status(Reason::Internal, "internal error")
            }
        }
    }
}
