//! `arca-repl/1`: what a performance secondary asks its primary and what it hears back,
//! over the cluster channel's request/response calls.
//!
//! The secondary pulls: each [`ReplBody::Pull`] names the last WAL index it applied, and
//! the primary answers with the entries after it (waiting briefly when there are none,
//! so a quiet stream costs one call per wait and a write reaches the secondary one round
//! trip after it commits), or with `NeedSync` when that position has left its buffer.
//! Because every request names its own position, a reconnect, a leader change on
//! either side or a lost answer resumes exactly where the secondary's Raft says it is,
//! with no session state to rebuild. A sync reads pages of keys from a view of the
//! primary pinned at one WAL index, then the stream continues after that index.
//!
//! Every request is signed with the secondary's key (HMAC-SHA256 over the set id, the
//! secondary id and the body), so only a secondary holding a live activation's key is
//! served, and a revoked one is refused by its id.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::epoch::Epoch;
use super::merkle::{Hash, MerkleRequest, MerkleResponse};
use crate::channel::frame::encode_body;
use crate::storage::KeyGroup;

/// The most WAL entries one pull answers with.
pub const PULL_ENTRIES_MAX: u32 = 2048;
/// The most keys one fetch asks for.
pub const SYNC_PAGE_ENTRIES_MAX: u32 = 1024;
/// The most Merkle requests one call carries (the walker keeps fewer in flight).
pub const MERKLE_REQUESTS_MAX: usize = 2 * super::merkle::REQUESTS_IN_FLIGHT_MAX;
/// The most bytes of keys and values one answer carries (under the channel's frame
/// limit, with room for the envelope).
pub const ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// The longest a pull waits for a new entry before answering with none.
pub const PULL_WAIT_MAX_MS: u32 = 5_000;

/// A signed request from a secondary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplRequest {
    pub set_id: String,
    pub secondary_id: String,
    pub body: ReplBody,
    /// HMAC-SHA256 of [`signed_bytes`] under the secondary's key.
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplBody {
    /// The entries after WAL index `after`; `filter_generation` is the filter the
    /// secondary's data reflects.
    Pull {
        after: u64,
        max_entries: u32,
        wait_ms: u32,
        filter_generation: u64,
        /// Where the secondary's active node answers (shown in the primary's status).
        api_addr: String,
        cluster_addr: String,
        /// The secondary's clock when it sent the pull: the primary's status shows the
        /// skew between the two clocks (off by the one-way transit time, milliseconds).
        now_unix_ms: i64,
        /// The highest epoch the secondary has seen: a primary of an older one learns
        /// from it that it was superseded.
        epoch: Epoch,
    },
    /// Pin a view of the primary for a sync (`epoch` as in a pull).
    SyncBegin { epoch: Epoch },
    /// Merkle summaries of the pinned view (at most [`MERKLE_REQUESTS_MAX`]).
    Merkle {
        sync_id: u64,
        requests: Vec<MerkleRequest>,
    },
    /// Values of keys in the pinned view (at most [`SYNC_PAGE_ENTRIES_MAX`]).
    FetchKeys { sync_id: u64, keys: Vec<String> },
    /// A request that writes replicated state, made on the secondary by `caller` (the
    /// token entry the secondary authenticated, JSON; `None` for unauthenticated paths).
    Forward {
        request: crate::channel::ForwardRequest,
        caller: Option<Vec<u8>>,
    },
    /// A first login on the secondary: create (or find) the alias's entity on the
    /// primary, which alone writes identity.
    PersistAlias {
        alias: crate::identity::OwnedLoginAlias,
        now_unix: i64,
    },
    /// From a cluster this secondary's primary once followed, now promoted: it opened
    /// `epoch` holding this primary's WAL up to `from_wal`. Signed with the id and key
    /// it had as a secondary here, so only a genuine former secondary can send it.
    Supersede { epoch: Epoch, from_wal: u64 },
}

/// Fetched values: each key with its ciphertext, or `None` when the view lacks it.
pub type FetchedKeys = Vec<(String, Option<Vec<u8>>)>;

/// One replicated change as it crosses: the key's new ciphertext, or `None` for a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub wal_index: u64,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// What the primary tells about itself in every stream answer (the heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrimaryInfo {
    pub now_unix_ms: i64,
    pub last_wal: u64,
    pub api_addr: String,
    /// Every node's cluster address (host:port).
    pub cluster_addrs: Vec<String>,
    pub filter_generation: u64,
    /// The epoch this primary was opened in.
    pub epoch: Epoch,
    /// The primary was demoted: its WAL is final at `last_wal`.
    pub demoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplResponse {
    /// The allowed entries in `(after, to]`; indexes the filter dropped are covered by
    /// `to` all the same, so the secondary's position moves past them.
    Wals {
        entries: Vec<WireEntry>,
        to: u64,
        primary: PrimaryInfo,
    },
    /// The position asked for is not in the buffer (or the filter changed): sync.
    NeedSync {
        primary: PrimaryInfo,
    },
    /// A view pinned at `wal_index`: the roots of the groups this secondary may hold,
    /// and the root its view must have once synced.
    SyncStarted {
        sync_id: u64,
        wal_index: u64,
        group_roots: Vec<(KeyGroup, Hash)>,
        view_root: Hash,
        primary: PrimaryInfo,
    },
    MerkleAnswers {
        responses: Vec<MerkleResponse>,
    },
    /// Values of the keys asked for, in order, as many as fit (`None`: no such key in
    /// the pinned view); the rest are asked again.
    Keys {
        entries: FetchedKeys,
    },
    /// This node is not the primary's active node; try the one named, if known.
    NotActive {
        leader_cluster_addr: Option<String>,
    },
    /// The primary's answer to a forwarded request, and its WAL index once it was
    /// served: the secondary waits for its stream to reach it (read-your-writes).
    Forwarded {
        response: crate::channel::ForwardResponse,
        wal_index: u64,
    },
    /// The entity of a persisted alias (its JSON record).
    Entity {
        entity_json: Vec<u8>,
    },
    /// The request was served and failed (a persisted alias the primary refused).
    Failed {
        reason: String,
    },
    /// The answer to [`ReplBody::Supersede`]: this cluster stands down (or already had),
    /// and holds this many WAL entries its successor does not (when it was a primary).
    /// `newest` is the newest epoch it has heard of: when that is newer than the
    /// notifier's own (another cluster was promoted too), the notifier stands down.
    SupersedeNoted {
        divergent_wals: Option<u64>,
        newest: Option<Epoch>,
    },
    /// Not served, and retrying will not help (revoked, unknown, not a primary).
    Refused {
        reason: String,
    },
}

/// The bytes a request's MAC covers.
pub fn signed_bytes(set_id: &str, secondary_id: &str, body: &ReplBody) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in [set_id.as_bytes(), secondary_id.as_bytes()] {
        bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(&encode_body(body).unwrap_or_default());
    bytes
}

fn mac_of(key: &[u8], bytes: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(bytes);
    mac
}

impl ReplRequest {
    pub fn signed(set_id: &str, secondary_id: &str, key: &[u8], body: ReplBody) -> Self {
        let mac = mac_of(key, &signed_bytes(set_id, secondary_id, &body))
            .finalize()
            .into_bytes()
            .to_vec();
        Self {
            set_id: set_id.to_string(),
            secondary_id: secondary_id.to_string(),
            body,
            mac,
        }
    }

    /// Whether the MAC is right for `key` (compared in constant time).
    pub fn verify(&self, key: &[u8]) -> bool {
        mac_of(
            key,
            &signed_bytes(&self.set_id, &self.secondary_id, &self.body),
        )
        .verify_slice(&self.mac)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::frame::decode_body;

    #[test]
    fn a_signed_request_verifies_only_with_its_key_and_body() {
        let body = ReplBody::Pull {
            after: 3,
            max_entries: 10,
            wait_ms: 0,
            filter_generation: 0,
            api_addr: String::new(),
            cluster_addr: String::new(),
            now_unix_ms: 0,
            epoch: Epoch::first(),
        };
        let request = ReplRequest::signed("set", "s1", b"key", body);
        let decoded: ReplRequest = decode_body(&encode_body(&request).unwrap()).unwrap();
        assert!(decoded.verify(b"key"));
        assert!(!decoded.verify(b"other key"));
        let mut moved = decoded.clone();
        moved.body = ReplBody::Pull {
            after: 0,
            max_entries: 10,
            wait_ms: 0,
            filter_generation: 0,
            api_addr: String::new(),
            cluster_addr: String::new(),
            now_unix_ms: 0,
            epoch: Epoch::first(),
        };
        assert!(!moved.verify(b"key"), "a changed position breaks the MAC");
        let mut renamed = decoded;
        renamed.secondary_id = "s2".into();
        assert!(!renamed.verify(b"key"), "another id breaks the MAC");
    }
}
