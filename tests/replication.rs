//! Performance replication between two real clusters (one `arca server` process each,
//! as in the tutorial): activation with a wrapped ES512 token, the wipe, what crosses
//! and what never does, streaming of later writes, writes through the secondary made by
//! the primary and read back at once, `X-Vault-Index` across clusters, rotation, path
//! filters in both directions, Merkle checks, a secondary restarted with `kill -9` that
//! unseals with the primary's key and catches up, and revocation; a rekey on the primary
//! that the secondary's node follows (it unseals with the new shares only), and a standby
//! of a three-node secondary restarted across two rekeys, whose unseal attempt started
//! with one seal's share is reset when the next seal arrives; a planned failover and a
//! forced promotion; running standbys that seal themselves at activation; public-key
//! activation.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, TestCluster, call, client, eventually, free_port};

struct Single {
    node: ServerProcess,
    root_token: String,
    unseal_key: String,
}

impl Single {
    fn start(root: &std::path::Path, name: &str, http: &reqwest::blocking::Client) -> Single {
        let mut node = ServerProcess::configure(root, name, free_port(), free_port(), &[]);
        node.start();
        let (root_token, unseal_key) = support::init_one_share(http, &node.address());
        let single = Single {
            node,
            root_token,
            unseal_key,
        };
        single.unseal(http, &single.unseal_key.clone());
        single
    }

    /// Start the node's process again (after `kill9`) and wait until it answers.
    fn start_again(&mut self, http: &reqwest::blocking::Client) {
        self.node.start();
        eventually(Duration::from_secs(30), "the node answers again", || {
            call(
                http,
                "GET",
                &self.node.address(),
                "sys/seal-status",
                None,
                None,
            )
            .ok()
        });
    }

    fn unseal(&self, http: &reqwest::blocking::Client, key: &str) {
        self.unseal_with_shares(http, &[key]);
    }

    /// Submit `shares` in turn (again, while the node is starting or a share is
    /// refused) until the node is unsealed, then wait until it is active.
    fn unseal_with_shares(&self, http: &reqwest::blocking::Client, shares: &[&str]) {
        eventually(Duration::from_secs(30), "the node unseals", || {
            let mut unsealed = false;
            for share in shares {
                unsealed = matches!(
                    call(
                        http,
                        "PUT",
                        &self.node.address(),
                        "sys/unseal",
                        None,
                        Some(&json!({ "key": share })),
                    ),
                    Ok((200, body)) if body["sealed"] == Value::Bool(false)
                );
            }
            unsealed.then_some(())
        });
        eventually(Duration::from_secs(30), "the node is active", || {
            let (status, _) =
                call(http, "GET", &self.node.address(), "sys/health", None, None).ok()?;
            (status == 200).then_some(())
        });
    }

    fn api(
        &self,
        http: &reqwest::blocking::Client,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            http,
            method,
            &self.node.address(),
            path,
            Some(token),
            body.as_ref(),
        )
        .unwrap()
    }
}

fn performance_status(http: &reqwest::blocking::Client, cluster: &Single) -> Value {
    let (status, body) = call(
        http,
        "GET",
        &cluster.node.address(),
        "sys/replication/performance/status",
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn secret(
    http: &reqwest::blocking::Client,
    cluster: &Single,
    token: &str,
    path: &str,
) -> Option<Value> {
    let (status, body) = cluster.api(http, "GET", path, token, None);
    (status == 200).then(|| body["data"]["data"].clone())
}

fn login(http: &reqwest::blocking::Client, cluster: &Single) -> String {
    let (status, body) = call(
        http,
        "PUT",
        &cluster.node.address(),
        "auth/userpass/login/superuser",
        None,
        Some(&json!({"password": "vaultMagic"})),
    )
    .unwrap();
    assert_eq!(status, 200, "login: {body}");
    body["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn a_secondary_follows_its_primary_and_never_holds_what_must_stay() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "cluster-pri", &http);
    let secondary = Single::start(root.path(), "cluster-sec", &http);
    let p = &primary.root_token;

    // The tutorial's primary: a policy, a userpass user, a replicated and a local kv-v2.
    for (method, path, body) in [
        (
            "PUT",
            "sys/policies/acl/superpolicy",
            json!({"policy": "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }"}),
        ),
        ("POST", "sys/auth/userpass", json!({"type": "userpass"})),
        (
            "POST",
            "auth/userpass/users/superuser",
            json!({"password": "vaultMagic", "policies": "superpolicy"}),
        ),
        ("POST", "sys/mounts/replicatedkv", json!({"type": "kv-v2"})),
        (
            "POST",
            "sys/mounts/localkv",
            json!({"type": "kv-v2", "local": true}),
        ),
        (
            "POST",
            "replicatedkv/data/app",
            json!({"data": {"password": "p1"}}),
        ),
        (
            "POST",
            "localkv/data/app",
            json!({"data": {"password": "local-only"}}),
        ),
    ] {
        let (status, answer) = primary.api(&http, method, path, p, Some(body));
        assert!(status == 200 || status == 204, "{path}: {status} {answer}");
    }
    // Something on the secondary that activation must wipe.
    let (status, _) = secondary.api(
        &http,
        "POST",
        "sys/mounts/doomed",
        &secondary.root_token,
        Some(json!({"type": "kv", "local": true})),
    );
    assert_eq!(status, 204);

    // The versions the secondary has run: its own, and carried over the wipe.
    let (status, history_before) = secondary.api(
        &http,
        "LIST",
        "sys/version-history",
        &secondary.root_token,
        None,
    );
    assert_eq!(status, 200, "{history_before}");
    assert_eq!(
        history_before["data"]["keys"],
        json!([env!("CARGO_PKG_VERSION")])
    );
    // Installation times are whole seconds: wait for the next one, so an entry recorded
    // afresh after the wipe (instead of carried over) would show a later time.
    std::thread::sleep(Duration::from_millis(1100));

    assert_eq!(performance_status(&http, &primary)["mode"], "disabled");
    let (status, enabled) = primary.api(
        &http,
        "POST",
        "sys/replication/performance/primary/enable",
        p,
        Some(json!({})),
    );
    assert_eq!(status, 200, "{enabled}");
    assert!(
        enabled["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("This cluster is being enabled as a primary")
    );

    let (status, wrapped) = primary.api(
        &http,
        "POST",
        "sys/replication/performance/primary/secondary-token",
        p,
        Some(json!({"id": "secondary"})),
    );
    assert_eq!(status, 200, "{wrapped}");
    assert_eq!(wrapped["data"], Value::Null);
    assert_eq!(wrapped["wrap_info"]["ttl"], 1800);
    assert_eq!(
        wrapped["wrap_info"]["creation_path"],
        "sys/replication/performance/primary/secondary-token"
    );
    let token = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
    assert!(
        token.starts_with("eyJhbGciOiJFUzUxMiIs"),
        "an ES512 JWT: {token}"
    );

    // A tampered token is refused and changes nothing on the secondary.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (status, refused) = secondary.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/enable",
        &secondary.root_token,
        Some(json!({ "token": tampered })),
    );
    assert_eq!(status, 400, "{refused}");
    assert_eq!(performance_status(&http, &secondary)["mode"], "disabled");
    let (status, _) = secondary.api(
        &http,
        "GET",
        "sys/mounts/doomed",
        &secondary.root_token,
        None,
    );
    assert_eq!(
        status, 200,
        "a refused activation leaves the secondary as it was"
    );

    let (status, activated) = secondary.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/enable",
        &secondary.root_token,
        Some(json!({ "token": token })),
    );
    assert_eq!(status, 200, "{activated}");
    assert!(
        activated["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("Vault has successfully found secondary information")
    );

    // The token was single-use.
    let (status, _) = call(
        &http,
        "PUT",
        &primary.node.address(),
        "sys/wrapping/unwrap",
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 400);

    let status = eventually(Duration::from_secs(30), "the secondary streams", || {
        let status = performance_status(&http, &secondary);
        (status["mode"] == "secondary" && status["state"] == "stream-wals").then_some(status)
    });
    let primary_status = performance_status(&http, &primary);
    assert_eq!(status["cluster_id"], primary_status["cluster_id"]);
    assert_eq!(status["secondary_id"], "secondary");
    assert_eq!(primary_status["known_secondaries"], json!(["secondary"]));
    assert_eq!(status["merkle_root"], primary_status["merkle_root"]);

    // The wipe: the secondary's own root token and local mount are gone.
    let (status, _) = secondary.api(&http, "GET", "sys/mounts", &secondary.root_token, None);
    assert_eq!(status, 403, "the secondary's old root token is gone");

    // A replicated user logs in on the secondary; replicated data is there, local is not.
    let user = login(&http, &secondary);
    assert_eq!(
        secret(&http, &secondary, &user, "replicatedkv/data/app"),
        Some(json!({"password": "p1"}))
    );
    let (status, history_after) = secondary.api(&http, "LIST", "sys/version-history", &user, None);
    assert_eq!(status, 200, "{history_after}");
    assert_eq!(
        history_after["data"], history_before["data"],
        "the version history (with its installation times) survives the activation"
    );
    let (status, mounts) = secondary.api(&http, "GET", "sys/mounts", &user, None);
    assert_eq!(status, 200, "{mounts}");
    let paths: Vec<&String> = mounts["data"].as_object().unwrap().keys().collect();
    assert!(
        paths.iter().any(|path| *path == "replicatedkv/"),
        "{paths:?}"
    );
    assert!(paths.iter().any(|path| *path == "cubbyhole/"), "{paths:?}");
    assert!(!paths.iter().any(|path| *path == "localkv/"), "{paths:?}");
    assert!(!paths.iter().any(|path| *path == "doomed/"), "{paths:?}");
    // The primary's root token is not valid on the secondary: tokens stay local.
    let (status, _) = secondary.api(&http, "GET", "sys/mounts", p, None);
    assert_eq!(status, 403);

    // A write on the primary streams to the secondary.
    let (status, _) = primary.api(
        &http,
        "POST",
        "replicatedkv/data/app",
        p,
        Some(json!({"data": {"password": "p2"}})),
    );
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(10),
        "the second version streams",
        || {
            (secret(&http, &secondary, &user, "replicatedkv/data/app")
                == Some(json!({"password": "p2"})))
            .then_some(())
        },
    );

    // X-Vault-Index from a write on the primary is honoured on the secondary: the read
    // waits for that WAL index, then sees the write.
    let response = http
        .post(format!(
            "{}/v1/replicatedkv/data/indexed",
            primary.node.address()
        ))
        .header("X-Vault-Token", p.as_str())
        .json(&json!({"data": {"v": "at-index"}}))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let index = response
        .headers()
        .get("x-vault-index")
        .expect("a write answers its index state")
        .to_str()
        .unwrap()
        .to_string();
    let read = http
        .get(format!(
            "{}/v1/replicatedkv/data/indexed",
            secondary.node.address()
        ))
        .header("X-Vault-Token", user.as_str())
        .header("X-Vault-Index", index.as_str())
        .send()
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let read: Value = read.json().unwrap();
    assert_eq!(read["data"]["data"], json!({"v": "at-index"}));

    // A replicated write on the secondary is made by the primary, as the secondary's
    // caller; the client then reads its own write on the secondary at once.
    let (status, answer) = secondary.api(
        &http,
        "POST",
        "replicatedkv/data/other",
        &user,
        Some(json!({"data": {"x": "1"}})),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["version"], 1, "{answer}");
    assert_eq!(
        secret(&http, &secondary, &user, "replicatedkv/data/other"),
        Some(json!({"x": "1"})),
        "read-your-writes on the secondary"
    );
    assert_eq!(
        secret(&http, &primary, p, "replicatedkv/data/other"),
        Some(json!({"x": "1"}))
    );
    // The caller's policies still decide: a token without them is refused there too.
    let (status, policy) = secondary.api(
        &http,
        "POST",
        "sys/policies/acl/forwarded",
        &user,
        Some(json!({"policy": "path \"replicatedkv/*\" { capabilities = [\"read\"] }"})),
    );
    assert_eq!(status, 204, "{policy}");
    let (status, reader) = secondary.api(
        &http,
        "POST",
        "auth/token/create",
        &user,
        Some(json!({"policies": ["forwarded"], "no_default_policy": true})),
    );
    assert_eq!(status, 200, "a token made on the secondary: {reader}");
    let reader = reader["auth"]["client_token"].as_str().unwrap().to_string();
    let (status, _) = secondary.api(
        &http,
        "POST",
        "replicatedkv/data/other",
        &reader,
        Some(json!({"data": {"x": "2"}})),
    );
    assert_eq!(
        status, 403,
        "a read-only caller cannot write through the secondary"
    );
    assert_eq!(
        secret(&http, &secondary, &reader, "replicatedkv/data/other"),
        Some(json!({"x": "1"}))
    );
    let (status, _) = primary.api(&http, "GET", "auth/token/lookup-self", &reader, None);
    assert_eq!(status, 403, "tokens made on a secondary stay there");
    // A non-local mount enabled on the secondary is made by the primary and replicated.
    let (status, answer) = secondary.api(
        &http,
        "POST",
        "sys/mounts/shared",
        &user,
        Some(json!({"type": "kv"})),
    );
    assert_eq!(status, 204, "{answer}");
    let (status, _) = primary.api(&http, "GET", "sys/mounts/shared", p, None);
    assert_eq!(
        status, 200,
        "the primary holds the mount enabled through the secondary"
    );
    eventually(Duration::from_secs(10), "the mount streams back", || {
        let (status, _) = secondary.api(&http, "GET", "sys/mounts/shared", &user, None);
        (status == 200).then_some(())
    });

    // Rotation is the primary's: refused on the secondary; after one on the primary, data
    // written under the new key term opens on the secondary.
    let (status, answer) = secondary.api(&http, "POST", "sys/rotate", &user, Some(json!({})));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("cannot rotate on a replication secondary")
    );
    let (status, _) = primary.api(&http, "POST", "sys/rotate", p, Some(json!({})));
    assert_eq!(status, 204);
    let (status, _) = primary.api(
        &http,
        "POST",
        "replicatedkv/data/rotated",
        p,
        Some(json!({"data": {"term": "2"}})),
    );
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(10),
        "data under the new term opens",
        || {
            (secret(&http, &secondary, &user, "replicatedkv/data/rotated")
                == Some(json!({"term": "2"})))
            .then_some(())
        },
    );

    // The Merkle index kept on every write matches one rebuilt from storage, on both.
    for (cluster, token) in [(&primary, p.as_str()), (&secondary, user.as_str())] {
        let (status, check) = cluster.api(
            &http,
            "POST",
            "sys/replication/merkle-check",
            token,
            Some(json!({})),
        );
        assert_eq!(status, 200, "{check}");
        assert_eq!(
            check["data"]["merkle_corruption_report"]["corrupted_root"],
            false
        );
        let (status, reindexed) = cluster.api(
            &http,
            "POST",
            "sys/replication/reindex",
            token,
            Some(json!({})),
        );
        assert_eq!(status, 200, "{reindexed}");
        assert!(
            reindexed["warnings"][0]
                .as_str()
                .unwrap()
                .contains("it matches")
        );
    }

    // The primary sees its secondary connected, at the addresses it answers on.
    let primary_status = performance_status(&http, &primary);
    let seen = &primary_status["secondaries"][0];
    assert_eq!(seen["node_id"], "secondary");
    assert_eq!(seen["connection_status"], "connected");
    assert_eq!(seen["api_address"], secondary.node.address());
    // Measured, not filled in: the secondary pulls about once per long-poll wait, and it
    // holds everything (the canary is fresh).
    let measured = |field: &str| -> i64 { seen[field].as_str().unwrap().parse().unwrap() };
    let interval_ms = measured("last_heartbeat_duration_ms");
    assert!(
        (1..=30_000).contains(&interval_ms),
        "time between pulls: {seen}"
    );
    let canary_age_ms = measured("replication_primary_canary_age_ms");
    assert!((0..=30_000).contains(&canary_age_ms), "canary age: {seen}");

    // Local mounts can be enabled on a secondary, and their data stays there.
    let (status, _) = secondary.api(
        &http,
        "POST",
        "sys/mounts/seclocal",
        &user,
        Some(json!({"type": "kv-v2", "local": true})),
    );
    assert_eq!(status, 204);
    let (status, _) = secondary.api(
        &http,
        "POST",
        "seclocal/data/x",
        &user,
        Some(json!({"data": {"only": "here"}})),
    );
    assert_eq!(status, 200);
    let (status, _) = primary.api(&http, "GET", "seclocal/data/x", p, None);
    assert_eq!(status, 404);

    // A deny filter removes the mount from the secondary; allow brings it back.
    let (status, answer) = primary.api(
        &http,
        "POST",
        "sys/replication/performance/primary/paths-filter/secondary",
        p,
        Some(json!({"mode": "deny", "paths": ["replicatedkv"]})),
    );
    assert_eq!(status, 204, "{answer}");
    let (status, filter) = primary.api(
        &http,
        "GET",
        "sys/replication/performance/primary/paths-filter/secondary",
        p,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        filter["data"],
        json!({"mode": "deny", "paths": ["replicatedkv/"]})
    );
    eventually(
        Duration::from_secs(15),
        "the denied mount disappears",
        || {
            let (status, mounts) = secondary.api(&http, "GET", "sys/mounts", &user, None);
            (status == 200 && mounts["data"].get("replicatedkv/").is_none()).then_some(())
        },
    );
    assert_eq!(
        secret(&http, &secondary, &user, "replicatedkv/data/app"),
        None
    );
    // A mount created while the filter is on is judged by it: one it does not deny crosses.
    for (method, path, body) in [
        ("POST", "sys/mounts/afterfilter", json!({"type": "kv-v2"})),
        (
            "POST",
            "afterfilter/data/x",
            json!({"data": {"new": "mount"}}),
        ),
    ] {
        let (status, answer) = primary.api(&http, method, path, p, Some(body));
        assert!(status == 200 || status == 204, "{path}: {answer}");
    }
    eventually(
        Duration::from_secs(15),
        "a mount made under the filter crosses",
        || {
            (secret(&http, &secondary, &user, "afterfilter/data/x")
                == Some(json!({"new": "mount"})))
            .then_some(())
        },
    );
    assert_eq!(
        secret(&http, &primary, p, "replicatedkv/data/app"),
        Some(json!({"password": "p2"})),
        "denied data stays on the primary"
    );
    let (status, _) = primary.api(
        &http,
        "DELETE",
        "sys/replication/performance/primary/paths-filter/secondary",
        p,
        None,
    );
    assert_eq!(status, 204);
    eventually(Duration::from_secs(15), "the allowed mount returns", || {
        (secret(&http, &secondary, &user, "replicatedkv/data/app")
            == Some(json!({"password": "p2"})))
        .then_some(())
    });

    // kill -9 of the secondary: it restarts sealed, unseals with the primary's key (its
    // own is gone with the wipe) and catches up with what was written meanwhile.
    let mut secondary = secondary;
    secondary.node.kill9();
    let (status, _) = primary.api(
        &http,
        "POST",
        "replicatedkv/data/app",
        p,
        Some(json!({"data": {"password": "p3"}})),
    );
    assert_eq!(status, 200);
    secondary.start_again(&http);
    let (status, own_key) = submit_share(&http, &secondary.node.address(), &secondary.unseal_key);
    assert_eq!(status, 400, "its own key no longer opens it: {own_key}");
    assert_eq!(
        seal_status(&http, &secondary.node.address()).2,
        Value::Bool(true)
    );
    secondary.unseal(&http, &primary.unseal_key);
    let user = login(&http, &secondary);
    eventually(
        Duration::from_secs(15),
        "the restarted secondary catches up",
        || {
            (secret(&http, &secondary, &user, "replicatedkv/data/app")
                == Some(json!({"password": "p3"})))
            .then_some(())
        },
    );

    // A snapshot restored on the primary reaches the secondary like any write: the
    // restore's changes to replicated keys are WAL entries the secondary streams.
    let saved = http
        .get(format!(
            "{}/v1/sys/storage/raft/snapshot",
            primary.node.address()
        ))
        .header("X-Vault-Token", p.as_str())
        .send()
        .unwrap();
    assert_eq!(saved.status().as_u16(), 200);
    let snapshot = saved.bytes().unwrap().to_vec();
    let (status, _) = primary.api(
        &http,
        "POST",
        "replicatedkv/data/app",
        p,
        Some(json!({"data": {"password": "p4"}})),
    );
    assert_eq!(status, 200);
    eventually(Duration::from_secs(15), "p4 streams", || {
        (secret(&http, &secondary, &user, "replicatedkv/data/app")
            == Some(json!({"password": "p4"})))
        .then_some(())
    });
    let restored = http
        .post(format!(
            "{}/v1/sys/storage/raft/snapshot",
            primary.node.address()
        ))
        .header("X-Vault-Token", p.as_str())
        .body(snapshot)
        .send()
        .unwrap();
    assert_eq!(restored.status().as_u16(), 204, "{:?}", restored.text());
    eventually(
        Duration::from_secs(15),
        "the restored value streams to the secondary",
        || {
            (secret(&http, &secondary, &user, "replicatedkv/data/app")
                == Some(json!({"password": "p3"})))
            .then_some(())
        },
    );

    // Revoked: the secondary is refused from then on.
    let (status, _) = primary.api(
        &http,
        "POST",
        "sys/replication/performance/primary/revoke-secondary",
        p,
        Some(json!({"id": "secondary"})),
    );
    assert_eq!(status, 204);
    assert_eq!(
        performance_status(&http, &primary)["known_secondaries"],
        json!([])
    );
    eventually(
        Duration::from_secs(15),
        "the revoked secondary goes idle",
        || (performance_status(&http, &secondary)["state"] == "idle").then_some(()),
    );

    // Nothing secret in either cluster's files or logs.
    for cluster in [&primary, &secondary] {
        let dir = cluster.node.data_dir.parent().unwrap();
        for needle in ["vaultMagic", "local-only", "\"p3\""] {
            assert_eq!(
                support::any_file_contains(dir, needle.as_bytes()),
                None,
                "{needle}"
            );
        }
    }
}

/// Write through `cluster`'s API and insist it succeeded.
fn write_ok(
    http: &reqwest::blocking::Client,
    cluster: &Single,
    token: &str,
    path: &str,
    body: Value,
) {
    let (status, answer) = cluster.api(http, "POST", path, token, Some(body));
    assert!(status == 200 || status == 204, "{path}: {status} {answer}");
}

/// Issue an activation token for `id` on `primary` (as `token`).
fn secondary_token(
    http: &reqwest::blocking::Client,
    primary: &Single,
    token: &str,
    id: &str,
) -> String {
    let (status, wrapped) = primary.api(
        http,
        "POST",
        "sys/replication/performance/primary/secondary-token",
        token,
        Some(json!({ "id": id })),
    );
    assert_eq!(status, 200, "{wrapped}");
    wrapped["wrap_info"]["token"].as_str().unwrap().to_string()
}

/// The tutorial's replicated data on `primary` (a superpolicy, the `superuser` userpass
/// user, a kv-v2 at `replicatedkv/` whose secret `before` holds `before`), then `primary`
/// enabled and `secondary` activated as `secondary_id` and in sync with it.
fn replicate_tutorial_data(
    http: &reqwest::blocking::Client,
    primary: &Single,
    secondary: &Single,
    secondary_id: &str,
    before: Value,
) {
    let root = &primary.root_token;
    for (path, body) in [
        (
            "sys/policies/acl/superpolicy",
            json!({"policy": "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }"}),
        ),
        ("sys/auth/userpass", json!({"type": "userpass"})),
        (
            "auth/userpass/users/superuser",
            json!({"password": "vaultMagic", "policies": "superpolicy"}),
        ),
        ("sys/mounts/replicatedkv", json!({"type": "kv-v2"})),
        ("replicatedkv/data/before", json!({ "data": before })),
        ("sys/replication/performance/primary/enable", json!({})),
    ] {
        write_ok(http, primary, root, path, body);
    }
    let token = secondary_token(http, primary, root, secondary_id);
    write_ok(
        http,
        secondary,
        &secondary.root_token,
        "sys/replication/performance/secondary/enable",
        json!({ "token": token }),
    );
    wait_in_sync(http, primary, secondary);
}

/// Wait until `secondary` streams from its primary with the same view.
fn wait_in_sync(http: &reqwest::blocking::Client, primary: &Single, secondary: &Single) -> Value {
    eventually(Duration::from_secs(30), "the secondary is in sync", || {
        let status = performance_status(http, secondary);
        let primary_status = performance_status(http, primary);
        (status["mode"] == "secondary"
            && status["state"] == "stream-wals"
            && status["merkle_root"] == primary_status["merkle_root"])
            .then_some(status)
    })
}

#[test]
fn a_planned_failover_loses_nothing_and_a_forced_promotion_fences_the_old_primary() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let a = Single::start(root.path(), "cluster-a", &http);
    let b = Single::start(root.path(), "cluster-b", &http);
    let pa = a.root_token.clone();

    // A is the primary of the tutorial's data; B its secondary.
    replicate_tutorial_data(&http, &a, &b, "cluster-b", json!({"v": "1"}));
    let pb = login(&http, &b);
    let set_id = performance_status(&http, &a)["cluster_id"].clone();
    assert_eq!(performance_status(&http, &a)["epoch"], 1);

    // B cannot be promoted while A still accepts writes, unless forced.
    let (status, refused) = b.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/promote",
        &pb,
        Some(json!({})),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("demote it first"), "{refused}");

    // Demote A: it keeps its data and set id, reports Vault's idle secondary, refuses
    // replicated writes with a reason, and still makes local ones (a token).
    let (status, demoted) = a.api(
        &http,
        "POST",
        "sys/replication/performance/primary/demote",
        &pa,
        Some(json!({})),
    );
    assert_eq!(status, 200, "{demoted}");
    assert!(
        demoted["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("This cluster is being demoted to a replication secondary")
    );
    let status_a = performance_status(&http, &a);
    assert_eq!(status_a["mode"], "secondary");
    assert_eq!(status_a["state"], "idle");
    assert_eq!(status_a["cluster_id"], set_id);
    let (status, refused) = a.api(
        &http,
        "POST",
        "replicatedkv/data/while-demoted",
        &pa,
        Some(json!({"data": {"v": "x"}})),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(refused["errors"][0].as_str().unwrap().contains("demoted"));
    let (status, _) = a.api(&http, "POST", "auth/token/create", &pa, Some(json!({})));
    assert_eq!(status, 200, "local writes go on on a demoted cluster");

    // Promote B: A is demoted and B holds all of A's WAL, so no force is needed.
    let (status, promoted) = b.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/promote",
        &pb,
        Some(json!({})),
    );
    assert_eq!(status, 200, "{promoted}");
    assert!(
        promoted["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("This cluster is being promoted to a replication primary")
    );
    let status_b = performance_status(&http, &b);
    assert_eq!(status_b["mode"], "primary");
    assert_eq!(status_b["state"], "running");
    assert_eq!(status_b["cluster_id"], set_id);
    assert_eq!(status_b["epoch"], 2);
    assert_eq!(
        secret(&http, &b, &pb, "replicatedkv/data/before"),
        Some(json!({"v": "1"})),
        "the promoted cluster keeps its data"
    );

    // B issues a token for A; A follows B without a wipe (its own root token still works).
    let token = secondary_token(&http, &b, &pb, "cluster-a");
    let (status, updated) = a.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/update-primary",
        &pa,
        Some(json!({ "token": token })),
    );
    assert_eq!(status, 200, "{updated}");
    let status_a = wait_in_sync(&http, &b, &a);
    assert_eq!(status_a["cluster_id"], set_id);
    assert_eq!(status_a["secondary_id"], "cluster-a");
    assert_eq!(status_a["epoch"], 2);
    assert_eq!(
        performance_status(&http, &b)["known_secondaries"],
        json!(["cluster-a"])
    );
    let (status, _) = a.api(&http, "GET", "sys/mounts", &pa, None);
    assert_eq!(status, 200, "no wipe: A's root token is still valid on A");
    // Bad requests get Vault's error envelope and change nothing.
    for (cluster, token, path, body, expected) in [
        (
            &a,
            &pa,
            "update-primary",
            json!({"token": "x", "update_primary_addrs": ["127.0.0.1:1"]}),
            "mutually exclusive",
        ),
        (&a, &pa, "promote", json!({"force": "maybe"}), "force"),
        (
            &b,
            &pb,
            "update-primary",
            json!({"token": "x"}),
            "demote it first",
        ),
    ] {
        let (status, answer) = cluster.api(
            &http,
            "POST",
            &format!("sys/replication/performance/secondary/{path}"),
            token,
            Some(body),
        );
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["errors"][0].as_str().unwrap().contains(expected),
            "{path}: {answer}"
        );
    }

    // Writes through B reach A; a write to A is forwarded to B; nothing is lost.
    write_ok(
        &http,
        &b,
        &pb,
        "replicatedkv/data/after-b",
        json!({"data": {"v": "b"}}),
    );
    write_ok(
        &http,
        &a,
        &pa,
        "replicatedkv/data/after-a",
        json!({"data": {"v": "a"}}),
    );
    assert_eq!(
        secret(&http, &b, &pb, "replicatedkv/data/after-a"),
        Some(json!({"v": "a"})),
        "the write to A was made by B"
    );
    for (path, value) in [("before", "1"), ("after-b", "b"), ("after-a", "a")] {
        let path = format!("replicatedkv/data/{path}");
        eventually(Duration::from_secs(10), "every write is on A", || {
            (secret(&http, &a, &pa, &path) == Some(json!({ "v": value }))).then_some(())
        });
        assert_eq!(secret(&http, &b, &pb, &path), Some(json!({ "v": value })));
    }

    // Path filters are the new primary's, by the new ids: B denies the mount to A, and
    // it disappears there (B keeps it); lifting the filter brings it back.
    let filter_path = "sys/replication/performance/primary/paths-filter/cluster-a";
    let (status, answer) = b.api(
        &http,
        "POST",
        filter_path,
        &pb,
        Some(json!({"mode": "deny", "paths": ["replicatedkv"]})),
    );
    assert_eq!(status, 204, "{answer}");
    eventually(
        Duration::from_secs(15),
        "the mount B denies leaves A",
        || {
            let (status, mounts) = a.api(&http, "GET", "sys/mounts", &pa, None);
            (status == 200 && mounts["data"].get("replicatedkv/").is_none()).then_some(())
        },
    );
    assert_eq!(
        secret(&http, &b, &pb, "replicatedkv/data/before"),
        Some(json!({"v": "1"})),
        "denied data stays on the new primary"
    );
    let (status, _) = b.api(&http, "DELETE", filter_path, &pb, None);
    assert_eq!(status, 204);
    eventually(Duration::from_secs(15), "the mount returns to A", || {
        (secret(&http, &a, &pa, "replicatedkv/data/before") == Some(json!({"v": "1"})))
            .then_some(())
    });

    // A forced promotion of A while B is still primary. A's notice of the new epoch is
    // held back by stopping A right after its promotion (well inside the interval before
    // its first notice), standing in for a partition: B, unaware, accepts a write.
    let (status, refused) = a.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/promote",
        &pa,
        Some(json!({})),
    );
    assert_eq!(status, 400, "{refused}");
    let (status, promoted) = a.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/promote",
        &pa,
        Some(json!({"force": true})),
    );
    assert_eq!(status, 200, "{promoted}");
    a.node.pause();
    write_ok(
        &http,
        &b,
        &pb,
        "replicatedkv/data/divergent",
        json!({"data": {"v": "lost"}}),
    );
    a.node.resume();
    assert_eq!(performance_status(&http, &a)["epoch"], 3);
    write_ok(
        &http,
        &a,
        &pa,
        "replicatedkv/data/after-force",
        json!({"data": {"v": "new"}}),
    );

    // When A's notice reaches B, B stands down: it reports itself superseded with its
    // divergent WAL entries and refuses replicated writes, saying why.
    let status_b = eventually(
        Duration::from_secs(15),
        "B learns it was superseded",
        || {
            let status = performance_status(&http, &b);
            (status["superseded"] == true).then_some(status)
        },
    );
    assert_eq!(status_b["mode"], "primary");
    assert_eq!(status_b["state"], "idle");
    assert_eq!(status_b["superseded_by_epoch"], 3);
    let divergent = status_b["divergent_wals"].as_u64().expect("a count");
    assert!(divergent >= 1, "{status_b}");
    let (status, refused) = b.api(
        &http,
        "POST",
        "replicatedkv/data/refused",
        &pb,
        Some(json!({"data": {"v": "x"}})),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("superseded"),
        "{refused}"
    );
    assert_eq!(
        secret(&http, &a, &pa, "replicatedkv/data/divergent"),
        None,
        "the superseded primary's write never reaches the new one"
    );
    let (status, refused) = b.api(
        &http,
        "POST",
        "sys/replication/performance/primary/secondary-token",
        &pb,
        Some(json!({"id": "late"})),
    );
    assert_eq!(
        status, 400,
        "a superseded primary activates no one: {refused}"
    );
    assert!(refused.to_string().contains("superseded"), "{refused}");

    // B is demoted and follows A: the sync discards its divergent write, brings A's,
    // and B still reports what was discarded.
    write_ok(
        &http,
        &b,
        &pb,
        "sys/replication/performance/primary/demote",
        json!({}),
    );
    let token = secondary_token(&http, &a, &pa, "cluster-b2");
    write_ok(
        &http,
        &b,
        &pb,
        "sys/replication/performance/secondary/update-primary",
        json!({ "token": token }),
    );
    let status_b = wait_in_sync(&http, &a, &b);
    assert_eq!(status_b["divergent_wals"], divergent, "{status_b}");
    assert_eq!(status_b["epoch"], 3);
    assert_eq!(secret(&http, &b, &pb, "replicatedkv/data/divergent"), None);
    for (path, value) in [
        ("before", "1"),
        ("after-b", "b"),
        ("after-a", "a"),
        ("after-force", "new"),
    ] {
        let path = format!("replicatedkv/data/{path}");
        assert_eq!(secret(&http, &b, &pb, &path), Some(json!({ "v": value })));
    }
}

/// The seal configuration the node at `address` reports (`n` shares, threshold `t`) and whether it is sealed.
fn seal_status(http: &reqwest::blocking::Client, address: &str) -> (Value, Value, Value) {
    let (status, body) = call(http, "GET", address, "sys/seal-status", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    (body["n"].clone(), body["t"].clone(), body["sealed"].clone())
}

/// One unseal share for the node at `address`, answered.
fn submit_share(http: &reqwest::blocking::Client, address: &str, share: &str) -> (u16, Value) {
    call(
        http,
        "PUT",
        address,
        "sys/unseal",
        None,
        Some(&json!({ "key": share })),
    )
    .unwrap()
}

/// Rekey `cluster` to `shares` shares of which `threshold` unseal, with `old_shares` (a
/// quorum of the current ones): the new shares, base64.
fn rekey(
    http: &reqwest::blocking::Client,
    cluster: &Single,
    (shares, threshold): (usize, usize),
    old_shares: &[&str],
) -> Vec<String> {
    let address = cluster.node.address();
    let (status, started) = call(
        http,
        "PUT",
        &address,
        "sys/rekey/init",
        None,
        Some(&json!({"secret_shares": shares, "secret_threshold": threshold})),
    )
    .unwrap();
    assert_eq!(status, 200, "{started}");
    let mut answer = Value::Null;
    for share in old_shares {
        let (status, body) = call(
            http,
            "PUT",
            &address,
            "sys/rekey/update",
            None,
            Some(&json!({"key": share, "nonce": started["nonce"]})),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        answer = body;
    }
    assert_eq!(answer["complete"], true, "{answer}");
    let new_shares: Vec<String> = answer["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|share| share.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new_shares.len(), shares);
    new_shares
}

#[test]
fn a_rekey_on_the_primary_reaches_its_secondary_whose_node_then_unseals_with_the_new_shares_only() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "cluster-pri", &http);
    let mut secondary = Single::start(root.path(), "cluster-sec", &http);
    let p = primary.root_token.clone();
    replicate_tutorial_data(
        &http,
        &primary,
        &secondary,
        "secondary",
        json!({"v": "before the rekey"}),
    );
    assert_eq!(
        seal_status(&http, &secondary.node.address()),
        (json!(1), json!(1), json!(false)),
        "activated: the primary's one-share seal"
    );

    // The secondary's seal is the primary's: it refuses a rekey of its own, as Vault does,
    // for a status read as well as a start.
    let refusal =
        "rekeying can only be performed on the primary cluster when replication is activated";
    for (method, body) in [
        (
            "PUT",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        ),
        ("GET", None),
    ] {
        let (status, refused) = call(
            &http,
            method,
            &secondary.node.address(),
            "sys/rekey/init",
            None,
            body.as_ref(),
        )
        .unwrap();
        assert_eq!(status, 400, "{method}: {refused}");
        assert_eq!(refused["errors"][0], refusal, "{method}");
    }

    // Rekey the primary from one share to three, any two of which unseal.
    let new_shares = rekey(&http, &primary, (3, 2), &[&primary.unseal_key]);

    // The new seal reaches the secondary like any replicated write, and the two
    // clusters' views (the seal group included) agree again.
    eventually(
        Duration::from_secs(15),
        "the secondary holds the primary's new seal",
        || (seal_status(&http, &secondary.node.address()).0 == json!(3)).then_some(()),
    );
    assert_eq!(
        seal_status(&http, &secondary.node.address()),
        (json!(3), json!(2), json!(false))
    );
    wait_in_sync(&http, &primary, &secondary);

    // Seal the secondary's node: the shares it was unsealed with before no longer open
    // it; two of the primary's new shares do.
    let user = login(&http, &secondary);
    let (status, sealed) = secondary.api(&http, "PUT", "sys/seal", &user, None);
    assert_eq!(status, 204, "{sealed}");
    assert_eq!(seal_status(&http, &secondary.node.address()).2, json!(true));
    let (status, refused) = submit_share(&http, &secondary.node.address(), &primary.unseal_key);
    assert_eq!(status, 400, "the old key is refused: {refused}");
    assert_eq!(seal_status(&http, &secondary.node.address()).2, json!(true));
    let (status, progress) = submit_share(&http, &secondary.node.address(), &new_shares[0]);
    assert_eq!(status, 200, "{progress}");
    assert_eq!(progress["progress"], 1, "{progress}");
    assert_eq!(progress["sealed"], true, "{progress}");
    secondary.unseal_with_shares(&http, &[&new_shares[0], &new_shares[2]]);
    let user = login(&http, &secondary);
    assert_eq!(
        secret(&http, &secondary, &user, "replicatedkv/data/before"),
        Some(json!({"v": "before the rekey"}))
    );

    // A restarted node (kill -9) reads the new seal from its own storage, and catches
    // up with what the primary wrote meanwhile.
    secondary.node.kill9();
    write_ok(
        &http,
        &primary,
        &p,
        "replicatedkv/data/before",
        json!({"data": {"v": "after the rekey"}}),
    );
    secondary.start_again(&http);
    assert_eq!(
        seal_status(&http, &secondary.node.address()),
        (json!(3), json!(2), json!(true))
    );
    let (status, refused) = submit_share(&http, &secondary.node.address(), &primary.unseal_key);
    assert_eq!(
        status, 400,
        "the old key is refused after a restart: {refused}"
    );
    secondary.unseal_with_shares(&http, &[&new_shares[1], &new_shares[2]]);
    let user = login(&http, &secondary);
    eventually(
        Duration::from_secs(15),
        "the restarted secondary catches up",
        || {
            (secret(&http, &secondary, &user, "replicatedkv/data/before")
                == Some(json!({"v": "after the rekey"})))
            .then_some(())
        },
    );
}

#[test]
fn a_secondary_standby_that_unseals_across_two_primary_rekeys_needs_the_newest_shares() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "cluster-pri", &http);
    let mut secondary = TestCluster::start(root.path(), &http);
    let p = primary.root_token.clone();
    write_ok(
        &http,
        &primary,
        &p,
        "sys/replication/performance/primary/enable",
        json!({}),
    );
    let token = secondary_token(&http, &primary, &p, "secondary");
    let active = secondary.leader(&http);
    let (status, enabled) = call(
        &http,
        "POST",
        &secondary.addresses[active],
        "sys/replication/performance/secondary/enable",
        Some(&secondary.root_token),
        Some(&json!({ "token": token })),
    )
    .unwrap();
    assert_eq!(status, 200, "{enabled}");
    let active_address = secondary.addresses[active].clone();
    eventually(Duration::from_secs(45), "the secondary streams", || {
        let (_, status) = call(
            &http,
            "GET",
            &active_address,
            "sys/replication/performance/status",
            None,
            None,
        )
        .ok()?;
        (status["data"]["state"] == "stream-wals").then_some(())
    });

    // One of the secondary's standbys is down while the primary rekeys (1 -> 3/2).
    let standby = (active + 1) % secondary.nodes.len();
    let standby_address = secondary.addresses[standby].clone();
    secondary.nodes[standby].kill9();
    let second_seal = rekey(&http, &primary, (3, 2), &[&primary.unseal_key]);
    eventually(
        Duration::from_secs(45),
        "the secondary's active node holds the new seal",
        || (seal_status(&http, &active_address).0 == json!(3)).then_some(()),
    );

    // Restarted, the standby catches up through the secondary's Raft while sealed: it
    // asks for the new seal's shares, and the activation's key is refused.
    secondary.nodes[standby].start();
    eventually(
        Duration::from_secs(45),
        "the restarted standby holds the new seal",
        || {
            let (shares, _, sealed) = call(
                &http,
                "GET",
                &standby_address,
                "sys/seal-status",
                None,
                None,
            )
            .ok()
            .map(|(_, body)| (body["n"].clone(), body["t"].clone(), body["sealed"].clone()))?;
            (shares == json!(3) && sealed == json!(true)).then_some(())
        },
    );
    let (status, refused) = submit_share(&http, &standby_address, &primary.unseal_key);
    assert_eq!(status, 400, "the activation's key is refused: {refused}");

    // One share of that seal given, the primary rekeys again (3/2 -> 5/3): the standby's
    // attempt is reset rather than combining shares of two unseal keys.
    let (status, progress) = submit_share(&http, &standby_address, &second_seal[0]);
    assert_eq!(
        (status, &progress["progress"]),
        (200, &json!(1)),
        "{progress}"
    );
    let third_seal = rekey(&http, &primary, (5, 3), &[&second_seal[0], &second_seal[1]]);
    eventually(
        Duration::from_secs(45),
        "the standby holds the newest seal",
        || (seal_status(&http, &standby_address).0 == json!(5)).then_some(()),
    );
    let (status, refused) = submit_share(&http, &standby_address, &second_seal[1]);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["errors"][0].as_str().is_some_and(
            |error| error.contains("the seal changed while this node was being unsealed")
        ),
        "{refused}"
    );
    assert_eq!(seal_status(&http, &standby_address).2, json!(true));

    // Three of the newest shares unseal it, and not fewer.
    for share in &third_seal[3..] {
        let (status, body) = submit_share(&http, &standby_address, share);
        assert_eq!((status, &body["sealed"]), (200, &json!(true)), "{body}");
    }
    let (status, unsealed) = submit_share(&http, &standby_address, &third_seal[0]);
    assert_eq!(status, 200, "{unsealed}");
    assert_eq!(unsealed["sealed"], false, "{unsealed}");
}

/// Activation replaces the secondary's keys through Raft. Its running standbys cannot
/// open the new keyring with the keys they unsealed with: each seals itself, as Vault's
/// secondary standbys must be unsealed again, and then unseals with the primary's key
/// (no restart needed). Once its active node dies, an unsealed standby takes over and
/// serves the primary's data.
#[test]
fn activation_seals_the_secondarys_running_standbys_which_unseal_with_the_primarys_key() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "cluster-pri", &http);
    let mut secondary = TestCluster::start(root.path(), &http);
    let p = primary.root_token.clone();
    for (path, body) in [
        (
            "sys/policies/acl/reader",
            json!({"policy": "path \"replicatedkv/*\" { capabilities = [\"read\"] }"}),
        ),
        ("sys/auth/userpass", json!({"type": "userpass"})),
        (
            "auth/userpass/users/reader",
            json!({"password": "s3cret-pass", "policies": "reader"}),
        ),
        ("sys/mounts/replicatedkv", json!({"type": "kv-v2"})),
        (
            "replicatedkv/data/app",
            json!({ "data": { "v": "from-primary" } }),
        ),
        ("sys/replication/performance/primary/enable", json!({})),
    ] {
        write_ok(&http, &primary, &p, path, body);
    }
    let token = secondary_token(&http, &primary, &p, "secondary");
    let active = secondary.leader(&http);
    let standbys: Vec<usize> = (0..secondary.nodes.len())
        .filter(|&n| n != active)
        .collect();
    for &standby in &standbys {
        assert_eq!(
            seal_status(&http, &secondary.addresses[standby]).2,
            json!(false),
            "the standby is unsealed before the activation"
        );
    }
    let (status, enabled) = call(
        &http,
        "POST",
        &secondary.addresses[active],
        "sys/replication/performance/secondary/enable",
        Some(&secondary.root_token),
        Some(&json!({ "token": token })),
    )
    .unwrap();
    assert_eq!(status, 200, "{enabled}");

    for &standby in &standbys {
        let address = secondary.addresses[standby].clone();
        eventually(
            Duration::from_secs(15),
            "the running standby seals itself once the activation reaches it",
            || (seal_status(&http, &address).2 == json!(true)).then_some(()),
        );
        let (status, refused) = submit_share(&http, &address, &secondary.unseal_key);
        assert_eq!(status, 400, "the secondary's own old key: {refused}");
        let (status, unsealed) = submit_share(&http, &address, &primary.unseal_key);
        assert_eq!(status, 200, "{unsealed}");
        assert_eq!(unsealed["sealed"], false, "{unsealed}");
    }

    // The active node dies; an unsealed standby is elected and serves the primary's data.
    secondary.nodes[active].kill9();
    let new_active = eventually(Duration::from_secs(30), "a standby takes over", || {
        standbys.iter().copied().find(|&standby| {
            call(
                &http,
                "GET",
                &secondary.addresses[standby],
                "sys/health",
                None,
                None,
            )
            .is_ok_and(|(status, _)| status == 200)
        })
    });
    let address = secondary.addresses[new_active].clone();
    let secret = eventually(
        Duration::from_secs(30),
        "the new active node reads a replicated secret",
        || {
            let (status, login) = call(
                &http,
                "POST",
                &address,
                "auth/userpass/login/reader",
                None,
                Some(&json!({ "password": "s3cret-pass" })),
            )
            .ok()?;
            if status != 200 {
                return None;
            }
            let client_token = login["auth"]["client_token"].as_str()?.to_string();
            let (status, read) = call(
                &http,
                "GET",
                &address,
                "replicatedkv/data/app",
                Some(&client_token),
                None,
            )
            .ok()?;
            (status == 200).then(|| read["data"]["data"].clone())
        },
    );
    assert_eq!(secret, json!({ "v": "from-primary" }));
}

/// Public-key activation (`generate-public-key`, then `secondary-token
/// secondary_public_key=...`): the primary answers the bundle sealed to the secondary's
/// key, with no wrapping token; only the cluster holding that key opens it, a token
/// sealed to a replaced key or tampered with is refused and leaves the cluster as it was,
/// and the activation consumes the key, so the token does not open a second time.
#[test]
fn public_key_activation_opens_only_where_the_key_was_made_and_only_once() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "primary", &http);
    let secondary = Single::start(root.path(), "secondary", &http);
    let stranger = Single::start(root.path(), "stranger", &http);
    let generate = |cluster: &Single| -> String {
        let (status, body) = cluster.api(
            &http,
            "POST",
            "sys/replication/performance/secondary/generate-public-key",
            &cluster.root_token,
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["data"]["secondary_public_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sealed_token = |id: &str, public_key: &str| -> (u16, Value) {
        primary.api(
            &http,
            "POST",
            "sys/replication/performance/primary/secondary-token",
            &primary.root_token,
            Some(json!({ "id": id, "secondary_public_key": public_key })),
        )
    };
    let enable = |cluster: &Single, token: &str| -> (u16, Value) {
        cluster.api(
            &http,
            "POST",
            "sys/replication/performance/secondary/enable",
            &cluster.root_token,
            Some(json!({ "token": token })),
        )
    };
    let root_token = &primary.root_token;
    write_ok(
        &http,
        &primary,
        root_token,
        "sys/policies/acl/superpolicy",
        json!({"policy": "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }"}),
    );
    write_ok(
        &http,
        &primary,
        root_token,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    );
    write_ok(
        &http,
        &primary,
        root_token,
        "auth/userpass/users/superuser",
        json!({"password": "vaultMagic", "policies": "superpolicy"}),
    );
    write_ok(
        &http,
        &primary,
        root_token,
        "sys/mounts/replicatedkv",
        json!({"type": "kv-v2"}),
    );
    write_ok(
        &http,
        &primary,
        root_token,
        "replicatedkv/data/app",
        json!({ "data": { "password": "sealed-to-a-key" } }),
    );
    write_ok(
        &http,
        &primary,
        root_token,
        "sys/replication/performance/primary/enable",
        json!({}),
    );
    write_ok(
        &http,
        &secondary,
        &secondary.root_token,
        "sys/mounts/mine",
        json!({"type": "kv"}),
    );

    // A key that is not a P-521 point is refused, and records nothing under the id.
    let (status, body) = sealed_token("us-east", "bm90IGEga2V5");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("P-521"),
        "{body}"
    );

    // A token sealed to a key the secondary then replaced no longer opens there.
    let replaced_key = generate(&secondary);
    let (status, body) = sealed_token("old-key", &replaced_key);
    assert_eq!(status, 200, "{body}");
    let stale_token = body["data"]["token"].as_str().unwrap().to_string();
    let public_key = generate(&secondary);
    assert_ne!(public_key, replaced_key);
    let (status, body) = enable(&secondary, &stale_token);
    assert_eq!(status, 400, "{body}");

    // A token past its ttl is refused (checked by the secondary's clock).
    let (status, body) = primary.api(
        &http,
        "POST",
        "sys/replication/performance/primary/secondary-token",
        &primary.root_token,
        Some(json!({ "id": "short-lived", "secondary_public_key": public_key, "ttl": "1s" })),
    );
    assert_eq!(status, 200, "{body}");
    let short_lived = body["data"]["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = enable(&secondary, &short_lived);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let (status, body) = sealed_token("us-east", &public_key);
    assert_eq!(status, 200, "{body}");
    assert!(body["wrap_info"].is_null(), "no wrapping token: {body}");
    let token = body["data"]["token"].as_str().unwrap().to_string();
    assert!(!token.contains("password") && !token.contains("keyring"));

    // Another cluster, with a key of its own, cannot open it; tampering is refused; a
    // cluster with no key says so. None of them changes anything.
    generate(&stranger);
    let (status, body) = enable(&stranger, &token);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("not sealed to this cluster"),
        "{body}"
    );
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'x' { b'y' } else { b'x' };
    let (status, body) = enable(&secondary, &String::from_utf8(tampered).unwrap());
    assert_eq!(status, 400, "{body}");
    assert_eq!(performance_status(&http, &stranger)["mode"], "disabled");
    assert_eq!(performance_status(&http, &secondary)["mode"], "disabled");
    let (status, _) = secondary.api(
        &http,
        "GET",
        "sys/mounts/mine/tune",
        &secondary.root_token,
        None,
    );
    assert_eq!(
        status, 200,
        "the refused activations left the secondary's mount"
    );

    let (status, body) = enable(&secondary, &token);
    assert_eq!(status, 200, "{body}");
    wait_in_sync(&http, &primary, &secondary);
    let user_token = login(&http, &secondary);
    assert_eq!(
        secret(&http, &secondary, &user_token, "replicatedkv/data/app").unwrap()["password"],
        "sealed-to-a-key"
    );

    // The activation wiped the key with the rest of storage: the same token, presented
    // again after the cluster left replication, opens nothing.
    write_ok(
        &http,
        &secondary,
        &user_token,
        "sys/replication/performance/secondary/disable",
        json!({}),
    );
    let (status, body) = secondary.api(
        &http,
        "POST",
        "sys/replication/performance/secondary/enable",
        &user_token,
        Some(json!({ "token": token })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("no activation key"),
        "{body}"
    );
}

/// Disabling an auth method on the primary revokes the tokens its logins issued on a
/// secondary too: they are the secondary's own (local) tokens, which the primary never
/// sees, so the secondary revokes them when the method leaves its replicated table.
#[test]
fn an_auth_method_disabled_on_the_primary_revokes_the_secondarys_tokens_from_it() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let primary = Single::start(root.path(), "primary", &http);
    let secondary = Single::start(root.path(), "secondary", &http);
    replicate_tutorial_data(&http, &primary, &secondary, "us-east", json!({"v": "1"}));

    let issued_on_secondary = login(&http, &secondary);
    let (status, body) = secondary.api(
        &http,
        "GET",
        "auth/token/lookup-self",
        &issued_on_secondary,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["path"]
            .as_str()
            .unwrap()
            .starts_with("auth/userpass/login/"),
        "{body}"
    );

    let (status, body) = primary.api(
        &http,
        "DELETE",
        "sys/auth/userpass",
        &primary.root_token,
        None,
    );
    assert_eq!(status, 204, "{body}");
    eventually(
        Duration::from_secs(30),
        "the secondary's token is revoked",
        || {
            let (status, _) = secondary.api(
                &http,
                "GET",
                "auth/token/lookup-self",
                &issued_on_secondary,
                None,
            );
            (status == 403).then_some(())
        },
    );
    let (status, _) = secondary.api(
        &http,
        "GET",
        "replicatedkv/data/before",
        &issued_on_secondary,
        None,
    );
    assert_eq!(status, 403);
}
