//! Request data from the command line, as Vault's `kvbuilder` reads it: `key=value`
//! pairs, `key=@file` (the file's text), `key=-` (standard input), `-` alone (a JSON
//! object on standard input) and `@file.json` alone (a JSON object from a file). A key
//! given twice becomes a list.

use serde_json::{Map, Value};

/// Where the builder gets file contents and standard input; injected so tests need no
/// files or pipes.
pub trait DataSource {
    fn read_file(&mut self, path: &str) -> Result<String, String>;
    fn read_stdin(&mut self) -> Result<String, String>;
}

pub fn parse_data(
    args: &[String],
    source: &mut dyn DataSource,
) -> Result<Map<String, Value>, String> {
    let mut data = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |source: &mut dyn DataSource| -> Result<String, String> {
        if stdin_used {
            return Err("can only read from stdin once".to_string());
        }
        stdin_used = true;
        source.read_stdin()
    };
    for arg in args {
        if arg == "-" {
            let text = take_stdin(source)?;
            merge_json_object(&mut data, &text, "stdin")?;
            continue;
        }
        if let Some(path) = arg.strip_prefix('@') {
            let text = source.read_file(path)?;
            merge_json_object(&mut data, &text, path)?;
            continue;
        }
        let Some((key, raw_value)) = arg.split_once('=') else {
            return Err(format!(
                "invalid key/value pair {arg:?}: format must be key=value"
            ));
        };
        if key.is_empty() {
            return Err(format!(
                "invalid key/value pair {arg:?}: format must be key=value"
            ));
        }
        let value = if raw_value == "-" {
            take_stdin(source)?
        } else if let Some(path) = raw_value.strip_prefix('@') {
            source.read_file(path)?
        } else {
            raw_value.to_string()
        };
        insert_or_append(&mut data, key, Value::String(value));
    }
    Ok(data)
}

fn merge_json_object(
    data: &mut Map<String, Value>,
    text: &str,
    origin: &str,
) -> Result<(), String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| format!("error parsing JSON from {origin}: {error}"))?;
    let Value::Object(object) = value else {
        return Err(format!(
            "error parsing JSON from {origin}: expected a JSON object"
        ));
    };
    data.extend(object);
    Ok(())
}

fn insert_or_append(data: &mut Map<String, Value>, key: &str, value: Value) {
    match data.get_mut(key) {
        None => {
            data.insert(key.to_string(), value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct FakeSource {
        files: BTreeMap<String, String>,
        stdin: Option<String>,
    }

    impl DataSource for FakeSource {
        fn read_file(&mut self, path: &str) -> Result<String, String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| format!("error reading file {path}: not found"))
        }
        fn read_stdin(&mut self) -> Result<String, String> {
            self.stdin
                .take()
                .ok_or_else(|| "stdin is empty".to_string())
        }
    }

    fn parse(args: &[&str], source: &mut FakeSource) -> Result<Value, String> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        parse_data(&args, source).map(Value::Object)
    }

    #[test]
    fn pairs_files_and_stdin() {
        let mut source = FakeSource {
            files: BTreeMap::from([("policy.hcl".to_string(), "path \"*\" {}".to_string())]),
            stdin: Some("from stdin".to_string()),
        };
        let data = parse(
            &[
                "password=vaultMagic",
                "policies=superpolicy",
                "rules=@policy.hcl",
                "note=-",
                "empty=",
            ],
            &mut source,
        )
        .unwrap();
        assert_eq!(
            data,
            json!({
                "password": "vaultMagic", "policies": "superpolicy",
                "rules": "path \"*\" {}", "note": "from stdin", "empty": ""
            })
        );
    }

    #[test]
    fn values_keep_their_equals_signs_and_repeated_keys_make_lists() {
        let data = parse(
            &["token=a=b==", "paths=one", "paths=two", "paths=three"],
            &mut FakeSource::default(),
        )
        .unwrap();
        assert_eq!(
            data,
            json!({"token": "a=b==", "paths": ["one", "two", "three"]})
        );
    }

    #[test]
    fn json_objects_from_stdin_and_files() {
        let mut source = FakeSource {
            files: BTreeMap::from([("d.json".to_string(), "{\"b\": 2}".to_string())]),
            stdin: Some("{\"a\": {\"nested\": true}}".to_string()),
        };
        let data = parse(&["-", "@d.json", "c=3"], &mut source).unwrap();
        assert_eq!(data, json!({"a": {"nested": true}, "b": 2, "c": "3"}));
    }

    #[test]
    fn mistakes_are_errors() {
        let mut source = FakeSource {
            stdin: Some("[1]".to_string()),
            ..FakeSource::default()
        };
        assert!(
            parse(&["novalue"], &mut source)
                .unwrap_err()
                .contains("format must be key=value")
        );
        assert!(parse(&["=x"], &mut source).is_err());
        assert!(
            parse(&["k=@missing"], &mut source)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            parse(&["-"], &mut source)
                .unwrap_err()
                .contains("expected a JSON object")
        );
        let mut twice = FakeSource {
            stdin: Some("x".to_string()),
            ..FakeSource::default()
        };
        assert_eq!(
            parse(&["a=-", "b=-"], &mut twice).unwrap_err(),
            "can only read from stdin once"
        );
    }
}
