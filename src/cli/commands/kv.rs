//! `kv put|get|list|delete|undelete|destroy|patch|rollback|enable-versioning|metadata`:
//! the key/value helper that
//! hides KV v2's `data/`, `metadata/`, ... prefixes, as Vault's `kv` commands do.
//!
//! The mount and its version come from `sys/internal/ui/mounts/PATH` (Vault's
//! preflight); when a server does not answer that, the mount table is consulted.

use serde_json::{Map, Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::{Client, Method, RequestError};
use super::super::data_args::parse_data;
use super::super::format::key_value_table;
use super::super::local::LocalData;
use super::super::secret::{Secret, data_cell};
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;
use super::logical::{list_keys, output_list, sanitize_path};

/// Where a key lives: its mount (with trailing slash), its path inside the mount, and
/// the engine version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLocation {
    pub mount: String,
    pub key: String,
    pub version_2: bool,
}

impl KvLocation {
    /// `secret/data/foo` for v2 (with `prefix` = `data`), `secret/foo` for v1.
    pub fn api_path(&self, prefix: &str) -> String {
        if self.version_2 {
            format!("{}{prefix}/{}", self.mount, self.key)
        } else {
            format!("{}{}", self.mount, self.key)
        }
    }
}

/// Vault's `padEqualSigns`: a title centred in `=` signs to about `width` characters.
pub fn pad_equal_signs(title: &str, width: usize) -> String {
    let mut signs = width as i64 - (title.len() as i64 + 2);
    if signs <= 0 {
        signs = 4;
    }
    if signs % 2 != 0 {
        signs += 1;
    }
    let side = "=".repeat((signs / 2) as usize);
    format!("{side} {title} {side}")
}

/// Vault's `getHeaderForMap`: sized to the longest key plus the `Value` column.
pub fn header_for_map(title: &str, data: &Map<String, Value>) -> String {
    let longest_key = data.keys().map(String::len).max().unwrap_or(0);
    pad_equal_signs(title, longest_key + 4 + 5)
}

/// A map as Vault's `OutputData` table.
pub fn map_table(data: &Map<String, Value>) -> String {
    let rows: Vec<(String, String)> = data
        .iter()
        .map(|(key, value)| (key.clone(), data_cell(key, value)))
        .collect();
    key_value_table(&rows)
}

/// The text `kv put` / `kv patch` print for a v2 write.
pub fn written_text(full_path: &str, metadata: &Map<String, Value>) -> String {
    format!(
        "{}\n{full_path}\n\n{}\n{}",
        pad_equal_signs("Secret Path", full_path.len()),
        header_for_map("Metadata", metadata),
        map_table(metadata)
    )
}

/// The text `kv get` prints for a v2 read: path, metadata, then the data.
pub fn read_text(full_path: &str, secret: &Secret) -> String {
    let data = secret.data.clone().unwrap_or_default();
    let mut sections = vec![format!(
        "{}\n{full_path}\n",
        pad_equal_signs("Secret Path", full_path.len())
    )];
    if let Some(Value::Object(metadata)) = data.get("metadata") {
        sections.push(format!(
            "{}\n{}\n",
            header_for_map("Metadata", metadata),
            map_table(metadata)
        ));
    }
    if let Some(Value::Object(values)) = data.get("data") {
        sections.push(format!(
            "{}\n{}",
            header_for_map("Data", values),
            map_table(values)
        ));
    }
    sections.join("\n")
}

fn mount_version_2(mount: &Value) -> bool {
    mount
        .get("options")
        .and_then(|options| options.get("version"))
        .and_then(Value::as_str)
        == Some("2")
}

/// Find the mount and version for `path` (or for `-mount` + `path`).
fn locate(client: &Client, parsed: &ParsedArgs, path: &str) -> Result<KvLocation, Failure> {
    let client = &client.for_preflight();
    let (lookup, explicit_mount) = match parsed.value("mount") {
        Some(mount) => (format!("{}/{}", mount.trim_matches('/'), path), Some(mount)),
        None => (path.to_string(), None),
    };
    let preflight = client.read(&format!("sys/internal/ui/mounts/{lookup}"), &[]);
    let (mount, version_2) = match preflight {
        Ok(Some(secret)) => {
            let data = Value::Object(secret.data.unwrap_or_default());
            let mount = data
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (mount, mount_version_2(&data))
        }
        Ok(None) | Err(RequestError::Api(_)) => from_mount_table(client, &lookup)?,
        Err(error) => return Err(remote("Error making API request", error)),
    };
    let mount = if mount.is_empty() {
        match explicit_mount {
            Some(explicit) => format!("{}/", explicit.trim_matches('/')),
            None => format!("{}/", lookup.split('/').next().unwrap_or_default()),
        }
    } else {
        mount
    };
    let key = lookup
        .strip_prefix(mount.as_str())
        .or_else(|| lookup.strip_prefix(mount.trim_end_matches('/')))
        .unwrap_or(&lookup)
        .trim_start_matches('/')
        .to_string();
    Ok(KvLocation {
        mount,
        key,
        version_2,
    })
}

/// The longest mount in `sys/mounts` that prefixes `path`; v1 when nothing is known,
/// as Vault assumes for servers without the preflight endpoint.
fn from_mount_table(client: &Client, path: &str) -> Result<(String, bool), Failure> {
    let Ok(response) = client.send(Method::Get, "sys/mounts", &[], None) else {
        return Ok((String::new(), false));
    };
    let body = response.body.unwrap_or(Value::Null);
    let mounts = body.get("data").unwrap_or(&body);
    let Some(mounts) = mounts.as_object() else {
        return Ok((String::new(), false));
    };
    let with_slash = format!("{path}/");
    let best = mounts
        .iter()
        .filter(|(mount, _)| with_slash.starts_with(mount.as_str()))
        .max_by_key(|(mount, _)| mount.len());
    Ok(match best {
        Some((mount, entry)) => (mount.clone(), mount_version_2(entry)),
        None => (String::new(), false),
    })
}

fn versions(parsed: &ParsedArgs) -> Result<Vec<u64>, Failure> {
    let Some(text) = parsed.value("versions") else {
        return Ok(Vec::new());
    };
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            item.trim()
                .parse::<u64>()
                .map_err(|_| Failure::Usage(format!("invalid version {item:?} in -versions")))
        })
        .collect()
}

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("kv", None));
    };
    match subcommand.as_str() {
        "put" => put(context, rest, false),
        "patch" => put(context, rest, true),
        "get" => get(context, rest),
        "list" => list(context, rest),
        "delete" => delete(context, rest),
        "undelete" => versions_command(context, rest, "undelete"),
        "destroy" => versions_command(context, rest, "destroy"),
        "rollback" => rollback(context, rest),
        "enable-versioning" => enable_versioning(context, rest),
        "metadata" => metadata(context, rest),
        other => Err(catalog::unknown("kv", Some(other))),
    }
}

/// Parse `args` as the command at `path`, which takes one KEY (and, for writes, data).
fn setup(
    context: &Context<'_>,
    path: &str,
    args: &[String],
    maximum: usize,
) -> Result<(ParsedArgs, OutputFormat, Client), Failure> {
    let parsed = catalog::parse(path, args)?;
    expect_positionals(&parsed, 1, maximum).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    Ok((parsed, format, client))
}

fn put(context: &mut Context<'_>, args: &[String], patch: bool) -> Result<u8, Failure> {
    let command = if patch { "kv patch" } else { "kv put" };
    let (parsed, format, client) = setup(context, command, args, usize::MAX)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let data = parse_data(&parsed.positionals[1..], &mut LocalData)
        .map_err(|why| Failure::Usage(format!("Failed to parse K=V data: {why}")))?;
    if data.is_empty() {
        return Err(Failure::Usage("Must supply data".to_string()));
    }
    let location = locate(&client, &parsed, &path)?;
    let full_path = location.api_path("data");
    let mut body = if location.version_2 {
        json!({"data": data})
    } else {
        Value::Object(data.clone())
    };
    if let Some(cas) = parsed.value("cas") {
        let cas: i64 = cas
            .parse()
            .map_err(|_| Failure::Usage(format!("invalid value {cas:?} for flag -cas")))?;
        body["options"] = json!({"cas": cas});
    }
    let prefix = format!("Error writing data to {full_path}");
    let secret = if patch {
        if !location.version_2 {
            return Err(Failure::Usage(
                "K/V engine mount must be version 2 for patch support".to_string(),
            ));
        }
        match parsed.value("method").unwrap_or("patch") {
            // Vault's default: an HTTP PATCH (a JSON merge patch of the data); a server
            // without PATCH support (405) gets the read-modify-write below.
            "patch" => match client.patch(&full_path, &body) {
                Err(RequestError::Api(error)) if error.status == 405 => {
                    patch_by_rewrite(&client, &full_path, data, &prefix)?
                }
                result => result.map_err(|error| remote(&prefix, error))?,
            },
            "rw" => patch_by_rewrite(&client, &full_path, data, &prefix)?,
            other => {
                return Err(Failure::Usage(format!(
                    "Unsupported method provided to -method flag: {other}"
                )));
            }
        }
    } else {
        client
            .write(&full_path, Some(&body))
            .map_err(|error| remote(&prefix, error))?
    };
    let Some(secret) = secret else {
        if format == OutputFormat::Table {
            context.print(&format!("Success! Data written to: {full_path}"));
        }
        return Ok(0);
    };
    if let Some(field) = parsed.value("field") {
        return context.output_field(format, &secret, field);
    }
    match format {
        OutputFormat::Table if location.version_2 => {
            let metadata = secret.data.clone().unwrap_or_default();
            context.print(&written_text(&full_path, &metadata));
        }
        _ => context.output_secret(format, &secret),
    }
    Ok(0)
}

/// `kv patch -method=rw`: read the latest version, merge the new keys in, and write it
/// back with check-and-set on the version read, so a concurrent write is not lost.
fn patch_by_rewrite(
    client: &Client,
    full_path: &str,
    data: Map<String, Value>,
    prefix: &str,
) -> Result<Option<Secret>, Failure> {
    let current = client
        .read(full_path, &[])
        .map_err(|error| remote(prefix, error))?
        .ok_or_else(|| Failure::Remote(format!("No value found at {full_path}")))?;
    let current_data = current.data.unwrap_or_default();
    let mut merged = current_data
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    merged.extend(data);
    let version = current_data
        .get("metadata")
        .and_then(|metadata| metadata.get("version"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    client
        .write(
            full_path,
            Some(&json!({"data": merged, "options": {"cas": version}})),
        )
        .map_err(|error| remote(prefix, error))
}

fn get(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let (parsed, format, client) = setup(context, "kv get", args, 1)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let location = locate(&client, &parsed, &path)?;
    let full_path = location.api_path("data");
    let query: Vec<(String, String)> = parsed
        .value("version")
        .map(|version| vec![("version".to_string(), version.to_string())])
        .unwrap_or_default();
    let secret = client
        .read(&full_path, &query)
        .map_err(|error| remote(&format!("Error reading {full_path}"), error))?
        .ok_or_else(|| Failure::Remote(format!("No value found at {full_path}")))?;
    if let Some(field) = parsed.value("field") {
        let inner = if location.version_2 {
            let data = secret
                .data
                .as_ref()
                .and_then(|data| data.get("data"))
                .and_then(Value::as_object)
                .cloned();
            Secret {
                data,
                ..Secret::default()
            }
        } else {
            secret
        };
        return context.output_field(format, &inner, field);
    }
    match format {
        OutputFormat::Table if location.version_2 => {
            let has_data = secret
                .data
                .as_ref()
                .and_then(|data| data.get("data"))
                .is_some_and(|data| !data.is_null());
            context.print(&read_text(&full_path, &secret));
            if !has_data {
                return Err(Failure::Remote(format!("No data found at {full_path}")));
            }
        }
        _ => context.output_secret(format, &secret),
    }
    Ok(0)
}

fn list(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    // With -mount the path may be left out: the mount's top level (as in Vault).
    let parsed = catalog::parse("kv list", args)?;
    let minimum = usize::from(parsed.value("mount").is_none());
    expect_positionals(&parsed, minimum, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let path = sanitize_path(parsed.positionals.first().map_or("", String::as_str));
    let location = locate(&client, &parsed, &path)?;
    let full_path = format!("{}/", location.api_path("metadata").trim_end_matches('/'));
    let secret = client
        .list(&full_path)
        .map_err(|error| remote(&format!("Error listing {full_path}"), error))?
        .ok_or_else(|| Failure::Remote(format!("No value found at {full_path}")))?;
    let keys = list_keys(&secret)
        .ok_or_else(|| Failure::Remote(format!("No entries found at {full_path}")))?;
    output_list(context, format, &secret, &keys, parsed.flag("detailed"));
    Ok(0)
}

fn delete(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let (parsed, _, client) = setup(context, "kv delete", args, 1)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let location = locate(&client, &parsed, &path)?;
    let versions = versions(&parsed)?;
    let full_path = if location.version_2 && !versions.is_empty() {
        let full_path = location.api_path("delete");
        client
            .write(&full_path, Some(&json!({"versions": versions})))
            .map_err(|error| remote(&format!("Error deleting {full_path}"), error))?;
        full_path
    } else {
        let full_path = location.api_path("data");
        client
            .delete(&full_path)
            .map_err(|error| remote(&format!("Error deleting {full_path}"), error))?;
        full_path
    };
    context.print(&format!(
        "Success! Data deleted (if it existed) at: {full_path}"
    ));
    Ok(0)
}

fn versions_command(
    context: &mut Context<'_>,
    args: &[String],
    action: &str,
) -> Result<u8, Failure> {
    let (parsed, _, client) = setup(context, &format!("kv {action}"), args, 1)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let versions = versions(&parsed)?;
    if versions.is_empty() {
        return Err(Failure::Usage(
            "No versions provided, use the \"-versions\" flag to specify the version(s)."
                .to_string(),
        ));
    }
    let location = locate(&client, &parsed, &path)?;
    if !location.version_2 {
        return Err(Failure::Usage(format!(
            "{action} is not supported on KV version 1"
        )));
    }
    let full_path = location.api_path(action);
    client
        .write(&full_path, Some(&json!({"versions": versions})))
        .map_err(|error| remote(&format!("Error writing data to {full_path}"), error))?;
    context.print(&format!("Success! Data written to: {full_path}"));
    Ok(0)
}

fn metadata(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("kv metadata", None));
    };
    if !matches!(subcommand.as_str(), "get" | "put" | "patch" | "delete") {
        return Err(catalog::unknown("kv metadata", Some(subcommand)));
    }
    let (parsed, format, client) = setup(context, &format!("kv metadata {subcommand}"), rest, 1)?;
    let path = sanitize_path(&parsed.positionals[0]);
    let location = locate(&client, &parsed, &path)?;
    if !location.version_2 {
        return Err(Failure::Usage(
            "Metadata not supported on KV Version 1".to_string(),
        ));
    }
    let full_path = location.api_path("metadata");
    match subcommand.as_str() {
        "get" => {
            let secret = client
                .read(&full_path, &[])
                .map_err(|error| remote(&format!("Error reading {full_path}"), error))?
                .ok_or_else(|| Failure::Remote(format!("No value found at {full_path}")))?;
            if format != OutputFormat::Table {
                context.output_secret(format, &secret);
                return Ok(0);
            }
            context.print(&metadata_text(&full_path, &secret));
            Ok(0)
        }
        "put" | "patch" => {
            let body = metadata_body(&parsed)?;
            let prefix = format!("Error writing data to {full_path}");
            let secret = if subcommand == "put" {
                client.write(&full_path, Some(&Value::Object(body)))
            } else {
                client.patch(&full_path, &Value::Object(body))
            }
            .map_err(|error| remote(&prefix, error))?;
            match secret {
                Some(secret) => context.output_secret(format, &secret),
                None if format == OutputFormat::Table => {
                    context.print(&format!("Success! Data written to: {full_path}"));
                }
                None => {}
            }
            Ok(0)
        }
        _ => {
            client
                .delete(&full_path)
                .map_err(|error| remote(&format!("Error deleting {full_path}"), error))?;
            context.print(&format!(
                "Success! Data deleted (if it existed) at: {full_path}"
            ));
            Ok(0)
        }
    }
}

/// The `kv metadata get` table: the key's settings, then each version in order.
pub fn metadata_text(full_path: &str, secret: &Secret) -> String {
    let mut data = secret.data.clone().unwrap_or_default();
    let versions = data.remove("versions");
    let mut text = format!(
        "{}\n{full_path}\n\n{}\n{}",
        pad_equal_signs("Metadata Path", full_path.len()),
        header_for_map("Metadata", &data),
        map_table(&data)
    );
    if let Some(Value::Object(versions)) = versions {
        let mut numbered: Vec<(u64, Map<String, Value>)> = versions
            .into_iter()
            .filter_map(|(number, entry)| Some((number.parse().ok()?, entry.as_object()?.clone())))
            .collect();
        numbered.sort_by_key(|(number, _)| *number);
        for (number, entry) in numbered {
            let title = format!("Version {number}");
            text.push_str(&format!(
                "\n\n{}\n{}",
                header_for_map(&title, &entry),
                map_table(&entry)
            ));
        }
    }
    text
}

/// The body of `kv metadata put|patch`: only the settings given on the command line.
pub fn metadata_body(parsed: &ParsedArgs) -> Result<Map<String, Value>, Failure> {
    let mut body = Map::new();
    if let Some(text) = parsed.value("max-versions") {
        let count: u32 = text.parse().map_err(|_| {
            Failure::Usage(format!(
                "invalid value {text:?} for flag -max-versions: parse error"
            ))
        })?;
        body.insert("max_versions".to_string(), json!(count));
    }
    if parsed.value("cas-required").is_some() {
        body.insert(
            "cas_required".to_string(),
            json!(parsed.flag("cas-required")),
        );
    }
    if let Some(text) = parsed.value("delete-version-after") {
        crate::logical::parse_duration_text(text).map_err(|why| {
            Failure::Usage(format!(
                "invalid value {text:?} for flag -delete-version-after: {why}"
            ))
        })?;
        body.insert("delete_version_after".to_string(), json!(text));
    }
    let custom = parsed.values("custom-metadata");
    if !custom.is_empty() {
        let mut metadata = Map::new();
        for pair in custom {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Failure::Usage(format!(
                    "invalid value {pair:?} for flag -custom-metadata: format must be key=value"
                )));
            };
            metadata.insert(key.to_string(), json!(value));
        }
        body.insert("custom_metadata".to_string(), Value::Object(metadata));
    }
    Ok(body)
}

/// `kv rollback -version=N KEY`: write version N's data as the newest version, with
/// check-and-set on the current one so a concurrent write is not overwritten.
fn rollback(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let (parsed, format, client) = setup(context, "kv rollback", args, 1)?;
    let target: u64 = match parsed.value("version").map(str::parse) {
        Some(Ok(version)) if version > 0 => version,
        Some(_) => {
            return Err(Failure::Usage(
                "Invalid value for flag -version: must be a positive number".to_string(),
            ));
        }
        None => return Err(Failure::Usage("Must provide a version".to_string())),
    };
    let path = sanitize_path(&parsed.positionals[0]);
    let location = locate(&client, &parsed, &path)?;
    if !location.version_2 {
        return Err(Failure::Usage(
            "Rollback not supported on KV Version 1".to_string(),
        ));
    }
    let metadata_path = location.api_path("metadata");
    let metadata = client
        .read(&metadata_path, &[])
        .map_err(|error| remote(&format!("Error reading {metadata_path}"), error))?
        .and_then(|secret| secret.data)
        .ok_or_else(|| Failure::Remote(format!("No value found at {metadata_path}")))?;
    let current = metadata
        .get("current_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let entry = metadata
        .get("versions")
        .and_then(|versions| versions.get(target.to_string()))
        .ok_or_else(|| Failure::Local(format!("Cannot find data for version {target}")))?;
    if entry.get("destroyed").and_then(Value::as_bool) == Some(true) {
        return Err(Failure::Local(format!(
            "Cannot rollback to a destroyed version ({target})"
        )));
    }
    if entry
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|time| !time.is_empty())
    {
        return Err(Failure::Local(format!(
            "Cannot rollback to a deleted version ({target})"
        )));
    }
    let data_path = location.api_path("data");
    let old = client
        .read(&data_path, &[("version".to_string(), target.to_string())])
        .map_err(|error| remote(&format!("Error reading {data_path}"), error))?
        .and_then(|secret| secret.data)
        .and_then(|data| data.get("data").cloned())
        .filter(|data| data.is_object())
        .ok_or_else(|| Failure::Remote(format!("No data found at {data_path}")))?;
    let secret = client
        .write(
            &data_path,
            Some(&json!({"data": old, "options": {"cas": current}})),
        )
        .map_err(|error| remote(&format!("Error writing data to {data_path}"), error))?;
    let Some(secret) = secret else {
        context.print(&format!("Success! Data written to: {data_path}"));
        return Ok(0);
    };
    if let Some(field) = parsed.value("field") {
        return context.output_field(format, &secret, field);
    }
    match format {
        OutputFormat::Table => {
            let metadata = secret.data.clone().unwrap_or_default();
            context.print(&written_text(&data_path, &metadata));
        }
        _ => context.output_secret(format, &secret),
    }
    Ok(0)
}

/// `kv enable-versioning PATH`: tune a version 1 mount up to version 2.
fn enable_versioning(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("kv enable-versioning", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = format!("{}/", sanitize_path(&parsed.positionals[0]));
    let client = context.client(&parsed)?;
    client
        .send(
            Method::Post,
            &format!("sys/mounts/{path}tune"),
            &[],
            Some(&json!({"options": {"version": "2"}})),
        )
        .map_err(|error| remote(&format!("Error tuning secrets engine {path}"), error))?;
    context.print(&format!("Success! Tuned the secrets engine at: {path}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_headers_pad_like_vault() {
        assert_eq!(
            pad_equal_signs("Secret Path", "secret/data/creds".len()),
            "== Secret Path =="
        );
        assert_eq!(pad_equal_signs("Secret Path", 3), "== Secret Path ==");
        let metadata: Map<String, Value> = json!({
            "created_time": "2018-03-22T02:24:06.945319214Z", "custom_metadata": null,
            "deletion_time": "", "destroyed": false, "version": 1
        })
        .as_object()
        .unwrap()
        .clone();
        assert_eq!(
            header_for_map("Metadata", &metadata),
            "======= Metadata ======="
        );
    }

    #[test]
    fn kv_put_prints_path_and_metadata() {
        let metadata: Map<String, Value> = json!({
            "created_time": "2018-03-22T02:24:06.945319214Z", "custom_metadata": null,
            "deletion_time": "", "destroyed": false, "version": 1
        })
        .as_object()
        .unwrap()
        .clone();
        let expected = "\
== Secret Path ==
secret/data/creds

======= Metadata =======
Key                Value
---                -----
created_time       2018-03-22T02:24:06.945319214Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            1";
        assert_eq!(written_text("secret/data/creds", &metadata), expected);
    }

    #[test]
    fn kv_get_adds_the_data_section() {
        let secret = Secret::from_body(&json!({"data": {
            "data": {"passcode": "my-long-passcode"},
            "metadata": {"created_time": "t", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": 1}
        }}))
        .unwrap();
        let text = read_text("secret/data/creds", &secret);
        assert!(text.ends_with("version            1\n\n====== Data ======\nKey         Value\n---         -----\npasscode    my-long-passcode"), "{text}");
    }

    #[test]
    fn api_paths_insert_the_v2_prefix() {
        let location = KvLocation {
            mount: "secret/".to_string(),
            key: "foo/bar".to_string(),
            version_2: true,
        };
        assert_eq!(location.api_path("data"), "secret/data/foo/bar");
        assert_eq!(location.api_path("metadata"), "secret/metadata/foo/bar");
        let v1 = KvLocation {
            version_2: false,
            ..location
        };
        assert_eq!(v1.api_path("data"), "secret/foo/bar");
    }
}
