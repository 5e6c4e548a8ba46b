//! `X-Vault-Index` as Vault's clients use it: every response that committed carries the
//! state it committed at, in Vault's format; sending it back is served once the node has
//! that state; a state the node has not reached gets 412; a tampered one gets 400.

// Test harness: real clocks and threads, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::sync::Arc;

use arca::core::index_state::{IndexState, IndexStateKey};
use base64::Engine;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_carry_x_vault_index_and_reads_wait_for_it() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let core = dev.node.core().clone();
    let key = core
        .barrier()
        .with_keyring(|keyring| IndexStateKey::derive(&keyring.term(1).unwrap().key))
        .unwrap();
    let cluster_id = core.cluster_info().unwrap().cluster_id;
    let address = dev.address.clone();
    tokio::task::spawn_blocking(move || {
        let http = support::client();
        let send =
            |method: &str, path: &str, states: &[String], body: Option<serde_json::Value>| {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut request = http
                    .request(method, format!("{address}/v1/{path}"))
                    .header("X-Vault-Token", "root");
                for state in states {
                    request = request.header("X-Vault-Index", state);
                }
                if let Some(body) = body {
                    request = request.json(&body);
                }
                request.send().unwrap()
            };

        // Phase 1: a write answers with its state, in Vault's layout, for this cluster.
        let response = send(
            "POST",
            "secret/data/app",
            &[],
            Some(json!({"data": {"password": "hunter2"}})),
        );
        assert_eq!(response.status(), 200);
        let header = response
            .headers()
            .get("x-vault-index")
            .expect("a committed write carries X-Vault-Index")
            .to_str()
            .unwrap()
            .to_string();
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&header)
                .unwrap(),
        )
        .unwrap();
        let fields: Vec<&str> = text.split(':').collect();
        assert_eq!(fields.len(), 5, "{text}");
        assert_eq!(fields[0], "v1");
        assert_eq!(fields[1], cluster_id);
        let written_at: u64 = fields[2].parse().unwrap();
        assert!(written_at > 0);
        assert_eq!(fields[4].len(), 64, "a hex HMAC-SHA256");

        // Phase 2: a read presenting that state is served; a read does not commit, so it
        // carries no state of its own.
        let response = send(
            "GET",
            "secret/data/app",
            std::slice::from_ref(&header),
            None,
        );
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-vault-index").is_none());

        // Phase 3: a state this node has not reached: 412 after a short wait, as Vault.
        let ahead = IndexState {
            cluster_id: cluster_id.clone(),
            local_index: written_at + 1_000_000,
            replicated_index: 0,
        }
        .encode(&key);
        let response = send("GET", "secret/data/app", &[ahead], None);
        assert_eq!(response.status(), 412);
        let body: serde_json::Value = response.json().unwrap();
        assert_eq!(body["errors"][0], "required index state not present");

        // Phase 4: a state of another cluster is not ours to wait for.
        let foreign = IndexState {
            cluster_id: "another-cluster".into(),
            local_index: u64::MAX,
            replicated_index: 0,
        }
        .encode(&key);
        assert_eq!(
            send("GET", "secret/data/app", &[foreign], None).status(),
            200
        );

        // Phase 5: an index raised by the client fails the HMAC: 400, nothing served.
        let forged = base64::engine::general_purpose::STANDARD.encode(format!(
            "v1:{cluster_id}:{}:0:{}",
            written_at + 5,
            fields[4]
        ));
        let response = send("GET", "secret/data/app", &[forged], None);
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().unwrap();
        assert!(
            body["errors"][0]
                .as_str()
                .unwrap()
                .contains("X-Vault-Index"),
            "{body}"
        );
    })
    .await
    .unwrap();
}

/// The local index a committed response reports.
fn committed_at(response: &reqwest::blocking::Response) -> u64 {
    let header = response
        .headers()
        .get("x-vault-index")
        .expect("a committed response carries X-Vault-Index")
        .to_str()
        .unwrap();
    let text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    text.split(':').nth(2).unwrap().parse().unwrap()
}

/// One write set per request: a login writes an entity (the first time), a token and
/// its lease, and a wrapped token creation writes a token, its lease and the wrapping
/// record; each request is one Raft entry, so consecutive requests on a quiet node
/// commit at consecutive indexes. (Before write sets, a login took three entries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_commits_its_writes_as_one_raft_entry() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    tokio::task::spawn_blocking(move || {
        let http = support::client();
        let send = |method: &str, path: &str, token: &str, body: serde_json::Value| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = http
                .request(method, format!("{address}/v1/{path}"))
                .header("X-Vault-Token", token)
                .json(&body);
            if path == "auth/token/create" {
                request = request.header("X-Vault-Wrap-TTL", "5m");
            }
            let response = request.send().unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response
        };
        send(
            "POST",
            "sys/auth/userpass",
            "root",
            json!({"type": "userpass"}),
        );
        // The first wrapped answer also creates the cluster's wrapping key, at once.
        send("POST", "auth/token/create", "root", json!({"ttl": "1h"}));
        let mut previous = committed_at(&send(
            "POST",
            "auth/userpass/users/alice",
            "root",
            json!({"password": "correct horse", "token_policies": "default"}),
        ));
        for (path, body) in [
            // The first login also creates alice's entity.
            (
                "auth/userpass/login/alice",
                json!({"password": "correct horse"}),
            ),
            (
                "auth/userpass/login/alice",
                json!({"password": "correct horse"}),
            ),
            ("auth/token/create", json!({"ttl": "1h"})),
            ("secret/data/after", json!({"data": {"k": "v"}})),
        ] {
            let at = committed_at(&send("POST", path, "root", body));
            assert_eq!(at, previous + 1, "{path} committed more than one entry");
            previous = at;
        }
    })
    .await
    .unwrap();
}
