//! Response wrapping: a response is stored behind a single-use token and the caller
//! gets only `wrap_info`; whoever holds the token unwraps it once.
//!
//! - [`jwt`]: ES512 compact JWS, for wrapping tokens that cross clusters.
//! - [`store`]: the tokens and their payloads below `sys/wrapping/` (local to the
//!   cluster), and the cluster's wrapping key.
//! - [`wrap_info`]: the `wrap_info` a wrapped request answers with.
//! - [`handlers`]: the `sys/wrapping/*` endpoints.

pub mod handlers;
pub mod jwt;
pub mod store;
pub mod wrap_info;

pub use store::{WrapLookup, WrappingStore};
pub use wrap_info::{WrapFormat, WrapInfo};
