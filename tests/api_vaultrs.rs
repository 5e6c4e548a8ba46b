//! A Vault client library this project did not write, `vaultrs`, works unchanged
//! against one dev node over real HTTP: KV v2 and v1, userpass, tokens, the sys
//! backend and response wrapping, and token expiry by use count and by TTL.

// Test harness: real sockets and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::sys::requests::EnableEngineRequest;
use vaultrs::api::token::requests::{CreateOrphanTokenRequest, CreateTokenRequest};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::{auth, kv1, kv2, sys, token};

fn client(address: &str, token: &str) -> VaultClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(address)
            .token(token)
            .timeout(Some(Duration::from_secs(30)))
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// The HTTP status of a vaultrs error, when the server answered with one. A 404 that
/// carries a full envelope (a deleted KV v2 version, as Vault sends it) is not an
/// `APIError` to vaultrs but a `rustify` `ServerResponseError`; rustify is not our
/// dependency, so that case is read from its debug form.
fn status_of(error: &ClientError) -> Option<u16> {
    match error {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError { .. } => {
            let text = format!("{error:?}");
            let code = text.split("ServerResponseError { code: ").nth(1)?;
            code.split(',').next()?.parse().ok()
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_v2_lifecycle_through_vaultrs() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let root = client(&dev.address, "root");

    // Two versions written; the latest and each version read back.
    let first = kv2::set(&root, "secret", "app/db", &json!({"password": "one"}))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let second = kv2::set(&root, "secret", "app/db", &json!({"password": "two"}))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let latest: Value = kv2::read(&root, "secret", "app/db").await.unwrap();
    assert_eq!(latest, json!({"password": "two"}));
    let old: Value = kv2::read_version(&root, "secret", "app/db", 1)
        .await
        .unwrap();
    assert_eq!(old, json!({"password": "one"}));

    // Check-and-set: the right version is accepted, a stale one is refused with 400.
    let third = kv2::set_with_options(
        &root,
        "secret",
        "app/db",
        &json!({"password": "three"}),
        SetSecretRequestOptions { cas: 2 },
    )
    .await
    .unwrap();
    assert_eq!(third.version, 3);
    let stale = kv2::set_with_options(
        &root,
        "secret",
        "app/db",
        &json!({"password": "stale"}),
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .unwrap_err();
    assert_eq!(status_of(&stale), Some(400), "{stale:?}");

    // Metadata read and update: max_versions and custom metadata stick.
    kv2::set_metadata(
        &root,
        "secret",
        "app/db",
        Some(
            SetSecretMetadataRequest::builder()
                .max_versions(5u64)
                .custom_metadata(HashMap::from([("owner".to_string(), "ops".to_string())])),
        ),
    )
    .await
    .unwrap();
    let metadata = kv2::read_metadata(&root, "secret", "app/db").await.unwrap();
    assert_eq!(metadata.current_version, 3);
    assert_eq!(metadata.max_versions, 5);
    assert_eq!(metadata.versions.len(), 3);
    assert_eq!(
        metadata
            .custom_metadata
            .unwrap()
            .get("owner")
            .map(String::as_str),
        Some("ops")
    );

    // Delete the latest: a read now fails with 404; undelete brings it back.
    kv2::delete_latest(&root, "secret", "app/db").await.unwrap();
    let deleted = kv2::read::<Value>(&root, "secret", "app/db")
        .await
        .unwrap_err();
    assert_eq!(status_of(&deleted), Some(404), "{deleted:?}");
    kv2::undelete_versions(&root, "secret", "app/db", vec![3])
        .await
        .unwrap();
    let back: Value = kv2::read(&root, "secret", "app/db").await.unwrap();
    assert_eq!(back, json!({"password": "three"}));

    // Destroy version 1: its metadata says destroyed, and it cannot be read.
    kv2::destroy_versions(&root, "secret", "app/db", vec![1])
        .await
        .unwrap();
    let metadata = kv2::read_metadata(&root, "secret", "app/db").await.unwrap();
    assert!(metadata.versions["1"].destroyed);
    assert!(
        kv2::read_version::<Value>(&root, "secret", "app/db", 1)
            .await
            .is_err()
    );

    // List shows folders with a trailing slash; delete_metadata removes every version.
    kv2::set(&root, "secret", "app/cache", &json!({"k": "v"}))
        .await
        .unwrap();
    let top = kv2::list(&root, "secret", "").await.unwrap();
    assert_eq!(top, vec!["app/".to_string()]);
    let mut app = kv2::list(&root, "secret", "app").await.unwrap();
    app.sort();
    assert_eq!(app, vec!["cache".to_string(), "db".to_string()]);
    kv2::delete_metadata(&root, "secret", "app/db")
        .await
        .unwrap();
    let gone = kv2::read_metadata(&root, "secret", "app/db")
        .await
        .unwrap_err();
    assert_eq!(status_of(&gone), Some(404), "{gone:?}");
    assert_eq!(
        kv2::list(&root, "secret", "app").await.unwrap(),
        vec!["cache".to_string()]
    );
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_v1_userpass_and_sys_through_vaultrs() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let root = client(&dev.address, "root");

    // Seal status: an unsealed, initialized node.
    assert!(matches!(
        sys::status(&root).await.unwrap(),
        sys::ServerStatus::OK
    ));

    // Mount a KV v1 engine, see it listed, use it, disable it.
    sys::mount::enable(&root, "kv1", "kv", None).await.unwrap();
    let mounts = sys::mount::list(&root).await.unwrap();
    assert_eq!(mounts["kv1/"].mount_type, "kv");
    assert_eq!(mounts["secret/"].mount_type, "kv");
    kv1::set(
        &root,
        "kv1",
        "team/app",
        &HashMap::from([("api_key", "k-1")]),
    )
    .await
    .unwrap();
    let read: HashMap<String, String> = kv1::get(&root, "kv1", "team/app").await.unwrap();
    assert_eq!(read["api_key"], "k-1");
    assert_eq!(
        kv1::list(&root, "kv1", "team").await.unwrap().data.keys,
        vec!["app".to_string()]
    );
    kv1::delete(&root, "kv1", "team/app").await.unwrap();
    let missing = kv1::get::<Value>(&root, "kv1", "team/app")
        .await
        .unwrap_err();
    assert_eq!(status_of(&missing), Some(404), "{missing:?}");
    sys::mount::enable(
        &root,
        "kv2b",
        "kv",
        Some(
            EnableEngineRequest::builder()
                .options(HashMap::from([("version".to_string(), "2".to_string())])),
        ),
    )
    .await
    .unwrap();
    kv2::set(&root, "kv2b", "x", &json!({"a": "b"}))
        .await
        .unwrap();
    sys::mount::disable(&root, "kv1").await.unwrap();
    sys::mount::disable(&root, "kv2b").await.unwrap();
    let mounts = sys::mount::list(&root).await.unwrap();
    assert!(!mounts.contains_key("kv1/") && !mounts.contains_key("kv2b/"));

    // Policies: set, read, list, delete.
    let hcl = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n";
    sys::policy::set(&root, "app-reader", hcl).await.unwrap();
    assert_eq!(
        sys::policy::read(&root, "app-reader").await.unwrap().rules,
        hcl
    );
    let policies = sys::policy::list(&root).await.unwrap().policies;
    assert!(policies.contains(&"app-reader".to_string()), "{policies:?}");
    assert!(policies.contains(&"root".to_string()), "{policies:?}");

    // Userpass: enable, list, create a user, log in; the login token carries the policy.
    sys::auth::enable(&root, "userpass", "userpass", None)
        .await
        .unwrap();
    let auths = sys::auth::list(&root).await.unwrap();
    assert_eq!(auths["userpass/"].mount_type, "userpass");
    assert_eq!(auths["token/"].mount_type, "token");
    auth::userpass::user::set(
        &root,
        "userpass",
        "alice",
        "s3cret-pw",
        Some(
            vaultrs::api::auth::userpass::requests::CreateUserRequest::builder()
                .token_policies(vec!["app-reader".to_string()]),
        ),
    )
    .await
    .unwrap();
    let login = auth::userpass::login(&root, "userpass", "alice", "s3cret-pw")
        .await
        .unwrap();
    assert!(login.policies.contains(&"app-reader".to_string()));
    assert!(login.orphan);
    assert_eq!(login.token_type, "service");
    let wrong = auth::userpass::login(&root, "userpass", "alice", "nope")
        .await
        .unwrap_err();
    assert!(matches!(status_of(&wrong), Some(400 | 403)), "{wrong:?}");

    // The login token reads what its policy allows and nothing else.
    kv2::set(&root, "secret", "app/one", &json!({"v": "1"}))
        .await
        .unwrap();
    let alice = client(&dev.address, &login.client_token);
    let value: Value = kv2::read(&alice, "secret", "app/one").await.unwrap();
    assert_eq!(value, json!({"v": "1"}));
    let denied = kv2::set(&alice, "secret", "app/one", &json!({"v": "2"}))
        .await
        .unwrap_err();
    assert_eq!(status_of(&denied), Some(403), "{denied:?}");

    sys::policy::delete(&root, "app-reader").await.unwrap();
    assert!(
        !sys::policy::list(&root)
            .await
            .unwrap()
            .policies
            .contains(&"app-reader".to_string())
    );
    sys::auth::disable(&root, "userpass").await.unwrap();
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_wrapping_through_vaultrs() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let mut root = client(&dev.address, "root");

    // The root token looks itself up as Vault's root does.
    let me = token::lookup_self(&root).await.unwrap();
    assert_eq!(me.policies, vec!["root".to_string()]);
    assert_eq!(me.ttl, 0);
    assert_eq!(me.expire_time, None);
    assert_eq!(me.display_name, "root");
    assert_eq!(me.path, "auth/token/root");

    // Create a child token, look it up, renew it, revoke it.
    let child = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["default".to_string()])
                .ttl("1h"),
        ),
    )
    .await
    .unwrap();
    assert!(!child.orphan);
    assert_eq!(child.lease_duration, 3600);
    let looked = token::lookup(&root, &child.client_token).await.unwrap();
    assert_eq!(looked.accessor, child.accessor);
    assert!(!looked.orphan);
    let renewed = token::renew(&root, &child.client_token, Some("2h"))
        .await
        .unwrap();
    assert!(renewed.lease_duration > 0);
    token::revoke(&root, &child.client_token).await.unwrap();
    let revoked = token::lookup(&root, &child.client_token).await.unwrap_err();
    assert!(
        matches!(status_of(&revoked), Some(400 | 403)),
        "{revoked:?}"
    );

    // An orphan token says so.
    let orphan = token::new_orphan(
        &root,
        Some(CreateOrphanTokenRequest::builder().policies(vec!["default".to_string()])),
    )
    .await
    .unwrap();
    assert!(orphan.orphan);
    assert!(
        token::lookup(&root, &orphan.client_token)
            .await
            .unwrap()
            .orphan
    );

    // Wrapping: wrap a token lookup, look the wrapping token up, unwrap it once.
    let endpoint = vaultrs::api::token::requests::LookupTokenSelfRequest::builder()
        .build()
        .unwrap();
    let wrapped = vaultrs::api::ResponseWrapper::wrap(endpoint, &root)
        .await
        .unwrap();
    let info = wrapped.lookup(&root).await.unwrap();
    assert_eq!(info.creation_path, "auth/token/lookup-self");
    assert_eq!(info.creation_ttl, 600);
    let unwrapped = wrapped.unwrap(&root).await.unwrap();
    assert_eq!(unwrapped.policies, vec!["root".to_string()]);
    assert!(wrapped.unwrap(&root).await.is_err());

    // sys/wrapping/unwrap with the wrapping token as the client token (no body token).
    let endpoint = vaultrs::api::token::requests::LookupTokenSelfRequest::builder()
        .build()
        .unwrap();
    let wrapped = vaultrs::api::ResponseWrapper::wrap(endpoint, &root)
        .await
        .unwrap();
    root.set_token(&wrapped.info.token);
    let unwrapped: Value = sys::wrapping::unwrap(&root, None).await.unwrap();
    assert_eq!(unwrapped["policies"], json!(["root"]));
    root.set_token("root");

    // num_uses=2: two uses succeed, the third is refused. As in Vault, the use is
    // counted before the handler runs, so the first lookup already shows one left.
    let limited = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["default".to_string()])
                .num_uses(2u64),
        ),
    )
    .await
    .unwrap();
    let limited_client = client(&dev.address, &limited.client_token);
    assert_eq!(
        token::lookup_self(&limited_client).await.unwrap().num_uses,
        1
    );
    // The last use is admitted in full (the token is revoked after the request).
    token::renew_self(&limited_client, None).await.unwrap();
    let used_up = token::lookup_self(&limited_client).await.unwrap_err();
    assert_eq!(status_of(&used_up), Some(403), "{used_up:?}");

    // A 2 s token works now and is refused once the expiration tick has passed it.
    let short = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["default".to_string()])
                .ttl("2s")
                .renewable(false),
        ),
    )
    .await
    .unwrap();
    assert_eq!(short.lease_duration, 2);
    let short_client = client(&dev.address, &short.client_token);
    token::lookup_self(&short_client).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = token::lookup_self(&short_client).await.unwrap_err();
    assert_eq!(status_of(&expired), Some(403), "{expired:?}");
    let gone = token::lookup(&root, &short.client_token).await.unwrap_err();
    assert!(matches!(status_of(&gone), Some(400 | 403)), "{gone:?}");
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_of_the_client_surface_parses() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let root = client(&dev.address, "root");

    // Health and a mount's configuration decode into vaultrs's structs.
    let health = sys::health(&root).await.unwrap();
    assert!(health.initialized && !health.sealed && !health.standby);
    let secret = sys::mount::get_configuration_of_a_secret_engine(&root, "secret")
        .await
        .unwrap();
    assert_eq!(secret.mount_type, "kv");
    assert!(secret.accessor.starts_with("kv_"));

    // KV v2 engine configuration: set and read back.
    kv2::config::set(
        &root,
        "secret",
        Some(
            vaultrs::api::kv2::requests::SetConfigurationRequest::builder()
                .max_versions(7u64)
                .cas_required(false),
        ),
    )
    .await
    .unwrap();
    let config = kv2::config::read(&root, "secret").await.unwrap();
    assert_eq!(config.max_versions, 7);
    assert!(!config.cas_required);

    // Cubbyhole: private to the token.
    vaultrs::cubbyhole::set(&root, "cubbyhole", "note", &HashMap::from([("k", "v")]))
        .await
        .unwrap();
    let note: HashMap<String, String> = vaultrs::cubbyhole::get(&root, "cubbyhole", "note")
        .await
        .unwrap();
    assert_eq!(note["k"], "v");

    // Userpass user management: read, list, change password and policies.
    sys::auth::enable(&root, "userpass", "userpass", None)
        .await
        .unwrap();
    auth::userpass::user::set(&root, "userpass", "carol", "first-pw", None)
        .await
        .unwrap();
    let carol = auth::userpass::user::read(&root, "userpass", "carol")
        .await
        .unwrap();
    assert_eq!(carol.token_type, "default");
    assert_eq!(
        auth::userpass::user::list(&root, "userpass")
            .await
            .unwrap()
            .keys,
        vec!["carol".to_string()]
    );
    auth::userpass::user::update_password(&root, "userpass", "carol", "second-pw")
        .await
        .unwrap();
    auth::userpass::user::update_policies(&root, "userpass", "carol", "default,extra")
        .await
        .unwrap();
    let carol = auth::userpass::user::read(&root, "userpass", "carol")
        .await
        .unwrap();
    assert_eq!(
        carol.token_policies,
        vec!["default".to_string(), "extra".to_string()]
    );
    assert!(
        auth::userpass::login(&root, "userpass", "carol", "first-pw")
            .await
            .is_err()
    );
    auth::userpass::login(&root, "userpass", "carol", "second-pw")
        .await
        .unwrap();

    // Tokens by accessor; revoke-orphan keeps the children.
    let parent = token::new(&root, None).await.unwrap();
    let by_accessor = token::lookup_accessor(&root, &parent.accessor)
        .await
        .unwrap();
    assert_eq!(by_accessor.accessor, parent.accessor);
    assert_eq!(by_accessor.id, "");
    let parent_client = client(&dev.address, &parent.client_token);
    let child = token::new(&parent_client, None).await.unwrap();
    token::revoke_orphan(&root, &parent.client_token)
        .await
        .unwrap();
    let orphaned = token::lookup(&root, &child.client_token).await.unwrap();
    assert!(orphaned.orphan);
    token::revoke_accessor(&root, &child.accessor)
        .await
        .unwrap();
    assert!(token::lookup(&root, &child.client_token).await.is_err());
    dev.node.shutdown().await;
}
