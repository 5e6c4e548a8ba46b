//! What a caller gets back instead of a wrapped response: Vault's `wrap_info`.

use serde_json::{Value, json};

use crate::http::envelope;
use crate::logical::Response;

/// The form of the wrapping token handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrapFormat {
    /// The short token itself: `hvs.` and 24 base62 characters.
    Token,
    /// An ES512 JWT whose `jti` is the short token, signed by this cluster's wrapping
    /// key. `addr` is this cluster's API address, which a performance secondary reads
    /// to find the primary that can unwrap the token.
    Jwt { addr: String },
}

/// Vault's `wrap_info` fields for one wrapping token.
#[derive(Clone, PartialEq, Eq)]
pub struct WrapInfo {
    /// The wrapping token (short or JWT form). A bearer secret: never logged.
    pub token: String,
    pub accessor: String,
    pub ttl_seconds: i64,
    /// RFC 3339 UTC.
    pub creation_time: String,
    pub creation_path: String,
    /// The accessor of the token inside the wrapped response, or empty.
    pub wrapped_accessor: String,
    /// Operator-facing notes (a JWT minted without an API address).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for WrapInfo {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WrapInfo")
            .field("token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("creation_time", &self.creation_time)
            .field("creation_path", &self.creation_path)
            .field("wrapped_accessor", &self.wrapped_accessor)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl WrapInfo {
    /// The `wrap_info` object as Vault serializes it; `wrapped_accessor` is
    /// `omitempty` in Vault's `HTTPWrapInfo`, so it is left out when empty.
    pub fn to_value(&self) -> Value {
        let mut value = envelope::wrap_info(
            &self.token,
            &self.accessor,
            self.ttl_seconds,
            &self.creation_time,
            &self.creation_path,
            &self.wrapped_accessor,
        );
        if self.wrapped_accessor.is_empty()
            && let Some(object) = value.as_object_mut()
        {
            object.remove("wrapped_accessor");
        }
        value
    }

    /// The whole HTTP body of a wrapped response. Vault builds a fresh response that
    /// holds only `wrap_info` (`request_id` is empty, `data` and `auth` are null), so
    /// this is a raw body rather than a logical response for the envelope builder.
    pub fn into_response(self) -> Response {
        let warnings = if self.warnings.is_empty() {
            Value::Null
        } else {
            json!(self.warnings)
        };
        let body = json!({
            "request_id": "",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": Value::Null,
            "wrap_info": self.to_value(),
            "warnings": warnings,
            "auth": Value::Null,
            "mount_type": "",
        });
        Response {
            raw: Some(body),
            ..Response::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(wrapped_accessor: &str) -> WrapInfo {
        WrapInfo {
            token: "hvs.secretsecretsecretsecret".to_string(),
            accessor: "acc".to_string(),
            ttl_seconds: 60,
            creation_time: "2026-01-01T00:00:00Z".to_string(),
            creation_path: "sys/wrapping/wrap".to_string(),
            wrapped_accessor: wrapped_accessor.to_string(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", info(""));
        assert!(!shown.contains("hvs.secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn wrapped_accessor_is_omitted_when_empty_like_vault() {
        assert!(info("").to_value().get("wrapped_accessor").is_none());
        assert_eq!(info("inner").to_value()["wrapped_accessor"], "inner");
        let body = info("").into_response().raw.unwrap();
        assert_eq!(body["request_id"], "");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["wrap_info"]["ttl"], 60);
    }
}
