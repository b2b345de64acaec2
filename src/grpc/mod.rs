//! Transport: server wiring, authentication, handlers, and the error mapping.

pub mod admission;
pub mod audit;
pub mod auth;
pub mod health;
pub mod incoming;
pub mod participants;
pub mod request_deadline;
pub mod server;
pub mod status;
