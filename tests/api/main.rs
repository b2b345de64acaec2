//! Black-box tests through the generated client over a real socket. One binary for all.

mod helpers;

mod at_rest;
mod audit;
mod audit_chain;
mod audit_read;
mod auth;
mod batching;
mod catalog;
mod characters;
mod concurrency;
mod errors;
mod get;
mod ids;
mod import;
mod list;
mod observability;
mod probes;
mod rest;
mod retries;
mod transport;
mod upsert;
mod validation;
