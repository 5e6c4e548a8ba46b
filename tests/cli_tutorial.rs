//! The performance replication tutorial (`shared/seed/performance-replication-tutorial.txt`),
//! command line for command line through `bash -c`, with `arca` in place of `vault`,
//! against two real `arca server` processes (one single-node cluster each).
//!
//! The command lines are the tutorial's verbatim (pipes into `jq`, `xargs`, heredocs,
//! `> .init`, `grep | awk`) except for what running without Docker needs: loopback
//! addresses on free ports instead of 8200/8220 and the containers' host names, a
//! temporary lab directory, the Raft data directory in the lab instead of `/vault/file`,
//! and bounded polls where the tutorial's reader would simply wait a moment (a cluster
//! becoming active, a secondary finishing its initial sync, a path filter reaching it).
//!
//! Every tutorial step runs. None needs a write forwarded from the secondary to its
//! primary (not implemented yet): the secondary is only logged into and read from, and
//! a first userpass login there creates its entity on the primary, which is already
//! done. Added to the tutorial: the `secondary-token` answer as a table (no `-format`),
//! as the reference (§1.6) shows it, and `read` of the status as a table.
//!
//! A failure prints both servers' logs (see `cli_support::Server`).

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use serde_json::Value;

use cli_support::{
    CUBBYHOLE_MOUNT, IDENTITY_MOUNT, Lab, SYS_MOUNT, Server, check_secrets_list,
    check_userpass_login, free_port_pair, init_and_unseal, only_warnings, require_jq, root_login,
    run_server, table_rows, text, tutorial_config, warnings_block,
};

/// The header of `{"alg":"ES512","typ":"JWT"}`, base64url: how the tutorial's token starts.
const ES512_JWT_HEADER: &str = "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.";

/// `$ cat > NAME/config/vault-server.hcl <<EOF ... EOF`, then the `docker run ... vault
/// server` as a local process.
fn start_cluster(lab: &Lab, name: &str) -> Server {
    let port = free_port_pair();
    let config = tutorial_config(port, &format!("$PWD/{name}/data"));
    assert_eq!(
        lab.ok(&format!(
            "cat > {name}/config/vault-server.hcl <<EOF\n{config}EOF"
        )),
        ""
    );
    let config_path = lab.path().join(name).join("config/vault-server.hcl");
    run_server(lab.path(), name, &config_path, port)
}

/// `$ vault login -address=$SEC_ADDR -method=userpass username=superuser`, typing
/// `vaultMagic` at the prompt, retried (bounded) while the secondary is still syncing.
fn userpass_login_on_the_secondary(lab: &Lab) {
    let line = "arca login -address=$SEC_ADDR -method=userpass username=superuser";
    let login = lab.eventually(line, "vaultMagic\n", |output| output.status.success());
    assert_eq!(text(&login.stderr), "", "$ {line}");
    check_userpass_login(&text(&login.stdout), "Password (will be hidden): \n");
}

#[test]
fn performance_replication_tutorial() {
    require_jq();

    // Lab setup: $ mkdir -p cluster-pri/config cluster-pri/data cluster-sec/config cluster-sec/data
    let mut lab = Lab::new();
    lab.ok("mkdir -p cluster-pri/config cluster-pri/data cluster-sec/config cluster-sec/data");

    // Start the primary cluster; initialize and unseal it.
    let primary = start_cluster(&lab, "cluster-pri");
    init_and_unseal(&mut lab, &primary, "PRI", "PRI_ADDR");

    // Start the secondary cluster; initialize and unseal it.
    let secondary = start_cluster(&lab, "cluster-sec");
    init_and_unseal(&mut lab, &secondary, "SEC", "SEC_ADDR");

    // Configure the primary cluster: log in, a superpolicy, userpass with superuser, a
    // replicated and a local kv-v2.
    root_login(&lab, "CLUSTER_PRI_ROOT_TOKEN", "PRI_ADDR");
    assert_eq!(
        lab.ok("arca policy write -address=$PRI_ADDR superpolicy -<<EOF\npath \"*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"]\n}\nEOF"),
        "Success! Uploaded policy: superpolicy\n"
    );
    assert_eq!(
        lab.ok("arca auth enable -address=$PRI_ADDR userpass"),
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    assert_eq!(
        lab.ok("arca write -address=$PRI_ADDR auth/userpass/users/superuser password=\"vaultMagic\" policies=\"superpolicy\""),
        "Success! Data written to: auth/userpass/users/superuser\n"
    );
    assert_eq!(
        lab.ok("arca secrets enable -address=$PRI_ADDR -path=replicatedkv kv-v2"),
        "Success! Enabled the kv-v2 secrets engine at: replicatedkv/\n"
    );
    assert_eq!(
        lab.ok("arca secrets enable -address=$PRI_ADDR -path=localkv -local kv-v2"),
        "Success! Enabled the kv-v2 secrets engine at: localkv/\n"
    );

    // Enable performance replication on the primary: only Vault's warnings block.
    only_warnings(
        &lab,
        "arca write -address=$PRI_ADDR -f sys/replication/performance/primary/enable",
        &warnings_block(&[
            "This cluster is being enabled as a primary for replication. Vault will be",
            "unavailable for a brief period and will resume service shortly.",
        ]),
    );

    // $ SEC_BOOTSTRAP=$(vault write ... secondary-token id=secondary -format=json | jq -r '.wrap_info | .token') && echo Token: $SEC_BOOTSTRAP
    let printed = lab.ok(
        "SEC_BOOTSTRAP=$(arca write -address=$PRI_ADDR sys/replication/performance/primary/secondary-token id=secondary -format=json | jq -r '.wrap_info | .token') && echo Token: $SEC_BOOTSTRAP",
    );
    let sec_bootstrap = printed
        .strip_prefix("Token: ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{printed}"))
        .to_string();
    assert!(
        sec_bootstrap.starts_with(ES512_JWT_HEADER) && sec_bootstrap.split('.').count() == 3,
        "a JWT like the tutorial's: {sec_bootstrap}"
    );
    lab.exported
        .push(("SEC_BOOTSTRAP".to_string(), sec_bootstrap));

    // The same request without -format: the wrapped response as Vault's table, its keys
    // ending in a colon (reference §1.6). Another id, since an id is used once; then
    // that secondary is revoked again.
    let wrapped = lab.ok(
        "arca write -address=$PRI_ADDR sys/replication/performance/primary/secondary-token id=table-secondary",
    );
    let rows = table_rows(&wrapped);
    let keys: Vec<&str> = rows.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "wrapping_token:",
            "wrapping_accessor:",
            "wrapping_token_ttl:",
            "wrapping_token_creation_time:",
            "wrapping_token_creation_path:",
        ],
        "{wrapped}"
    );
    assert!(rows[0].1.starts_with(ES512_JWT_HEADER), "{wrapped}");
    assert!(!rows[1].1.is_empty(), "{wrapped}");
    assert_eq!(rows[2].1, "30m", "{wrapped}");
    // Go's time.Time.String(): `2018-05-09 06:10:13.437421436 +0000 UTC`.
    let creation_time = &rows[3].1;
    assert!(
        creation_time.ends_with(" +0000 UTC")
            && creation_time.as_bytes().get(10) == Some(&b' ')
            && creation_time.as_bytes().get(13) == Some(&b':'),
        "{wrapped}"
    );
    assert_eq!(
        rows[4].1, "sys/replication/performance/primary/secondary-token",
        "{wrapped}"
    );
    assert_eq!(
        lab.ok(
            "arca write -address=$PRI_ADDR sys/replication/performance/primary/revoke-secondary id=table-secondary"
        ),
        "Success! Data written to: sys/replication/performance/primary/revoke-secondary\n"
    );

    // Configure the secondary cluster: log in with its root token, activate it with the
    // token from the primary (which wipes it): only Vault's warnings block.
    root_login(&lab, "CLUSTER_SEC_ROOT_TOKEN", "SEC_ADDR");
    only_warnings(
        &lab,
        "arca write -address=$SEC_ADDR sys/replication/performance/secondary/enable token=$SEC_BOOTSTRAP",
        &warnings_block(&[
            "Vault has successfully found secondary information; it may take a while to",
            "perform setup tasks. Vault will be unavailable until these tasks and initial",
            "sync complete.",
        ]),
    );

    // The secondary's root token is gone; superuser, replicated from the primary, logs in.
    userpass_login_on_the_secondary(&lab);

    // $ vault read -format=json -address=$SEC_ADDR sys/replication/status | jq
    let line = "arca read -format=json -address=$SEC_ADDR sys/replication/status | jq";
    let status = lab.eventually(line, "", |output| {
        serde_json::from_slice::<Value>(&output.stdout)
            .is_ok_and(|status| status["data"]["performance"]["state"] == "stream-wals")
    });
    assert_eq!(text(&status.stderr), "", "$ {line}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["data"]["dr"],
        serde_json::json!({"mode": "disabled"})
    );
    let performance = &status["data"]["performance"];
    assert_eq!(performance["mode"], "secondary", "{status:#}");
    assert_eq!(performance["connection_state"], "ready", "{status:#}");
    assert_eq!(performance["corrupted_merkle_tree"], false, "{status:#}");
    assert_eq!(performance["secondary_id"], "secondary", "{status:#}");
    assert_eq!(
        performance["primaries"][0]["api_address"], primary.address,
        "{status:#}"
    );
    // The primary's cluster address, https:// as in the tutorial's output although
    // VAULT_CLUSTER_ADDR says http://.
    let api_port: u16 = primary.address.rsplit(':').next().unwrap().parse().unwrap();
    let primary_cluster_url = format!("https://127.0.0.1:{}", api_port + 1);
    assert_eq!(
        performance["known_primary_cluster_addrs"],
        serde_json::json!([primary_cluster_url]),
        "{status:#}"
    );
    assert_eq!(
        performance["primaries"][0]["cluster_address"], primary_cluster_url,
        "{status:#}"
    );
    assert!(performance["last_remote_wal"].is_u64(), "{status:#}");
    assert!(
        performance["merkle_root"]
            .as_str()
            .is_some_and(|root| root.len() == 40),
        "{status:#}"
    );
    for key in ["request_id", "lease_id", "lease_duration", "renewable"] {
        assert!(status.get(key).is_some(), "{key}: {status:#}");
    }

    // The same status as a table: the nested maps in Go's %v (`map[mode:disabled]`).
    let table_text = lab.ok("arca read -address=$SEC_ADDR sys/replication/status");
    let rows = table_rows(&table_text);
    assert_eq!(
        rows[0],
        ("dr".to_string(), "map[mode:disabled]".to_string())
    );
    assert_eq!(rows[1].0, "performance", "{table_text}");
    assert!(
        rows[1].1.starts_with("map[") && rows[1].1.contains(" mode:secondary "),
        "{table_text}"
    );

    // $ vault secrets list -address=$SEC_ADDR: replicatedkv/ came over, localkv/ did not.
    let line = "arca secrets list -address=$SEC_ADDR";
    let mounts = lab.eventually(line, "", |output| {
        output.status.success() && text(&output.stdout).contains("\nreplicatedkv/ ")
    });
    check_secrets_list(
        &text(&mounts.stdout),
        &[
            CUBBYHOLE_MOUNT,
            IDENTITY_MOUNT,
            ("replicatedkv/", "kv", "n/a"),
            SYS_MOUNT,
        ],
    );

    // Manage replicated mounts: back on the primary, deny replicatedkv to the secondary.
    root_login(&lab, "CLUSTER_PRI_ROOT_TOKEN", "PRI_ADDR");
    assert_eq!(
        lab.ok("arca write -address=$PRI_ADDR \\\n  sys/replication/performance/primary/paths-filter/secondary \\\n  mode=\"deny\" paths=\"replicatedkv\""),
        "Success! Data written to: sys/replication/performance/primary/paths-filter/secondary\n"
    );

    // Log back in to the secondary; replicatedkv/ is gone from it (once the filter, which
    // travels asynchronously, has reached it).
    userpass_login_on_the_secondary(&lab);
    let mounts = lab.eventually(line, "", |output| {
        output.status.success() && !text(&output.stdout).contains("replicatedkv/")
    });
    check_secrets_list(
        &text(&mounts.stdout),
        &[CUBBYHOLE_MOUNT, IDENTITY_MOUNT, SYS_MOUNT],
    );

    // The servers' logs, shown when a test fails, are plain text: no terminal colours
    // in a file.
    for server in [&primary, &secondary] {
        let log = std::fs::read_to_string(&server.log_path).unwrap();
        assert!(log.contains("unsealed"), "{log}");
        assert!(!log.contains('\x1b'), "colour codes in {log}");
    }

    // Clean up: stop both clusters (the lab directory goes with `lab`).
    drop(secondary);
    drop(primary);
}
