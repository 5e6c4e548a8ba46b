//! Audit devices, as Vault has them: every request and response is written as one
//! JSON line to every enabled device, with secrets replaced by `hmac-sha256:` hashes
//! under the device's salt.
//!
//! - [`entry`]: Vault's request and response entries, built from an [`AuditInput`].
//! - [`hash`]: the HMAC and the walk that hashes string values.
//! - [`broker`]: the enabled devices, their tables in storage, and the blocking rule.
//! - [`handlers`]: `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path`.
//!
//! Files are reached only through the seam's [`crate::env::LogFiles`].
//!
//! How the router uses it, as Vault's request handling does: fill an [`AuditInput`]
//! once the token and mount are known and call [`AuditBroker::log_request`] before
//! the backend runs; an error means no device could record the request, and the
//! request is refused with 500 `internal error` without running it. After the backend
//! answers, set `response` (or `error`) and call [`AuditBroker::log_response`]; an
//! error there also turns the answer into 500 `internal error`. `LogicalError::from`
//! an [`AuditError`] gives exactly that.

pub mod broker;
pub mod entry;
pub mod handlers;
pub mod hash;

pub use broker::{AuditBroker, AuditDevice, AuditError, EnableRequest, FileOptions};
pub use entry::{
    AuditAuth, AuditEntry, AuditInput, AuditResponse, AuditWrapInfo, PolicyInfo, PolicyResults,
};
pub use handlers::handle;
pub use hash::audit_hash;

#[cfg(test)]
mod tests;
