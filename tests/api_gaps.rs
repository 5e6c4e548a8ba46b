//! Gaps against Vault's API on one node that were found and closed: unknown fields get
//! Vault's warning, `sys/tools/random`, `?help=1`, query booleans read as Go reads them,
//! unseal keys checked whatever the seal state, the `generic` mount type, a dev server
//! that serves only once unsealed.

// Test harness: real sockets and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

async fn with_dev_node(work: impl FnOnce(String) + Send + 'static) {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    tokio::task::spawn_blocking(move || work(address))
        .await
        .unwrap();
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_get_vaults_warning() {
    with_dev_node(|address| {
        let http = support::client();
        let (status, body) = support::call(
            &http,
            "POST",
            &address,
            "auth/token/create",
            Some("root"),
            Some(&json!({"policies": ["default"], "bogus": 1})),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let warnings = body["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings.iter().any(|warning| warning
                .as_str()
                .unwrap()
                .contains("Endpoint ignored these unrecognized parameters")),
            "{body}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_query_describes_a_path() {
    with_dev_node(|address| {
        let http = support::client();
        let help = |method: &str, path: &str, token: Option<&str>| {
            support::call(&http, method, &address, path, token, None).unwrap()
        };
        // Vault's shape, without the envelope: help text and an OpenAPI document.
        let (status, body) = help("GET", "secret/data/x?help=1", Some("root"));
        assert_eq!(status, 200, "{body}");
        let text = body["help"].as_str().unwrap();
        assert!(text.starts_with("Request:        data/x\n"), "{text}");
        assert!(text.contains("KV secrets engine, version 2"), "{text}");
        assert!(text.contains("    secret/metadata/{path}\n"), "{text}");
        assert_eq!(body["openapi"]["openapi"], "3.0.2", "{body}");
        assert!(
            body["openapi"]["paths"]["/secret/data/{path}"]["description"].is_string(),
            "{body}"
        );
        assert!(body.get("data").is_none(), "no envelope: {body}");

        // Any non-empty value and any method, as in Vault; the path need not exist.
        let (status, body) = help("POST", "secret/data/x?help=yes", Some("root"));
        assert_eq!(status, 200, "{body}");
        let (status, body) = help("GET", "auth/token/lookup-self?help=1", Some("root"));
        assert_eq!(status, 200, "{body}");
        assert!(
            body["help"].as_str().unwrap().contains("token auth method"),
            "{body}"
        );

        // A valid token is needed, any one; a path under no mount has no help.
        let (status, _) = help("GET", "secret/data/x?help=1", None);
        assert_eq!(status, 403);
        let (status, _) = help("GET", "secret/data/x?help=1", Some("hvs.nonesuch"));
        assert_eq!(status, 403);
        let (status, _) = help("GET", "nowhere/x?help=1", Some("root"));
        assert_eq!(status, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_tools_random_returns_bytes() {
    with_dev_node(|address| {
        let http = support::client();
        let (status, body) = support::call(
            &http,
            "POST",
            &address,
            "sys/tools/random/16",
            Some("root"),
            Some(&json!({"format": "hex"})),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["random_bytes"].as_str().unwrap().len(), 32);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_flags_read_as_go_booleans() {
    with_dev_node(|address| {
        let http = support::client();
        let call = |method: &str, path: &str| {
            support::call(&http, method, &address, path, Some("root"), None).unwrap()
        };
        let (status, body) = support::call(
            &http,
            "POST",
            &address,
            "secret/data/app",
            Some("root"),
            Some(&json!({"data": {"password": "one"}})),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");

        // Every spelling Go's strconv.ParseBool takes for true is a list.
        for spelling in ["1", "t", "T", "TRUE", "true", "True"] {
            let (status, body) = call("GET", &format!("secret/metadata/?list={spelling}"));
            assert_eq!(status, 200, "list={spelling}: {body}");
            assert_eq!(body["data"]["keys"], json!(["app"]), "list={spelling}");
        }
        // Its spellings of false, and an empty value, are a read, as in Vault.
        for spelling in ["0", "f", "F", "FALSE", "false", "False", ""] {
            let (status, body) = call("GET", &format!("secret/metadata/app?list={spelling}"));
            assert_eq!(status, 200, "list={spelling}: {body}");
            assert_eq!(body["data"]["current_version"], 1, "list={spelling}");
        }
        // Anything else is a 400 in Vault's error envelope, never a guess.
        for spelling in ["yes", "on", "2", "tRUE"] {
            let (status, body) = call("GET", &format!("secret/metadata/?list={spelling}"));
            assert_eq!(status, 400, "list={spelling}: {body}");
            let errors = body["errors"].as_array().expect("Vault's error envelope");
            assert!(errors[0].as_str().unwrap().contains("\"list\""), "{body}");
        }

        // sys/health reads its flags and codes the same way.
        assert_eq!(call("GET", "sys/health?standbyok=True").0, 200);
        assert_eq!(call("GET", "sys/health?standbyok=maybe").0, 400);
        assert_eq!(call("GET", "sys/health?perfstandbyok=2").0, 400);
        assert_eq!(call("GET", "sys/health?activecode=abc").0, 400);
        assert_eq!(call("GET", "sys/health?activecode=299").0, 299);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseal_checks_the_key_whatever_the_seal_state() {
    with_dev_node(|address| {
        let http = support::client();
        let unseal = |body: Value| {
            support::call(&http, "PUT", &address, "sys/unseal", None, Some(&body)).unwrap()
        };
        let malformed = json!({"errors": ["'key' must be a valid hex or base64 string"]});

        // Unsealed: a malformed key is a 400 all the same, as in Vault.
        for key in ["not a key!", "zz", "abc", "%%%%"] {
            let (status, body) = unseal(json!({ "key": key }));
            assert_eq!((status, &body), (400, &malformed), "key {key:?}");
        }
        // A well-formed key on an unsealed node changes nothing: the seal status.
        let (status, body) = unseal(json!({"key": "00".repeat(32)}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sealed"], false, "{body}");
        // A missing key, and a reset of a node that is unsealed, are 400s.
        let (status, _) = unseal(json!({}));
        assert_eq!(status, 400);
        let (status, body) = unseal(json!({"reset": true}));
        assert_eq!(
            (status, body),
            (400, json!({"errors": ["vault is unsealed"]}))
        );

        // Sealed: the same answer to the same malformed key.
        let (status, body) =
            support::call(&http, "PUT", &address, "sys/seal", Some("root"), None).unwrap();
        assert_eq!(status, 204, "{body}");
        let (status, body) = unseal(json!({"key": "not a key!"}));
        assert_eq!((status, &body), (400, &malformed));
        let (status, body) = unseal(json!({"reset": true}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sealed"], true, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_mounts_are_kv() {
    with_dev_node(|address| {
        let http = support::client();
        let call = |method: &str, path: &str, body: Option<Value>| {
            support::call(&http, method, &address, path, Some("root"), body.as_ref()).unwrap()
        };
        // Vault's legacy name for KV version 1, kept as the operator wrote it.
        let (status, body) = call(
            "POST",
            "sys/mounts/legacy",
            Some(json!({"type": "generic"})),
        );
        assert_eq!(status, 204, "{body}");
        let (status, mounts) = call("GET", "sys/mounts", None);
        assert_eq!(status, 200, "{mounts}");
        assert_eq!(mounts["data"]["legacy/"]["type"], "generic", "{mounts}");

        let (status, body) = call("PUT", "legacy/app", Some(json!({"password": "one"})));
        assert_eq!(status, 204, "{body}");
        let (status, body) = call("GET", "legacy/app", None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"], json!({"password": "one"}));
        let (status, body) = call("GET", "legacy/?list=true", None);
        assert_eq!(
            (status, &body["data"]["keys"]),
            (200, &json!(["app"])),
            "{body}"
        );

        // As in Vault, `generic` takes KV's version option too.
        let (status, body) = call(
            "POST",
            "sys/mounts/legacy2",
            Some(json!({"type": "generic", "options": {"version": "2"}})),
        );
        assert_eq!(status, 204, "{body}");
        let (status, body) = call(
            "PUT",
            "legacy2/data/app",
            Some(json!({"data": {"password": "two"}})),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = call("GET", "legacy2/data/app", None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["data"], json!({"password": "two"}));
    })
    .await;
}

/// `arca server -dev` killed when the test ends, however it ends.
struct DevProcess(std::process::Child);

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dev_server_is_unsealed_from_its_first_connection() {
    // The dev server listens on the port given and the one after it.
    let port = loop {
        let port = support::free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            break port;
        }
    };
    let mut dev = DevProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // What a script does: wait for the port, as tightly as it likes, then ask.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the dev server never listened");
        assert!(
            dev.0.try_wait().unwrap().is_none(),
            "the dev server exited before listening"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let http = support::client();
    let (status, body) = support::call(
        &http,
        "GET",
        &format!("http://127.0.0.1:{port}"),
        "sys/seal-status",
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["initialized"], true, "{body}");
    assert_eq!(body["sealed"], false, "{body}");
}

/// Vault checks the token and its policies before it routes: a path no mount serves is a
/// 404 only for a caller allowed to ask for it, and a 403 for anyone else (no token, a
/// revoked one, or one whose policies do not grant the path). Found by the simulator's
/// token workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_path_is_403_unless_the_caller_may_ask_for_it() {
    with_dev_node(|address| {
        let http = support::client();
        let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
            support::call(&http, method, &address, path, token, body.as_ref()).unwrap()
        };
        let (status, body) = call("GET", "nowhere/x", Some("root"), None);
        assert_eq!(status, 404, "{body}");
        assert!(
            body["errors"][0]
                .as_str()
                .unwrap()
                .contains("no handler for route")
        );

        let (status, created) = call(
            "POST",
            "auth/token/create",
            Some("root"),
            Some(json!({"policies": ["default"]})),
        );
        assert_eq!(status, 200, "{created}");
        let limited = created["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        for token in [None, Some("not-a-token"), Some(limited.as_str())] {
            let (status, body) = call("GET", "nowhere/x", token, None);
            assert_eq!(status, 403, "{token:?}: {body}");
            assert_eq!(body["errors"][0], "permission denied");
        }
        let (status, _) = call(
            "POST",
            "auth/token/revoke-self",
            Some(&limited),
            Some(json!({})),
        );
        assert_eq!(status, 204);
        let (status, _) = call("GET", "nowhere/x", Some(&limited), None);
        assert_eq!(status, 403);
    })
    .await;
}

/// A disable is Vault's sequence: taint the entry, revoke, delete, remove the entry. An
/// active node that stopped after the taint leaves the mark in storage, and the active
/// node's next expiration tick finishes the disable: the tokens the auth method issued
/// stop working, the engine's data is deleted, and both entries leave the tables. Here
/// the stop is staged by writing the taint straight to storage, as the interrupted
/// request left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_disable_is_finished_by_the_active_node() {
    use arca::storage::{TableKind, key_space};

    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    let (user_token, auth_uuid, kv_uuid) = tokio::task::spawn_blocking(move || {
        let http = support::client();
        let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
            support::call(&http, method, &address, path, token, body.as_ref()).unwrap()
        };
        for (path, body) in [
            ("sys/auth/up", json!({"type": "userpass"})),
            (
                "auth/up/users/ana",
                json!({"password": "pw", "policies": "default"}),
            ),
            ("sys/mounts/gone", json!({"type": "kv"})),
            ("gone/app", json!({"password": "to-be-deleted"})),
        ] {
            let (status, body) = call("POST", path, Some("root"), Some(body));
            assert!(status == 204 || status == 200, "{path}: {status} {body}");
        }
        let (status, login) = call(
            "POST",
            "auth/up/login/ana",
            None,
            Some(json!({"password": "pw"})),
        );
        assert_eq!(status, 200, "{login}");
        let token = login["auth"]["client_token"].as_str().unwrap().to_string();
        let uuid = |listing: &str, path: &str| {
            let (status, body) = call("GET", listing, Some("root"), None);
            assert_eq!(status, 200, "{body}");
            body["data"][path]["uuid"].as_str().unwrap().to_string()
        };
        (token, uuid("sys/auth", "up/"), uuid("sys/mounts", "gone/"))
    })
    .await
    .unwrap();

    let barrier = dev.node.core().barrier().clone();
    let tainted = |kind: TableKind, uuid: &str| {
        let key = key_space::mount_entry(kind, false, uuid);
        let mut entry: Value =
            serde_json::from_slice(&barrier.get(&key).unwrap().unwrap()).unwrap();
        entry["tainted"] = Value::Bool(true);
        arca::barrier::Write::Put {
            key,
            value: serde_json::to_vec(&entry).unwrap(),
        }
    };
    let kv_prefix = key_space::mount_data_prefix(TableKind::Secrets, false, &kv_uuid);
    assert!(!barrier.list(&kv_prefix).unwrap().is_empty());
    barrier
        .commit_now(vec![
            tainted(TableKind::Auth, &auth_uuid),
            tainted(TableKind::Secrets, &kv_uuid),
        ])
        .await
        .unwrap();

    let address = dev.address.clone();
    tokio::task::spawn_blocking(move || {
        let http = support::client();
        let call = |method: &str, path: &str, token: Option<&str>| {
            support::call(&http, method, &address, path, token, None).unwrap()
        };
        support::eventually(Duration::from_secs(20), "the disable to finish", || {
            let (tokens, _) = call("GET", "auth/token/lookup-self", Some(&user_token));
            let (_, auth) = call("GET", "sys/auth", Some("root"));
            let (_, mounts) = call("GET", "sys/mounts", Some("root"));
            (tokens == 403
                && auth["data"].get("up/").is_none()
                && mounts["data"].get("gone/").is_none())
            .then_some(())
        });
        let (status, body) = call("GET", "gone/app", Some("root"));
        assert_eq!(status, 404, "{body}");
    })
    .await
    .unwrap();
    support::eventually(
        Duration::from_secs(20),
        "the entries to leave storage",
        || {
            let entries = [
                key_space::mount_entry(TableKind::Auth, false, &auth_uuid),
                key_space::mount_entry(TableKind::Secrets, false, &kv_uuid),
            ];
            entries
                .iter()
                .all(|key| barrier.get(key).unwrap().is_none())
                .then_some(())
        },
    );
    assert_eq!(barrier.list(&kv_prefix).unwrap(), Vec::<String>::new());
    dev.node.shutdown().await;
}

/// Leases no mount serves are revoked, with their tokens: what a disable left behind
/// when it removed the entry first (the order before the taint) and stopped, and what a
/// performance secondary issued under a mount its primary disabled. Staged here by
/// deleting an auth method's entry straight from storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_no_mount_serves_are_revoked_with_their_tokens() {
    use arca::storage::{TableKind, key_space};

    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    let (kept_token, orphaned_token, auth_uuid) = tokio::task::spawn_blocking(move || {
        let http = support::client();
        let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
            support::call(&http, method, &address, path, token, body.as_ref()).unwrap()
        };
        for (path, body) in [
            ("sys/auth/team/up", json!({"type": "userpass"})),
            ("auth/team/up/users/ana", json!({"password": "pw"})),
            ("sys/auth/team/kept", json!({"type": "userpass"})),
            ("auth/team/kept/users/bo", json!({"password": "pw"})),
        ] {
            let (status, body) = call("POST", path, Some("root"), Some(body));
            assert!(status == 204 || status == 200, "{path}: {status} {body}");
        }
        let login = |path: &str| {
            let (status, login) = call("POST", path, None, Some(json!({"password": "pw"})));
            assert_eq!(status, 200, "{login}");
            login["auth"]["client_token"].as_str().unwrap().to_string()
        };
        let orphaned = login("auth/team/up/login/ana");
        let kept = login("auth/team/kept/login/bo");
        let (_, auth) = call("GET", "sys/auth", Some("root"), None);
        let uuid = auth["data"]["team/up/"]["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        (kept, orphaned, uuid)
    })
    .await
    .unwrap();

    dev.node
        .core()
        .barrier()
        .commit_now(vec![arca::barrier::Write::Delete {
            key: key_space::mount_entry(TableKind::Auth, false, &auth_uuid),
        }])
        .await
        .unwrap();

    let address = dev.address.clone();
    tokio::task::spawn_blocking(move || {
        let http = support::client();
        let lookup = |token: &str| {
            support::call(
                &http,
                "GET",
                &address,
                "auth/token/lookup-self",
                Some(token),
                None,
            )
            .unwrap()
            .0
        };
        support::eventually(
            Duration::from_secs(20),
            "the orphaned token is revoked",
            || (lookup(&orphaned_token) == 403).then_some(()),
        );
        assert_eq!(lookup(&kept_token), 200);
        let (status, leases) = support::call(
            &http,
            "LIST",
            &address,
            "sys/leases/lookup/auth/team/",
            Some("root"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{leases}");
        assert_eq!(leases["data"]["keys"], json!(["kept/"]), "{leases}");
    })
    .await
    .unwrap();
    dev.node.shutdown().await;
}
