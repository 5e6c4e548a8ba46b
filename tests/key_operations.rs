//! Rekey, generate-root and remount (issue 10, item 4) against real processes: a
//! three-node Raft cluster rekeyed over HTTP and restarted, and a single server driven
//! with the CLI as an operator types it.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{TestCluster, call, eventually};

/// Unseal `address` with `keys`; the last answer (status and body).
fn unseal_with(http: &reqwest::blocking::Client, address: &str, keys: &[String]) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for key in keys {
        last = call(
            http,
            "PUT",
            address,
            "sys/unseal",
            None,
            Some(&json!({"key": key})),
        )
        .unwrap();
        if last.0 != 200 {
            return last;
        }
    }
    last
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_rekeyed_cluster_unseals_with_the_new_shares_only_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let http = support::client();
    let mut cluster = TestCluster::start(root.path(), &http);
    let token = cluster.root_token.clone();
    let leader = cluster.leader(&http);
    let standby = (leader + 1) % 3;
    let (leader_address, standby_address) = (
        cluster.addresses[leader].clone(),
        cluster.addresses[standby].clone(),
    );
    let (status, mounted) = call(
        &http,
        "POST",
        &leader_address,
        "sys/mounts/secret",
        Some(&token),
        Some(&json!({"type": "kv"})),
    )
    .unwrap();
    assert_eq!(status, 204, "{mounted}");
    let (status, _) = call(
        &http,
        "PUT",
        &leader_address,
        "secret/kept",
        Some(&token),
        Some(&json!({"value": "before the rekey"})),
    )
    .unwrap();
    assert!(status == 204 || status == 200);

    // Nothing is in progress; a standby answers for the active node, without a token.
    let (status, idle) =
        call(&http, "GET", &standby_address, "sys/rekey/init", None, None).unwrap();
    assert_eq!(status, 200, "{idle}");
    assert_eq!(
        idle,
        json!({"nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": 1,
               "pgp_fingerprints": null, "backup": false, "verification_required": false})
    );

    // Bad input is refused in Vault's envelope, and starts nothing.
    for body in [
        json!({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["a", "b", "c"]}),
        json!({"secret_shares": 2, "secret_threshold": 3}),
        json!({"secret_shares": 3, "secret_threshold": 1}),
        json!({"secret_shares": "many"}),
    ] {
        let (status, refused) = call(
            &http,
            "PUT",
            &standby_address,
            "sys/rekey/init",
            None,
            Some(&body),
        )
        .unwrap();
        assert_eq!(status, 400, "{body} -> {refused}");
        assert!(refused["errors"][0].is_string(), "{refused}");
    }
    let (_, still_idle) =
        call(&http, "GET", &leader_address, "sys/rekey/init", None, None).unwrap();
    assert_eq!(still_idle["started"], false);

    // A cancelled attempt changes nothing: its nonce is gone.
    let (status, started) = call(
        &http,
        "PUT",
        &standby_address,
        "sys/rekey/init",
        None,
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    )
    .unwrap();
    assert_eq!(status, 200, "{started}");
    let cancelled_nonce = started["nonce"].as_str().unwrap().to_string();
    let (status, _) = call(
        &http,
        "DELETE",
        &leader_address,
        "sys/rekey/init",
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 204);
    let (status, stale) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": cluster.unseal_key, "nonce": cancelled_nonce})),
    )
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(stale["errors"][0], "no barrier rekey in progress");

    // Rekey from one share to three of which two are needed, with verification.
    let (_, started) = call(
        &http,
        "PUT",
        &standby_address,
        "sys/rekey/init",
        None,
        Some(&json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true})),
    )
    .unwrap();
    assert_eq!(started["started"], true);
    assert_eq!(
        (started["n"].clone(), started["t"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(started["verification_required"], true);
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let (status, wrong_nonce) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": cluster.unseal_key, "nonce": "not-it"})),
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        wrong_nonce["errors"][0].as_str().unwrap().contains(&nonce),
        "the error names the right nonce: {wrong_nonce}"
    );
    let (status, garbage) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": "not a key!", "nonce": nonce})),
    )
    .unwrap();
    assert_eq!(
        (status, garbage["errors"][0].as_str().unwrap()),
        (400, "'key' must be a valid hex or base64 string")
    );
    let (status, done) = call(
        &http,
        "PUT",
        &standby_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": cluster.unseal_key, "nonce": nonce})),
    )
    .unwrap();
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["complete"], true);
    assert_eq!(done["verification_required"], true);
    let verified_keys = strings(&done["keys_base64"]);
    assert_eq!(verified_keys.len(), 3);
    assert_eq!(strings(&done["keys"]).len(), 3);

    // Until verification, the seal still follows the old configuration.
    let (_, seal) = call(&http, "GET", &leader_address, "sys/seal-status", None, None).unwrap();
    assert_eq!((seal["n"].clone(), seal["t"].clone()), (json!(1), json!(1)));

    // Verification: restarting it gives a new nonce; two new shares complete it.
    let (_, verification) = call(
        &http,
        "GET",
        &standby_address,
        "sys/rekey/verify",
        None,
        None,
    )
    .unwrap();
    assert_eq!(verification["nonce"], done["verification_nonce"]);
    assert_eq!(verification["progress"], 0);
    let (_, restarted) = call(
        &http,
        "DELETE",
        &standby_address,
        "sys/rekey/verify",
        None,
        None,
    )
    .unwrap();
    assert_ne!(restarted["nonce"], verification["nonce"]);
    let verify_nonce = restarted["nonce"].as_str().unwrap().to_string();
    let (_, one) = call(
        &http,
        "PUT",
        &standby_address,
        "sys/rekey/verify",
        None,
        Some(&json!({"key": verified_keys[2], "nonce": verify_nonce})),
    )
    .unwrap();
    assert_eq!(one["progress"], 1, "{one}");
    let (status, complete) = call(
        &http,
        "PUT",
        &standby_address,
        "sys/rekey/verify",
        None,
        Some(&json!({"key": verified_keys[0], "nonce": verify_nonce})),
    )
    .unwrap();
    assert_eq!(status, 200, "{complete}");
    assert_eq!(complete, json!({"nonce": verify_nonce, "complete": true}));

    // Every node reads the new configuration from its own copy of the Raft log.
    for address in &cluster.addresses {
        eventually(
            Duration::from_secs(10),
            "the new seal configuration",
            || {
                let (_, seal) = call(&http, "GET", address, "sys/seal-status", None, None).ok()?;
                (seal["n"] == 3 && seal["t"] == 2).then_some(())
            },
        );
    }

    // A second rekey, without verification, from two of the verified shares.
    let (_, started) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/init",
        None,
        Some(&json!({"secret_shares": 5, "secret_threshold": 3})),
    )
    .unwrap();
    let nonce = started["nonce"].as_str().unwrap().to_string();
    assert_eq!(started["required"], 2);
    let (_, halfway) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": verified_keys[1], "nonce": nonce})),
    )
    .unwrap();
    assert_eq!(halfway["progress"], 1, "{halfway}");
    let (status, duplicate) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": verified_keys[1], "nonce": nonce})),
    )
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        duplicate["errors"][0],
        "given key has already been provided during this rekey operation"
    );
    let (status, done) = call(
        &http,
        "PUT",
        &leader_address,
        "sys/rekey/update",
        None,
        Some(&json!({"key": verified_keys[2], "nonce": nonce})),
    )
    .unwrap();
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["verification_required"], false);
    assert!(done.get("verification_nonce").is_none());
    let new_keys = strings(&done["keys_base64"]);
    assert_eq!(new_keys.len(), 5);
    for address in &cluster.addresses {
        eventually(
            Duration::from_secs(10),
            "the final seal configuration",
            || {
                let (_, seal) = call(&http, "GET", address, "sys/seal-status", None, None).ok()?;
                (seal["n"] == 5 && seal["t"] == 3).then_some(())
            },
        );
    }

    // Restart every node: the old shares are refused everywhere, the new ones unseal.
    for node in &mut cluster.nodes {
        node.kill9();
    }
    for node in &mut cluster.nodes {
        node.start();
    }
    for address in &cluster.addresses {
        eventually(Duration::from_secs(30), "the node answers sealed", || {
            let (_, seal) = call(&http, "GET", address, "sys/seal-status", None, None).ok()?;
            (seal["sealed"] == true).then_some(())
        });
        let (status, refused) =
            unseal_with(&http, address, std::slice::from_ref(&cluster.unseal_key));
        assert_eq!(status, 400, "the original key: {refused}");
        let (status, refused) = unseal_with(&http, address, &verified_keys);
        assert_eq!(status, 400, "the replaced shares: {refused}");
        let (status, reset) = call(
            &http,
            "PUT",
            address,
            "sys/unseal",
            None,
            Some(&json!({"reset": true})),
        )
        .unwrap();
        assert_eq!(status, 200, "{reset}");
    }
    for address in &cluster.addresses {
        eventually(
            Duration::from_secs(30),
            "the node unseals with the new shares",
            || {
                let (status, seal) = unseal_with(&http, address, &new_keys[1..4]);
                (status == 200 && seal["sealed"] == false).then_some(())
            },
        );
    }
    let leader = cluster.leader(&http);
    let (status, kept) = eventually(Duration::from_secs(30), "the secret reads back", || {
        call(
            &http,
            "GET",
            &cluster.addresses[leader],
            "secret/kept",
            Some(&token),
            None,
        )
        .ok()
        .filter(|(status, _)| *status == 200)
    });
    assert_eq!(status, 200);
    assert_eq!(kept["data"]["value"], "before the rekey");
}
