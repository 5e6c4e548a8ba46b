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

use arca::raft::log_store::COMMITTED_PATH;
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
    // What each node has written down as committed (the file is written after each
    // commit, and may trail): put back after the crash below, it makes every node restart
    // from the state before the second rekey, with the rekey in its log beyond.
    std::thread::sleep(Duration::from_millis(300));
    let committed_before: Vec<Vec<u8>> = cluster
        .nodes
        .iter()
        .map(|node| std::fs::read(node.data_dir.join(COMMITTED_PATH)).unwrap())
        .collect();

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
    // As a crash within a write of the rekey could leave them: the nodes must catch up
    // with their cluster before judging shares, or the replaced ones unseal them.
    for (node, committed) in cluster.nodes.iter().zip(&committed_before) {
        std::fs::write(node.data_dir.join(COMMITTED_PATH), committed).unwrap();
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

/// The rows of a two-column status (`Key    Value` lines without a header), by key.
fn status_row(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?;
            rest.starts_with("    ").then(|| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key:?} row in:\n{printed}"))
}

/// A variable the lab exported earlier.
fn exported(lab: &cli_support::Lab, name: &str) -> String {
    lab.exported
        .iter()
        .find(|(exported, _)| exported == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| panic!("{name} was not exported"))
}

#[test]
fn generate_root_rekey_and_moves_from_the_cli() {
    use cli_support::{Lab, start_cluster, text, wait_active};

    let mut lab = Lab::new();
    let server = start_cluster(lab.path(), "cluster-a");
    lab.exported
        .push(("VAULT_ADDR".to_string(), server.address.clone()));
    lab.ok("arca operator init -key-shares=3 -key-threshold=2 -format=json > init.json");
    for index in 0..3 {
        lab.export(
            &format!("KEY{index}"),
            &format!("jq -r '.unseal_keys_b64[{index}]' init.json"),
        );
    }
    lab.ok("arca operator unseal $KEY0 && arca operator unseal $KEY2");
    wait_active(&lab, "");
    lab.export("VAULT_TOKEN", "jq -r .root_token init.json");
    lab.ok("arca audit enable file file_path=$HOME/audit.log");

    // generate-root: an OTP of token length, a start, two keys, a decode.
    let status = lab.ok("arca operator generate-root -status");
    assert_eq!(status_row(&status, "Started"), "false");
    assert_eq!(status_row(&status, "Progress"), "0/2");
    assert_eq!(status_row(&status, "OTP Length"), "28");
    let otp = lab.ok("arca operator generate-root -generate-otp");
    assert_eq!(otp.len(), 28, "{otp:?}");
    assert!(cli_support::is_base62(&otp), "{otp:?}");
    lab.exported.push(("OTP".to_string(), otp.clone()));
    let started = lab.ok("arca operator generate-root -init -otp=$OTP -format=json");
    let started: Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["started"], true);
    assert_eq!(started["otp"], "", "the operator's own OTP is not echoed");
    assert_eq!(started["otp_length"], 28);
    lab.exported.push((
        "NONCE".to_string(),
        started["nonce"].as_str().unwrap().to_string(),
    ));
    let again = lab.sh("arca operator generate-root -init -otp=$OTP", "");
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("root generation already in progress"),
        "{}",
        text(&again.stderr)
    );
    let first = lab.ok("arca operator generate-root -nonce=$NONCE $KEY1");
    assert_eq!(status_row(&first, "Progress"), "1/2");
    assert_eq!(status_row(&first, "Complete"), "false");
    // The last key at the prompt: the nonce comes from the attempt's status.
    let last = lab.expect(
        "arca operator generate-root",
        &format!("{}\n", exported(&lab, "KEY2")),
        0,
    );
    assert!(
        last.starts_with(&format!(
            "Operation nonce: {}\nUnseal Key (will be hidden): \n",
            started["nonce"].as_str().unwrap()
        )),
        "{last}"
    );
    assert_eq!(status_row(&last, "Complete"), "true");
    let encoded = status_row(&last, "Encoded Token");
    lab.exported.push(("ENCODED".to_string(), encoded));
    let token = lab.ok("arca operator generate-root -decode=$ENCODED -otp=$OTP");
    assert!(token.starts_with("hvs.") && token.len() == 28, "{token:?}");
    lab.exported.push(("NEW_ROOT".to_string(), token));
    let lookup = lab.ok("VAULT_TOKEN=$NEW_ROOT arca token lookup -format=json");
    let lookup: Value = serde_json::from_str(&lookup).unwrap();
    assert_eq!(lookup["data"]["policies"], json!(["root"]));
    let after: Value =
        serde_json::from_str(&lab.ok("arca operator generate-root -status -format=json")).unwrap();
    assert_eq!(after["started"], false, "a completed attempt is over");

    // Without an OTP the server makes one and shows it once; cancel ends the attempt.
    let generated = lab.ok("arca operator generate-root -init -format=json");
    let generated: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(generated["otp"].as_str().unwrap().len(), 28);
    assert_eq!(
        lab.ok("arca operator generate-root -cancel"),
        "Success! Root token generation canceled (if it was started)\n"
    );
    let pgp = lab.sh(
        "arca operator generate-root -init -pgp-key=keybase:someone",
        "",
    );
    assert_eq!(pgp.status.code(), Some(2));
    assert!(text(&pgp.stderr).contains("pgp_key is not supported"));
    let short = lab.sh("arca operator generate-root -init -otp=short", "");
    assert_eq!(short.status.code(), Some(2));
    assert!(text(&short.stderr).contains("OTP string is wrong length"));

    // An interrupted rekey changes nothing: new shares made (verification pending),
    // then a seal ends the attempt; the new shares do not open it, the old ones do.
    let init = lab.sh(
        "arca operator rekey -init -key-shares=2 -key-threshold=2 -verify -format=json",
        "",
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    let init: Value = serde_json::from_str(&text(&init.stdout)).unwrap();
    assert_eq!(init["verification_required"], true);
    lab.exported.push((
        "PENDING_NONCE".to_string(),
        init["nonce"].as_str().unwrap().to_string(),
    ));
    lab.ok("arca operator rekey -nonce=$PENDING_NONCE $KEY0");
    let pending = lab.sh("arca operator rekey -nonce=$PENDING_NONCE $KEY1", "");
    assert_eq!(pending.status.code(), Some(0), "{}", text(&pending.stderr));
    let printed = text(&pending.stdout);
    assert!(
        printed.contains("Arca has created a new key, split into 2 key shares and a key threshold of 2.\nThese will not be active until after verification is complete."),
        "{printed}"
    );
    assert!(
        text(&pending.stderr).starts_with(
            "Again, these key shares are _not_ valid until verification is performed."
        ),
        "{}",
        text(&pending.stderr)
    );
    let verification = cli_support::table_rows(printed.rsplit("\n\n").next().unwrap());
    assert_eq!(verification[0], ("Started".to_string(), "true".to_string()));
    assert!(
        verification
            .iter()
            .any(|(key, value)| key == "Verification Progress" && value == "0/2"),
        "{verification:?}"
    );
    let pending_keys: Vec<String> = printed
        .lines()
        .filter_map(|line| {
            line.strip_prefix("Key ")
                .and_then(|rest| rest.split_once(": "))
        })
        .map(|(_, key)| key.to_string())
        .collect();
    assert_eq!(pending_keys.len(), 2, "{printed}");
    lab.exported
        .push(("PENDING0".to_string(), pending_keys[0].clone()));
    lab.exported
        .push(("PENDING1".to_string(), pending_keys[1].clone()));
    let status = lab.ok("arca operator rekey -status");
    assert!(status.contains("(verification in progress)"), "{status}");
    lab.ok("arca operator seal");
    let pending = lab.sh(
        "arca operator unseal $PENDING0 && arca operator unseal $PENDING1",
        "",
    );
    assert_eq!(pending.status.code(), Some(2), "{}", text(&pending.stdout));
    lab.ok("arca operator unseal -reset");
    lab.ok("arca operator unseal $KEY0 && arca operator unseal $KEY1");
    wait_active(&lab, "");
    let status = lab.ok("arca operator rekey -status -format=json");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["started"], false, "the seal ended the attempt");

    // rekey from the CLI: two new shares, both needed.
    let init = lab.sh(
        "arca operator rekey -init -key-shares=2 -key-threshold=2",
        "",
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    assert!(
        text(&init.stderr).starts_with(
            "WARNING! If you lose the keys after they are returned, there is no recovery.\nConsider"
        ),
        "{}",
        text(&init.stderr)
    );
    let rows = cli_support::table_rows(text(&init.stdout).trim_start_matches('\n'));
    let row = |key: &str| {
        rows.iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no {key}: {rows:?}"))
    };
    assert_eq!(row("Started"), "true");
    assert_eq!(row("Rekey Progress"), "0/2");
    assert_eq!(row("New Shares"), "2");
    assert_eq!(row("New Threshold"), "2");
    assert_eq!(row("Verification Required"), "false");
    lab.exported.push(("REKEY_NONCE".to_string(), row("Nonce")));
    let first = lab.expect(
        "arca operator rekey",
        &format!("{}\n", exported(&lab, "KEY0")),
        0,
    );
    assert!(first.starts_with("Rekey operation nonce: "), "{first}");
    assert!(first.contains("Rekey Progress           1/2"), "{first}");
    let done = lab.ok("arca operator rekey -nonce=$REKEY_NONCE $KEY1");
    let lines: Vec<&str> = done.lines().collect();
    assert_eq!(lines[0], "");
    assert!(
        lines[1].starts_with("Key 1: ") && lines[2].starts_with("Key 2: "),
        "{done}"
    );
    assert!(lines[4].starts_with("Operation nonce: "), "{done}");
    assert!(
        done.contains("Arca rekeyed with 2 key shares and a key threshold of 2. Please securely\ndistribute the key shares printed above."),
        "{done}"
    );
    lab.exported
        .push(("NEW0".to_string(), lines[1]["Key 1: ".len()..].to_string()));
    lab.exported
        .push(("NEW1".to_string(), lines[2]["Key 2: ".len()..].to_string()));

    // Sealed again, the old shares no longer open it; the new ones do.
    lab.ok("arca operator seal");
    let old = lab.sh(
        "arca operator unseal $KEY0 && arca operator unseal $KEY1",
        "",
    );
    assert_eq!(old.status.code(), Some(2), "{}", text(&old.stdout));
    lab.ok("arca operator unseal -reset");
    lab.ok("arca operator unseal $NEW0 && arca operator unseal $NEW1");
    wait_active(&lab, "");

    // With -verify from the CLI: the new shares count only once they came back.
    lab.ok("arca operator rekey -init -key-shares=2 -key-threshold=2 -verify -format=json");
    lab.ok("echo $NEW0 | arca operator rekey");
    let made = lab.sh("echo $NEW1 | arca operator rekey", "");
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let printed = text(&made.stdout);
    let verified_keys: Vec<String> = printed
        .lines()
        .filter_map(|line| {
            line.strip_prefix("Key ")
                .and_then(|rest| rest.split_once(": "))
        })
        .map(|(_, key)| key.to_string())
        .collect();
    assert_eq!(verified_keys.len(), 2, "{printed}");
    lab.exported
        .push(("VERIFIED0".to_string(), verified_keys[0].clone()));
    lab.exported
        .push(("VERIFIED1".to_string(), verified_keys[1].clone()));
    let verify_status = lab.ok("arca operator rekey -verify -status");
    assert!(
        verify_status.contains("Verification Progress    0/2"),
        "{verify_status}"
    );
    let halfway = lab.ok("echo $VERIFIED1 | arca operator rekey -verify");
    assert!(
        halfway.contains("Verification Progress    1/2"),
        "{halfway}"
    );
    let verified = lab.ok("echo $VERIFIED0 | arca operator rekey -verify");
    assert!(
        verified.ends_with("Rekey verification successful. The rekey operation is complete and the new\nkeys are now active.\n"),
        "{verified}"
    );
    lab.ok("arca operator seal");
    let replaced = lab.sh(
        "arca operator unseal $NEW0 && arca operator unseal $NEW1",
        "",
    );
    assert_eq!(
        replaced.status.code(),
        Some(2),
        "{}",
        text(&replaced.stdout)
    );
    lab.ok("arca operator unseal -reset");
    lab.ok("arca operator unseal $VERIFIED0 && arca operator unseal $VERIFIED1");
    wait_active(&lab, "");

    // secrets move: the data goes with the mount.
    lab.ok("arca secrets enable -path=kv kv");
    lab.ok("arca write kv/app password=s3cret");
    let moved = lab.ok("arca secrets move kv stash");
    let moved_lines: Vec<&str> = moved.lines().collect();
    assert_eq!(moved_lines.len(), 2, "{moved}");
    assert!(
        moved_lines[0]
            .starts_with("Started moving secrets engine kv/ to stash/, with migration ID "),
        "{moved}"
    );
    assert!(
        moved_lines[1].starts_with(
            "Success! Finished moving secrets engine kv/ to stash/, with migration ID "
        ),
        "{moved}"
    );
    assert_eq!(lab.ok("arca read -field=password stash/app"), "s3cret");
    assert_eq!(lab.sh("arca read kv/app", "").status.code(), Some(2));
    let refused = lab.sh("arca secrets move sys elsewhere", "");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("cannot remount \"sys/\""),
        "{}",
        text(&refused.stderr)
    );

    // auth move: users move with the method.
    lab.ok("arca auth enable userpass");
    lab.ok("arca write auth/userpass/users/tester password=changeme policies=default");
    let moved = lab.ok("arca auth move userpass people");
    assert!(
        moved.contains("Success! Finished moving auth method auth/userpass/ to auth/people/, with migration ID "),
        "{moved}"
    );
    let login = lab.ok("arca write -format=json auth/people/login/tester password=changeme");
    let login: Value = serde_json::from_str(&login).unwrap();
    assert!(
        login["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hvs.")
    );

    // Malformed bodies on every quorum endpoint: a 400 in Vault's envelope, never a 5xx.
    let http = support::client();
    for path in [
        "sys/rekey/init",
        "sys/rekey/update",
        "sys/rekey/verify",
        "sys/generate-root/attempt",
        "sys/generate-root/update",
    ] {
        for body in [
            "not json",
            "[]",
            "\"text\"",
            "{\"key\": 5}",
            "{\"key\": \"AAAA\", \"nonce\": 7}",
            "{\"key\": \"AAAA\"}",
            "{\"secret_shares\": -1, \"secret_threshold\": 1e99}",
            "{\"secret_shares\": 3, \"secret_threshold\": 2, \"require_verification\": \"maybe\"}",
            "{\"otp\": [\"x\"], \"pgp_key\": 3}",
        ] {
            let response = http
                .put(format!("{}/v1/{path}", server.address))
                .body(body)
                .send()
                .unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().unwrap();
            if status == 200 && path == "sys/generate-root/attempt" {
                // An object without `otp` or `pgp_key` is a valid start, as in Vault
                // (unknown fields are ignored): the server made the OTP.
                assert_eq!(answer["otp"].as_str().unwrap().len(), 28, "{answer}");
                lab.ok("arca operator generate-root -cancel");
                continue;
            }
            assert_eq!(status, 400, "PUT {path} {body} -> {answer}");
            assert!(
                answer["errors"][0].is_string(),
                "PUT {path} {body} -> {answer}"
            );
        }
    }
    let (status, recovery) = call(
        &http,
        "GET",
        &server.address,
        "sys/rekey-recovery-key/init",
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        (status, recovery),
        (400, json!({"errors": ["recovery rekeying not supported"]}))
    );
    // The backup endpoint is Vault's authenticated one; there is never a backup to read.
    let token = exported(&lab, "VAULT_TOKEN");
    let (status, _) = call(
        &http,
        "GET",
        &server.address,
        "sys/rekey/backup",
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 403);
    let (status, _) = call(
        &http,
        "GET",
        &server.address,
        "sys/rekey/backup",
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        lab.ok("arca operator rekey -backup-delete"),
        "Success! Delete stored keys (if they existed)\n"
    );

    // Every quorum request and answer is audited, and no share, OTP or token appears in
    // the clear there.
    let audit = std::fs::read_to_string(lab.path().join("audit.log")).unwrap();
    for path in [
        "sys/generate-root/attempt",
        "sys/generate-root/update",
        "sys/rekey/init",
        "sys/rekey/update",
        "sys/rekey/verify",
    ] {
        assert!(
            audit.contains(&format!("\"path\":\"{path}\"")),
            "{path} is not audited"
        );
    }
    for name in [
        "KEY0",
        "KEY1",
        "KEY2",
        "OTP",
        "NEW_ROOT",
        "NEW0",
        "VERIFIED0",
        "PENDING0",
    ] {
        let secret = exported(&lab, name);
        assert!(!audit.contains(&secret), "{name} appears in the audit log");
    }
    assert!(audit.contains("hmac-sha256:"));
    drop(server);
}
