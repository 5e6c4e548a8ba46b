//! One lease as stored under `sys/expire/id/<lease id>`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::barrier::BarrierError;
use crate::logical::LogicalError;
use crate::token::{TokenError, rfc3339};

/// The longest lease id accepted (ids are creation paths plus a suffix).
pub const LEASE_ID_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// The lease of a token itself; its id ends in the token's salted id.
    Token,
    /// A leased secret, owned by the token that read it.
    Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub lease_id: String,
    pub kind: LeaseKind,
    /// The path the lease was created at (`auth/userpass/login/bob`, `secret/foo`).
    pub path: String,
    /// The owning token's salted id (for token leases: the token itself).
    pub token_salted_id: String,
    pub issue_time: i64,
    pub expire_time: i64,
    pub last_renewal_time: Option<i64>,
    /// The TTL at issue, the default increment of a renewal.
    pub ttl: i64,
    pub renewable: bool,
}

impl LeaseEntry {
    /// The `data` of `sys/leases/lookup`.
    pub fn lookup_data(&self, now_unix: i64) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("id".into(), self.lease_id.clone().into());
        data.insert("issue_time".into(), rfc3339(self.issue_time).into());
        data.insert("expire_time".into(), rfc3339(self.expire_time).into());
        data.insert(
            "last_renewal".into(),
            self.last_renewal_time
                .map_or(Value::Null, |at| rfc3339(at).into()),
        );
        data.insert("renewable".into(), self.renewable.into());
        data.insert(
            "ttl".into(),
            (self.expire_time.saturating_sub(now_unix).max(0)).into(),
        );
        data
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("{0}")]
    Invalid(String),
    #[error("lease not found")]
    NotFound,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Storage(#[from] BarrierError),
}

impl From<LeaseError> for LogicalError {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::Invalid(message) => LogicalError::BadRequest(message),
            LeaseError::NotFound => LogicalError::BadRequest("invalid lease".to_string()),
            LeaseError::Token(token) => token.into(),
            LeaseError::Storage(barrier) => barrier.into(),
        }
    }
}

/// Lease ids become storage keys: bounded, printable, no empty or `..` segments.
pub fn validate_lease_id(lease_id: &str) -> Result<(), LeaseError> {
    let valid = !lease_id.is_empty()
        && lease_id.len() <= LEASE_ID_BYTES_MAX
        && lease_id.bytes().all(|byte| byte.is_ascii_graphic())
        && lease_id
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if valid {
        Ok(())
    } else {
        Err(LeaseError::Invalid(format!(
            "invalid lease ID {lease_id:?}"
        )))
    }
}

/// Prefixes may end in `/` (a folder of leases) but are otherwise lease ids.
pub fn validate_lease_prefix(prefix: &str) -> Result<(), LeaseError> {
    validate_lease_id(prefix.strip_suffix('/').unwrap_or(prefix))
}
