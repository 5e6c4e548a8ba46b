//! `-format=yaml`: JSON values written as YAML the way Vault's CLI writes them (it turns
//! its JSON into YAML with `ghodss/yaml`, i.e. go-yaml v2): mapping keys sorted, block
//! style, sequences not indented under their key, and a string quoted whenever plain
//! YAML would read it as something else (a number, a boolean, null, a timestamp) or
//! could not hold it.

use serde::Serialize;
use serde_json::Value;

/// Characters that may not start a plain scalar.
const INDICATORS: &[char] = &[
    '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
];

/// YAML 1.1 words that a plain scalar would turn into booleans or null.
const RESERVED_WORDS: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
];

/// The value as YAML text, ending in a newline (Vault prints it with `Println` of the
/// trimmed text, so callers trim).
pub fn to_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let mut out = String::new();
    match &value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        out.push_str(&" ".repeat(indent));
        out.push_str(&string_scalar(key));
        out.push(':');
        write_nested(out, value, indent, false);
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        write_nested(out, item, indent, true);
    }
}

/// What follows `key:` or `-`: a scalar on the same line, or a nested block.
fn write_nested(out: &mut String, value: &Value, indent: usize, in_sequence: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if in_sequence {
                // `- key: value` with the rest of the mapping aligned under the key.
                let mut nested = String::new();
                write_mapping(&mut nested, map, indent + 2);
                out.push(' ');
                out.push_str(&nested[indent + 2..]);
            } else {
                out.push('\n');
                write_mapping(out, map, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            // go-yaml v2 does not indent a sequence under a mapping key.
            let child_indent = if in_sequence { indent + 2 } else { indent };
            write_sequence(out, items, child_indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => string_scalar(text),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn needs_quotes(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return true;
    };
    let lowercase = text.to_ascii_lowercase();
    INDICATORS.contains(&first)
        || first == ' '
        || text.ends_with(' ')
        || text.contains(": ")
        || text.contains(" #")
        || text.ends_with(':')
        || text.chars().any(|character| character.is_control())
        || RESERVED_WORDS.contains(&lowercase.as_str())
        || text.parse::<f64>().is_ok()
        || looks_like_timestamp(text)
}

/// `2018-03-22...`: go-yaml reads a leading date as a timestamp.
fn looks_like_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'-'
        && bytes[8..10].iter().all(u8::is_ascii_digit)
}

fn string_scalar(text: &str) -> String {
    if !needs_quotes(text) {
        return text.to_string();
    }
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            other if other.is_control() => quoted.push_str(&format!("\\x{:02X}", other as u32)),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_secret_envelope_reads_like_vaults_yaml() {
        let secret = json!({
            "request_id": "5f7a1a34-e2b8-8b52-0c8a-91a1ab9c4d0e",
            "lease_id": "",
            "lease_duration": 0,
            "renewable": false,
            "data": {
                "data": {"password": "hunter2", "port": "8080"},
                "metadata": {"created_time": "2018-03-22T02:24:06.945319214Z", "custom_metadata": null, "version": 1}
            },
            "warnings": null,
            "policies": ["default", "root"],
            "empty": {}
        });
        assert_eq!(
            to_yaml(&secret),
            "\
data:
  data:
    password: hunter2
    port: \"8080\"
  metadata:
    created_time: \"2018-03-22T02:24:06.945319214Z\"
    custom_metadata: null
    version: 1
empty: {}
lease_duration: 0
lease_id: \"\"
policies:
- default
- root
renewable: false
request_id: 5f7a1a34-e2b8-8b52-0c8a-91a1ab9c4d0e
warnings: null
"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for text in [
            "true",
            "No",
            "~",
            "1e3",
            "-x",
            "a: b",
            "",
            " lead",
            "#x",
            "line\nbreak",
        ] {
            assert!(string_scalar(text).starts_with('"'), "{text}");
        }
        for text in ["hunter2", "secret/data/x", "a-b", "hvs.CAES"] {
            assert_eq!(string_scalar(text), text);
        }
        assert_eq!(string_scalar("say \"hi\""), "say \"hi\"");
        assert_eq!(string_scalar("\"hi\""), "\"\\\"hi\\\"\"");
    }

    #[test]
    fn sequences_of_mappings_align_under_the_dash() {
        let value =
            json!({"servers": [{"node_id": "a", "voter": true}, {"node_id": "b", "voter": false}]});
        assert_eq!(
            to_yaml(&value),
            "servers:\n- node_id: a\n  voter: true\n- node_id: b\n  voter: false\n"
        );
        assert_eq!(to_yaml(&json!(["x"])), "- x\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
    }
}
