//! The service's one error type. The transport maps it to `google.rpc.Status` exactly once.

use std::time::Duration;

use super::{
    reason::Reason,
    validate::{Violation, plausible_oid},
};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A rule of the contract refused the call. `message` is plain English without personal data.
    #[error("{message}")]
    Rejected {
        reason: Reason,
        message: String,
        violations: Vec<Violation>,
        study_oid: Option<String>,
        site_oid: Option<String>,
    },
    /// The database cannot be reached; the client may retry after `retry_after`.
    #[error("storage is unavailable")]
    Unavailable { retry_after: Duration },
    /// Anything unexpected. The detail goes to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    pub fn rejected(reason: Reason, message: impl Into<String>) -> Self {
        ServiceError::Rejected {
            reason,
            message: message.into(),
            violations: Vec::new(),
            study_oid: None,
            site_oid: None,
        }
    }

    /// A validation failure: violations sorted into table order, the first one is the reason.
    pub fn invalid(mut violations: Vec<Violation>) -> Self {
        super::validate::sort_violations(&mut violations);
        let reason = violations.first().map_or(Reason::Internal, |v| v.reason);
        let message = match violations.as_slice() {
            [one] => one.description.clone(),
            many => format!(
                "the request breaks {} rules; see the BadRequest details: {}",
                many.len(),
                many.iter()
                    .map(|v| v.description.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        ServiceError::Rejected {
            reason,
            message,
            violations,
            study_oid: None,
            site_oid: None,
        }
    }

    /// Adds the study and site OIDs to the error's metadata where known. An OID that no study or
    /// site could have (too long, hidden characters) is never echoed.
    pub fn in_scope(mut self, study: &str, site: Option<&str>) -> Self {
        if let ServiceError::Rejected {
            study_oid,
            site_oid,
            ..
        } = &mut self
        {
            if study_oid.is_none() && plausible_oid(study) {
                *study_oid = Some(study.to_owned());
            }
            if site_oid.is_none() {
                *site_oid = site.filter(|s| plausible_oid(s)).map(str::to_owned);
            }
        }
        self
    }

    /// The reason this error answers with.
    pub fn reason(&self) -> Reason {
        match self {
            ServiceError::Rejected { reason, .. } => *reason,
            ServiceError::Unavailable { .. } => Reason::StorageUnavailable,
            ServiceError::Internal(_) => Reason::Internal,
        }
    }
}
