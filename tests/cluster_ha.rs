//! A three-node cluster of real `arca server` processes, started from Vault-style
//! configuration files with `retry_join`: it elects a leader, survives `kill -9` of the
//! leader without losing an acknowledged write, and the restarted node (unsealed again)
//! rejoins and catches up. Nothing in the data directories is plaintext.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, any_file_contains, call, client, eventually, free_port};

#[test]
fn three_nodes_survive_kill_9_of_the_leader_without_losing_acknowledged_writes() {
    let root = tempfile::tempdir().unwrap();
    let http = client();

    // Phase 1: three nodes, each configured to retry_join the other two.
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let addresses: Vec<String> = ports
        .iter()
        .map(|(api, _)| format!("http://127.0.0.1:{api}"))
        .collect();
    let mut nodes: Vec<ServerProcess> = Vec::new();
    for (index, (api_port, cluster_port)) in ports.iter().enumerate() {
        let others: Vec<String> = addresses
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, address)| address.clone())
            .collect();
        let mut node = ServerProcess::configure(
            root.path(),
            &format!("node{}", index + 1),
            *api_port,
            *cluster_port,
            &others,
        );
        node.start();
        nodes.push(node);
    }
    for node in &nodes {
        eventually(
            Duration::from_secs(30),
            &format!("{} answers", node.name),
            || call(&http, "GET", &node.address(), "sys/seal-status", None, None).ok(),
        );
    }

    // Phase 2: initialize node1, unseal everyone; the others join through retry_join.
    let (status, init) = call(
        &http,
        "PUT",
        &addresses[0],
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .unwrap();
    assert_eq!(status, 200, "{init}");
    let unseal_key = init["keys_base64"][0].as_str().unwrap().to_string();
    let root_token = init["root_token"].as_str().unwrap().to_string();
    assert!(
        root_token.starts_with("hvs.") && root_token.len() == 28,
        "{root_token}"
    );
    for node in &nodes {
        eventually(
            Duration::from_secs(30),
            &format!("{} unseals", node.name),
            || match call(
                &http,
                "PUT",
                &node.address(),
                "sys/unseal",
                None,
                Some(&json!({"key": unseal_key})),
            ) {
                Ok((200, body)) if body["sealed"] == Value::Bool(false) => Some(()),
                _ => None,
            },
        );
    }
    eventually(Duration::from_secs(30), "three voters", || {
        let (status, body) = call(
            &http,
            "GET",
            &addresses[0],
            "sys/storage/raft/configuration",
            Some(&root_token),
            None,
        )
        .ok()?;
        let servers = body["data"]["config"]["servers"].as_array()?.clone();
        (status == 200
            && servers
                .iter()
                .filter(|server| server["voter"] == Value::Bool(true))
                .count()
                == 3)
            .then_some(())
    });

    // Phase 2b: `arca operator members`, asked of node2 (forwarded if it is a standby),
    // lists each node once, exactly one of them active; a standby's last echo is a time.
    let members = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
            .args(["operator", "members", &format!("-format={format}")])
            .env_clear()
            .env("VAULT_ADDR", &addresses[1])
            .env("VAULT_TOKEN", &root_token)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let table = eventually(Duration::from_secs(30), "three members", || {
        let table = members("table");
        (table.lines().count() == 5).then_some(table)
    });
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("Host Name") && lines[0].ends_with("Last Echo"),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let mut hosts: Vec<&str> = rows.iter().map(|row| row[0]).collect();
    hosts.sort();
    assert_eq!(hosts, ["node1", "node2", "node3"], "{table}");
    let active: Vec<&Vec<&str>> = rows.iter().filter(|row| row[3] == "true").collect();
    assert_eq!(active.len(), 1, "{table}");
    assert_eq!(active[0][4], env!("CARGO_PKG_VERSION"), "{table}");
    assert_eq!(active[0][7], "n/a", "{table}");
    for row in rows.iter().filter(|row| row[3] == "false") {
        assert!(row[7].ends_with('Z'), "a standby's last echo: {table}");
    }
    let json: Value = serde_json::from_str(&members("json")).unwrap();
    assert_eq!(json["Nodes"].as_array().unwrap().len(), 3, "{json}");

    // A standby will not stream its log (the active node does): it says where to ask.
    let (_, leader) = call(&http, "GET", &addresses[0], "sys/leader", None, None).unwrap();
    let standby = addresses
        .iter()
        .find(|address| Some(address.as_str()) != leader["leader_address"].as_str())
        .unwrap();
    let (status, body) = call(
        &http,
        "GET",
        standby,
        "sys/monitor",
        Some(&root_token),
        None,
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("active node"),
        "{body}"
    );

    // Phase 3: a KV mount and writes through every node (standbys forward).
    let (status, body) = call(
        &http,
        "POST",
        &addresses[1],
        "sys/mounts/kv",
        Some(&root_token),
        Some(&json!({"type": "kv"})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for number in 0..30 {
        let key = format!("key-{number}");
        let value = format!("plaintext-marker-{number}-d41d8cd9");
        let address = &addresses[number % 3];
        let (status, body) = call(
            &http,
            "PUT",
            address,
            &format!("kv/{key}"),
            Some(&root_token),
            Some(&json!({"value": value})),
        )
        .unwrap();
        assert_eq!(status, 204, "{body}");
        acknowledged.push((key, value));
    }

    // Phase 4: kill -9 the leader; the survivors elect a new one and keep accepting writes.
    let (_, leader) = call(&http, "GET", &addresses[0], "sys/leader", None, None).unwrap();
    let leader_address = leader["leader_address"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let leader_index = addresses
        .iter()
        .position(|address| *address == leader_address)
        .expect("the leader is one of ours");
    nodes[leader_index].kill9();
    let survivors: Vec<usize> = (0..3).filter(|index| *index != leader_index).collect();
    for number in 30..50 {
        let key = format!("key-{number}");
        let value = format!("plaintext-marker-{number}-d41d8cd9");
        let address = addresses[survivors[number % 2]].clone();
        eventually(
            Duration::from_secs(30),
            "a write after the leader died",
            || match call(
                &http,
                "PUT",
                &address,
                &format!("kv/{key}"),
                Some(&root_token),
                Some(&json!({"value": value})),
            ) {
                Ok((204, _)) => Some(()),
                _ => None,
            },
        );
        acknowledged.push((key, value));
    }

    // Phase 5: the killed node restarts sealed, unseals with the same key, and catches up.
    nodes[leader_index].start();
    let restarted = addresses[leader_index].clone();
    let (_, init_status) = eventually(
        Duration::from_secs(30),
        "the restarted node answers",
        || call(&http, "GET", &restarted, "sys/init", None, None).ok(),
    );
    assert_eq!(init_status["initialized"], Value::Bool(true));
    let (_, seal_status) = call(&http, "GET", &restarted, "sys/seal-status", None, None).unwrap();
    assert_eq!(
        seal_status["sealed"],
        Value::Bool(true),
        "a restarted node comes up sealed"
    );
    eventually(
        Duration::from_secs(30),
        "the restarted node unseals",
        || match call(
            &http,
            "PUT",
            &restarted,
            "sys/unseal",
            None,
            Some(&json!({"key": unseal_key})),
        ) {
            Ok((200, body)) if body["sealed"] == Value::Bool(false) => Some(()),
            _ => None,
        },
    );
    eventually(
        Duration::from_secs(30),
        "the restarted node catches up",
        || {
            let (_, mine) = call(&http, "GET", &restarted, "sys/leader", None, None).ok()?;
            let (_, theirs) = call(
                &http,
                "GET",
                &addresses[survivors[0]],
                "sys/leader",
                None,
                None,
            )
            .ok()?;
            let mine = mine["raft_applied_index"].as_u64()?;
            let theirs = theirs["raft_applied_index"].as_u64()?;
            (mine > 0 && mine >= theirs).then_some(())
        },
    );

    // Phase 6: every acknowledged write is there, read through every node.
    for (number, (key, value)) in acknowledged.iter().enumerate() {
        let address = &addresses[number % 3];
        let (status, body) = eventually(Duration::from_secs(10), "a read", || {
            call(
                &http,
                "GET",
                address,
                &format!("kv/{key}"),
                Some(&root_token),
                None,
            )
            .ok()
            .filter(|(status, _)| *status != 503)
        });
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["data"]["value"], Value::from(value.clone()), "{key}");
    }

    // Phase 7: sealing the active node hands leadership to an unsealed standby, which
    // then serves (Vault's active node steps down when sealed).
    let (_, leader) = call(&http, "GET", &addresses[0], "sys/leader", None, None).unwrap();
    let active = leader["leader_address"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let (status, body) = call(&http, "PUT", &active, "sys/seal", Some(&root_token), None).unwrap();
    assert_eq!(status, 204, "{body}");
    let other = addresses
        .iter()
        .find(|address| **address != active)
        .unwrap()
        .clone();
    // The seal answered once the lead was handed over: the standby it went to has begun
    // a newer term and no longer names the sealed node as its leader (the third may not
    // have heard of that term yet).
    let followers_of_the_sealed: Vec<&String> = addresses
        .iter()
        .filter(|address| **address != active)
        .filter(|address| {
            let (_, leader) = call(&http, "GET", address, "sys/leader", None, None).unwrap();
            leader["leader_address"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('/')
                == active
        })
        .collect();
    assert!(
        followers_of_the_sealed.len() < addresses.len() - 1,
        "every standby still follows the sealed node: {followers_of_the_sealed:?}"
    );
    eventually(
        Duration::from_secs(30),
        "a standby takes over after the seal",
        || {
            let (status, body) =
                call(&http, "GET", &other, "kv/key-1", Some(&root_token), None).ok()?;
            (status == 200 && body["data"]["value"].is_string()).then_some(())
        },
    );
    let (_, health) = call(&http, "GET", &active, "sys/health", None, None).unwrap();
    assert_eq!(health["sealed"], Value::Bool(true));

    // Phase 8: nothing in any data directory is plaintext.
    let unseal_bytes = base64_decode(&unseal_key);
    for node in &nodes {
        for (_, value) in &acknowledged {
            assert_eq!(
                any_file_contains(&node.data_dir, value.as_bytes()),
                None,
                "{value} stored in plaintext"
            );
        }
        assert_eq!(
            any_file_contains(&node.data_dir, root_token.as_bytes()),
            None,
            "root token stored in plaintext"
        );
        assert_eq!(
            any_file_contains(&node.data_dir, &unseal_bytes),
            None,
            "unseal key stored"
        );
        assert!(
            !node.log().contains(&root_token),
            "root token in the log of {}",
            node.name
        );
        assert!(
            !node.log().contains("plaintext-marker"),
            "a secret in the log of {}",
            node.name
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
