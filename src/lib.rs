//! Arca: a secrets server that speaks Vault's API, with performance replication, written
//! against one seam ([`env`]) so the same code runs on Tokio and in the madsim simulator.

pub mod auth;
pub mod barrier;
pub mod env;
pub mod expiration;
pub mod identity;
pub mod logical;
pub mod server;
pub mod storage;
pub mod token;
