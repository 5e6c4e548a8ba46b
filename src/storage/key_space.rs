//! The registry of the key space: every storage prefix, with its class and its group.
//!
//! Storage keys are built here and nowhere else: the seal and keyring keys are constants,
//! mount and audit tables are one key per entry (`core/mounts/<uuid>`), a mount's data
//! lives below `logical/<uuid>/` (or its local and auth counterparts), and each core
//! store (tokens, leases, policies, ...) is a [`Store`] whose prefix roots its view.
//!
//! [`classify`] maps a key to its [`KeyClass`] (does it cross to a performance secondary)
//! and its [`KeyGroup`] (the unit a secondary's mount filter keeps or drops: a mount's
//! uuid covers the mount's table entry and all of its data). A key under no registered
//! prefix has neither: it is an error, and [`super::validate_batch`] refuses a batch that
//! holds one, so a forgotten prefix fails loudly instead of leaking to every secondary.
//!
//! Invariant: registered prefixes are disjoint (none is a prefix of another), so a key
//! matches at most one registration and the order of [`REGISTRY`] decides nothing.

/// How a key travels between clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyClass {
    /// Crosses to performance secondaries (mount and auth tables, policies, data of
    /// non-local mounts, userpass users, token roles, identity, the sealed keyring, the
    /// seal configuration and the sealed root key), subject to their filter.
    Replicated,
    /// Stays in this cluster: tokens, accessors, leases, cubbyhole, local mounts' entries
    /// and data.
    Local,
    /// Never replicated and never meaningful elsewhere: a snapshot restore's staged
    /// entries ([`RESTORE_STAGING`]).
    Ignored,
}

/// The parts of the key space that belong to no mount.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum CoreGroup {
    /// The seal configuration and the root key sealed under the unseal key. Replicated
    /// and never filtered: a secondary's nodes unseal with the primary's unseal keys, so
    /// a rekey on the primary reaches them (`docs/replication-keys.md`).
    Seal,
    /// The keyring (every key term), sealed under the root key. Replicated and never
    /// filtered: a secondary opens the primary's ciphertext with the primary's terms
    /// (`docs/replication-keys.md`).
    Keyring,
    /// This cluster's name and id.
    Cluster,
    /// The audit devices, one key per device.
    AuditTable,
    Policies,
    TokenRoles,
    /// Tokens, their accessors and parent links, and the token salt.
    Tokens,
    /// Leases and their per-token index (`sys/expire/`).
    Leases,
    /// Response-wrapping tokens and the wrapping JWT key.
    Wrapping,
    /// Entities and alias lookups.
    Identity,
    /// The versions of Arca this cluster has run (`sys/version-history`).
    VersionHistory,
}

/// The unit a secondary's filter keeps or drops.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum KeyGroup {
    Core(CoreGroup),
    /// A mount's table entry and all of its data, named by the mount's uuid.
    Mount(String),
}

impl std::fmt::Display for KeyGroup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyGroup::Core(group) => write!(formatter, "core:{group:?}"),
            KeyGroup::Mount(uuid) => write!(formatter, "mount:{uuid}"),
        }
    }
}

/// A key that no registration covers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage key {0:?} is under no registered prefix")]
pub struct UnregisteredKey(pub String);

/// Which mount table: secrets engines or auth methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Secrets,
    Auth,
}

/// A core store: a region of the key space that one store owns through a barrier view
/// rooted at [`Store::prefix`]; the store names its keys relative to that prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Policies,
    TokenRoles,
    Tokens,
    Leases,
    Wrapping,
    Identity,
}

impl Store {
    pub const fn prefix(self) -> &'static str {
        match self {
            Store::Policies => POLICIES,
            Store::TokenRoles => TOKEN_ROLES,
            Store::Tokens => TOKENS,
            Store::Leases => LEASES,
            Store::Wrapping => WRAPPING,
            Store::Identity => IDENTITY,
        }
    }
}

/// The seal configuration (plaintext: it is needed before unseal, and holds no secret).
/// Replicated with the sealed root key, so a secondary follows its primary's rekeys.
pub const SEAL_CONFIG_KEY: &str = "core/seal-config";
/// The root key, sealed under the unseal key.
pub const ROOT_KEY_KEY: &str = "core/root-key";
/// The keyring, sealed under the root key; replicated, so a rotation on the primary
/// reaches its secondaries through the WAL (`docs/replication-keys.md`).
pub const KEYRING_KEY: &str = "core/keyring";
/// The cluster's name and id.
pub const CLUSTER_INFO_KEY: &str = "core/cluster/info";
/// This cluster's certificate authority for the cluster channel (`channel::identity`):
/// sealed by the barrier; local, as every cluster has its own; carried over a
/// secondary's activation wipe, re-sealed under the primary's keys in the same entry.
pub const CLUSTER_CA_KEY: &str = "core/cluster/tls-ca";
/// This cluster's replication CA, which issues its secondaries' client certificates for
/// `arca-repl/1` (created when it first hands out a secondary token): sealed by the
/// barrier, local, and wiped with the rest by an activation of this cluster as a
/// secondary (the secondaries it had then follow another primary).
pub const REPLICATION_CA_KEY: &str = "core/cluster/replication/ca";
/// This cluster's performance-replication role and bookkeeping (sealed by the barrier;
/// local, as Vault keeps `core/cluster/replicated/` out of what it replicates).
pub const REPLICATION_STATE_KEY: &str = "core/cluster/replication/state";
/// A would-be secondary's activation secret key (`generate-public-key`), sealed by the
/// barrier and local; the activation it serves wipes it with the rest of storage.
pub const ACTIVATION_KEY_KEY: &str = "core/cluster/replication/activation-key";
/// On a performance secondary, the primary's WAL index this cluster's data reflects, as
/// decimal text (not a secret, and read by the state machine, below the barrier). Set
/// only by [`crate::raft::types::Command::ApplyRemote`], in the step that applies it.
pub const LAST_REMOTE_WAL_KEY: &str = "core/cluster/replication/last-remote-wal";
/// The last snapshot restore (plaintext JSON: no secret, and read by nodes whose
/// keyring the restore replaced). Written in the restore's own Raft entry; every node
/// reloads what it holds above the barrier when it changes.
pub const SNAPSHOT_RESTORE_KEY: &str = "core/cluster/snapshot-restore";

/// Where a snapshot restore stages the snapshot's entries before one small Raft entry
/// swaps them in (`core::snapshots`): `<prefix><restore id>/<ordinal>`, each value one
/// encoded (key, value) pair. Ignored: never replicated, never in a saved snapshot, and
/// present only while a restore runs (or until an abandoned one is cleared).
pub const RESTORE_STAGING: &str = "core/restore-staging/";

/// The staging prefix of one restore.
pub fn restore_staging_prefix(restore_id: &str) -> String {
    format!("{RESTORE_STAGING}{restore_id}/")
}

/// The staging key of a restore's `ordinal`-th entry; zero-padded so key order is
/// entry order.
pub fn restore_staging_key(restore_id: &str, ordinal: u64) -> String {
    format!("{RESTORE_STAGING}{restore_id}/{ordinal:020}")
}

const CLUSTER: &str = "core/cluster/";
/// One key per version this cluster has run, `core/versions/<version>`: local, as a
/// secondary runs its own binaries; carried over a secondary's activation wipe (see
/// `replication::manager`), as the cluster's name and id are.
pub const VERSION_HISTORY_PREFIX: &str = "core/versions/";
const MOUNTS: &str = "core/mounts/";
const LOCAL_MOUNTS: &str = "core/local-mounts/";
const AUTH_MOUNTS: &str = "core/auth/";
const LOCAL_AUTH_MOUNTS: &str = "core/local-auth/";
const AUDIT_DEVICES: &str = "core/audit/";
const LOCAL_AUDIT_DEVICES: &str = "core/local-audit/";
const POLICIES: &str = "sys/policy/";
const TOKEN_ROLES: &str = "sys/token-roles/";
const TOKENS: &str = "sys/token/";
const LEASES: &str = "sys/expire/";
const WRAPPING: &str = "sys/wrapping/";
const IDENTITY: &str = "identity/";
const LOGICAL: &str = "logical/";
const LOCAL_LOGICAL: &str = "local-logical/";
const AUTH_DATA: &str = "auth/";
const LOCAL_AUTH_DATA: &str = "local-auth/";

/// How the part of a key after its registered prefix is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The prefix is the whole key.
    Exact(CoreGroup),
    /// Any non-empty path below the prefix.
    Below(CoreGroup),
    /// `<prefix><uuid>`: one mount-table entry, in its mount's group.
    MountEntry,
    /// `<prefix><uuid>/<path>`: a mount's data, in its mount's group.
    MountData,
}

#[derive(Debug, Clone, Copy)]
struct Registration {
    prefix: &'static str,
    class: KeyClass,
    shape: Shape,
}

const fn register(prefix: &'static str, class: KeyClass, shape: Shape) -> Registration {
    Registration {
        prefix,
        class,
        shape,
    }
}

/// Every prefix of the key space. Adding a store means adding its line here.
const REGISTRY: &[Registration] = &[
    register(
        SEAL_CONFIG_KEY,
        KeyClass::Replicated,
        Shape::Exact(CoreGroup::Seal),
    ),
    register(
        ROOT_KEY_KEY,
        KeyClass::Replicated,
        Shape::Exact(CoreGroup::Seal),
    ),
    register(
        KEYRING_KEY,
        KeyClass::Replicated,
        Shape::Exact(CoreGroup::Keyring),
    ),
    register(CLUSTER, KeyClass::Local, Shape::Below(CoreGroup::Cluster)),
    register(
        VERSION_HISTORY_PREFIX,
        KeyClass::Local,
        Shape::Below(CoreGroup::VersionHistory),
    ),
    register(
        RESTORE_STAGING,
        KeyClass::Ignored,
        Shape::Below(CoreGroup::Cluster),
    ),
    register(MOUNTS, KeyClass::Replicated, Shape::MountEntry),
    register(LOCAL_MOUNTS, KeyClass::Local, Shape::MountEntry),
    register(AUTH_MOUNTS, KeyClass::Replicated, Shape::MountEntry),
    register(LOCAL_AUTH_MOUNTS, KeyClass::Local, Shape::MountEntry),
    register(
        AUDIT_DEVICES,
        KeyClass::Replicated,
        Shape::Below(CoreGroup::AuditTable),
    ),
    register(
        LOCAL_AUDIT_DEVICES,
        KeyClass::Local,
        Shape::Below(CoreGroup::AuditTable),
    ),
    register(
        POLICIES,
        KeyClass::Replicated,
        Shape::Below(CoreGroup::Policies),
    ),
    register(
        TOKEN_ROLES,
        KeyClass::Replicated,
        Shape::Below(CoreGroup::TokenRoles),
    ),
    register(TOKENS, KeyClass::Local, Shape::Below(CoreGroup::Tokens)),
    register(LEASES, KeyClass::Local, Shape::Below(CoreGroup::Leases)),
    register(WRAPPING, KeyClass::Local, Shape::Below(CoreGroup::Wrapping)),
    register(
        IDENTITY,
        KeyClass::Replicated,
        Shape::Below(CoreGroup::Identity),
    ),
    register(LOGICAL, KeyClass::Replicated, Shape::MountData),
    register(LOCAL_LOGICAL, KeyClass::Local, Shape::MountData),
    register(AUTH_DATA, KeyClass::Replicated, Shape::MountData),
    register(LOCAL_AUTH_DATA, KeyClass::Local, Shape::MountData),
];

/// The class and group of `key`, or an error when no registered prefix covers it.
pub fn classify(key: &str) -> Result<(KeyClass, KeyGroup), UnregisteredKey> {
    let unregistered = || UnregisteredKey(key.to_string());
    let registration = REGISTRY
        .iter()
        .find(|registration| key.starts_with(registration.prefix))
        .ok_or_else(unregistered)?;
    let rest = &key[registration.prefix.len()..];
    let class = if registration.prefix == TOKENS
        && crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::ReplicateLocalKeys)
    {
        KeyClass::Replicated
    } else {
        registration.class
    };
    let group = match registration.shape {
        Shape::Exact(group) if rest.is_empty() => KeyGroup::Core(group),
        Shape::Below(group) if !rest.is_empty() => KeyGroup::Core(group),
        Shape::MountEntry if !rest.is_empty() && !rest.contains('/') => {
            KeyGroup::Mount(rest.to_string())
        }
        Shape::MountData => match rest.split_once('/') {
            Some((uuid, _)) if !uuid.is_empty() => KeyGroup::Mount(uuid.to_string()),
            _ => return Err(unregistered()),
        },
        _ => return Err(unregistered()),
    };
    Ok((class, group))
}

/// The class of `key`, for code that has no use for the group. A key no registration
/// covers cannot be committed (see [`super::validate_batch`]); should one be met anyway
/// (a state written before its prefix was unregistered) it is `Local`, so it is never
/// shipped to another cluster.
pub fn key_class(key: &str) -> KeyClass {
    classify(key).map_or(KeyClass::Local, |(class, _)| class)
}

/// Where one table keeps its entries, one key per entry.
pub fn mount_table_prefix(kind: TableKind, local: bool) -> &'static str {
    match (kind, local) {
        (TableKind::Secrets, false) => MOUNTS,
        (TableKind::Secrets, true) => LOCAL_MOUNTS,
        (TableKind::Auth, false) => AUTH_MOUNTS,
        (TableKind::Auth, true) => LOCAL_AUTH_MOUNTS,
    }
}

/// The key of one mount-table entry: `core/mounts/<uuid>` and its local and auth kin.
pub fn mount_entry(kind: TableKind, local: bool, uuid: &str) -> String {
    format!("{}{uuid}", mount_table_prefix(kind, local))
}

/// The table whose entry `key` is, when it is one mount-table entry (and not a
/// mount's data, which shares the mount's group): what a mount-table cache follows.
pub fn mount_table_of(key: &str) -> Option<TableKind> {
    [TableKind::Secrets, TableKind::Auth]
        .into_iter()
        .find(|&kind| {
            [false, true].into_iter().any(|local| {
                key.strip_prefix(mount_table_prefix(kind, local))
                    .is_some_and(|uuid| !uuid.is_empty() && !uuid.contains('/'))
            })
        })
}

/// Where a mount's data lives: `logical/<uuid>/` and its local and auth kin, so the
/// class of every byte of a local mount is local and its group is the mount.
pub fn mount_data_prefix(kind: TableKind, local: bool, uuid: &str) -> String {
    format!("{}{uuid}/", mount_data_root(kind, local))
}

/// The prefix under which every mount of one kind and class keeps its data, each below
/// `<uuid>/` (see [`mount_data_prefix`]).
pub const fn mount_data_root(kind: TableKind, local: bool) -> &'static str {
    match (kind, local) {
        (TableKind::Secrets, false) => LOGICAL,
        (TableKind::Secrets, true) => LOCAL_LOGICAL,
        (TableKind::Auth, false) => AUTH_DATA,
        (TableKind::Auth, true) => LOCAL_AUTH_DATA,
    }
}

/// Where the audit table of one class keeps its devices, one key per device.
pub fn audit_table_prefix(local: bool) -> &'static str {
    if local {
        LOCAL_AUDIT_DEVICES
    } else {
        AUDIT_DEVICES
    }
}

/// The key of one version's entry in the version history.
pub fn version_history_entry(version: &str) -> String {
    format!("{VERSION_HISTORY_PREFIX}{version}")
}

/// The key of one audit device.
pub fn audit_entry(local: bool, uuid: &str) -> String {
    format!("{}{uuid}", audit_table_prefix(local))
}

#[cfg(test)]
mod literal_guard;

#[cfg(test)]
mod tests {
    use super::*;

    fn class_and_group(key: &str) -> (KeyClass, KeyGroup) {
        classify(key).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn registered_prefixes_are_disjoint() {
        for (index, outer) in REGISTRY.iter().enumerate() {
            for (other, inner) in REGISTRY.iter().enumerate() {
                assert!(
                    index == other || !outer.prefix.starts_with(inner.prefix),
                    "{:?} lies under {:?}",
                    outer.prefix,
                    inner.prefix
                );
            }
        }
    }

    #[test]
    fn every_registered_prefix_classifies_its_own_keys() {
        // One key built for each registration, through its shape, lands back on it.
        for registration in REGISTRY {
            let key = match registration.shape {
                Shape::Exact(_) => registration.prefix.to_string(),
                Shape::Below(_) | Shape::MountEntry => format!("{}x", registration.prefix),
                Shape::MountData => format!("{}u/x", registration.prefix),
            };
            let (class, _) = class_and_group(&key);
            assert_eq!(class, registration.class, "{key}");
        }
    }

    /// Every public constant and constructor of the key space, with a key it makes and
    /// the class and group that key must have.
    fn constructed_keys() -> Vec<(&'static str, String, KeyClass, KeyGroup)> {
        use KeyClass::{Ignored, Local, Replicated};
        let core = KeyGroup::Core;
        let mount = || KeyGroup::Mount("u1".to_string());
        let mut cases = vec![
            (
                "SEAL_CONFIG_KEY",
                SEAL_CONFIG_KEY.to_string(),
                Replicated,
                core(CoreGroup::Seal),
            ),
            (
                "ROOT_KEY_KEY",
                ROOT_KEY_KEY.to_string(),
                Replicated,
                core(CoreGroup::Seal),
            ),
            (
                "KEYRING_KEY",
                KEYRING_KEY.to_string(),
                Replicated,
                core(CoreGroup::Keyring),
            ),
            (
                "CLUSTER_INFO_KEY",
                CLUSTER_INFO_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "CLUSTER_CA_KEY",
                CLUSTER_CA_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "REPLICATION_STATE_KEY",
                REPLICATION_STATE_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "ACTIVATION_KEY_KEY",
                ACTIVATION_KEY_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "LAST_REMOTE_WAL_KEY",
                LAST_REMOTE_WAL_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "SNAPSHOT_RESTORE_KEY",
                SNAPSHOT_RESTORE_KEY.to_string(),
                Local,
                core(CoreGroup::Cluster),
            ),
            (
                "restore_staging_key",
                restore_staging_key("r1", 7),
                Ignored,
                core(CoreGroup::Cluster),
            ),
            (
                "restore_staging_prefix",
                format!("{}x", restore_staging_prefix("r1")),
                Ignored,
                core(CoreGroup::Cluster),
            ),
            (
                "version_history_entry",
                version_history_entry("1.2.3"),
                Local,
                core(CoreGroup::VersionHistory),
            ),
        ];
        for (local, class) in [(false, Replicated), (true, Local)] {
            cases.push((
                "audit_entry",
                audit_entry(local, "a1"),
                class,
                core(CoreGroup::AuditTable),
            ));
            cases.push((
                "audit_table_prefix",
                format!("{}a1", audit_table_prefix(local)),
                class,
                core(CoreGroup::AuditTable),
            ));
            for kind in [TableKind::Secrets, TableKind::Auth] {
                cases.push((
                    "mount_entry",
                    mount_entry(kind, local, "u1"),
                    class,
                    mount(),
                ));
                cases.push((
                    "mount_table_prefix",
                    format!("{}u1", mount_table_prefix(kind, local)),
                    class,
                    mount(),
                ));
                cases.push((
                    "mount_data_prefix",
                    format!("{}data/x", mount_data_prefix(kind, local, "u1")),
                    class,
                    mount(),
                ));
            }
        }
        for (store, class, group) in [
            (Store::Policies, Replicated, CoreGroup::Policies),
            (Store::TokenRoles, Replicated, CoreGroup::TokenRoles),
            (Store::Tokens, Local, CoreGroup::Tokens),
            (Store::Leases, Local, CoreGroup::Leases),
            (Store::Wrapping, Local, CoreGroup::Wrapping),
            (Store::Identity, Replicated, CoreGroup::Identity),
        ] {
            cases.push((
                "Store::prefix",
                format!("{}x", store.prefix()),
                class,
                core(group),
            ));
        }
        cases
    }

    #[test]
    fn every_constructor_makes_keys_of_its_class_and_group_and_reaches_every_registration() {
        let mut reached = std::collections::BTreeSet::new();
        for (constructor, key, class, group) in constructed_keys() {
            assert_eq!(
                class_and_group(&key),
                (class, group),
                "{constructor} made {key:?}"
            );
            let registration = REGISTRY
                .iter()
                .position(|registration| key.starts_with(registration.prefix))
                .unwrap_or_else(|| panic!("{key:?} matches no registration"));
            reached.insert(registration);
        }
        // A registration no constructor reaches is a prefix code cannot build keys
        // under, except through a literal (which `literal_guard` refuses).
        for (index, registration) in REGISTRY.iter().enumerate() {
            assert!(
                reached.contains(&index),
                "no constructor makes keys under {:?}",
                registration.prefix
            );
        }
    }

    #[test]
    fn core_keys_have_their_class_and_group() {
        let cases = [
            (SEAL_CONFIG_KEY, KeyClass::Replicated, CoreGroup::Seal),
            (ROOT_KEY_KEY, KeyClass::Replicated, CoreGroup::Seal),
            (KEYRING_KEY, KeyClass::Replicated, CoreGroup::Keyring),
            (CLUSTER_INFO_KEY, KeyClass::Local, CoreGroup::Cluster),
            (
                "core/versions/0.1.0",
                KeyClass::Local,
                CoreGroup::VersionHistory,
            ),
            ("sys/token/id/abc", KeyClass::Local, CoreGroup::Tokens),
            ("sys/token/salt", KeyClass::Local, CoreGroup::Tokens),
            (
                "sys/expire/id/auth/userpass/login/x",
                KeyClass::Local,
                CoreGroup::Leases,
            ),
            ("sys/wrapping/jwtkey", KeyClass::Local, CoreGroup::Wrapping),
            (
                "sys/policy/admin",
                KeyClass::Replicated,
                CoreGroup::Policies,
            ),
            (
                "sys/token-roles/deployer",
                KeyClass::Replicated,
                CoreGroup::TokenRoles,
            ),
            (
                "identity/entity/id/e1",
                KeyClass::Replicated,
                CoreGroup::Identity,
            ),
        ];
        for (key, class, group) in cases {
            assert_eq!(
                class_and_group(key),
                (class, KeyGroup::Core(group)),
                "{key}"
            );
        }
        let audit = audit_entry(false, "a1");
        let local_audit = audit_entry(true, "a2");
        assert_eq!(
            class_and_group(&audit),
            (KeyClass::Replicated, KeyGroup::Core(CoreGroup::AuditTable))
        );
        assert_eq!(
            class_and_group(&local_audit),
            (KeyClass::Local, KeyGroup::Core(CoreGroup::AuditTable))
        );
    }

    #[test]
    fn a_mounts_entry_and_data_share_its_uuid_as_group_and_local_mounts_stay_local() {
        let mount = || KeyGroup::Mount("9f1c".to_string());
        for kind in [TableKind::Secrets, TableKind::Auth] {
            for (local, class) in [(false, KeyClass::Replicated), (true, KeyClass::Local)] {
                let entry = mount_entry(kind, local, "9f1c");
                let data = format!("{}data/app", mount_data_prefix(kind, local, "9f1c"));
                assert_eq!(class_and_group(&entry), (class, mount()), "{entry}");
                assert_eq!(class_and_group(&data), (class, mount()), "{data}");
            }
        }
        assert_eq!(
            mount_data_prefix(TableKind::Secrets, true, "c"),
            "local-logical/c/"
        );
        assert_eq!(mount_entry(TableKind::Auth, false, "u"), "core/auth/u");
    }

    #[test]
    fn only_a_mount_table_entry_names_its_table() {
        for kind in [TableKind::Secrets, TableKind::Auth] {
            for local in [false, true] {
                assert_eq!(mount_table_of(&mount_entry(kind, local, "u1")), Some(kind));
                let data = format!("{}x", mount_data_prefix(kind, local, "u1"));
                assert_eq!(mount_table_of(&data), None, "{data}");
            }
        }
        assert_eq!(mount_table_of("core/mounts/"), None);
        assert_eq!(mount_table_of(POLICIES), None);
    }

    #[test]
    fn keys_outside_the_registry_or_its_shapes_are_refused() {
        for key in [
            "secret/00001",
            "core/mounts",
            "core/mounts/",
            "core/mounts/a/b",
            "core/keyring-old",
            "core/raft/config",
            "logical/no-slash-after-uuid",
            "logical//data",
            "sys/token/",
            "sys/other",
            "",
        ] {
            assert_eq!(
                classify(key),
                Err(UnregisteredKey(key.to_string())),
                "{key:?}"
            );
        }
    }

    #[test]
    fn the_class_only_function_never_calls_an_unregistered_key_replicated() {
        assert_eq!(key_class("logical/u/data/x"), KeyClass::Replicated);
        assert_eq!(key_class("unknown/prefix"), KeyClass::Local);
    }

    #[test]
    fn stores_are_registered_below_their_prefix() {
        for (store, group) in [
            (Store::Policies, CoreGroup::Policies),
            (Store::TokenRoles, CoreGroup::TokenRoles),
            (Store::Tokens, CoreGroup::Tokens),
            (Store::Leases, CoreGroup::Leases),
            (Store::Wrapping, CoreGroup::Wrapping),
            (Store::Identity, CoreGroup::Identity),
        ] {
            let key = format!("{}record", store.prefix());
            assert_eq!(class_and_group(&key).1, KeyGroup::Core(group), "{key}");
        }
    }
}
