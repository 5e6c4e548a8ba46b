//! Everything a node writes to its data directory is ciphertext: after initialization,
//! unseal and writes, no file holds the root key, any keyring term key, the keyring
//! itself, the root token, or a stored secret, in any common encoding.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use arca::env::Env;
use arca::server::{Node, NodeConfig};
use base64::Engine;
use serde_json::json;
use support::{any_file_contains, call, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_token_or_secret_reaches_the_disk_in_plaintext() {
    let data = tempfile::tempdir().unwrap();
    let (api_port, cluster_port) = (free_port(), free_port());
    let config = NodeConfig {
        node_id: "node1".into(),
        api_listen: format!("127.0.0.1:{api_port}").parse().unwrap(),
        cluster_listen: format!("127.0.0.1:{cluster_port}").parse().unwrap(),
        api_addr: format!("http://127.0.0.1:{api_port}"),
        cluster_addr: format!("https://127.0.0.1:{cluster_port}"),
        cluster_name: None,
        retry_join: Vec::new(),
        api_tls: None,
        raft: Default::default(),
    };
    let node = Node::start(
        Env::production(data.path()).unwrap(),
        config,
        std::sync::Arc::new(arca::env::MemoryLogFiles::new()),
    )
    .await
    .unwrap();
    let (unseal_key, root_token) = node.initialize_dev(None).await.unwrap();
    let address = format!("http://127.0.0.1:{api_port}");
    let secret = "correct-horse-battery-staple-4f1c";
    let password = "userpass-password-9b2e71";
    let (written, login_token) = tokio::task::spawn_blocking({
        let address = address.clone();
        let root_token = root_token.clone();
        move || {
            let http = support::client();
            let written = call(
                &http,
                "PUT",
                &address,
                "secret/data/app",
                Some(&root_token),
                Some(&json!({"data": {"password": secret}})),
            );
            call(
                &http,
                "POST",
                &address,
                "sys/auth/userpass",
                Some(&root_token),
                Some(&json!({"type": "userpass"})),
            )
            .unwrap();
            call(
                &http,
                "POST",
                &address,
                "auth/userpass/users/alice",
                Some(&root_token),
                Some(&json!({"password": password})),
            )
            .unwrap();
            let (_, login) = call(
                &http,
                "POST",
                &address,
                "auth/userpass/login/alice",
                None,
                Some(&json!({"password": password})),
            )
            .unwrap();
            (
                written.unwrap(),
                login["auth"]["client_token"].as_str().unwrap().to_string(),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(written.0, 200, "{}", written.1);

    let (root_key, term_key) = node
        .core()
        .barrier()
        .with_keyring(|keyring| (keyring.root_key, keyring.active().key))
        .unwrap();
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, key) in [("root key", root_key), ("term key", term_key)] {
        needles.push((format!("{name} (raw)"), key.to_vec()));
        needles.push((format!("{name} (hex)"), hex::encode(key).into_bytes()));
        needles.push((format!("{name} (base64)"), base64.encode(key).into_bytes()));
        let json_array = serde_json::to_string(&key.to_vec()).unwrap();
        needles.push((format!("{name} (JSON)"), json_array.into_bytes()));
    }
    needles.push(("keyring JSON".into(), b"\"active_term\"".to_vec()));
    needles.push(("unseal key".into(), unseal_key.clone()));
    needles.push(("root token".into(), root_token.clone().into_bytes()));
    needles.push(("secret value".into(), secret.as_bytes().to_vec()));
    needles.push(("userpass password".into(), password.as_bytes().to_vec()));
    needles.push(("login token".into(), login_token.clone().into_bytes()));
    for (name, needle) in &needles {
        assert_eq!(
            any_file_contains(data.path(), needle),
            None,
            "the {name} reached the disk"
        );
    }
    assert!(
        !support::files_below(data.path()).is_empty(),
        "the node wrote nothing at all"
    );
    node.shutdown().await;
}
