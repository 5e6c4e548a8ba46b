//! `status`, `operator init|unseal|seal`, `operator raft join|list-peers|remove-peer` and
//! `operator raft snapshot save|restore|inspect`.

use serde::Serialize;
use serde_json::{Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::{Client, Method, RequestError};
use super::super::format::{table, wrap_at_length};
use super::super::local;
use super::super::seal_status::{LeaderStatus, SealStatus, SealStatusOutput};
use super::super::{Context, Failure, OutputFormat, local_request, remote};
use super::catalog;
use crate::raft::saved_snapshot::{self, SAVED_SNAPSHOT_BYTES_MAX};

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("operator", None));
    };
    match subcommand.as_str() {
        "init" => init(context, rest),
        "unseal" => unseal(context, rest),
        "seal" => seal(context, rest),
        "raft" => raft(context, rest),
        "key-status" => super::encryption_key::key_status(context, rest),
        "rotate" => super::encryption_key::rotate(context, rest),
        "step-down" => step_down(context, rest),
        "members" => super::cluster_info::members(context, rest),
        "generate-root" => super::generate_root::generate_root(context, rest),
        "rekey" => super::rekey::rekey(context, rest),
        other => Err(catalog::unknown("operator", Some(other))),
    }
}

/// `operator step-down`: the active node hands leadership to another voter.
fn step_down(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator step-down", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let client = context.client(&parsed)?;
    client
        .send(Method::Put, "sys/step-down", &[], None)
        .map_err(|error| remote("Error stepping down", error))?;
    context.print(&format!("Success! Stepped down: {}", client.address()));
    Ok(0)
}

fn raft(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("operator raft", None));
    };
    match subcommand.as_str() {
        "join" => raft_join(context, rest),
        "list-peers" => raft_list_peers(context, rest),
        "remove-peer" => raft_remove_peer(context, rest),
        "snapshot" => raft_snapshot(context, rest),
        other => Err(catalog::unknown("operator raft", Some(other))),
    }
}

fn positive_number(parsed: &ParsedArgs, name: &str, default: u64) -> Result<u64, Failure> {
    match parsed.value(name) {
        None => Ok(default),
        Some(text) => text.parse::<u64>().map_err(|_| {
            Failure::Usage(format!(
                "invalid value {text:?} for flag -{name}: parse error"
            ))
        }),
    }
}

/// The answer to `PUT sys/init` (not wrapped in the usual envelope).
#[derive(Debug, Default, serde::Deserialize)]
pub struct InitResponse {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub keys_base64: Vec<String>,
    #[serde(default)]
    pub recovery_keys: Vec<String>,
    #[serde(default)]
    pub recovery_keys_base64: Vec<String>,
    #[serde(default)]
    pub root_token: String,
}

/// `operator init -format=json`, in Vault's field order.
#[derive(Debug, Serialize)]
pub struct MachineInit<'a> {
    pub unseal_keys_b64: &'a [String],
    pub unseal_keys_hex: &'a [String],
    pub unseal_shares: u64,
    pub unseal_threshold: u64,
    pub recovery_keys_b64: &'a [String],
    pub recovery_keys_hex: &'a [String],
    pub recovery_keys_shares: u64,
    pub recovery_keys_threshold: u64,
    pub root_token: &'a str,
}

/// The text `vault operator init` prints.
pub fn init_text(response: &InitResponse, shares: u64, threshold: u64) -> String {
    let mut lines = Vec::new();
    for (index, key) in response.keys_base64.iter().enumerate() {
        lines.push(format!("Unseal Key {}: {key}", index + 1));
    }
    for (index, key) in response.recovery_keys_base64.iter().enumerate() {
        lines.push(format!("Recovery Key {}: {key}", index + 1));
    }
    lines.push(String::new());
    lines.push(format!("Initial Root Token: {}", response.root_token));
    if !response.keys.is_empty() {
        lines.push(String::new());
        lines.push(wrap_at_length(&format!(
            "Arca initialized with {shares} key shares and a key threshold of {threshold}. Please securely distribute the key shares printed above. When Arca is re-sealed, restarted, or stopped, you must supply at least {threshold} of these keys to unseal it before it can start servicing requests."
        )));
        lines.push(String::new());
        lines.push(wrap_at_length(&format!(
            "Arca does not store the generated root key. Without at least {threshold} keys to reconstruct the root key, Arca will remain permanently sealed!"
        )));
        lines.push(String::new());
        lines.push(wrap_at_length(
            "It is possible to generate new unseal keys, provided you have a quorum of existing unseal keys shares. See \"arca operator rekey\" for more information.",
        ));
    } else {
        lines.push(String::new());
        lines.push(wrap_at_length("Success! Arca is initialized"));
    }
    lines.join("\n")
}

fn init(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator init", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    if parsed.flag("status") {
        let response = client
            .send(Method::Get, "sys/init", &[], None)
            .map_err(|error| local_request("Error checking init status", error))?;
        let initialized = response
            .body
            .as_ref()
            .and_then(|body| body.get("initialized"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return if initialized {
            context.print("Arca is initialized");
            Ok(0)
        } else {
            context.print("Arca is not initialized");
            Ok(2)
        };
    }
    let shares = positive_number(&parsed, "key-shares", 5)?;
    let threshold = positive_number(&parsed, "key-threshold", 3)?;
    let body = json!({"secret_shares": shares, "secret_threshold": threshold});
    let response = client
        .send(Method::Put, "sys/init", &[], Some(&body))
        .map_err(|error| remote("Error initializing", error))?;
    let init: InitResponse = response
        .body
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| {
            Failure::Remote(format!("Error initializing: unexpected answer: {error}"))
        })?
        .unwrap_or_default();
    match format {
        OutputFormat::Json | OutputFormat::Yaml => {
            let recovery_shares = init.recovery_keys.len() as u64;
            context.output_data(
                format,
                &MachineInit {
                    unseal_keys_b64: &init.keys_base64,
                    unseal_keys_hex: &init.keys,
                    unseal_shares: shares,
                    unseal_threshold: threshold,
                    recovery_keys_b64: &init.recovery_keys_base64,
                    recovery_keys_hex: &init.recovery_keys,
                    recovery_keys_shares: recovery_shares,
                    recovery_keys_threshold: 0,
                    root_token: &init.root_token,
                },
            );
        }
        OutputFormat::Table => context.print(&init_text(&init, shares, threshold)),
    }
    Ok(0)
}

/// `sys/leader` joined into the status, as Vault's `OutputSealStatus` does; a sealed
/// node answers 503 there, which means "HA enabled, leader unknown".
fn seal_status_output(client: &Client, seal: SealStatus) -> Result<SealStatusOutput, Failure> {
    let leader = match client.send(Method::Get, "sys/leader", &[], None) {
        Ok(response) => response
            .body
            .and_then(|body| serde_json::from_value::<LeaderStatus>(body).ok())
            .unwrap_or_default(),
        Err(RequestError::Api(error))
            if error.status == 503 || error.errors.iter().any(|text| text.contains("sealed")) =>
        {
            LeaderStatus {
                ha_enabled: true,
                ..LeaderStatus::default()
            }
        }
        Err(error) => {
            return Err(Failure::Local(format!(
                "Error checking leader status: {error}"
            )));
        }
    };
    Ok(SealStatusOutput::new(seal, leader))
}

fn print_seal_status(context: &mut Context<'_>, format: OutputFormat, output: &SealStatusOutput) {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => context.output_data(format, output),
        OutputFormat::Table => context.print(&output.table()),
    }
}

fn parse_seal_status(body: Option<Value>, prefix: &str) -> Result<SealStatus, Failure> {
    body.map(serde_json::from_value)
        .transpose()
        .map_err(|error| Failure::Remote(format!("{prefix}: unexpected answer: {error}")))?
        .ok_or_else(|| Failure::Remote(format!("{prefix}: empty answer")))
}

pub fn status(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("status", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let response = client
        .send(Method::Get, "sys/seal-status", &[], None)
        .map_err(|error| local_request("Error checking seal status", error))?;
    let seal = parse_seal_status(response.body, "Error checking seal status")
        .map_err(|failure| Failure::Local(failure.message().to_string()))?;
    let output = seal_status_output(&client, seal)?;
    print_seal_status(context, format, &output);
    Ok(if output.seal.sealed { 2 } else { 0 })
}

fn unseal(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator unseal", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let body = if parsed.flag("reset") {
        json!({"reset": true})
    } else {
        let key = match parsed.positionals.first() {
            Some(key) if key == "-" => local::read_stdin().map_err(Failure::Local)?,
            Some(key) => key.clone(),
            None => {
                context.may_prompt(&parsed)?;
                local::ask_secret("Unseal Key (will be hidden): ").map_err(Failure::Local)?
            }
        };
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(Failure::Usage("Error unsealing: missing key".to_string()));
        }
        json!({"key": key})
    };
    let response = client
        .send(Method::Put, "sys/unseal", &[], Some(&body))
        .map_err(|error| remote("Error unsealing", error))?;
    let seal = parse_seal_status(response.body, "Error unsealing")?;
    let output = seal_status_output(&client, seal)?;
    print_seal_status(context, format, &output);
    Ok(0)
}

fn seal(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator seal", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let client = context.client(&parsed)?;
    client
        .send(Method::Put, "sys/seal", &[], None)
        .map_err(|error| remote("Error sealing", error))?;
    context.print("Success! Arca is sealed.");
    Ok(0)
}

/// Vault's `parseFlagFile`: `@path` means the file's contents.
fn flag_file(value: Option<&str>) -> Result<Option<String>, Failure> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => local::read_file(path).map(Some).map_err(Failure::Local),
            None => Ok(Some(text.to_string())),
        },
    }
}

fn raft_join(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft join", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let mut body = serde_json::Map::new();
    if let Some(leader) = parsed.positionals.first() {
        body.insert("leader_api_addr".to_string(), json!(leader.trim()));
    }
    for (flag, key) in [
        ("leader-ca-cert", "leader_ca_cert"),
        ("leader-client-cert", "leader_client_cert"),
        ("leader-client-key", "leader_client_key"),
    ] {
        if let Some(contents) = flag_file(parsed.value(flag))? {
            body.insert(key.to_string(), json!(contents));
        }
    }
    body.insert("retry".to_string(), json!(parsed.flag("retry")));
    body.insert("non_voter".to_string(), json!(parsed.flag("non-voter")));
    let client = context.client(&parsed)?;
    let response = client
        .send(
            Method::Post,
            "sys/storage/raft/join",
            &[],
            Some(&Value::Object(body)),
        )
        .map_err(|error| remote("Error joining the node to the Raft cluster", error))?;
    let joined = response
        .body
        .as_ref()
        .and_then(|body| {
            body.get("joined")
                .or_else(|| body.get("data")?.get("joined"))
        })
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match format {
        OutputFormat::Json | OutputFormat::Yaml => {
            context.output_data(format, &json!({"Joined": joined}))
        }
        OutputFormat::Table => context.print(&table(
            &["Key | Value".to_string(), format!("Joined | {joined}")],
            "|",
        )),
    }
    Ok(0)
}

/// One server in `sys/storage/raft/configuration`.
#[derive(Debug, serde::Deserialize)]
pub struct RaftServer {
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub leader: bool,
    #[serde(default)]
    pub voter: bool,
}

/// The `operator raft list-peers` table.
pub fn peers_table(servers: &[RaftServer]) -> String {
    let mut rows = vec!["Node | Address | State | Voter".to_string()];
    for server in servers {
        let state = if server.leader { "leader" } else { "follower" };
        rows.push(format!(
            "{} | {} | {state} | {}",
            server.node_id, server.address, server.voter
        ));
    }
    table(&rows, "|")
}

fn raft_list_peers(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft list-peers", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let secret = client
        .read("sys/storage/raft/configuration", &[])
        .map_err(|error| remote("Error reading the raft cluster configuration", error))?
        .ok_or_else(|| Failure::Remote("No raft cluster configuration found".to_string()))?;
    if format != OutputFormat::Table {
        context.output_secret(format, &secret);
        return Ok(0);
    }
    let servers: Vec<RaftServer> = secret
        .data
        .as_ref()
        .and_then(|data| data.get("config"))
        .and_then(|config| config.get("servers"))
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| {
            Failure::Remote(format!(
                "Error reading the raft cluster configuration: {error}"
            ))
        })?
        .unwrap_or_default();
    context.print(&peers_table(&servers));
    Ok(0)
}

fn raft_remove_peer(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft remove-peer", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let client = context.client(&parsed)?;
    let body = json!({"server_id": parsed.positionals[0]});
    client
        .send(
            Method::Post,
            "sys/storage/raft/remove-peer",
            &[],
            Some(&body),
        )
        .map_err(|error| remote("Error removing the peer from raft cluster", error))?;
    context.print("Peer removed successfully!");
    Ok(0)
}

fn raft_snapshot(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("operator raft snapshot", None));
    };
    match subcommand.as_str() {
        "save" => raft_snapshot_save(context, rest),
        "restore" => raft_snapshot_restore(context, rest),
        "inspect" => raft_snapshot_inspect(context, rest),
        other => Err(catalog::unknown("operator raft snapshot", Some(other))),
    }
}

fn raft_snapshot_save(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft snapshot save", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let client = context.client(&parsed)?;
    let mut progress = local::ProgressMeter::new("Saving snapshot", None);
    let bytes = client
        .download(
            "sys/storage/raft/snapshot",
            SAVED_SNAPSHOT_BYTES_MAX,
            &mut progress,
        )
        .map_err(|error| remote("Error taking the snapshot", error))?;
    // A body that is not a snapshot (a proxy's error page) is refused here, before it
    // replaces a good file under the same name.
    saved_snapshot::decode(&bytes)
        .map_err(|error| Failure::Remote(format!("Error taking the snapshot: {error}")))?;
    local::write_file_bytes(&parsed.positionals[0], &bytes).map_err(Failure::Local)?;
    Ok(0)
}

fn raft_snapshot_restore(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft snapshot restore", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let bytes = local::read_file_bytes_max(&parsed.positionals[0], SAVED_SNAPSHOT_BYTES_MAX as u64)
        .map_err(Failure::Local)?;
    let path = if parsed.flag("force") {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    let client = context.client(&parsed)?;
    client
        .upload(
            path,
            bytes,
            local::ProgressMeter::new("Restoring snapshot", None),
        )
        .map_err(|error| remote("Error installing the snapshot", error))?;
    Ok(0)
}

/// What `operator raft snapshot inspect` shows of a checked file.
#[derive(Debug, Serialize)]
struct SnapshotInspection {
    format_version: u8,
    cluster_id: String,
    raft_index: u64,
    raft_term: u64,
    created: String,
    entries: u64,
    content_bytes: u64,
    content_sha256: String,
}

fn raft_snapshot_inspect(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator raft snapshot inspect", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let bytes = local::read_file_bytes_max(&parsed.positionals[0], SAVED_SNAPSHOT_BYTES_MAX as u64)
        .map_err(Failure::Local)?;
    let header = saved_snapshot::decode(&bytes)
        .map_err(|error| Failure::Local(format!("Error inspecting the snapshot: {error}")))?
        .header;
    let inspection = SnapshotInspection {
        format_version: saved_snapshot::FORMAT_VERSION,
        cluster_id: header.cluster_id,
        raft_index: header.raft_index,
        raft_term: header.raft_term,
        created: crate::util::rfc3339_seconds(header.created_unix),
        entries: header.entries,
        content_bytes: header.content_bytes,
        content_sha256: header.content_sha256,
    };
    match format {
        OutputFormat::Json | OutputFormat::Yaml => context.output_data(format, &inspection),
        OutputFormat::Table => {
            let rows = vec![
                "Key | Value".to_string(),
                format!("Format Version | {}", inspection.format_version),
                format!("Cluster ID | {}", inspection.cluster_id),
                format!("Raft Index | {}", inspection.raft_index),
                format!("Raft Term | {}", inspection.raft_term),
                format!("Created | {}", inspection.created),
                format!("Entries | {}", inspection.entries),
                format!("Content Bytes | {}", inspection.content_bytes),
                format!("Content SHA-256 | {}", inspection.content_sha256),
            ];
            context.print(&table(&rows, "|"));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_text_is_vaults_naming_arca() {
        let response = InitResponse {
            keys: vec!["d3b".to_string()],
            keys_base64: vec!["037yeI1EmdcgtNy+h2+vPGCyEWOYecwrarW/lBqsiSA=".to_string()],
            root_token: "hvs.aQrUNCbqnwq3t4tw5K6UcrWF".to_string(),
            ..InitResponse::default()
        };
        let expected = "\
Unseal Key 1: 037yeI1EmdcgtNy+h2+vPGCyEWOYecwrarW/lBqsiSA=

Initial Root Token: hvs.aQrUNCbqnwq3t4tw5K6UcrWF

Arca initialized with 1 key shares and a key threshold of 1. Please securely
distribute the key shares printed above. When Arca is re-sealed, restarted, or
stopped, you must supply at least 1 of these keys to unseal it before it can
start servicing requests.

Arca does not store the generated root key. Without at least 1 keys to
reconstruct the root key, Arca will remain permanently sealed!

It is possible to generate new unseal keys, provided you have a quorum of
existing unseal keys shares. See \"arca operator rekey\" for more information.";
        assert_eq!(init_text(&response, 1, 1), expected);
    }

    #[test]
    fn the_tutorial_greps_find_the_key_and_token() {
        // `grep 'Unseal Key 1' .init | awk '{print $NF}'` and the same for the token.
        let response = InitResponse {
            keys: vec!["aa".to_string()],
            keys_base64: vec!["KEY=".to_string()],
            root_token: "hvs.TOKEN".to_string(),
            ..InitResponse::default()
        };
        let text = init_text(&response, 1, 1);
        let last_word = |needle: &str| {
            text.lines()
                .find(|line| line.contains(needle))
                .and_then(|line| line.split_whitespace().last())
                .map(str::to_string)
        };
        assert_eq!(last_word("Unseal Key 1").as_deref(), Some("KEY="));
        assert_eq!(
            last_word("Initial Root Token").as_deref(),
            Some("hvs.TOKEN")
        );
    }

    #[test]
    fn peers_table_reads_like_vault() {
        let servers = vec![
            RaftServer {
                node_id: "node1".to_string(),
                address: "127.0.0.1:8201".to_string(),
                leader: true,
                voter: true,
            },
            RaftServer {
                node_id: "node2".to_string(),
                address: "127.0.0.2:8201".to_string(),
                leader: false,
                voter: false,
            },
        ];
        let expected = "\
Node     Address           State       Voter
----     -------           -----       -----
node1    127.0.0.1:8201    leader      true
node2    127.0.0.2:8201    follower    false";
        assert_eq!(peers_table(&servers), expected);
    }

    #[test]
    fn machine_init_json_keeps_vault_order() {
        let keys = vec!["k".to_string()];
        let text = crate::cli::format::go_json(&MachineInit {
            unseal_keys_b64: &keys,
            unseal_keys_hex: &keys,
            unseal_shares: 1,
            unseal_threshold: 1,
            recovery_keys_b64: &[],
            recovery_keys_hex: &[],
            recovery_keys_shares: 0,
            recovery_keys_threshold: 0,
            root_token: "hvs.x",
        });
        assert!(
            text.starts_with("{\n  \"unseal_keys_b64\": [\n    \"k\"\n  ],\n  \"unseal_keys_hex\"")
        );
        assert!(text.contains("\"recovery_keys_b64\": [],"));
        assert!(text.ends_with("\"root_token\": \"hvs.x\"\n}"));
    }
}
