//! Vault's audit hashing: `hmac-sha256:<hex>` of a string, keyed by a device's salt.
//!
//! The salt is a UUID string and the HMAC key is its UTF-8 bytes, as Vault's
//! `salt.GetIdentifiedHMAC` does, so `sys/audit-hash` gives the value a reader greps
//! the log for. In data maps only string *values* are hashed (never keys), at any
//! depth; numbers, bools and nulls stay as they are. A string is left alone when the
//! nearest enclosing object key is exempt (`audit_non_hmac_request_keys` /
//! `audit_non_hmac_response_keys`), which is how Vault's `hashWalker` decides.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The identifier Vault prepends to every hash.
pub const HMAC_TYPE: &str = "hmac-sha256";

/// `hmac-sha256:<64 hex>` of `input` under `salt`.
pub fn audit_hash(salt: &str, input: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(salt.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(input.as_bytes());
    format!("{HMAC_TYPE}:{}", hex::encode(mac.finalize().into_bytes()))
}

/// Replace every string value inside `value` by its hash, except those whose nearest
/// enclosing object key is in `exempt_keys`. Iterative, so no input nests deep
/// enough to overflow the stack.
pub fn hash_value(salt: &str, value: &mut Value, exempt_keys: &[String]) {
    let mut pending: Vec<(&mut Value, Option<&str>)> = vec![(value, None)];
    while let Some((current, key)) = pending.pop() {
        match current {
            Value::String(text) => {
                let exempt = key.is_some_and(|key| exempt_keys.iter().any(|name| name == key));
                if !exempt {
                    *text = audit_hash(salt, text);
                }
            }
            Value::Array(items) => {
                pending.extend(items.iter_mut().map(|item| (item, key)));
            }
            Value::Object(map) => {
                pending.extend(
                    map.iter_mut()
                        .map(|(name, item)| (item, Some(name.as_str()))),
                );
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn hashes_match_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            audit_hash("Jefe", "what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_string_values_are_hashed_and_exempt_keys_follow_the_nearest_key() {
        let salt = "salt";
        let mut data = json!({
            "password": "hunter2",
            "ttl": 30,
            "renewable": true,
            "nothing": null,
            "list": ["a", 1],
            "plain": "visible",
            "plain_list": ["x", "y"],
            "nested": {"plain": "also visible", "inner": "secret"},
            "plain_object": {"deeper": "hashed, nearest key is deeper"},
        });
        hash_value(
            salt,
            &mut data,
            &[
                "plain".to_string(),
                "plain_list".to_string(),
                "plain_object".to_string(),
            ],
        );
        assert_eq!(data["password"], audit_hash(salt, "hunter2"));
        assert_eq!(data["ttl"], 30);
        assert_eq!(data["renewable"], true);
        assert_eq!(data["nothing"], Value::Null);
        assert_eq!(data["list"], json!([audit_hash(salt, "a"), 1]));
        assert_eq!(data["plain"], "visible");
        assert_eq!(data["plain_list"], json!(["x", "y"]));
        assert_eq!(data["nested"]["plain"], "also visible");
        assert_eq!(data["nested"]["inner"], audit_hash(salt, "secret"));
        assert_eq!(
            data["plain_object"]["deeper"],
            audit_hash(salt, "hashed, nearest key is deeper")
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// The same value with every string replaced by a marker, to compare shapes.
    fn shape(value: &Value) -> Value {
        match value {
            Value::String(_) => Value::String("string".into()),
            Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, item)| (key.clone(), shape(item)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
            Value::Object(map) => map.values().for_each(|item| strings(item, out)),
            _ => {}
        }
    }

    proptest! {
        /// Without exemptions, every string becomes the HMAC of itself and nothing
        /// else changes: keys, numbers, bools, nulls and the nesting stay.
        #[test]
        fn every_string_is_replaced_by_its_hash_and_nothing_else_moves(value in json_value()) {
            let mut hashed = value.clone();
            hash_value("salt", &mut hashed, &[]);
            prop_assert_eq!(shape(&hashed), shape(&value));
            let (mut before, mut after) = (Vec::new(), Vec::new());
            strings(&value, &mut before);
            strings(&hashed, &mut after);
            let expected: Vec<String> = before.iter().map(|text| audit_hash("salt", text)).collect();
            prop_assert_eq!(after, expected);
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut value = Value::String("bottom".into());
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        hash_value("salt", &mut value, &[]);
        let mut cursor = &value;
        while let Value::Array(items) = cursor {
            cursor = &items[0];
        }
        assert_eq!(cursor, &Value::String(audit_hash("salt", "bottom")));
        // Dropping a deeply nested value recurses in serde_json; unwind it by hand.
        let mut pending = vec![value];
        while let Some(current) = pending.pop() {
            if let Value::Array(items) = current {
                pending.extend(items);
            }
        }
    }
}
