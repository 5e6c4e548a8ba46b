//! Performance replication: a primary cluster streams its replicated key space (filtered
//! per secondary) to secondary clusters, which serve reads from it and keep their own
//! tokens and leases. See `docs/replication.md` and `../shared/REPLICATION.md`.

pub mod activation_key;
pub mod epoch;
pub mod manager;
pub mod merkle;
pub mod model;
pub mod primary;
pub mod protocol;
pub mod secondary;
pub mod state;

pub use manager::{Replication, ReplicationHandler};

#[cfg(test)]
mod tests;
