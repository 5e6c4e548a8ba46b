//! Auth methods other than tokens. Each turns credentials into a token through the
//! [`TokenStore`](crate::token::TokenStore) and registers its lease with the
//! [`ExpirationManager`](crate::expiration::ExpirationManager).

pub mod userpass;

pub use userpass::{PasswordCost, UserpassBackend, UserpassMount};
