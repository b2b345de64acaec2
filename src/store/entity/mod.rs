//! SeaORM entities, one module per table.

pub mod audit_event;
pub mod change_reason;
pub mod idempotency_record;
pub mod participant;
pub mod participant_contact;
pub mod role_assignment;
pub mod site;
pub mod study;
