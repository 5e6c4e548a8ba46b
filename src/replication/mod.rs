//! Performance replication: the pure cores a primary and its secondaries share.

pub mod merkle;
