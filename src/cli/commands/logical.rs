//! `read`, `write`, `list` and `delete`: any path, Vault's output.

use serde_json::Value;

use super::super::args::expect_positionals;
use super::super::client::Method;
use super::super::data_args::parse_data;
use super::super::local::LocalData;
use super::super::secret::Secret;
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;

/// Vault's `sanitizePath`: no leading or trailing slash.
pub fn sanitize_path(path: &str) -> String {
    path.trim_matches('/').to_string()
}

/// A secret with nothing to show is, for the CLI, the same as no secret.
fn is_empty(secret: &Secret) -> bool {
    secret.data_is_empty()
        && secret.auth.is_none()
        && secret.wrap_info.is_none()
        && secret.warnings().is_empty()
}

/// Print a response the way `vault read`/`vault write` do once they have one.
pub fn output_response(
    context: &mut Context<'_>,
    format: OutputFormat,
    secret: &Secret,
    field: Option<&str>,
) -> Result<u8, Failure> {
    match field {
        Some(field) => context.output_field(format, secret, field),
        None => {
            context.output_secret(format, secret);
            Ok(0)
        }
    }
}

pub fn read(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("read", args)?;
    expect_positionals(&parsed, 1, usize::MAX).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let data = parse_data(&parsed.positionals[1..], &mut LocalData)
        .map_err(|why| Failure::Usage(format!("Failed to parse K=V data: {why}")))?;
    let query: Vec<(String, String)> = data
        .iter()
        .map(|(key, value)| {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            (key.clone(), text)
        })
        .collect();
    let client = context.client(&parsed)?;
    let secret = client
        .read(&path, &query)
        .map_err(|error| remote(&format!("Error reading {path}"), error))?;
    match secret {
        None => Err(Failure::Remote(format!("No value found at {path}"))),
        Some(secret) => output_response(context, format, &secret, parsed.value("field")),
    }
}

pub fn write(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("write", args)?;
    expect_positionals(&parsed, 1, usize::MAX).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let data = parse_data(&parsed.positionals[1..], &mut LocalData)
        .map_err(|why| Failure::Usage(format!("Failed to parse K=V data: {why}")))?;
    if data.is_empty() && !parsed.flag("force") {
        return Err(Failure::Usage("Must supply data or use -force".to_string()));
    }
    let body = (!data.is_empty()).then_some(Value::Object(data));
    let client = context.client(&parsed)?;
    let secret = client
        .write(&path, body.as_ref())
        .map_err(|error| remote(&format!("Error writing data to {path}"), error))?;
    match secret.filter(|secret| !is_empty(secret)) {
        None => {
            if format == OutputFormat::Table {
                context.print(&format!("Success! Data written to: {path}"));
            }
            Ok(0)
        }
        Some(secret) => output_response(context, format, &secret, parsed.value("field")),
    }
}

pub fn list(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("list", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let path = format!("{}/", sanitize_path(&parsed.positionals[0]));
    let client = context.client(&parsed)?;
    let secret = client
        .list(&path)
        .map_err(|error| remote(&format!("Error listing {path}"), error))?;
    let Some(secret) = secret.filter(|secret| secret.data.is_some()) else {
        return Err(Failure::Remote(format!("No value found at {path}")));
    };
    if secret.wrap_info.as_ref().is_some_and(|wrap| wrap.ttl != 0) {
        context.output_secret(format, &secret);
        return Ok(0);
    }
    let Some(keys) = list_keys(&secret) else {
        return Err(Failure::Remote(format!("No entries found at {path}")));
    };
    output_list(context, format, &secret, &keys, parsed.flag("detailed"));
    Ok(0)
}

/// The `keys` of a LIST answer, as text.
pub fn list_keys(secret: &Secret) -> Option<Vec<String>> {
    let keys = secret.data.as_ref()?.get("keys")?.as_array()?;
    Some(
        keys.iter()
            .map(|key| key.as_str().map_or_else(|| key.to_string(), str::to_string))
            .collect(),
    )
}

/// Vault's `OutputList`: a `Keys` column (with `-detailed`, one more column per field
/// of the server's `key_info`), or the JSON list (with `-detailed`, the whole answer).
pub fn output_list(
    context: &mut Context<'_>,
    format: OutputFormat,
    secret: &Secret,
    keys: &[String],
    detailed: bool,
) {
    match format {
        OutputFormat::Json | OutputFormat::Yaml if detailed => {
            context.output_secret(format, secret)
        }
        OutputFormat::Json | OutputFormat::Yaml => context.output_data(format, keys),
        OutputFormat::Table => {
            if !secret.warnings().is_empty() {
                let block = super::super::format::warnings_block(secret.warnings());
                let _ = write!(context.err, "{block}");
            }
            let key_info = secret
                .data
                .as_ref()
                .and_then(|data| data.get("key_info"))
                .and_then(Value::as_object);
            match key_info {
                Some(info) if detailed => context.print(&detailed_keys_table(keys, info)),
                _ => context.print(&keys_table(keys)),
            }
        }
    }
}

/// `list -detailed`: the keys and, in sorted columns, every field their `key_info` has.
pub fn detailed_keys_table(keys: &[String], info: &serde_json::Map<String, Value>) -> String {
    let mut columns: Vec<&String> = info
        .values()
        .filter_map(Value::as_object)
        .flat_map(|fields| fields.keys())
        .collect();
    columns.sort();
    columns.dedup();
    let mut rows = vec![
        std::iter::once("Keys".to_string())
            .chain(columns.iter().map(|column| column.to_string()))
            .collect::<Vec<_>>()
            .join(" | "),
    ];
    for key in keys {
        let fields = info.get(key).and_then(Value::as_object);
        let cells: Vec<String> = columns
            .iter()
            .map(|column| {
                fields
                    .and_then(|fields| fields.get(column.as_str()))
                    .map(super::super::format::go_value)
                    .unwrap_or_default()
                    .replace('|', "/")
            })
            .collect();
        rows.push(
            std::iter::once(key.clone())
                .chain(cells)
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    super::super::format::table(&rows, "|")
}

pub fn keys_table(keys: &[String]) -> String {
    let mut text = String::from("Keys\n----");
    for key in keys {
        text.push('\n');
        text.push_str(key);
    }
    text
}

pub fn delete(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("delete", args)?;
    expect_positionals(&parsed, 1, usize::MAX).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    let secret = client
        .delete(&path)
        .map_err(|error| remote(&format!("Error deleting {path}"), error))?;
    match secret.filter(|secret| !is_empty(secret)) {
        Some(secret) => context.output_secret(format, &secret),
        None => {
            if format == OutputFormat::Table {
                context.print(&format!("Success! Data deleted (if it existed) at: {path}"));
            }
        }
    }
    Ok(0)
}

/// `path-help PATH`: the server's `?help=1` answer for the path. A path the server has
/// no help for is an error (exit 2), as in Vault.
pub fn path_help(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("path-help", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    let response = client
        .send(
            Method::Get,
            &path,
            &[("help".to_string(), "1".to_string())],
            None,
        )
        .map_err(|error| remote("Error retrieving help", error))?;
    let body = response.body.unwrap_or(Value::Null);
    let Some(help) = body.get("help").and_then(Value::as_str) else {
        return Err(Failure::Remote(format!(
            "Error retrieving help: the server has no help for {path:?}"
        )));
    };
    match format {
        OutputFormat::Table => context.print(help),
        _ => context.output_data(format, &body),
    }
    Ok(0)
}

/// `unwrap [TOKEN]`: the wrapped response, with TOKEN in the body or (without one) the
/// client's own token as the wrapping token, never both.
pub fn unwrap(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("unwrap", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let body = parsed
        .positionals
        .first()
        .map(|token| serde_json::json!({"token": token.trim()}));
    let secret = client
        .write("sys/wrapping/unwrap", body.as_ref())
        .map_err(|error| remote("Error unwrapping", error))?;
    match secret.filter(|secret| !is_empty(secret)) {
        None => Err(Failure::Remote(
            "Could not find wrapped response".to_string(),
        )),
        Some(secret) => output_response(context, format, &secret, parsed.value("field")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_as_a_one_column_table() {
        assert_eq!(
            keys_table(&["default".to_string(), "superpolicy".to_string()]),
            "Keys\n----\ndefault\nsuperpolicy"
        );
    }

    #[test]
    fn detailed_lists_add_a_column_per_key_info_field() {
        let info = serde_json::json!({"a": {"version": 3}, "b/": {"version": 1, "note": "x"}});
        assert_eq!(
            detailed_keys_table(
                &["a".to_string(), "b/".to_string()],
                info.as_object().unwrap()
            ),
            "Keys    note    version\n----    ----    -------\na       n/a     3\nb/      x       1"
        );
    }

    #[test]
    fn paths_lose_their_outer_slashes() {
        assert_eq!(sanitize_path("/secret/data/x/"), "secret/data/x");
    }
}
