//! Transport: server wiring, authentication, handlers, and the error mapping.

pub mod auth;
pub mod participants;
pub mod server;
pub mod status;
