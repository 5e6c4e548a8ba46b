//! `read`, `write`, `list` and `delete`: any path, Vault's output.

use serde_json::Value;

use super::super::args::{
    FlagSpec, HTTP_FLAGS, bool_flag, expect_positionals, parse_args, value_flag,
};
use super::super::data_args::parse_data;
use super::super::format::go_json;
use super::super::local::LocalData;
use super::super::secret::Secret;
use super::super::{Context, Failure, OutputFormat, remote};

const FIELD_FLAG: &[FlagSpec] = &[value_flag(&["field"])];
const WRITE_FLAGS: &[FlagSpec] = &[bool_flag(&["force", "f"]), value_flag(&["field"])];

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
    let parsed = parse_args(args, &[HTTP_FLAGS, FIELD_FLAG]).map_err(Failure::Usage)?;
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
    let parsed = parse_args(args, &[HTTP_FLAGS, WRITE_FLAGS]).map_err(Failure::Usage)?;
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
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
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
    output_list(context, format, &secret, &keys);
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

/// Vault's `OutputList`: a `Keys` column, or the JSON list.
pub fn output_list(
    context: &mut Context<'_>,
    format: OutputFormat,
    secret: &Secret,
    keys: &[String],
) {
    match format {
        OutputFormat::Json => context.print(&go_json(keys)),
        OutputFormat::Table => {
            if !secret.warnings().is_empty() {
                let block = super::super::format::warnings_block(secret.warnings());
                let _ = write!(context.err, "{block}");
            }
            context.print(&keys_table(keys));
        }
    }
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
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
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

/// `unwrap [TOKEN]`: the wrapped response, with TOKEN in the body or (without one) the
/// client's own token as the wrapping token, never both.
pub fn unwrap(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS, FIELD_FLAG]).map_err(Failure::Usage)?;
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
    fn paths_lose_their_outer_slashes() {
        assert_eq!(sanitize_path("/secret/data/x/"), "secret/data/x");
    }
}
