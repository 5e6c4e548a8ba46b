//! Decoding request fields and user paths at the engine boundary, with Vault's weak
//! typing (a query parameter `version=2` arrives as the string `"2"`) and Vault's
//! messages, so handlers work on checked values.

use serde_json::{Map, Value};

use crate::logical::{LogicalError, parse_duration_seconds};

/// The longest user path an engine accepts, in bytes. Storage keys are capped at
/// `storage::KEY_BYTES_MAX` (4096); this leaves room for the mount and engine prefixes.
pub const PATH_BYTES_MAX: usize = 2048;

fn conversion_error(field: &str, detail: impl std::fmt::Display) -> LogicalError {
    LogicalError::BadRequest(format!(
        "error converting input for field \"{field}\": {detail}"
    ))
}

/// Check a user path that names an entry: no empty, `.` or `..` segments (which would
/// alias or escape other entries), no NUL, bounded length. Returns it unchanged.
pub fn entry_path(path: &str) -> Result<&str, LogicalError> {
    if path.is_empty() {
        return Err(LogicalError::BadRequest("missing path".to_string()));
    }
    folder_path(path)?;
    if path.ends_with('/') {
        return Err(LogicalError::BadRequest(format!(
            "invalid path {path:?}: a secret path must not end with '/'"
        )));
    }
    Ok(path)
}

/// Check a folder path for listing: empty (the root) or segments as in [`entry_path`],
/// optionally ending with `/`. Returns the storage prefix: empty, or ending with `/`.
pub fn folder_path(path: &str) -> Result<String, LogicalError> {
    if path.len() > PATH_BYTES_MAX {
        return Err(LogicalError::BadRequest(format!(
            "path is {} bytes long, at most {PATH_BYTES_MAX} are allowed",
            path.len()
        )));
    }
    if path.is_empty() {
        return Ok(String::new());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let bad_segment = trimmed
        .split('/')
        .find(|segment| segment.is_empty() || *segment == "." || *segment == "..");
    if bad_segment.is_some() || path.contains('\0') {
        return Err(LogicalError::BadRequest(format!(
            "invalid path {path:?}: empty, '.' and '..' segments are not allowed"
        )));
    }
    Ok(format!("{trimmed}/"))
}

/// Whether the request carries a non-null value for `field` (Vault's `GetOk`).
pub fn has_field(data: &Map<String, Value>, field: &str) -> bool {
    !matches!(data.get(field), None | Some(Value::Null))
}

/// An optional integer field: JSON integers, integral floats, or decimal strings.
pub fn field_int(data: &Map<String, Value>, field: &str) -> Result<Option<i64>, LogicalError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => weak_int(value)
            .map(Some)
            .ok_or_else(|| conversion_error(field, format!("cannot parse {value} as an integer"))),
    }
}

/// Vault's weak integer decoding of one value.
pub fn weak_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e18)
                .map(|float| float as i64)
        }),
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                Some(0)
            } else {
                text.parse().ok()
            }
        }
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

/// An optional boolean field: JSON booleans, Go's `strconv.ParseBool` strings, or 0/1.
/// An empty string is false, as Vault's weak decoding of a `TypeBool` field reads it.
pub fn field_bool(data: &Map<String, Value>, field: &str) -> Result<Option<bool>, LogicalError> {
    let parsed = match data.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Bool(flag)) => Some(*flag),
        Some(Value::String(text)) if text.is_empty() => Some(false),
        Some(Value::String(text)) => crate::util::parse_go_bool(text),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Some(_) => None,
    };
    match parsed {
        Some(flag) => Ok(Some(flag)),
        None => Err(conversion_error(field, "expected a boolean")),
    }
}

/// An optional object field.
pub fn field_map<'a>(
    data: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, LogicalError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(conversion_error(field, "expected a map")),
    }
}

/// An optional non-negative duration field (Vault's `TypeDurationSecond`), in seconds.
pub fn field_duration(data: &Map<String, Value>, field: &str) -> Result<Option<i64>, LogicalError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse_duration_seconds(value)
            .map(Some)
            .map_err(|error| conversion_error(field, error)),
    }
}

/// An optional signed duration field (Vault's `TypeSignedDurationSecond`), in seconds.
pub fn field_signed_duration(
    data: &Map<String, Value>,
    field: &str,
) -> Result<Option<i64>, LogicalError> {
    let negated = match data.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(seconds) if seconds < 0 => return Ok(Some(seconds)),
            _ => None,
        },
        Some(Value::String(text)) => text
            .trim()
            .strip_prefix('-')
            .map(|rest| Value::String(rest.to_string())),
        Some(_) => None,
    };
    match negated {
        Some(positive) => parse_duration_seconds(&positive)
            .map(|seconds| Some(-seconds))
            .map_err(|error| conversion_error(field, error)),
        None => field_duration(data, field),
    }
}

/// The most version numbers one delete, undelete or destroy request may name.
pub const VERSIONS_PER_REQUEST_MAX: usize = 10_000;

/// Vault's `TypeCommaIntSlice`: a list of integers or integer strings, a single integer,
/// or a comma-separated string. Absent means empty.
pub fn field_versions(data: &Map<String, Value>, field: &str) -> Result<Vec<i64>, LogicalError> {
    let items: Vec<Value> = match data.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Value::String(part.to_string()))
            .collect(),
        Some(single @ Value::Number(_)) => vec![single.clone()],
        Some(_) => return Err(conversion_error(field, "expected a list of integers")),
    };
    if items.len() > VERSIONS_PER_REQUEST_MAX {
        return Err(LogicalError::BadRequest(format!(
            "at most {VERSIONS_PER_REQUEST_MAX} versions may be given in one request"
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Number(_) | Value::String(_) => weak_int(item),
            _ => None,
        })
        .map(|parsed| parsed.ok_or_else(|| conversion_error(field, "expected a list of integers")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn paths_reject_traversal_and_empty_segments() {
        assert_eq!(entry_path("a/b").unwrap(), "a/b");
        for bad in ["", "../x", "a/../b", "a//b", "a/", "./a", "a/."] {
            assert!(entry_path(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(folder_path("").unwrap(), "");
        assert_eq!(folder_path("a/b/").unwrap(), "a/b/");
        assert_eq!(folder_path("a/b").unwrap(), "a/b/");
        assert!(folder_path("a/../").is_err());
        assert!(entry_path(&"x".repeat(PATH_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn fields_decode_weakly_like_vault() {
        let data = body(json!({"n": "7", "f": 3.0, "b": "true", "v": "1, 3", "s": [1, "2"]}));
        assert_eq!(field_int(&data, "n").unwrap(), Some(7));
        assert_eq!(field_int(&data, "f").unwrap(), Some(3));
        assert_eq!(field_int(&data, "missing").unwrap(), None);
        assert_eq!(field_bool(&data, "b").unwrap(), Some(true));
        assert_eq!(field_versions(&data, "v").unwrap(), vec![1, 3]);
        assert_eq!(field_versions(&data, "s").unwrap(), vec![1, 2]);
        let wrong = body(json!({"n": {"x": 1}, "b": "maybe", "v": [{"x": 1}], "m": 5}));
        assert!(field_int(&wrong, "n").is_err());
        assert!(field_bool(&wrong, "b").is_err());
        assert!(field_versions(&wrong, "v").is_err());
        assert!(field_map(&wrong, "m").is_err());
        let durations = body(json!({"d": "-1h", "e": -5, "g": "90s"}));
        assert_eq!(field_signed_duration(&durations, "d").unwrap(), Some(-3600));
        assert_eq!(field_signed_duration(&durations, "e").unwrap(), Some(-5));
        assert_eq!(field_signed_duration(&durations, "g").unwrap(), Some(90));
        assert!(field_duration(&durations, "d").is_err());
    }
}
