//! Secrets engines: backends that own a mount's key space below a barrier [`View`] and
//! answer logical [`Request`]s.
//!
//! Each engine exposes the same two entry points, called by the router:
//! `handle(view, request)` (where `Ok(None)` is Vault's 204) and `exists(view, request)`
//! (so the router can tell an ACL `create` from an `update`). Engines never read the
//! clock or draw randomness: time comes from `request.now_unix`.
//!
//! [`View`]: crate::barrier::View
//! [`Request`]: crate::logical::Request

pub mod cubbyhole;
pub mod input;
pub mod kv_v1;
pub mod kv_v2;
pub mod merge_patch;
pub mod time_format;

#[cfg(test)]
mod robustness_tests;

#[cfg(test)]
pub(crate) mod test_support;
