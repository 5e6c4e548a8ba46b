//! The logical request model every backend (secrets engines, auth methods, `sys/`)
//! handles: Vault's operations, a JSON body, and a response the HTTP layer wraps in
//! Vault's envelope. Engines never see HTTP.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Vault's logical operations. `Create` and `Update` are both HTTP PUT/POST; the router
/// tells them apart by asking the backend whether the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    List,
    Create,
    Update,
    Patch,
    Delete,
}

impl Operation {
    /// Vault's name for the operation (`vault.route.<operation>.<mount>`, audit).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
        }
    }
}

/// A request as a backend sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: Operation,
    /// The path relative to the mount (e.g. `data/foo` for `secret/data/foo`).
    pub path: String,
    /// The mount's path with its trailing slash (`secret/`), for messages and keys.
    pub mount_point: String,
    /// The JSON body (or query parameters for reads and lists).
    pub data: Map<String, Value>,
    /// The caller's token (already checked by the router); `None` for unauthenticated
    /// paths such as logins.
    pub client_token: Option<String>,
    /// The accessor of the caller's token, for audit and token-bound storage.
    pub client_token_accessor: Option<String>,
    /// The caller's entity id, if any.
    pub entity_id: Option<String>,
    /// Seconds since the Unix epoch, from the seam's clock.
    pub now_unix: i64,
}

impl Request {
    pub fn new(
        operation: Operation,
        path: impl Into<String>,
        data: Map<String, Value>,
        now_unix: i64,
    ) -> Self {
        Self {
            operation,
            path: path.into(),
            mount_point: String::new(),
            data,
            client_token: None,
            client_token_accessor: None,
            entity_id: None,
            now_unix,
        }
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }
}

/// The `auth` block of a login or token-creation response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub identity_policies: Vec<String>,
    pub metadata: Option<Map<String, Value>>,
    pub lease_duration: i64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: i64,
}

/// A lease on a response (dynamic secrets, or KV v1 `ttl` hints).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lease {
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
}

/// What a backend answers. `Response::default()` with no data is Vault's 204.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub warnings: Vec<String>,
    pub auth: Option<Auth>,
    pub lease: Option<Lease>,
    /// A raw body instead of the envelope (`sys/init`, `sys/seal-status`, `sys/health`).
    pub raw: Option<Value>,
    /// An explicit status for raw bodies (e.g. 429 for a standby's `sys/health`).
    pub status: Option<u16>,
    /// A binary body instead of JSON (`sys/storage/raft/snapshot`).
    pub binary: Option<bytes::Bytes>,
    /// The binary body's type (`application/octet-stream` when not set).
    pub content_type: Option<&'static str>,
    /// A body streamed as it is produced (`sys/monitor`), sent as it is.
    pub stream: Option<crate::http::ResponseStream>,
}

impl Response {
    pub fn data(data: Map<String, Value>) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }

    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Self::data(map),
            other => {
                let mut map = Map::new();
                map.insert("value".to_string(), other);
                Self::data(map)
            }
        }
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// A list response: `{"keys": [...]}`. An empty list is Vault's 404.
    pub fn list(keys: Vec<String>) -> Result<Self, LogicalError> {
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        let mut map = Map::new();
        map.insert("keys".to_string(), Value::from(keys));
        Ok(Self::data(map))
    }
}

/// Refusals a backend returns; the HTTP layer maps each to Vault's status code and
/// error envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogicalError {
    /// 400, with Vault's message.
    #[error("{0}")]
    BadRequest(String),
    /// 403.
    #[error("permission denied")]
    PermissionDenied,
    /// 404 with an empty error list (a read of nothing).
    #[error("not found")]
    NotFound,
    /// 404 with a message (`no handler for route "..."`).
    #[error("{0}")]
    UnsupportedPath(String),
    /// 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 412.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 415 (a PATCH body that is not a JSON merge patch).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429.
    #[error("{0}")]
    TooManyRequests(String),
    /// 400: a write to a replicated key on a performance secondary (Vault's
    /// `ErrReadOnly`); the core forwards such a request to the primary.
    #[error("cannot write to readonly storage")]
    ReadOnly,
    /// 503.
    #[error("Vault is sealed")]
    Sealed,
    /// 503 with a message (standby without a leader, storage unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// 500: something that should not happen; the message is safe to show.
    #[error("{0}")]
    Internal(String),
}

impl LogicalError {
    pub fn status(&self) -> u16 {
        match self {
            LogicalError::BadRequest(_) | LogicalError::ReadOnly => 400,
            LogicalError::PermissionDenied => 403,
            LogicalError::NotFound | LogicalError::UnsupportedPath(_) => 404,
            LogicalError::UnsupportedOperation => 405,
            LogicalError::PreconditionFailed(_) => 412,
            LogicalError::UnsupportedMediaType(_) => 415,
            LogicalError::TooManyRequests(_) => 429,
            LogicalError::Sealed | LogicalError::Unavailable(_) => 503,
            LogicalError::Internal(_) => 500,
        }
    }

    /// The `errors` array of Vault's error envelope.
    pub fn messages(&self) -> Vec<String> {
        match self {
            LogicalError::NotFound => Vec::new(),
            other => vec![other.to_string()],
        }
    }
}

impl From<crate::barrier::BarrierError> for LogicalError {
    fn from(error: crate::barrier::BarrierError) -> Self {
        use crate::barrier::BarrierError;
        use crate::storage::StorageError;
        match error {
            BarrierError::Sealed => LogicalError::Sealed,
            BarrierError::Storage(StorageError::NotLeader { .. }) => {
                LogicalError::Unavailable("node is not the active node".to_string())
            }
            BarrierError::Storage(StorageError::ReadOnly) => LogicalError::ReadOnly,
            BarrierError::Storage(StorageError::InvalidKey(key)) => {
                LogicalError::BadRequest(format!("invalid path {key:?}"))
            }
            // A 500 as etcd's NOSPACE: not a 503, which clients retry elsewhere at once.
            BarrierError::Storage(full @ StorageError::Full(_)) => {
                LogicalError::Internal(full.to_string())
            }
            BarrierError::Storage(other) => LogicalError::Unavailable(other.to_string()),
            BarrierError::Corrupt { key, .. } => {
                LogicalError::Internal(format!("stored value at {key} is corrupt"))
            }
        }
    }
}

/// Read an optional field of a request body with a clear 400 on the wrong type.
pub fn field_str<'a>(
    data: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, LogicalError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(LogicalError::BadRequest(format!(
            "error converting input for field \"{field}\": expected a string"
        ))),
    }
}

/// Parse Vault's duration fields: integer seconds, `"30"`, or Go durations (`"1h30m"`,
/// `"768h"`, `"10s"`, `"500ms"` rounds down to seconds).
pub fn parse_duration_seconds(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .filter(|seconds| *seconds >= 0)
            .ok_or_else(|| format!("invalid duration {number}")),
        Value::String(text) => parse_duration_text(text),
        other => Err(format!("invalid duration {other}")),
    }
}

pub fn parse_duration_text(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return if seconds >= 0 {
            Ok(seconds)
        } else {
            Err(format!("invalid duration {text:?}"))
        };
    }
    let mut total_ms: i128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        if digits_end == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let number: f64 = rest[..digits_end]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ms: f64 = match &rest[..unit_end] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        rest = &rest[unit_end..];
        let part_ms = number * unit_ms;
        // Checked before converting: a float past the range would saturate, and adding
        // saturated parts would overflow (found by the http_request_path fuzz target).
        if !part_ms.is_finite() || part_ms > i64::MAX as f64 {
            return Err(format!("duration {text:?} is too large"));
        }
        total_ms += part_ms as i128;
        if total_ms > i64::MAX as i128 {
            return Err(format!("duration {text:?} is too large"));
        }
    }
    Ok((total_ms / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_vault() {
        assert_eq!(parse_duration_text("768h").unwrap(), 768 * 3600);
        assert_eq!(parse_duration_text("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_text("45").unwrap(), 45);
        assert_eq!(parse_duration_text("1500ms").unwrap(), 1);
        assert!(parse_duration_text("10x").is_err());
        assert!(parse_duration_text("-5").is_err());
        assert_eq!(parse_duration_seconds(&Value::from(30)).unwrap(), 30);
        // The fuzzer's input: a huge number of milliseconds must be refused, not overflow.
        assert!(parse_duration_text("4444m444444444444444444444444444444444444444h3").is_err());
    }
}
