//! Arca: a secrets server that speaks Vault's API, with performance replication, written
//! against one seam ([`env`]) so the same code runs on Tokio and in the madsim simulator.

pub mod acl;
pub mod audit;
pub mod auth;
pub mod barrier;
pub mod buggify;
pub mod channel;
#[cfg(not(madsim))]
pub mod cli;
pub mod config;
pub mod core;
pub mod coverage;
pub mod engines;
pub mod env;
pub mod expiration;
pub mod hcl_layout;
pub mod http;
pub mod identity;
pub mod logical;
pub mod metrics;
pub mod policy;
pub mod raft;
pub mod replication;
pub mod seal;
pub mod seeded_bugs;
pub mod server;
pub mod storage;
pub mod token;
pub mod util;
pub mod wrapping;
