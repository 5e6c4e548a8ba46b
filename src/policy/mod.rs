//! Named ACL policies: the store over the barrier ([`PolicyStore`]) and Vault's `sys/`
//! endpoints for them (`sys/policy`, `sys/policies/acl`, `sys/capabilities*`).

pub mod handlers;
pub mod store;

pub use handlers::{capabilities_for_paths, capabilities_response, handle};
pub use store::{PolicyEntry, PolicyStore, PolicyStoreError};
