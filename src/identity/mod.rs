//! A minimal identity store: one entity per (auth mount accessor, login name) alias,
//! created at the first login and carried in the token as `entity_id`.
//!
//! Entities and aliases are replicated configuration: the caller gives a view below
//! `identity/` (never below `sys/token/`). Layout, relative to that view:
//!
//! | key | value |
//! |---|---|
//! | `entity/id/<uuid>` | [`Entity`] with its aliases |
//! | `alias/lookup/<mount accessor>/<hex of alias name>` | the alias's entity id |

pub mod entity;
pub mod store;

pub use entity::{Entity, EntityAlias};
pub use store::{IdentityError, IdentityStore, LoginAlias, OwnedLoginAlias, RemoteIdentity};
