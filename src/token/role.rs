//! Token roles (`auth/token/roles/:name`): named templates for `create/:role`.
//!
//! Roles are configuration, so unlike tokens they replicate: the caller gives a view
//! outside `sys/token/` (Arca uses `sys/token-roles/`, a replicated prefix). Each role
//! is one JSON record under its name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::entry::TokenType;
use super::store::TokenError;
use crate::barrier::View;

/// The longest role name.
pub const ROLE_NAME_BYTES_MAX: usize = 128;
/// The most entries in `allowed_policies` or `disallowed_policies`.
pub const ROLE_POLICIES_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub token_period: i64,
    pub token_explicit_max_ttl: i64,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    pub token_type: String,
}

impl TokenRole {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            allowed_policies: Vec::new(),
            disallowed_policies: Vec::new(),
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            token_period: 0,
            token_explicit_max_ttl: 0,
            token_no_default_policy: false,
            token_num_uses: 0,
            token_type: "default-service".to_string(),
        }
    }

    /// Vault's read shape (legacy `period`/`explicit_max_ttl` mirror the token_ fields).
    pub fn to_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("allowed_entity_aliases".into(), Value::Null);
        data.insert(
            "allowed_policies".into(),
            self.allowed_policies.clone().into(),
        );
        data.insert("allowed_policies_glob".into(), Value::Array(Vec::new()));
        data.insert(
            "disallowed_policies".into(),
            self.disallowed_policies.clone().into(),
        );
        data.insert("disallowed_policies_glob".into(), Value::Array(Vec::new()));
        data.insert(
            "explicit_max_ttl".into(),
            self.token_explicit_max_ttl.into(),
        );
        data.insert("name".into(), self.name.clone().into());
        data.insert("orphan".into(), self.orphan.into());
        data.insert("path_suffix".into(), self.path_suffix.clone().into());
        data.insert("period".into(), self.token_period.into());
        data.insert("renewable".into(), self.renewable.into());
        data.insert("token_bound_cidrs".into(), Value::Array(Vec::new()));
        data.insert(
            "token_explicit_max_ttl".into(),
            self.token_explicit_max_ttl.into(),
        );
        data.insert(
            "token_no_default_policy".into(),
            self.token_no_default_policy.into(),
        );
        data.insert("token_num_uses".into(), self.token_num_uses.into());
        data.insert("token_period".into(), self.token_period.into());
        data.insert("token_type".into(), self.token_type.clone().into());
        data
    }

    pub fn token_type(&self) -> TokenType {
        if self.token_type == "batch" {
            TokenType::Batch
        } else {
            TokenType::Service
        }
    }
}

/// Role records in a replicated view.
#[derive(Debug, Clone)]
pub struct RoleStore {
    view: View,
}

impl RoleStore {
    pub fn new(view: View) -> Self {
        Self { view }
    }

    pub fn get(&self, name: &str) -> Result<Option<TokenRole>, TokenError> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        Ok(self.view.get_json(name)?)
    }

    pub fn list(&self) -> Result<Vec<String>, TokenError> {
        Ok(self.view.list("")?)
    }

    pub async fn delete(&self, name: &str) -> Result<(), TokenError> {
        validate_name(name)?;
        self.view.delete(name).await?;
        Ok(())
    }

    /// Create or update a role from a request body; fields not given keep their value.
    pub async fn write(
        &self,
        name: &str,
        body: &Map<String, Value>,
    ) -> Result<TokenRole, TokenError> {
        validate_name(name)?;
        let mut role = self.get(name)?.unwrap_or_else(|| TokenRole::new(name));
        let invalid = |message: String| TokenError::Invalid(message);
        for (field, value) in body {
            match field.as_str() {
                "allowed_policies" => role.allowed_policies = string_list(field, value)?,
                "disallowed_policies" => role.disallowed_policies = string_list(field, value)?,
                "orphan" => role.orphan = boolean(field, value)?,
                "renewable" => role.renewable = boolean(field, value)?,
                "path_suffix" => {
                    let suffix = value.as_str().unwrap_or_default();
                    if suffix.contains("..") || suffix.len() > ROLE_NAME_BYTES_MAX {
                        return Err(invalid("invalid path_suffix".to_string()));
                    }
                    role.path_suffix = suffix.to_string();
                }
                "token_period" | "period" => role.token_period = duration(field, value)?,
                "token_explicit_max_ttl" | "explicit_max_ttl" => {
                    role.token_explicit_max_ttl = duration(field, value)?
                }
                "token_no_default_policy" => role.token_no_default_policy = boolean(field, value)?,
                "token_num_uses" => {
                    role.token_num_uses =
                        value.as_i64().filter(|uses| *uses >= 0).ok_or_else(|| {
                            invalid("token_num_uses must be a non-negative integer".into())
                        })?
                }
                "token_type" => {
                    let kind = value.as_str().unwrap_or_default();
                    match kind {
                        "service" | "default-service" | "default" => {
                            role.token_type = kind.to_string()
                        }
                        "batch" | "default-batch" => {
                            return Err(invalid(
                                "batch tokens are not supported by this server".into(),
                            ));
                        }
                        _ => return Err(invalid(format!("invalid 'token_type' value {kind:?}"))),
                    }
                }
                _ => {}
            }
        }
        self.view.put_json(name, &role).await?;
        Ok(role)
    }
}

fn validate_name(name: &str) -> Result<(), TokenError> {
    if name.is_empty()
        || name.len() > ROLE_NAME_BYTES_MAX
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
        || name.starts_with('.')
    {
        return Err(TokenError::Invalid(format!("invalid role name {name:?}")));
    }
    Ok(())
}

/// A comma-separated string or an array of strings, bounded.
pub fn string_list(field: &str, value: &Value) -> Result<Vec<String>, TokenError> {
    let items: Vec<String> = match value {
        Value::Null => Vec::new(),
        Value::String(text) => text
            .split(',')
            .map(|item| item.trim().to_string())
            .filter(|item| !item.is_empty())
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|text| text.trim().to_string())
                    .ok_or_else(|| {
                        TokenError::Invalid(format!("{field} must be a list of strings"))
                    })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(TokenError::Invalid(format!(
                "{field} must be a string or a list of strings"
            )));
        }
    };
    if items.len() > ROLE_POLICIES_MAX {
        return Err(TokenError::Invalid(format!(
            "{field} may hold at most {ROLE_POLICIES_MAX} entries"
        )));
    }
    Ok(items)
}

pub fn boolean(field: &str, value: &Value) -> Result<bool, TokenError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        // Vault decodes body booleans weakly: an empty string is false.
        Value::String(text) if text.is_empty() => Ok(false),
        Value::String(text) => crate::util::parse_go_bool(text)
            .ok_or_else(|| TokenError::Invalid(format!("{field} must be a boolean"))),
        _ => Err(TokenError::Invalid(format!("{field} must be a boolean"))),
    }
}

pub fn duration(field: &str, value: &Value) -> Result<i64, TokenError> {
    crate::logical::parse_duration_seconds(value)
        .map_err(|reason| TokenError::Invalid(format!("invalid {field}: {reason}")))
}
