//! The participant service: adds Participants to clinical studies, updates their contact data
//! and registers them for Participate, over gRPC.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod rest;
pub mod service;
pub mod store;
pub mod telemetry;

/// Code generated from `proto/openclinica/participants/v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("openclinica.participants.v1");

    /// The encoded descriptors of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("participants_descriptor");
}
