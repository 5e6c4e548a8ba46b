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
