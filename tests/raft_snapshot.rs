//! Raft snapshots for backup and restore (issue 10 item 3), on real processes.
//!
//! 1. A three-node cluster with a KV secret, a policy and a userpass user saves a
//!    snapshot with `arca operator raft snapshot save`; the file holds neither the
//!    secret nor the root token in the clear.
//! 2. Damaged, truncated, wrong-version and foreign files are refused with a 400 in
//!    Vault's envelope, and each refusal leaves the data as it was.
//! 3. The data is deleted, the snapshot restored with the CLI: the secret, the policy
//!    and the user are back, also after the active node hands over to another node.
//! 4. A second cluster with its own keys refuses the snapshot without `-force`; with
//!    `-force` every node seals, unseals with the first cluster's key, and serves the
//!    first cluster's secret, policy, user and root token.
//!
//! A second test restores a snapshot larger than the 32 MiB a single request or Raft
//! entry carries, saved from a one-node dev server, into a fresh three-node cluster: the
//! restore is staged in bounded Raft batches and swapped in by one small entry.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestCluster, call, client, eventually, free_port};

const SECRET_VALUE: &str = "hunter2-only-in-the-barrier";
const USER_PASSWORD: &str = "alice-password-7781";
/// Together over the CLI's 1 MiB threshold for showing progress.
const BULK_PIECES: usize = 12;
const BULK_PIECE_BYTES: usize = 100 * 1024;

/// Above the 32 MiB a restore used to be limited to (one request body, one Raft entry):
/// 84 values of 512 KiB, written to a one-node dev server (on a loaded two-core machine
/// a three-node debug cluster took over 30 s for some of these writes: followers that
/// fell behind were sent more than they could take within the AppendEntries timeout).
const LARGE_PIECES: usize = 84;
const LARGE_PIECE_BYTES: usize = 512 * 1024;

/// `arca` with the cluster's address and a token, as an operator runs it.
fn arca(address: &str, token: &str, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("ARCA_ADDR", address)
        .env("ARCA_TOKEN", token)
        .output()
        .unwrap()
}

fn ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// [`call`], retried while the cluster answers 5xx (an election on a loaded machine: the
/// debug build's password hashing can hold a node's heartbeats back), up to 30 s.
fn settled(
    http: &reqwest::blocking::Client,
    method: &str,
    address: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut last = None;
    let answer = eventually_or_none(Duration::from_secs(30), || {
        let answer = call(http, method, address, path, token, body);
        let settled = matches!(&answer, Ok((status, _)) if *status < 500);
        last = Some(answer);
        settled.then_some(())
    });
    match (answer, last) {
        (Some(()), Some(Ok(answer))) => answer,
        (_, last) => panic!("{method} {path} did not settle: last answer {last:?}"),
    }
}

/// Retry `attempt` for up to `within`; `None` when it never succeeded.
fn eventually_or_none(within: Duration, mut attempt: impl FnMut() -> Option<()>) -> Option<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if attempt().is_some() {
            return Some(());
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write(http: &reqwest::blocking::Client, address: &str, token: &str, path: &str, body: Value) {
    let (status, answer) = settled(http, "POST", address, path, Some(token), Some(&body));
    assert!(status == 200 || status == 204, "{path}: {status} {answer}");
}

/// Mount KV v2, write a secret, a policy that reads it, and a userpass user holding it.
fn populate(http: &reqwest::blocking::Client, address: &str, token: &str) {
    write(
        http,
        address,
        token,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    write(
        http,
        address,
        token,
        "secret/data/app",
        json!({"data": {"password": SECRET_VALUE}}),
    );
    write(
        http,
        address,
        token,
        "sys/policies/acl/app-reader",
        json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }"}),
    );
    write(
        http,
        address,
        token,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    );
    write(
        http,
        address,
        token,
        "auth/userpass/users/alice",
        json!({"password": USER_PASSWORD, "token_policies": "app-reader"}),
    );
}

/// The secret, the policy and the user as `populate` left them, through `address`.
fn check_data(http: &reqwest::blocking::Client, address: &str, token: &str) {
    let (status, secret) = settled(http, "GET", address, "secret/data/app", Some(token), None);
    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["data"]["data"]["password"], SECRET_VALUE);
    let (status, policy) = settled(
        http,
        "GET",
        address,
        "sys/policies/acl/app-reader",
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{policy}");
    let (status, login) = settled(
        http,
        "POST",
        address,
        "auth/userpass/login/alice",
        None,
        Some(&json!({"password": USER_PASSWORD})),
    );
    assert_eq!(status, 200, "{login}");
    let user_token = login["auth"]["client_token"].as_str().unwrap();
    let (status, read) = settled(
        http,
        "GET",
        address,
        "secret/data/app",
        Some(user_token),
        None,
    );
    assert_eq!(
        status, 200,
        "the user reads with the restored policy: {read}"
    );
}

/// POST raw bytes as a restore; the status and the JSON answer.
fn post_snapshot(
    http: &reqwest::blocking::Client,
    address: &str,
    token: &str,
    path: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let response = http
        .post(format!("{address}/v1/{path}"))
        .header("X-Vault-Token", token)
        .body(bytes)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn snapshots_save_restore_and_restore_into_another_cluster() {
    let http = client();
    let lab = tempfile::tempdir().unwrap();
    let home = lab.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // 1. A cluster with data saves a snapshot through the CLI.
    let first = TestCluster::start(&lab.path().join("first"), &http);
    let leader = first.addresses[first.leader(&http)].clone();
    let root = first.root_token.clone();
    populate(&http, &leader, &root);
    check_data(&http, &leader, &root);
    // Bulk secrets make the snapshot large enough for the CLI to show progress (in
    // pieces: one huge write in the debug build stalls heartbeats long enough for an
    // election on a loaded machine).
    for piece in 0..BULK_PIECES {
        write(
            &http,
            &leader,
            &root,
            &format!("secret/data/bulk-{piece}"),
            json!({"data": {"blob": "x".repeat(BULK_PIECE_BYTES)}}),
        );
    }
    let file = lab.path().join("first.snap");
    // Saved through a standby: the request is forwarded to the active node, and the
    // binary answer comes back through the cluster channel.
    let standby = first.addresses[(first.leader(&http) + 1) % 3].clone();
    let saved = arca(
        &standby,
        &root,
        &home,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    ok(&saved);
    let progress = String::from_utf8_lossy(&saved.stderr);
    assert!(progress.contains("Saving snapshot: "), "{progress}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"ARCASNAP"));
    for plaintext in [SECRET_VALUE, USER_PASSWORD, root.as_str()] {
        assert!(
            !contains(&bytes, plaintext),
            "the snapshot holds {plaintext:?} in the clear"
        );
    }
    let inspected = arca(
        &leader,
        &root,
        &home,
        &[
            "operator",
            "raft",
            "snapshot",
            "inspect",
            "-format=json",
            file.to_str().unwrap(),
        ],
    );
    ok(&inspected);
    let inspection: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspection["format_version"], 1);
    assert!(
        inspection["raft_index"].as_u64().unwrap() > 0,
        "{inspection}"
    );

    // 2. Damaged files are refused with a 400 and change nothing.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    let mut future = bytes.clone();
    future[8] = 9;
    let damaged: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupt", flipped, "corrupt"),
        ("truncated", bytes[..bytes.len() - 7].to_vec(), "truncated"),
        ("wrong version", future, "version 9"),
        (
            "not a snapshot",
            b"{\"hello\": 1}".to_vec(),
            "not an Arca snapshot",
        ),
    ];
    for (what, file_bytes, expected) in damaged {
        for path in [
            "sys/storage/raft/snapshot",
            "sys/storage/raft/snapshot-force",
        ] {
            let (status, answer) = post_snapshot(&http, &leader, &root, path, file_bytes.clone());
            assert_eq!(status, 400, "{what} via {path}: {answer}");
            let message = answer["errors"][0].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{what}: {answer}");
        }
        check_data(&http, &leader, &root);
    }

    // 3. Delete the data; a restore brings it back, on whichever node is active.
    for path in [
        "secret/metadata/app",
        "sys/policies/acl/app-reader",
        "auth/userpass/users/alice",
    ] {
        let (status, answer) = settled(&http, "DELETE", &leader, path, Some(&root), None);
        assert_eq!(status, 204, "{path}: {answer}");
    }
    let (status, _) = settled(&http, "GET", &leader, "secret/data/app", Some(&root), None);
    assert_eq!(status, 404);
    let restored = arca(
        &leader,
        &root,
        &home,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
        ],
    );
    ok(&restored);
    let progress = String::from_utf8_lossy(&restored.stderr);
    assert!(progress.contains("Restoring snapshot: "), "{progress}");
    check_data(&http, &leader, &root);
    for address in &first.addresses {
        // Standbys forward to the active node; each still answers for the cluster.
        check_data(&http, address, &root);
    }
    let old_leader = first.leader(&http);
    let (status, answer) = settled(&http, "PUT", &leader, "sys/step-down", Some(&root), None);
    assert_eq!(status, 204, "{answer}");
    let new_leader = eventually(Duration::from_secs(30), "another node takes over", || {
        let now = first.leader(&http);
        (now != old_leader).then_some(now)
    });
    let new_address = first.addresses[new_leader].clone();
    eventually(
        Duration::from_secs(30),
        "the new active node serves the restored data",
        || {
            let (status, _) = call(
                &http,
                "GET",
                &new_address,
                "secret/data/app",
                Some(&root),
                None,
            )
            .ok()?;
            (status == 200).then_some(())
        },
    );
    check_data(&http, &new_address, &root);

    // 4. Another cluster, with its own keys.
    let second = TestCluster::start(&lab.path().join("second"), &http);
    let second_leader = second.addresses[second.leader(&http)].clone();
    let second_root = second.root_token.clone();
    let (status, answer) = post_snapshot(
        &http,
        &second_leader,
        &second_root,
        "sys/storage/raft/snapshot",
        bytes.clone(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .contains("use the snapshot-force API"),
        "{answer}"
    );
    let (status, mounts) = settled(
        &http,
        "GET",
        &second_leader,
        "sys/mounts",
        Some(&second_root),
        None,
    );
    assert_eq!(status, 200, "the refused restore changed nothing: {mounts}");
    assert!(mounts["data"].get("secret/").is_none());

    let forced = arca(
        &second_leader,
        &second_root,
        &home,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            file.to_str().unwrap(),
        ],
    );
    ok(&forced);
    // Every node now holds keys it cannot open: sealed, as Vault seals a Shamir cluster.
    for address in &second.addresses {
        eventually(Duration::from_secs(30), "the node seals", || {
            let (_, status) = call(&http, "GET", address, "sys/seal-status", None, None).ok()?;
            (status["sealed"] == Value::Bool(true)).then_some(())
        });
    }
    // The second cluster's key no longer opens it; the first cluster's does.
    let (status, answer) = settled(
        &http,
        "PUT",
        &second.addresses[0],
        "sys/unseal",
        None,
        Some(&json!({"key": second.unseal_key})),
    );
    assert_eq!(status, 400, "{answer}");
    for address in &second.addresses {
        eventually(
            Duration::from_secs(30),
            "the node unseals with the snapshot's key",
            || {
                let (status, body) = call(
                    &http,
                    "PUT",
                    address,
                    "sys/unseal",
                    None,
                    Some(&json!({"key": first.unseal_key})),
                )
                .ok()?;
                (status == 200 && body["sealed"] == Value::Bool(false)).then_some(())
            },
        );
    }
    let active = second.addresses[second.leader(&http)].clone();
    eventually(
        Duration::from_secs(30),
        "the restored cluster serves",
        || {
            let (status, _) =
                call(&http, "GET", &active, "secret/data/app", Some(&root), None).ok()?;
            (status == 200).then_some(())
        },
    );
    check_data(&http, &active, &root);
    let (status, _) = settled(
        &http,
        "GET",
        &active,
        "sys/mounts",
        Some(&second_root),
        None,
    );
    assert_eq!(
        status, 403,
        "the second cluster's own root token is gone with its storage"
    );
}

/// A dev server process, stopped when dropped.
struct DevServer(std::process::Child);

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of large piece `piece`: its number first, so a piece read back is known to
/// be the one written there.
fn large_piece(piece: usize) -> String {
    let mut value = format!("piece-{piece:04}-");
    value.push_str(&"y".repeat(LARGE_PIECE_BYTES - value.len()));
    value
}

/// Every large piece reads back whole through `address`.
fn check_large_pieces(http: &reqwest::blocking::Client, address: &str, token: &str) {
    for piece in 0..LARGE_PIECES {
        let path = format!("bulk/piece-{piece}");
        let (status, answer) = settled(http, "GET", address, &path, Some(token), None);
        assert_eq!(status, 200, "{address} {path}");
        assert!(
            answer["data"]["blob"].as_str() == Some(large_piece(piece).as_str()),
            "{address} {path}: the value read back differs"
        );
    }
}

#[test]
fn a_snapshot_larger_than_one_raft_entry_restores_into_a_fresh_cluster() {
    let http = client();
    let lab = tempfile::tempdir().unwrap();
    let home = lab.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // 1. A one-node dev cluster holding about 42 MiB saves a snapshot through the CLI.
    let dev_port = free_port();
    let dev_log = lab.path().join("dev.log");
    let dev = DevServer(
        Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{dev_port}"),
            ])
            .env_clear()
            .env("HOME", &home)
            .stdout(std::fs::File::create(&dev_log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let leader = format!("http://127.0.0.1:{dev_port}");
    let root = "root".to_string();
    eventually(Duration::from_secs(60), "the dev server serves", || {
        let (status, _) = call(&http, "GET", &leader, "sys/health", None, None).ok()?;
        (status == 200).then_some(())
    });
    let dev_unseal_key = std::fs::read_to_string(&dev_log)
        .unwrap()
        .lines()
        .find_map(|line| line.trim().strip_prefix("Unseal Key: ").map(str::to_string))
        .expect("the dev server prints its unseal key");
    write(
        &http,
        &leader,
        &root,
        "sys/mounts/bulk",
        json!({"type": "kv"}),
    );
    for piece in 0..LARGE_PIECES {
        write(
            &http,
            &leader,
            &root,
            &format!("bulk/piece-{piece}"),
            json!({"blob": large_piece(piece)}),
        );
    }
    let file = lab.path().join("large.snap");
    ok(&arca(
        &leader,
        &root,
        &home,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    ));
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.len() > 40 * 1024 * 1024,
        "the snapshot is {} bytes",
        bytes.len()
    );

    // 2. A fresh cluster refuses a corrupted copy, and its data is unchanged.
    let second = TestCluster::start(&lab.path().join("second"), &http);
    let second_leader = second.addresses[second.leader(&http)].clone();
    let second_root = second.root_token.clone();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    let patient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let (status, answer) = post_snapshot(
        &patient,
        &second_leader,
        &second_root,
        "sys/storage/raft/snapshot-force",
        flipped,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("corrupt"),
        "{answer}"
    );
    let (status, mounts) = settled(
        &http,
        "GET",
        &second_leader,
        "sys/mounts",
        Some(&second_root),
        None,
    );
    assert_eq!(status, 200, "the refused restore changed nothing: {mounts}");
    assert!(mounts["data"].get("bulk/").is_none(), "{mounts}");

    // 3. The whole snapshot, restored with the CLI: every node seals (the keys are the
    // dev server's), unseals with the dev server's key, and serves every piece. A
    // restore cut short by a leader change (the staging takes many Raft entries; on a
    // loaded machine elections happen) fails whole and changes nothing: it is retried
    // at the new active node, as an operator would.
    const RESTORE_ATTEMPTS_MAX: usize = 4;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let active = second.addresses[second.leader(&http)].clone();
        // A generous client timeout: on a loaded two-core machine the staging of
        // 42 MiB through a three-node debug cluster took minutes.
        let restored = Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "operator",
                "raft",
                "snapshot",
                "restore",
                "-force",
                file.to_str().unwrap(),
            ])
            .env_clear()
            .env("HOME", &home)
            .env("ARCA_ADDR", &active)
            .env("ARCA_TOKEN", &second_root)
            .env("VAULT_CLIENT_TIMEOUT", "900s")
            .output()
            .unwrap();
        if restored.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&restored.stderr).to_string();
        assert!(
            stderr.contains("changed nothing") && attempt < RESTORE_ATTEMPTS_MAX,
            "{stderr}"
        );
        let (status, mounts) = settled(
            &http,
            "GET",
            &active,
            "sys/mounts",
            Some(&second_root),
            None,
        );
        assert_eq!(status, 200, "a failed restore changed nothing: {mounts}");
        assert!(mounts["data"].get("bulk/").is_none(), "{mounts}");
    }
    // Every node seals before any is unsealed, as an operator restoring another
    // cluster's snapshot should wait: a node unsealed under the snapshot's CA no longer
    // talks to one still on the old CA. The restoring node waits for every voter while it
    // leads; a leader change right after the swap (seen on loaded machines) ends that
    // wait early, and a voter still catching up is then stranded if the new leader is
    // unsealed first (left open, see the restore's docs).
    for address in &second.addresses {
        eventually(Duration::from_secs(60), "the node seals", || {
            let (_, status) = call(&http, "GET", address, "sys/seal-status", None, None).ok()?;
            (status["sealed"] == Value::Bool(true)).then_some(())
        });
    }
    for address in &second.addresses {
        eventually(
            Duration::from_secs(60),
            "the node unseals with the snapshot's key",
            || {
                let (status, body) = call(
                    &http,
                    "PUT",
                    address,
                    "sys/unseal",
                    None,
                    Some(&json!({"key": dev_unseal_key})),
                )
                .ok()?;
                (status == 200 && body["sealed"] == Value::Bool(false)).then_some(())
            },
        );
    }
    for address in &second.addresses {
        check_large_pieces(&http, address, &root);
    }
    drop(dev);
}
