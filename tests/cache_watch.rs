//! Caches above the barrier follow applied changes on every node: a node that becomes
//! active again serves what another active node changed meanwhile, without reloading its
//! caches because the Raft term changed.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{TestCluster, call, client, eventually};

/// The cumulative count of the counter `name` in `address`'s own `sys/metrics` (the
/// node must be active: a standby forwards the request).
fn counter(http: &reqwest::blocking::Client, address: &str, token: &str, name: &str) -> u64 {
    let (status, body) = call(http, "GET", address, "sys/metrics", Some(token), None).unwrap();
    assert_eq!(status, 200, "{body}");
    body["Counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|counter| counter["Name"] == name)
        .map(|counter| counter["Count"].as_u64().unwrap_or(0))
        .sum()
}

/// Step down whoever leads until `wanted` leads; panics after a bounded number of tries.
fn make_leader(http: &reqwest::blocking::Client, cluster: &TestCluster, wanted: usize) {
    const STEP_DOWNS_MAX: usize = 30;
    for _ in 0..STEP_DOWNS_MAX {
        let leader = cluster.leader(http);
        if leader == wanted {
            return;
        }
        let (status, body) = call(
            http,
            "PUT",
            &cluster.addresses[leader],
            "sys/step-down",
            Some(&cluster.root_token),
            None,
        )
        .unwrap();
        assert!(status == 204 || status >= 500, "{status} {body}");
        eventually(Duration::from_secs(30), "another node takes over", || {
            (cluster.leader(http) != leader).then_some(())
        });
    }
    panic!("node {wanted} did not become the leader in {STEP_DOWNS_MAX} step-downs");
}

/// Call until the node answers with something other than a 5xx (it may be settling in
/// as active), and return that answer.
fn settled(
    http: &reqwest::blocking::Client,
    method: &str,
    address: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    eventually(Duration::from_secs(30), path, || {
        call(http, method, address, path, Some(token), body)
            .ok()
            .filter(|(status, _)| *status < 500)
    })
}

#[test]
fn a_node_active_again_serves_a_policy_and_a_mount_changed_meanwhile_without_a_whole_reload() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let cluster = TestCluster::start(root.path(), &http);
    let token = cluster.root_token.clone();

    // Phase 1: on the first active node, a kv mount, a policy that reads it, and a token
    // with that policy; a read with the token caches the policy on this node.
    let first = cluster.leader(&http);
    let first_address = cluster.addresses[first].clone();
    for (method, path, body) in [
        ("POST", "sys/mounts/app", json!({"type": "kv"})),
        ("PUT", "app/secret", json!({"value": "one"})),
        (
            "PUT",
            "sys/policies/acl/reader",
            json!({"policy": "path \"app/*\" { capabilities = [\"read\"] }"}),
        ),
    ] {
        let (status, answer) = settled(&http, method, &first_address, path, &token, Some(&body));
        assert!(status == 200 || status == 204, "{path}: {status} {answer}");
    }
    let (status, created) = settled(
        &http,
        "POST",
        &first_address,
        "auth/token/create",
        &token,
        Some(&json!({"policies": ["reader"]})),
    );
    assert_eq!(status, 200, "{created}");
    let reader = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = settled(&http, "GET", &first_address, "app/secret", &reader, None);
    assert_eq!(status, 200, "the policy grants the read: {answer}");
    let whole_reloads = counter(
        &http,
        &first_address,
        &token,
        "arca.caches.reload_everything",
    );
    let leaderships = counter(&http, &first_address, &token, "vault.raft.state.leader");
    assert!(whole_reloads >= 1, "the unseal loaded every cache");

    // Phase 2: another node leads; through it, the policy no longer grants the read,
    // and a new mount holds a secret.
    make_leader(&http, &cluster, (first + 1) % cluster.nodes.len());
    let second_address = cluster.addresses[cluster.leader(&http)].clone();
    for (method, path, body) in [
        (
            "PUT",
            "sys/policies/acl/reader",
            json!({"policy": "path \"other/*\" { capabilities = [\"read\"] }"}),
        ),
        ("POST", "sys/mounts/late", json!({"type": "kv"})),
        ("PUT", "late/secret", json!({"value": "two"})),
    ] {
        let (status, answer) = settled(&http, method, &second_address, path, &token, Some(&body));
        assert!(status == 200 || status == 204, "{path}: {status} {answer}");
    }

    // Phase 3: the first node leads again. It answers by the new policy and serves the
    // new mount, though it reloaded nothing whole on becoming active: its caches
    // followed the changes while it was a standby.
    make_leader(&http, &cluster, first);
    let (status, answer) = settled(&http, "GET", &first_address, "app/secret", &reader, None);
    assert_eq!(status, 403, "the changed policy denies the read: {answer}");
    let (status, answer) = settled(&http, "GET", &first_address, "late/secret", &token, None);
    assert_eq!(
        status, 200,
        "the mount enabled meanwhile is served: {answer}"
    );
    assert_eq!(answer["data"]["value"], "two");
    assert!(
        counter(&http, &first_address, &token, "vault.raft.state.leader") > leaderships,
        "the first node became active again"
    );
    assert_eq!(
        counter(
            &http,
            &first_address,
            &token,
            "arca.caches.reload_everything"
        ),
        whole_reloads,
        "becoming active reloaded no cache whole"
    );
}
