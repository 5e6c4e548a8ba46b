//! The planned failover of `docs/replication.md`, with the `arca` CLI only, through
//! `bash -c`, on three real clusters (one `arca server` process each): A the primary, B
//! and C its secondaries, activated with the tutorial's command lines.
//!
//! The failover's command lines are read from the documentation's block and must be the
//! ones this test runs, in order, so the two cannot drift apart. A line that sets a shell
//! variable (`A_TOKEN=$(...)`) runs as written followed by `&& echo $A_TOKEN`, and the
//! value is kept for later lines: each line is its own `bash -c`, as the tutorial test
//! runs them.
//!
//! What it shows: every secret written on A before the failover and on B after it is
//! readable on all three clusters (nothing acknowledged is lost); A refuses replicated
//! writes between `demote` and `update-primary` and forwards them to B afterwards (as a
//! Vault performance secondary does); `sys/replication/performance/status` reports on each
//! cluster what Vault reports (`mode`, `primary_cluster_addr`, `known_primary_cluster_addrs`,
//! `known_secondaries`), as JSON and as a table.
//!
//! A failure prints the three servers' logs (see `cli_support::Server`).

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use serde_json::{Value, json};

use cli_support::{
    Lab, Server, init_and_unseal, only_warnings, require_jq, root_login, start_cluster, table_rows,
    text, warnings_block,
};

/// The header of `{"alg":"ES512","typ":"JWT"}`, base64url: how an activation token starts.
const ES512_JWT_HEADER: &str = "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.";

/// What `secondary/enable` and `secondary/update-primary` print (Vault's words), on stderr.
const SECONDARY_SETUP_WARNING: &[&str] = &[
    "Vault has successfully found secondary information; it may take a while to",
    "perform setup tasks. Vault will be unavailable until these tasks and initial",
    "sync complete.",
];

/// The failover's command lines of `docs/replication.md`: the fenced block after "A planned
/// failover", comments left out, a line ending in `\` kept together with the next.
fn documented_failover() -> Vec<String> {
    let docs = include_str!("../docs/replication.md");
    let section = &docs[docs
        .find("A planned failover")
        .expect("docs/replication.md describes a planned failover")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + "```sh\n".len()..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut commands = Vec::new();
    let mut command = String::new();
    for line in block.lines() {
        if command.is_empty() && line.starts_with('#') {
            continue;
        }
        command.push_str(line);
        if line.ends_with('\\') {
            command.push('\n');
        } else {
            commands.push(std::mem::take(&mut command));
        }
    }
    commands
}

/// `arca login` as the tutorial's replicated `superuser`, printing nothing (the token
/// helper keeps the token for the lines that follow).
fn superuser_login(address_variable: &str) -> String {
    format!(
        "arca login -address=${address_variable} -no-print -method=userpass username=superuser password=vaultMagic"
    )
}

/// `secondary-token` on B for the cluster `id`, kept as `variable`.
fn token_line(variable: &str, id: &str) -> String {
    format!(
        "{variable}=$(arca write -address=$B_ADDR sys/replication/performance/primary/secondary-token \\\n  id={id} -format=json | jq -r '.wrap_info | .token')"
    )
}

fn update_primary_line(address_variable: &str, token_variable: &str) -> String {
    format!(
        "arca write -address=${address_variable} sys/replication/performance/secondary/update-primary token=${token_variable}"
    )
}

/// Run `NAME=$(...)` as written, then keep NAME's value for later lines.
fn keep_variable(lab: &mut Lab, line: &str) -> String {
    let (name, _) = line.split_once("=$(").expect("an assignment");
    lab.export(name, &format!("{line} && echo ${name}"))
}

/// `sys/replication/performance/status` of the cluster at `address_variable`, as
/// `-format=json` prints it: its `data`.
fn performance_status(lab: &Lab, address_variable: &str) -> Value {
    let printed = lab.ok(&format!(
        "arca read -address=${address_variable} -format=json sys/replication/performance/status"
    ));
    let status: Value = serde_json::from_str(&printed).unwrap_or_else(|_| panic!("{printed}"));
    status["data"].clone()
}

/// The same status as a table: its rows.
fn performance_status_table(lab: &Lab, address_variable: &str) -> Vec<(String, String)> {
    table_rows(&lab.ok(&format!(
        "arca read -address=${address_variable} sys/replication/performance/status"
    )))
}

/// Wait until the secondary at `address_variable` streams from its primary.
fn wait_streaming(lab: &Lab, address_variable: &str) -> Value {
    let line = format!(
        "arca read -address=${address_variable} -format=json sys/replication/performance/status"
    );
    let output = lab.eventually(&line, "", |output| {
        serde_json::from_slice::<Value>(&output.stdout)
            .is_ok_and(|status| status["data"]["state"] == "stream-wals")
    });
    serde_json::from_slice::<Value>(&output.stdout).unwrap()["data"].clone()
}

/// The cluster address a secondary reports for the cluster `server` (https, as Vault
/// reports it, on the port after the API's).
fn cluster_url(server: &Server) -> String {
    let api_port: u16 = server.address.rsplit(':').next().unwrap().parse().unwrap();
    format!("https://127.0.0.1:{}", api_port + 1)
}

/// Log in to the cluster at `address_variable` and wait until each of `secrets` (path
/// below `replicatedkv/`, value of its `v`) reads back there.
fn wait_readable(lab: &Lab, address_variable: &str, secrets: &[(&str, &str)]) {
    lab.ok(&superuser_login(address_variable));
    for (path, value) in secrets {
        let line = format!("arca kv get -address=${address_variable} -field=v replicatedkv/{path}");
        // `-field` prints the value alone, without a newline, as Vault's does.
        let output = lab.eventually(&line, "", |output| {
            output.status.success() && text(&output.stdout) == *value
        });
        assert_eq!(text(&output.stderr), "", "$ {line}");
    }
}

fn kv_put(lab: &Lab, address_variable: &str, path: &str, value: &str) {
    lab.ok(&format!(
        "arca kv put -address=${address_variable} replicatedkv/{path} v={value}"
    ));
}

#[test]
fn a_planned_failover_with_the_cli_on_three_clusters_loses_nothing() {
    require_jq();

    // The documented lines are the ones run below.
    let demote = "arca write -address=$A_ADDR -f sys/replication/performance/primary/demote";
    let promote = "arca write -address=$B_ADDR -f sys/replication/performance/secondary/promote";
    let failover = [
        superuser_login("A_ADDR"),
        demote.to_string(),
        superuser_login("B_ADDR"),
        promote.to_string(),
        token_line("A_TOKEN", "cluster-a"),
        token_line("C_TOKEN", "cluster-c"),
        superuser_login("A_ADDR"),
        update_primary_line("A_ADDR", "A_TOKEN"),
        superuser_login("C_ADDR"),
        update_primary_line("C_ADDR", "C_TOKEN"),
    ];
    assert_eq!(documented_failover(), failover);

    // Three clusters, as the tutorial starts, initializes and unseals its two.
    let mut lab = Lab::new();
    let a = start_cluster(lab.path(), "cluster-a");
    init_and_unseal(&mut lab, &a, "A", "A_ADDR");
    let b = start_cluster(lab.path(), "cluster-b");
    init_and_unseal(&mut lab, &b, "B", "B_ADDR");
    let c = start_cluster(lab.path(), "cluster-c");
    init_and_unseal(&mut lab, &c, "C", "C_ADDR");

    // A: the tutorial's policy, replicated user and kv-v2, then primary.
    root_login(&lab, "CLUSTER_A_ROOT_TOKEN", "A_ADDR");
    lab.ok("arca policy write -address=$A_ADDR superpolicy -<<EOF\npath \"*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"]\n}\nEOF");
    lab.ok("arca auth enable -address=$A_ADDR userpass");
    lab.ok("arca write -address=$A_ADDR auth/userpass/users/superuser password=\"vaultMagic\" policies=\"superpolicy\"");
    lab.ok("arca secrets enable -address=$A_ADDR -path=replicatedkv kv-v2");
    only_warnings(
        &lab,
        "arca write -address=$A_ADDR -f sys/replication/performance/primary/enable",
        &warnings_block(&[
            "This cluster is being enabled as a primary for replication. Vault will be",
            "unavailable for a brief period and will resume service shortly.",
        ]),
    );

    // B and C: an activation token each from A, then `secondary/enable` with it.
    for (side, id) in [("B", "cluster-b"), ("C", "cluster-c")] {
        let variable = format!("{side}_BOOTSTRAP");
        let token = lab.export(
            &variable,
            &format!("{variable}=$(arca write -address=$A_ADDR sys/replication/performance/primary/secondary-token id={id} -format=json | jq -r '.wrap_info | .token') && echo ${variable}"),
        );
        assert!(token.starts_with(ES512_JWT_HEADER), "{token}");
    }
    for side in ["B", "C"] {
        root_login(
            &lab,
            &format!("CLUSTER_{side}_ROOT_TOKEN"),
            &format!("{side}_ADDR"),
        );
        only_warnings(
            &lab,
            &format!(
                "arca write -address=${side}_ADDR sys/replication/performance/secondary/enable token=${side}_BOOTSTRAP"
            ),
            &warnings_block(SECONDARY_SETUP_WARNING),
        );
        wait_streaming(&lab, &format!("{side}_ADDR"));
    }
    let known = performance_status(&lab, "A_ADDR");
    assert_eq!(known["mode"], "primary", "{known:#}");
    assert_eq!(
        known["known_secondaries"],
        json!(["cluster-b", "cluster-c"])
    );
    let set_id = known["cluster_id"].clone();

    // Secrets written on A before the failover, acknowledged by the CLI's exit 0.
    let before = [
        ("before-1", "one"),
        ("before-2", "two"),
        ("before-3", "three"),
    ];
    lab.ok(&superuser_login("A_ADDR"));
    for (path, value) in before {
        kv_put(&lab, "A_ADDR", path, value);
    }

    // The failover, line for line.
    lab.ok(&failover[0]);
    only_warnings(
        &lab,
        &failover[1],
        &warnings_block(&[
            "This cluster is being demoted to a replication secondary. Vault will be",
            "unavailable for a brief period and will resume service shortly.",
        ]),
    );
    let demoted = performance_status(&lab, "A_ADDR");
    assert_eq!(
        (&demoted["mode"], &demoted["state"], &demoted["cluster_id"]),
        (&json!("secondary"), &json!("idle"), &set_id),
        "{demoted:#}"
    );
    // Demoted, A has no primary to forward a replicated write to: it refuses it.
    let refused = lab.sh(
        "arca kv put -address=$A_ADDR replicatedkv/while-demoted v=lost",
        "",
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("demoted"),
        "{}",
        text(&refused.stderr)
    );

    lab.ok(&failover[2]);
    only_warnings(
        &lab,
        &failover[3],
        &warnings_block(&[
            "This cluster is being promoted to a replication primary. Vault will be",
            "unavailable for a brief period and will resume service shortly.",
        ]),
    );
    let promoted = performance_status(&lab, "B_ADDR");
    assert_eq!(
        (
            &promoted["mode"],
            &promoted["state"],
            &promoted["cluster_id"]
        ),
        (&json!("primary"), &json!("running"), &set_id),
        "{promoted:#}"
    );
    for line in &failover[4..6] {
        let token = keep_variable(&mut lab, line);
        assert!(token.starts_with(ES512_JWT_HEADER), "{line}: {token}");
    }
    for steps in failover[6..].chunks(2) {
        lab.ok(&steps[0]);
        only_warnings(&lab, &steps[1], &warnings_block(SECONDARY_SETUP_WARNING));
    }

    // A and C follow B, as Vault reports a secondary: B's cluster address, their new ids.
    let b_cluster = cluster_url(&b);
    for (side, id) in [("A", "cluster-a"), ("C", "cluster-c")] {
        let status = wait_streaming(&lab, &format!("{side}_ADDR"));
        assert_eq!(status["mode"], "secondary", "{side}: {status:#}");
        assert_eq!(status["cluster_id"], set_id, "{side}: {status:#}");
        assert_eq!(status["secondary_id"], id, "{side}: {status:#}");
        assert_eq!(
            status["primary_cluster_addr"], b_cluster,
            "{side}: {status:#}"
        );
        assert_eq!(
            status["known_primary_cluster_addrs"],
            json!([b_cluster]),
            "{side}: {status:#}"
        );
        let rows = performance_status_table(&lab, &format!("{side}_ADDR"));
        for row in [("mode", "secondary"), ("primary_cluster_addr", &b_cluster)] {
            assert!(
                rows.iter()
                    .any(|(key, value)| (key.as_str(), value.as_str()) == row),
                "{side}: {row:?} in {rows:?}"
            );
        }
    }
    // B, the primary: the ids it issued tokens for, and no primary_cluster_addr given.
    let status = performance_status(&lab, "B_ADDR");
    assert_eq!(status["mode"], "primary", "{status:#}");
    assert_eq!(
        status["known_secondaries"],
        json!(["cluster-a", "cluster-c"]),
        "{status:#}"
    );
    assert_eq!(status["primary_cluster_addr"], "", "{status:#}");
    let rows = performance_status_table(&lab, "B_ADDR");
    for row in [
        ("mode", "primary"),
        ("known_secondaries", "[cluster-a cluster-c]"),
    ] {
        assert!(
            rows.iter()
                .any(|(key, value)| (key.as_str(), value.as_str()) == row),
            "{row:?} in {rows:?}"
        );
    }

    // After the failover: a write on B, and one on A, which forwards it to B now that it
    // follows B (a Vault performance secondary forwards writes to replicated state).
    lab.ok(&superuser_login("B_ADDR"));
    kv_put(&lab, "B_ADDR", "after-1", "four");
    lab.ok(&superuser_login("A_ADDR"));
    kv_put(&lab, "A_ADDR", "after-via-a", "five");

    // Everything acknowledged, before and after, is on every cluster; the write A refused
    // while demoted is nowhere.
    let everything = [
        before[0],
        before[1],
        before[2],
        ("after-1", "four"),
        ("after-via-a", "five"),
    ];
    for side in ["B", "A", "C"] {
        let address_variable = format!("{side}_ADDR");
        wait_readable(&lab, &address_variable, &everything);
        let missing = lab.sh(
            &format!("arca kv get -address=${address_variable} replicatedkv/while-demoted"),
            "",
        );
        assert_eq!(missing.status.code(), Some(2), "{side}");
    }

    drop(c);
    drop(b);
    drop(a);
}
