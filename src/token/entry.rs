//! One token's record, as stored (encrypted) under `sys/token/id/<salted id>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::rfc3339;

/// Vault's token types. Only service tokens are issued; batch tokens are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Service,
    Batch,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }
}

/// A token as the store knows it. `id` is the text the client presented and is never
/// serialized: storage holds only `salted_id`, the per-cluster HMAC of the short token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// The client-facing token (long form for service tokens); empty when the entry was
    /// found through its accessor.
    #[serde(skip)]
    pub id: String,
    /// HMAC-SHA256(salt, short token), hex: the storage key of this entry.
    pub salted_id: String,
    pub accessor: String,
    /// The parent's salted id; `None` for orphans (roots, logins, `create-orphan`).
    pub parent: Option<String>,
    /// Sorted, deduplicated, lowercase.
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Uses left; 0 means unlimited.
    pub num_uses: i64,
    pub creation_time: i64,
    /// The TTL at creation (`creation_ttl` in lookups); 0 means no expiry.
    pub ttl: i64,
    pub explicit_max_ttl: i64,
    /// The auth method's max TTL (`token_max_ttl`), capping renewals; 0 means the
    /// system maximum.
    pub max_ttl: i64,
    pub period: i64,
    /// The creation path (`auth/token/create`, `auth/userpass/login/bob`).
    pub path: String,
    pub entity_id: String,
    pub renewable: bool,
    pub role: String,
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// When the token stops being valid; `None` never (root tokens).
    pub expire_time: Option<i64>,
    pub last_renewal_time: Option<i64>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenEntry")
            .field("id", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("display_name", &self.display_name)
            .field("num_uses", &self.num_uses)
            .field("ttl", &self.ttl)
            .field("expire_time", &self.expire_time)
            .field("path", &self.path)
            .field("orphan", &self.orphan())
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    pub fn orphan(&self) -> bool {
        self.parent.is_none()
    }

    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|policy| policy == "root")
    }

    pub fn is_expired(&self, now_unix: i64) -> bool {
        self.expire_time.is_some_and(|expire| expire <= now_unix)
    }

    /// Seconds left; 0 for tokens that never expire.
    pub fn remaining_ttl(&self, now_unix: i64) -> i64 {
        self.expire_time
            .map_or(0, |expire| expire.saturating_sub(now_unix).max(0))
    }

    pub fn meta_json(&self) -> Option<Map<String, Value>> {
        if self.meta.is_empty() {
            return None;
        }
        Some(
            self.meta
                .iter()
                .map(|(key, value)| (key.clone(), Value::from(value.clone())))
                .collect(),
        )
    }

    /// The `data` of `auth/token/lookup*`, with Vault's keys.
    pub fn lookup_data(&self, now_unix: i64) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("accessor".into(), self.accessor.clone().into());
        data.insert("creation_time".into(), self.creation_time.into());
        data.insert("creation_ttl".into(), self.ttl.into());
        data.insert("display_name".into(), self.display_name.clone().into());
        data.insert("entity_id".into(), self.entity_id.clone().into());
        data.insert(
            "expire_time".into(),
            self.expire_time
                .map_or(Value::Null, |at| rfc3339(at).into()),
        );
        data.insert("explicit_max_ttl".into(), self.explicit_max_ttl.into());
        data.insert("id".into(), self.id.clone().into());
        data.insert("issue_time".into(), rfc3339(self.creation_time).into());
        data.insert(
            "meta".into(),
            self.meta_json().map_or(Value::Null, Value::Object),
        );
        data.insert("num_uses".into(), self.num_uses.into());
        data.insert("orphan".into(), self.orphan().into());
        data.insert("path".into(), self.path.clone().into());
        data.insert("policies".into(), self.policies.clone().into());
        data.insert("renewable".into(), self.renewable.into());
        data.insert("ttl".into(), self.remaining_ttl(now_unix).into());
        data.insert("type".into(), self.token_type.as_str().into());
        if self.period > 0 {
            data.insert("period".into(), self.period.into());
        }
        if !self.role.is_empty() {
            data.insert("role".into(), self.role.clone().into());
        }
        if let Some(renewed) = self.last_renewal_time {
            data.insert("last_renewal_time".into(), renewed.into());
            data.insert("last_renewal".into(), rfc3339(renewed).into());
        }
        data
    }
}
