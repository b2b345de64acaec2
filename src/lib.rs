//! The participant service: adds Participants to clinical studies, updates their contact data
//! and registers them for Participate, over gRPC.

pub mod admin;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod crypto;
pub mod csv_safe;
pub mod domain;
pub mod grpc;
pub mod import_cli;
pub mod rest;
pub mod service;
pub mod store;
pub mod tasks;
pub mod telemetry;

/// What the fuzz targets under `fuzz/` reach that is not otherwise public: the REST edge's
/// parsers of hostile input. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{Request, request::Parts};

    pub use crate::rest::route::Route;
    use crate::rest::{HttpConfig, body};
    use crate::service::model::{ListInput, ScopeRef, UpsertInput};

    /// The parts of a request for `target` (path and query) with `headers`; `None` when the
    /// HTTP library itself refuses them, as the server would never see them.
    pub fn parts(target: &str, headers: &[(&str, &[u8])]) -> Option<Parts> {
        let mut request = Request::builder().method("POST").uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Some(request.body(()).ok()?.into_parts().0)
    }

    /// The REST edge's reading of a POST (query, headers, JSON body); `None` when refused.
    pub async fn upsert_input(
        parts: &Parts,
        json: Vec<u8>,
        scope: ScopeRef,
    ) -> Option<UpsertInput> {
        let config = HttpConfig::from(&crate::grpc::server::ServerConfig::default());
        let deadline = tokio::time::Instant::now() + config.request_timeout;
        body::upsert_input(parts, json.into(), scope, &config, deadline)
            .await
            .ok()
    }

    /// The REST edge's reading of a GET of the collection; `None` when refused.
    pub fn list_input(parts: &Parts, scope: ScopeRef) -> Option<ListInput> {
        body::list_input(&parts.uri, scope).ok()
    }
}

/// Code generated from `proto/openclinica/participants/v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("openclinica.participants.v1");

    /// The encoded descriptors of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("participants_descriptor");
}
