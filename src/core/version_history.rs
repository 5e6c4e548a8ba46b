//! The versions of Arca this cluster has run (`LIST sys/version-history`), as Vault
//! keeps them: one entry per version, written by the active node the first time it
//! serves with that version, and never rewritten.
//!
//! Entries are local keys (`core/versions/<version>`): a performance secondary runs its
//! own binaries. A secondary's activation wipes its storage; the replication manager
//! reads the entries before the wipe and writes them back after ([`read_all`],
//! [`write_all`]), as it does for the cluster's name and id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::barrier::Barrier;
use crate::logical::LogicalError;
use crate::storage::key_space::{VERSION_HISTORY_PREFIX, version_history_entry};

/// The most entries listed or carried over an activation. A cluster upgraded once a
/// week for twenty years stays below it; more are read oldest first and cut.
pub const VERSION_HISTORY_ENTRIES_MAX: usize = 1024;

/// One installed version, with Vault's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: String,
    /// RFC 3339, UTC, whole seconds.
    pub timestamp_installed: String,
    pub build_date: String,
    pub previous_version: Option<String>,
}

/// Every stored entry, oldest installation first (ties by version, so the order never
/// depends on how storage lists keys).
pub fn read_all(barrier: &Barrier) -> Result<Vec<VersionEntry>, LogicalError> {
    let mut entries = Vec::new();
    for name in barrier.list(VERSION_HISTORY_PREFIX)? {
        if entries.len() == VERSION_HISTORY_ENTRIES_MAX {
            break;
        }
        let Some(bytes) = barrier.get(&version_history_entry(&name))? else {
            continue;
        };
        let entry: VersionEntry = serde_json::from_slice(&bytes).map_err(|error| {
            LogicalError::Internal(format!("version history entry {name:?}: {error}"))
        })?;
        entries.push(entry);
    }
    entries.sort_by(|left, right| {
        (&left.timestamp_installed, &left.version)
            .cmp(&(&right.timestamp_installed, &right.version))
    });
    Ok(entries)
}

/// Write `entries` back (after an activation wiped them).
pub async fn write_all(barrier: &Barrier, entries: &[VersionEntry]) -> Result<(), LogicalError> {
    for entry in entries.iter().take(VERSION_HISTORY_ENTRIES_MAX) {
        let bytes = serde_json::to_vec(entry).expect("version entries serialize");
        barrier
            .put(&version_history_entry(&entry.version), bytes)
            .await?;
    }
    Ok(())
}

/// Record `version` as installed now, unless it already is. Returns whether it wrote.
pub async fn record(
    barrier: &Barrier,
    version: &str,
    build_date: &str,
    now_unix_seconds: i64,
) -> Result<bool, LogicalError> {
    if barrier.get(&version_history_entry(version))?.is_some() {
        return Ok(false);
    }
    let previous_version = read_all(barrier)?.pop().map(|entry| entry.version);
    let entry = VersionEntry {
        version: version.to_string(),
        timestamp_installed: crate::util::rfc3339_seconds(now_unix_seconds),
        build_date: build_date.to_string(),
        previous_version,
    };
    write_all(barrier, &[entry]).await?;
    Ok(true)
}

/// The `LIST sys/version-history` data: `keys` in installation order and `key_info`.
pub fn list_data(entries: &[VersionEntry]) -> Map<String, Value> {
    let mut key_info = Map::new();
    for entry in entries {
        key_info.insert(
            entry.version.clone(),
            json!({
                "timestamp_installed": entry.timestamp_installed,
                "build_date": entry.build_date,
                "previous_version": entry.previous_version,
            }),
        );
    }
    let keys: Vec<&str> = entries.iter().map(|entry| entry.version.as_str()).collect();
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    data.insert("key_info".into(), Value::Object(key_info));
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    fn unsealed_barrier() -> Barrier {
        let rng = crate::env::SharedRng::from_u64(7);
        let barrier = Barrier::new(std::sync::Arc::new(MemoryBackend::new()), rng.clone());
        barrier.unseal_with(crate::barrier::Keyring::generate(&rng, 0));
        barrier
    }

    #[tokio::test]
    async fn each_version_is_recorded_once_with_its_predecessor() {
        let barrier = unsealed_barrier();
        // First unseal with 0.1.0: recorded, with no predecessor.
        assert!(
            record(&barrier, "0.1.0", "2026-01-01T00:00:00Z", 100)
                .await
                .unwrap()
        );
        // The same version again (a restart, a new leader): nothing changes.
        assert!(
            !record(&barrier, "0.1.0", "2026-01-01T00:00:00Z", 200)
                .await
                .unwrap()
        );
        // An upgrade names what it replaced.
        assert!(
            record(&barrier, "0.2.0", "2026-02-01T00:00:00Z", 300)
                .await
                .unwrap()
        );
        let entries = read_all(&barrier).unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|entry| (entry.version.as_str(), entry.previous_version.as_deref()))
                .collect::<Vec<_>>(),
            vec![("0.1.0", None), ("0.2.0", Some("0.1.0"))]
        );
        assert_eq!(entries[0].timestamp_installed, "1970-01-01T00:01:40Z");
        let data = list_data(&entries);
        assert_eq!(data["keys"], json!(["0.1.0", "0.2.0"]));
        assert_eq!(
            data["key_info"]["0.2.0"],
            json!({
                "timestamp_installed": "1970-01-01T00:05:00Z",
                "build_date": "2026-02-01T00:00:00Z",
                "previous_version": "0.1.0",
            })
        );
    }
}
