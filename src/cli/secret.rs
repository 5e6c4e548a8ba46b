//! Vault's response envelope as the Go client decodes it (`api.Secret`), and the ways
//! the CLI prints one: the `Key`/`Value` table, `-format=json`, and `-field=NAME`.
//!
//! Field order in these structs is the order Go's `encoding/json` writes, so
//! `-format=json` output matches Vault's byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::{
    go_quoted_list, go_time_string, go_value, human_duration, human_duration_value,
    key_value_table, looks_like_duration,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub lease_id: String,
    #[serde(default)]
    pub lease_duration: i64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<SecretWrapInfo>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretAuth {
    #[serde(default)]
    pub client_token: String,
    #[serde(default)]
    pub accessor: String,
    #[serde(default, deserialize_with = "null_as_empty_list")]
    pub policies: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty_list")]
    pub token_policies: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty_list")]
    pub identity_policies: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub lease_duration: i64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretWrapInfo {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub accessor: String,
    #[serde(default)]
    pub ttl: i64,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub creation_path: String,
    #[serde(default)]
    pub wrapped_accessor: String,
}

fn null_as_empty_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl Secret {
    /// Decode a response body; `None` when the body is empty or not an envelope.
    pub fn from_body(body: &Value) -> Option<Secret> {
        serde_json::from_value(body.clone()).ok()
    }

    pub fn warnings(&self) -> &[String] {
        self.warnings.as_deref().unwrap_or_default()
    }

    pub fn data_is_empty(&self) -> bool {
        self.data.as_ref().is_none_or(Map::is_empty)
    }

    /// The rows of Vault's `TableFormatter.OutputSecret`, in its order: lease, auth,
    /// wrap info, then the sorted data keys.
    pub fn table_rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut push = |key: &str, value: String| rows.push((key.to_string(), value));
        if self.lease_duration > 0 {
            if self.lease_id.is_empty() {
                push("refresh_interval", human_duration(self.lease_duration));
            } else {
                push("lease_id", self.lease_id.clone());
                push("lease_duration", human_duration(self.lease_duration));
                push("lease_renewable", self.renewable.to_string());
            }
        }
        if let Some(auth) = &self.auth {
            push("token", auth.client_token.clone());
            push("token_accessor", auth.accessor.clone());
            let duration = if auth.lease_duration == 0 {
                "∞".to_string()
            } else {
                human_duration(auth.lease_duration)
            };
            push("token_duration", duration);
            push("token_renewable", auth.renewable.to_string());
            push("token_policies", go_quoted_list(&auth.token_policies));
            push("identity_policies", go_quoted_list(&auth.identity_policies));
            push("policies", go_quoted_list(&auth.policies));
            for (key, value) in auth.metadata.iter().flatten() {
                push(&format!("token_meta_{key}"), go_value(value));
            }
        }
        if let Some(wrap) = &self.wrap_info {
            push("wrapping_token:", wrap.token.clone());
            push("wrapping_accessor:", wrap.accessor.clone());
            push("wrapping_token_ttl:", human_duration(wrap.ttl));
            // Go prints the decoded `time.Time` (`2018-05-09 06:10:13.4 +0000 UTC`).
            let creation_time =
                go_time_string(&wrap.creation_time).unwrap_or_else(|| wrap.creation_time.clone());
            push("wrapping_token_creation_time:", creation_time);
            push("wrapping_token_creation_path:", wrap.creation_path.clone());
            if !wrap.wrapped_accessor.is_empty() {
                push("wrapped_accessor:", wrap.wrapped_accessor.clone());
            }
        }
        for (key, value) in self.data.iter().flatten() {
            push(key, data_cell(key, value));
        }
        rows
    }

    /// The table Vault prints for this secret, or `None` when there is nothing to show
    /// (Vault then prints nothing at all).
    pub fn table(&self) -> Option<String> {
        let rows = self.table_rows();
        (!rows.is_empty()).then(|| key_value_table(&rows))
    }

    /// Vault's `PrintRawField` lookup: data first, then the auth and wrap-info names.
    pub fn field(&self, name: &str) -> Option<String> {
        if let Some(value) = self.data.as_ref().and_then(|data| data.get(name)) {
            return Some(go_value(value));
        }
        if let Some(auth) = &self.auth {
            let value = match name {
                "token" => Some(auth.client_token.clone()),
                "token_accessor" => Some(auth.accessor.clone()),
                "token_duration" => Some(human_duration(auth.lease_duration)),
                "token_renewable" => Some(auth.renewable.to_string()),
                "token_policies" => Some(go_quoted_list(&auth.token_policies)),
                "identity_policies" => Some(go_quoted_list(&auth.identity_policies)),
                "policies" => Some(go_quoted_list(&auth.policies)),
                _ => name
                    .strip_prefix("token_meta_")
                    .and_then(|key| auth.metadata.as_ref()?.get(key))
                    .map(go_value),
            };
            if value.is_some() {
                return value;
            }
        }
        if let Some(wrap) = &self.wrap_info {
            let value = match name {
                "wrapping_token" => Some(wrap.token.clone()),
                "wrapping_accessor" => Some(wrap.accessor.clone()),
                "wrapping_token_ttl" => Some(human_duration(wrap.ttl)),
                "wrapping_token_creation_time" => Some(wrap.creation_time.clone()),
                "wrapping_token_creation_path" => Some(wrap.creation_path.clone()),
                "wrapped_accessor" => Some(wrap.wrapped_accessor.clone()),
                _ => None,
            };
            if value.is_some() {
                return value;
            }
        }
        match name {
            "refresh_interval" | "lease_duration" if self.lease_duration > 0 => {
                Some(human_duration(self.lease_duration))
            }
            "lease_id" if !self.lease_id.is_empty() => Some(self.lease_id.clone()),
            "lease_renewable" if !self.lease_id.is_empty() => Some(self.renewable.to_string()),
            _ => None,
        }
    }
}

/// One data value as a table cell: durations for TTL-like keys, `%v` otherwise.
pub fn data_cell(key: &str, value: &Value) -> String {
    if looks_like_duration(key) {
        human_duration_value(value)
    } else {
        go_value(value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::format::go_json;

    fn root_login() -> Secret {
        Secret {
            auth: Some(SecretAuth {
                client_token: "hvs.aQrUNCbqnwq3t4tw5K6UcrWF".to_string(),
                accessor: "VzzI18zBxpMBWUo1e3yruLFe".to_string(),
                policies: vec!["root".to_string()],
                token_policies: vec!["root".to_string()],
                ..SecretAuth::default()
            }),
            ..Secret::default()
        }
    }

    #[test]
    fn root_token_table_matches_the_tutorial() {
        let expected = "\
Key                  Value
---                  -----
token                hvs.aQrUNCbqnwq3t4tw5K6UcrWF
token_accessor       VzzI18zBxpMBWUo1e3yruLFe
token_duration       ∞
token_renewable      false
token_policies       [\"root\"]
identity_policies    []
policies             [\"root\"]";
        assert_eq!(root_login().table().unwrap(), expected);
    }

    #[test]
    fn data_rows_are_sorted_with_durations_and_a_refresh_interval() {
        let secret = Secret::from_body(&json!({
            "lease_duration": 2764800,
            "data": {"zeta": "z", "token_ttl": 3600, "alpha": ["a", "b"], "nested": {"k": 1}},
            "warnings": null
        }))
        .unwrap();
        let expected = "\
Key                 Value
---                 -----
refresh_interval    768h
alpha               [a b]
nested              map[k:1]
token_ttl           1h
zeta                z";
        assert_eq!(secret.table().unwrap(), expected);
    }

    #[test]
    fn warning_only_secrets_have_no_table() {
        let secret = Secret::from_body(&json!({"data": null, "warnings": ["careful"]})).unwrap();
        assert_eq!(secret.table(), None);
        assert_eq!(secret.warnings(), ["careful".to_string()]);
    }

    #[test]
    fn json_output_keeps_go_field_order() {
        let secret = Secret::from_body(&json!({
            "request_id": "b62afabd-550f-5396-0ea3-e6c68c7799a8",
            "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"dr": {"mode": "disabled"}},
            "wrap_info": null, "warnings": null, "auth": null
        }))
        .unwrap();
        let expected = r#"{
  "request_id": "b62afabd-550f-5396-0ea3-e6c68c7799a8",
  "lease_id": "",
  "lease_duration": 0,
  "renewable": false,
  "data": {
    "dr": {
      "mode": "disabled"
    }
  },
  "warnings": null
}"#;
        assert_eq!(go_json(&secret), expected);
    }

    #[test]
    fn wrapped_response_table_matches_the_reference() {
        // Reference §1.6: `vault write sys/replication/performance/primary/secondary-token
        // id=...` without -format; the keys keep the colon Vault's format.go gives them.
        let secret = Secret::from_body(&json!({
            "request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": null,
            "wrap_info": {
                "token": "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9....",
                "accessor": "6ded4fb0-5e8c-2a37-1b3e-823673220348",
                "ttl": 1800,
                "creation_time": "2018-05-09T06:10:13.437421436Z",
                "creation_path": "sys/replication/performance/primary/secondary-token"
            },
            "warnings": null, "auth": null
        }))
        .unwrap();
        let expected = "\
Key                              Value
---                              -----
wrapping_token:                  eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9....
wrapping_accessor:               6ded4fb0-5e8c-2a37-1b3e-823673220348
wrapping_token_ttl:              30m
wrapping_token_creation_time:    2018-05-09 06:10:13.437421436 +0000 UTC
wrapping_token_creation_path:    sys/replication/performance/primary/secondary-token";
        assert_eq!(secret.table().unwrap(), expected);
    }

    #[test]
    fn fields_come_from_data_then_auth_then_wrap_info() {
        let mut secret = root_login();
        secret.data = Some(json!({"token": "from-data"}).as_object().unwrap().clone());
        assert_eq!(secret.field("token").as_deref(), Some("from-data"));
        assert_eq!(
            secret.field("token_accessor").as_deref(),
            Some("VzzI18zBxpMBWUo1e3yruLFe")
        );
        secret.wrap_info = Some(SecretWrapInfo {
            token: "eyJhbGciOiJFUzUxMiJ9".to_string(),
            ..SecretWrapInfo::default()
        });
        assert_eq!(
            secret.field("wrapping_token").as_deref(),
            Some("eyJhbGciOiJFUzUxMiJ9")
        );
        assert_eq!(secret.field("missing"), None);
    }
}
