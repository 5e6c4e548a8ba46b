//! The secondary's side of a Merkle sync: a walker that compares its own index with the
//! summaries a primary serves and ends with the keys to fetch and to delete.
//!
//! Events in: the primary's group roots for this secondary's view ([`MerkleDiff::new`]),
//! then one [`MerkleResponse`] per request ([`MerkleDiff::on_response`]). Out: the next
//! [`MerkleRequest`] to send ([`MerkleDiff::next_request`]) and, once every request is
//! answered, a [`SyncPlan`]. No IO, no clock: a shell moves the requests and answers.
//!
//! The walk descends only where hashes differ: a group whose root matches is skipped, a
//! page or bucket whose hash matches too. A level the primary lacks is deleted whole
//! (the purge after a filter change), a level this node lacks is fetched whole (the
//! backfill after deny → allow). The walk is depth first, so the work queued is at most
//! the groups plus 256 children per answer in flight.
//!
//! Invariants: every answer is checked before it changes anything: its lists are
//! bounded and strictly ordered, list no empty subtree, answer a request in flight, and
//! hash to the value its parent announced, and every key lies in the bucket and group it
//! is listed under. A refused answer leaves the walker as it was (the request stays in
//! flight), so the caller decides whether to retry or abandon the sync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{
    EMPTY_HASH, Hash, MerkleIndex, bucket_hash, bucket_of, group_hash, page_hash, replicated_group,
};
use crate::storage::{KEY_BYTES_MAX, KeyGroup};

/// The most groups a view may hold: one per mount plus the core groups. Vault sets no
/// hard limit on mounts; thousands is already far beyond any deployment we know of.
pub const GROUPS_MAX: usize = 16_384;
/// The most leaves one bucket may list. A bucket holds 1/65536 of a group's keys, so a
/// group of 100 million keys averages about 1,500 per bucket; a bucket above this limit
/// (key names chosen to collide) stops the sync with an error instead of taking memory.
pub const LEAVES_PER_BUCKET_MAX: usize = 8_192;
/// Pages per group and buckets per page: one per byte value.
pub const CHILDREN_MAX: usize = 256;
/// The most requests sent and not yet answered: enough to hide a round trip behind
/// others, few enough that the queued work stays small.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 32;

/// What a secondary asks the primary for.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum MerkleRequest {
    /// The non-empty pages of a group.
    Pages { group: KeyGroup },
    /// The non-empty buckets of one page of a group.
    Buckets { group: KeyGroup, page: u8 },
    /// The keys and leaves of one bucket of a group.
    Leaves { group: KeyGroup, bucket: u16 },
}

/// The primary's answer to a [`MerkleRequest`], naming the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MerkleResponse {
    Pages {
        group: KeyGroup,
        pages: Vec<(u8, Hash)>,
    },
    Buckets {
        group: KeyGroup,
        page: u8,
        buckets: Vec<(u8, Hash)>,
    },
    Leaves {
        group: KeyGroup,
        bucket: u16,
        leaves: Vec<(Arc<str>, Hash)>,
    },
}

impl MerkleRequest {
    /// The group the request is about.
    pub fn group(&self) -> &KeyGroup {
        match self {
            MerkleRequest::Pages { group }
            | MerkleRequest::Buckets { group, .. }
            | MerkleRequest::Leaves { group, .. } => group,
        }
    }
}

impl MerkleResponse {
    /// The request this answers.
    pub fn request(&self) -> MerkleRequest {
        match self {
            MerkleResponse::Pages { group, .. } => MerkleRequest::Pages {
                group: group.clone(),
            },
            MerkleResponse::Buckets { group, page, .. } => MerkleRequest::Buckets {
                group: group.clone(),
                page: *page,
            },
            MerkleResponse::Leaves { group, bucket, .. } => MerkleRequest::Leaves {
                group: group.clone(),
                bucket: *bucket,
            },
        }
    }
}

impl MerkleIndex {
    /// This index's answer to `request`: what a primary serves from the snapshot of its
    /// state a sync reads.
    pub fn answer(&self, request: &MerkleRequest) -> MerkleResponse {
        match request {
            MerkleRequest::Pages { group } => MerkleResponse::Pages {
                group: group.clone(),
                pages: self.page_hashes(group),
            },
            MerkleRequest::Buckets { group, page } => MerkleResponse::Buckets {
                group: group.clone(),
                page: *page,
                buckets: self.bucket_hashes(group, *page),
            },
            MerkleRequest::Leaves { group, bucket } => MerkleResponse::Leaves {
                group: group.clone(),
                bucket: *bucket,
                leaves: self.bucket_leaves(group, *bucket),
            },
        }
    }
}

/// Which list of a summary an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryList {
    GroupRoots,
    Pages,
    Buckets,
    Leaves,
}

impl std::fmt::Display for SummaryList {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            SummaryList::GroupRoots => "the group roots",
            SummaryList::Pages => "the pages of a group",
            SummaryList::Buckets => "the buckets of a page",
            SummaryList::Leaves => "the leaves of a bucket",
        })
    }
}

/// A summary the walker refuses: the remote is broken or not the snapshot it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleDiffError {
    #[error("{list} holds {count} entries, over the limit of {max}")]
    TooLong {
        list: SummaryList,
        count: usize,
        max: usize,
    },
    #[error("{list} is not in strictly increasing order at entry {position}")]
    Unordered { list: SummaryList, position: usize },
    #[error("{list} lists an empty subtree at entry {position}")]
    EmptySubtree { list: SummaryList, position: usize },
    #[error("{list} does not hash to what the level above announced")]
    HashMismatch { list: SummaryList },
    #[error("no request in flight is answered by a response to {request:?}")]
    Unexpected { request: MerkleRequest },
    #[error("key {key:?} does not belong in bucket {bucket:#06x} of group {group}")]
    Misplaced {
        key: String,
        group: KeyGroup,
        bucket: u16,
    },
    #[error("a key of {bytes} bytes exceeds the limit of {KEY_BYTES_MAX}")]
    KeyTooLong { bytes: usize },
}

/// What a sync must do to make the secondary's key space equal the primary's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Keys the primary holds with a leaf this node lacks or holds differently, sorted.
    pub fetch: Vec<Arc<str>>,
    /// Keys this node holds and the primary's view does not, sorted.
    pub delete: Vec<Arc<str>>,
}

/// The walker. Holds an O(1) clone of the local index, so the plan is against the
/// state it started from even if the caller keeps applying meanwhile.
#[derive(Debug, Clone)]
pub struct MerkleDiff {
    local: MerkleIndex,
    /// Requests not yet sent, each with the remote hash its answer must match. A stack:
    /// the next request is the last, so the walk is depth first.
    pending: Vec<(MerkleRequest, Hash)>,
    /// Requests sent and not yet answered, with the hash each answer must match.
    in_flight: BTreeMap<MerkleRequest, Hash>,
    fetch: Vec<Arc<str>>,
    delete: Vec<Arc<str>>,
}

/// Checks a summary list: bounded, strictly increasing by `order`, no empty subtree.
fn check_list<T, K: Ord>(
    list: SummaryList,
    entries: &[T],
    max: usize,
    order: impl Fn(&T) -> K,
    hash: impl Fn(&T) -> &Hash,
) -> Result<(), MerkleDiffError> {
    if entries.len() > max {
        return Err(MerkleDiffError::TooLong {
            list,
            count: entries.len(),
            max,
        });
    }
    let mut previous: Option<K> = None;
    for (position, entry) in entries.iter().enumerate() {
        let key = order(entry);
        if previous.as_ref().is_some_and(|previous| *previous >= key) {
            return Err(MerkleDiffError::Unordered { list, position });
        }
        if *hash(entry) == EMPTY_HASH {
            return Err(MerkleDiffError::EmptySubtree { list, position });
        }
        previous = Some(key);
    }
    Ok(())
}

impl MerkleDiff {
    /// Start a walk of `local` against the remote's group roots for this node's view
    /// (as [`MerkleIndex::group_roots`] lists them: in group id order). Local groups the
    /// remote does not list are deleted whole.
    pub fn new(
        local: &MerkleIndex,
        remote_group_roots: Vec<(KeyGroup, Hash)>,
    ) -> Result<Self, MerkleDiffError> {
        check_list(
            SummaryList::GroupRoots,
            &remote_group_roots,
            GROUPS_MAX,
            |(group, _)| group.to_string(),
            |(_, root)| root,
        )?;
        let mut walk = Self {
            local: local.clone(),
            pending: Vec::new(),
            in_flight: BTreeMap::new(),
            fetch: Vec::new(),
            delete: Vec::new(),
        };
        let remote: BTreeSet<&KeyGroup> = remote_group_roots.iter().map(|entry| &entry.0).collect();
        for group in walk.local.groups() {
            if !remote.contains(group) {
                walk.delete.extend(walk.local.group_keys(group).cloned());
            }
        }
        for (group, root) in remote_group_roots.into_iter().rev() {
            if walk.local.group_root(&group) != Some(root) {
                walk.pending.push((MerkleRequest::Pages { group }, root));
            }
        }
        Ok(walk)
    }

    /// The next request to send, or `None` when there is none now: the walk is done, or
    /// [`REQUESTS_IN_FLIGHT_MAX`] requests await their answers.
    pub fn next_request(&mut self) -> Option<MerkleRequest> {
        if self.in_flight.len() >= REQUESTS_IN_FLIGHT_MAX {
            return None;
        }
        let (request, expected) = self.pending.pop()?;
        let previous = self.in_flight.insert(request.clone(), expected);
        assert!(
            previous.is_none(),
            "each node of the tree is asked for once"
        );
        Some(request)
    }

    /// Take the remote's answer to a request in flight. Refused answers change nothing.
    pub fn on_response(&mut self, response: MerkleResponse) -> Result<(), MerkleDiffError> {
        let request = response.request();
        let Some(&expected) = self.in_flight.get(&request) else {
            return Err(MerkleDiffError::Unexpected { request });
        };
        match response {
            MerkleResponse::Pages { group, pages } => {
                let list = SummaryList::Pages;
                check_list(
                    list,
                    &pages,
                    CHILDREN_MAX,
                    |entry| entry.0,
                    |entry| &entry.1,
                )?;
                if group_hash(pages.iter().map(|(byte, hash)| (*byte, *hash))) != expected {
                    return Err(MerkleDiffError::HashMismatch { list });
                }
                let local: BTreeMap<u8, Hash> =
                    self.local.page_hashes(&group).into_iter().collect();
                let remote: BTreeSet<u8> = pages.iter().map(|entry| entry.0).collect();
                for page in local.keys().filter(|page| !remote.contains(page)) {
                    self.delete
                        .extend(self.local.page_keys(&group, *page).cloned());
                }
                for (page, hash) in pages.into_iter().rev() {
                    if local.get(&page) != Some(&hash) {
                        let group = group.clone();
                        self.pending
                            .push((MerkleRequest::Buckets { group, page }, hash));
                    }
                }
            }
            MerkleResponse::Buckets {
                group,
                page,
                buckets,
            } => {
                let list = SummaryList::Buckets;
                check_list(
                    list,
                    &buckets,
                    CHILDREN_MAX,
                    |entry| entry.0,
                    |entry| &entry.1,
                )?;
                if page_hash(buckets.iter().map(|(byte, hash)| (*byte, *hash))) != expected {
                    return Err(MerkleDiffError::HashMismatch { list });
                }
                let local: BTreeMap<u8, Hash> =
                    self.local.bucket_hashes(&group, page).into_iter().collect();
                let remote: BTreeSet<u8> = buckets.iter().map(|entry| entry.0).collect();
                for low in local.keys().filter(|low| !remote.contains(low)) {
                    let bucket = u16::from_be_bytes([page, *low]);
                    let keys = self.local.bucket_leaves(&group, bucket);
                    self.delete.extend(keys.into_iter().map(|(key, _)| key));
                }
                for (low, hash) in buckets.into_iter().rev() {
                    if local.get(&low) != Some(&hash) {
                        let group = group.clone();
                        let bucket = u16::from_be_bytes([page, low]);
                        self.pending
                            .push((MerkleRequest::Leaves { group, bucket }, hash));
                    }
                }
            }
            MerkleResponse::Leaves {
                group,
                bucket,
                leaves,
            } => {
                let list = SummaryList::Leaves;
                check_list(
                    list,
                    &leaves,
                    LEAVES_PER_BUCKET_MAX,
                    |entry| entry.0.clone(),
                    |entry| &entry.1,
                )?;
                for (key, _) in &leaves {
                    if key.len() > KEY_BYTES_MAX {
                        return Err(MerkleDiffError::KeyTooLong { bytes: key.len() });
                    }
                    if bucket_of(key) != bucket || replicated_group(key).as_ref() != Some(&group) {
                        return Err(MerkleDiffError::Misplaced {
                            key: key.to_string(),
                            group,
                            bucket,
                        });
                    }
                }
                if bucket_hash(leaves.iter().map(|(key, leaf)| (&**key, leaf))) != expected {
                    return Err(MerkleDiffError::HashMismatch { list });
                }
                let local: BTreeMap<Arc<str>, Hash> = self
                    .local
                    .bucket_leaves(&group, bucket)
                    .into_iter()
                    .collect();
                let remote: BTreeSet<&Arc<str>> = leaves.iter().map(|entry| &entry.0).collect();
                self.delete
                    .extend(local.keys().filter(|key| !remote.contains(key)).cloned());
                for (key, leaf) in &leaves {
                    if local.get(key) != Some(leaf) {
                        self.fetch.push(key.clone());
                    }
                }
            }
        }
        self.in_flight.remove(&request);
        Ok(())
    }

    /// Every request has been sent and answered.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// The plan, once the walk is done; `None` before.
    pub fn into_plan(self) -> Option<SyncPlan> {
        if !self.is_done() {
            return None;
        }
        let mut plan = SyncPlan {
            fetch: self.fetch,
            delete: self.delete,
        };
        plan.fetch.sort();
        plan.delete.sort();
        Some(plan)
    }
}
