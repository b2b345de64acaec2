//! Pure types and rules: no tonic, no sea_orm, no I/O.

pub mod audit;
pub mod error;
pub mod id;
pub mod reason;
pub mod role;
pub mod validate;

pub use error::ServiceError;
pub use reason::Reason;
pub use role::{Access, Assignment, Role};
