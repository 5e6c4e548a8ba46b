//! Vault's response envelope.

use serde_json::{Map, Value, json};

use crate::logical::{Auth, Response};

/// The standard envelope around a logical response. `sys/` responses also copy every
/// data key to the top level, as Vault's `HTTPSysInjector` does.
pub fn envelope(
    request_id: &str,
    response: &Response,
    mount_type: Option<&str>,
    is_sys: bool,
) -> Value {
    let (lease_id, lease_duration, renewable) = match &response.lease {
        Some(lease) => (
            lease.lease_id.clone(),
            lease.lease_duration,
            lease.renewable,
        ),
        None => (String::new(), 0, false),
    };
    let mut body = json!({
        "request_id": request_id,
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": response.data.clone().map(Value::Object).unwrap_or(Value::Null),
        "wrap_info": Value::Null,
        "warnings": if response.warnings.is_empty() { Value::Null } else { json!(response.warnings) },
        "auth": response.auth.as_ref().map(auth_value).unwrap_or(Value::Null),
        "mount_type": mount_type.unwrap_or(""),
    });
    if is_sys && let (Some(data), Some(object)) = (&response.data, body.as_object_mut()) {
        for (key, value) in data {
            object.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    body
}

pub fn auth_value(auth: &Auth) -> Value {
    serde_json::to_value(auth).unwrap_or(Value::Null)
}

/// Vault's `wrap_info` object.
#[allow(clippy::too_many_arguments)]
pub fn wrap_info(
    token: &str,
    accessor: &str,
    ttl_seconds: i64,
    creation_time: &str,
    creation_path: &str,
    wrapped_accessor: &str,
) -> Value {
    json!({
        "token": token,
        "accessor": accessor,
        "ttl": ttl_seconds,
        "creation_time": creation_time,
        "creation_path": creation_path,
        "wrapped_accessor": wrapped_accessor,
    })
}

/// A map with a single key, a common shape for small answers.
pub fn single(key: &str, value: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    map
}
