//! Arca: a secrets server that speaks Vault's API, with performance replication, written
//! against one seam ([`env`]) so the same code runs on Tokio and in the madsim simulator.

pub mod audit;
pub mod barrier;
pub mod core;
pub mod env;
pub mod http;
pub mod logical;
pub mod seal;
pub mod server;
pub mod storage;
pub mod util;
