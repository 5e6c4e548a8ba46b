//! The traffic of the integration suites, run through the in-process core over a
//! backend that records every key a commit carries, shows that every key written is
//! registered in the key space, with the class and group replication will rely on; a
//! write to an unregistered prefix fails.

// Test harness: a real clock and the OS's randomness, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arca::auth::userpass::PasswordCost;
use arca::barrier::BarrierError;
use arca::core::router::LogicalCore;
use arca::core::{Cluster, Core, CoreConfig, LogicalService, NodeAddress, Peer, RaftIndexes};
use arca::env::{Env, MemoryLogFiles, SimDisk};
use arca::http::{ApiHandler, ApiRequest};
use arca::seal::SealConfig;
use arca::storage::{
    Backend, CoreGroup, KeyClass, KeyGroup, MemoryBackend, Op, SharedBackend, StorageError,
    UnregisteredKey, classify,
};
use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// Memory storage that remembers every key any commit carried, refused or not.
#[derive(Default)]
struct RecordingBackend {
    inner: MemoryBackend,
    written: Mutex<Vec<String>>,
}

impl Backend for RecordingBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix)
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>> {
        self.written
            .lock()
            .unwrap()
            .extend(ops.iter().map(|op| op.key().to_string()));
        self.inner.commit(ops)
    }
}

/// A one-node cluster over the recording backend.
struct RecordingCluster {
    address: NodeAddress,
    backend: Arc<RecordingBackend>,
}

impl Cluster for RecordingCluster {
    fn backend(&self) -> SharedBackend {
        self.backend.clone()
    }
    fn is_bootstrapped(&self) -> bool {
        true
    }
    fn bootstrap(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn is_leader(&self) -> bool {
        true
    }
    fn leader(&self) -> Option<NodeAddress> {
        Some(self.address.clone())
    }
    fn add_voter(&self, _node: NodeAddress) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("one node only".to_string()) })
    }
    fn remove_peer(&self, _node_id: &str) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("one node only".to_string()) })
    }
    fn configuration(&self) -> Vec<Peer> {
        Vec::new()
    }
    fn indexes(&self) -> RaftIndexes {
        let applied = self.backend.inner.commits();
        RaftIndexes {
            term: 1,
            committed: applied,
            committed_term: 1,
            applied,
        }
    }
    fn step_down(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

struct Node {
    core: Arc<Core>,
    backend: Arc<RecordingBackend>,
}

impl Node {
    async fn start() -> (Node, String) {
        let backend = Arc::new(RecordingBackend::default());
        let address = NodeAddress {
            node_id: "n1".into(),
            api_addr: "http://n1.api".into(),
            cluster_addr: "https://n1.cluster".into(),
        };
        let cluster = Arc::new(RecordingCluster {
            address: address.clone(),
            backend: backend.clone(),
        });
        let config = CoreConfig {
            node: address,
            cluster_name: None,
            retry_join: Vec::new(),
        };
        let core = Core::new(Env::in_memory(SimDisk::new(0)), config, cluster);
        // The cheapest password hashing the hasher accepts: the test is about keys.
        let cost = PasswordCost {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let logical = LogicalCore::new(&core, Arc::new(MemoryLogFiles::new()), cost);
        core.install_logical(logical as Arc<dyn LogicalService>);
        let (shares, root_token) = core
            .initialize(SealConfig::shamir(1, 1).unwrap(), None)
            .await
            .unwrap();
        let share = base64::engine::general_purpose::STANDARD.encode(shares[0].as_slice());
        core.submit_unseal_share(Some(&share), false).await.unwrap();
        (Node { core, backend }, root_token)
    }

    /// One API call; fails the test unless it answers 2xx.
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
        self.call_with(method, path, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
        headers: &[(&'static str, &str)],
    ) -> Value {
        let mut header_map = http::HeaderMap::new();
        if let Some(token) = token {
            header_map.insert("x-vault-token", token.parse().unwrap());
        }
        for (name, value) in headers {
            header_map.insert(*name, value.parse().unwrap());
        }
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, query),
            None => (path, ""),
        };
        let query: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let response = ApiHandler::handle(
            self.core.as_ref(),
            ApiRequest {
                method: method.parse().unwrap(),
                path: path.to_string(),
                query,
                headers: header_map,
                body: if body.is_null() {
                    Bytes::new()
                } else {
                    Bytes::from(body.to_string())
                },
                delegated_caller: None,
            },
        )
        .await;
        let text = String::from_utf8_lossy(&response.body).to_string();
        assert!(
            response.status < 400,
            "{method} {path} answered {}: {text}",
            response.status
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_the_integration_traffic_writes_is_registered_with_its_class_and_group() {
    let (node, root) = Node::start().await;
    let root = Some(root.as_str());
    let call = |method: &'static str, path: &'static str, body: Value| {
        let node = &node;
        async move { node.call(method, path, root, body).await }
    };

    // Mounts of every kind, replicated and local: kv v1 and v2, userpass twice.
    call(
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    call("POST", "sys/mounts/kv1", json!({"type": "kv"})).await;
    call(
        "POST",
        "sys/mounts/kv-local",
        json!({"type": "kv", "options": {"version": "2"}, "local": true}),
    )
    .await;
    call("POST", "sys/auth/userpass", json!({"type": "userpass"})).await;
    call(
        "POST",
        "sys/auth/userpass-local",
        json!({"type": "userpass", "local": true}),
    )
    .await;
    call("POST", "sys/mounts/kv/tune", json!({"max_lease_ttl": "2h"})).await;

    // Secrets in each engine, versions deleted and destroyed, metadata.
    call("PUT", "kv/data/app", json!({"data": {"password": "p1"}})).await;
    call("PUT", "kv/data/app", json!({"data": {"password": "p2"}})).await;
    call("POST", "kv/delete/app", json!({"versions": [1]})).await;
    call("PUT", "kv/destroy/app", json!({"versions": [2]})).await;
    call("POST", "kv/metadata/app", json!({"max_versions": 4})).await;
    call("PUT", "kv/config", json!({"max_versions": 8})).await;
    call("PUT", "kv1/app", json!({"password": "p3"})).await;
    call("DELETE", "kv1/app", Value::Null).await;
    call("PUT", "kv1/kept", json!({"password": "p4"})).await;
    call(
        "PUT",
        "kv-local/data/here",
        json!({"data": {"only": "here"}}),
    )
    .await;

    // Policies and token roles.
    call(
        "PUT",
        "sys/policies/acl/reader",
        json!({"policy": "path \"kv/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    call(
        "PUT",
        "sys/policy/scratch",
        json!({"policy": "path \"kv1/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    call("DELETE", "sys/policy/scratch", Value::Null).await;
    call(
        "POST",
        "auth/token/roles/deployer",
        json!({"allowed_policies": ["reader"]}),
    )
    .await;

    // Tokens: children, orphans, a role, a revocation, a cubbyhole.
    let child = call("POST", "auth/token/create", json!({"policies": ["reader"]})).await;
    let child = child["auth"]["client_token"].as_str().unwrap().to_string();
    call("POST", "auth/token/create-orphan", json!({"ttl": "1h"})).await;
    call("POST", "auth/token/create/deployer", json!({})).await;
    node.call("PUT", "cubbyhole/note", Some(&child), json!({"n": 1}))
        .await;
    call("PUT", "cubbyhole/mine", json!({"n": 2})).await;
    node.call("POST", "auth/token/revoke", root, json!({"token": child}))
        .await;

    // Userpass users and logins (entity, token and lease in one request).
    call(
        "POST",
        "auth/userpass/users/alice",
        json!({"password": "pw-alice"}),
    )
    .await;
    call(
        "POST",
        "auth/userpass-local/users/bob",
        json!({"password": "pw-bob"}),
    )
    .await;
    let login = node
        .call(
            "POST",
            "auth/userpass/login/alice",
            None,
            json!({"password": "pw-alice"}),
        )
        .await;
    let lease_id = login["auth"]["client_token"].as_str().unwrap().to_string();
    node.call(
        "POST",
        "auth/userpass-local/login/bob",
        None,
        json!({"password": "pw-bob"}),
    )
    .await;
    node.call(
        "POST",
        "auth/token/revoke",
        root,
        json!({"token": lease_id}),
    )
    .await;

    // Response wrapping: wrap, look up, unwrap.
    let wrapped = node
        .call_with(
            "POST",
            "sys/wrapping/wrap",
            root,
            json!({"payload": "secret"}),
            &[("x-vault-wrap-ttl", "5m")],
        )
        .await;
    let wrapping_token = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
    node.call(
        "POST",
        "sys/wrapping/unwrap",
        None,
        json!({"token": wrapping_token}),
    )
    .await;

    // Audit devices of both classes, one disabled again; a key rotation; an unmount.
    call(
        "PUT",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": "/logs/audit.log"}}),
    )
    .await;
    call(
        "PUT",
        "sys/audit/local-file",
        json!({"type": "file", "local": true, "options": {"file_path": "/logs/local.log"}}),
    )
    .await;
    call(
        "PUT",
        "sys/audit/gone",
        json!({"type": "file", "options": {"file_path": "discard"}}),
    )
    .await;
    call("DELETE", "sys/audit/gone", Value::Null).await;
    call("POST", "sys/rotate", Value::Null).await;
    call("DELETE", "sys/mounts/kv1", Value::Null).await;
    call("PUT", "kv/data/after-rotation", json!({"data": {"v": 1}})).await;

    // Every key any commit carried is registered: list each with its class and group.
    let written: Vec<String> = node.backend.written.lock().unwrap().clone();
    let mut classified: BTreeMap<String, (KeyClass, KeyGroup)> = BTreeMap::new();
    for key in &written {
        let placed = classify(key).unwrap_or_else(|error| panic!("{error}"));
        classified.insert(key.clone(), placed);
    }
    println!("{} keys written:", classified.len());
    for (key, (class, group)) in &classified {
        println!("  {class:?}\t{group}\t{key}");
    }

    // The groups are the mounts themselves: a mount's entry and data share its uuid, and
    // a local mount's entry and data are all local.
    let mounts = call("GET", "sys/mounts", Value::Null).await;
    let auths = call("GET", "sys/auth", Value::Null).await;
    let uuid =
        |table: &Value, path: &str| table["data"][path]["uuid"].as_str().unwrap().to_string();
    let kv = uuid(&mounts, "kv/");
    let kv_local = uuid(&mounts, "kv-local/");
    let cubbyhole = uuid(&mounts, "cubbyhole/");
    let userpass = uuid(&auths, "userpass/");
    let userpass_local = uuid(&auths, "userpass-local/");
    let keys_of = |uuid: &str| -> Vec<(&String, KeyClass)> {
        classified
            .iter()
            .filter(|(_, (_, group))| *group == KeyGroup::Mount(uuid.to_string()))
            .map(|(key, (class, _))| (key, *class))
            .collect()
    };
    for (uuid, class, entry, data) in [
        (&kv, KeyClass::Replicated, "core/mounts/", "logical/"),
        (
            &kv_local,
            KeyClass::Local,
            "core/local-mounts/",
            "local-logical/",
        ),
        (
            &cubbyhole,
            KeyClass::Local,
            "core/local-mounts/",
            "local-logical/",
        ),
        (&userpass, KeyClass::Replicated, "core/auth/", "auth/"),
        (
            &userpass_local,
            KeyClass::Local,
            "core/local-auth/",
            "local-auth/",
        ),
    ] {
        let keys = keys_of(uuid);
        assert!(
            keys.iter().all(|(_, found)| *found == class),
            "{uuid}: {keys:?}"
        );
        assert!(
            keys.iter()
                .any(|(key, _)| **key == format!("{entry}{uuid}"))
        );
        assert!(
            keys.iter()
                .any(|(key, _)| key.starts_with(&format!("{data}{uuid}/")))
        );
    }

    // The core groups carry the classes of REPLICATION.md's table.
    let class_of_group = |group: CoreGroup| -> Vec<KeyClass> {
        let mut classes: Vec<KeyClass> = classified
            .values()
            .filter(|(_, found)| *found == KeyGroup::Core(group))
            .map(|(class, _)| *class)
            .collect();
        classes.dedup();
        classes
    };
    for (group, classes) in [
        (CoreGroup::Seal, vec![KeyClass::Replicated]),
        (CoreGroup::Keyring, vec![KeyClass::Replicated]),
        (CoreGroup::Cluster, vec![KeyClass::Local]),
        (CoreGroup::Tokens, vec![KeyClass::Local]),
        (CoreGroup::Leases, vec![KeyClass::Local]),
        (CoreGroup::Wrapping, vec![KeyClass::Local]),
        (CoreGroup::Policies, vec![KeyClass::Replicated]),
        (CoreGroup::TokenRoles, vec![KeyClass::Replicated]),
        (CoreGroup::Identity, vec![KeyClass::Replicated]),
        (
            CoreGroup::AuditTable,
            vec![KeyClass::Replicated, KeyClass::Local],
        ),
    ] {
        assert_eq!(class_of_group(group), classes, "{group:?}");
    }

    // A write to an unregistered prefix fails, whole, with a typed error.
    let refused = node
        .core
        .barrier()
        .put("secret/not-registered", b"value".to_vec())
        .await;
    assert_eq!(
        refused,
        Err(BarrierError::Storage(StorageError::UnregisteredKey(
            UnregisteredKey("secret/not-registered".into())
        )))
    );
    assert!(node.backend.get("secret/not-registered").unwrap().is_none());
}
