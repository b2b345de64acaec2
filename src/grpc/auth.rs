//! The tonic interceptor that authenticates every ParticipantService call (`crate::auth` does
//! the verifying).

use std::sync::Arc;

use tonic::{Request, Status, service::Interceptor};

use super::status::simple_status;
use crate::auth::{TokenVerifier, UNAUTHENTICATED_MESSAGE, authenticate};
use crate::domain::Reason;

/// The tonic interceptor that authenticates every ParticipantService call.
#[derive(Clone)]
pub struct AuthInterceptor {
    verifier: Arc<dyn TokenVerifier>,
}

impl AuthInterceptor {
    pub fn new(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self { verifier }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let values = req.metadata().get_all("authorization").iter();
        match authenticate(self.verifier.as_ref(), values.map(|v| v.as_bytes())) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(e) => {
                // The client learns only that the token was not accepted.
                tracing::debug!(reason = %e, "unauthenticated call");
                Err(simple_status(
                    Reason::Unauthenticated,
                    UNAUTHENTICATED_MESSAGE,
                ))
            }
        }
    }
}
