//! The expiration manager: every token with a TTL and every leased secret has a lease
//! under `sys/expire/` (local to the cluster), and a periodic [`ExpirationManager::tick`]
//! revokes what has expired.
//!
//! In: registrations (logins, token creations, leased secrets), renewals and
//! revocations, and `tick(now)` from the server's clock. Out: revoked leases, returned
//! to the caller so the owning backend can be told. Tokens are revoked through the
//! [`TokenStore`](crate::token::TokenStore); when a token goes (for any reason), a
//! revocation hook removes the leases it owned.

pub mod handlers;
pub mod lease;
pub mod manager;

pub use lease::{LeaseEntry, LeaseError, LeaseKind};
pub use manager::ExpirationManager;
