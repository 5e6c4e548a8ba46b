//! The Merkle index over the replicated key space: what lets a secondary find, with a
//! few round trips, which keys differ from the primary's view, and a status report show
//! one hash per view (`merkle_root`).
//!
//! Owns: per [`KeyGroup`], a fixed-depth sparse 256-ary tree. A key's bucket is the first
//! two bytes of `SHA-256(key)` (its page is the first byte); a bucket holds the leaves of
//! its keys, `leaf = H(LEAF ‖ key_len_le_u32 ‖ key ‖ SHA-256(ciphertext))`. A bucket hashes
//! its (length-prefixed key, leaf) pairs in key order, a page its non-empty buckets as
//! (byte, hash) pairs in byte order, and a group root its non-empty pages likewise. The
//! root of a view over some groups is `H(VIEW ‖ (id_len_le_u32 ‖ id ‖ group root) …)` over
//! the allowed groups in order of their id (the group's `Display` string), so every
//! secondary's expected root costs one hash over the group roots, never a descent. Each
//! level starts with its own tag byte, so a leaf can never be read as a bucket, page or
//! view. An empty subtree, and a view with no group, hash to [`EMPTY_HASH`] (all zeros).
//!
//! Beyond `REPLICATION.md` §4: the bucket hash covers the keys as well as the leaves, so
//! every answer a secondary receives can be checked against the hash its parent level
//! announced (the secondary has no values to recompute a leaf from).
//!
//! Events in: [`MerkleIndex::apply`] for each change to a replicated key (the apply core
//! calls it while the cluster stores a replication state), or
//! [`MerkleIndex::from_entries`] when that state is first stored and after a snapshot
//! install. Out: roots, and
//! the summaries a primary serves to a secondary's [`MerkleDiff`] walker.
//!
//! Invariants: empty buckets, pages and groups are removed, so the index of a key space
//! is one value whatever the order of the changes that built it (incremental apply equals
//! a rebuild); an update rehashes one bucket at once, and its page and group root when next asked for. Every level is
//! a persistent map, so cloning an index is O(1): a clone is the point-in-time view a
//! primary serves a sync from while it keeps applying.

mod diff;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;
use sha2::{Digest, Sha256};

use crate::storage::{KeyClass, KeyGroup, classify};

pub use diff::{
    CHILDREN_MAX, GROUPS_MAX, LEAVES_PER_BUCKET_MAX, MerkleDiff, MerkleDiffError, MerkleRequest,
    MerkleResponse, REQUESTS_IN_FLIGHT_MAX, SummaryList, SyncPlan,
};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash of an empty subtree, and the root of an empty view: no non-empty level
/// hashes to it (that would be a SHA-256 preimage of zero).
pub const EMPTY_HASH: Hash = [0; 32];

/// The tag byte that starts each level's hash input, so levels never collide.
const TAG_LEAF: u8 = 1;
const TAG_BUCKET: u8 = 2;
const TAG_PAGE: u8 = 3;
const TAG_GROUP: u8 = 4;
const TAG_VIEW: u8 = 5;

/// The group of `key` when the key crosses to performance secondaries, else `None`
/// (local, ignored, or under no registered prefix).
pub fn replicated_group(key: &str) -> Option<KeyGroup> {
    match classify(key) {
        Ok((KeyClass::Replicated, group)) => Some(group),
        _ => None,
    }
}

/// The bucket of `key`: the first two bytes of `SHA-256(key)`, big-endian, so its high
/// byte is the page.
fn bucket_of(key: &str) -> u16 {
    let digest = Sha256::digest(key.as_bytes());
    u16::from_be_bytes([digest[0], digest[1]])
}

/// The length prefix of a key or group id in a hash input.
fn key_length(key: &str) -> u32 {
    u32::try_from(key.len()).expect("keys and group ids are shorter than 4 GiB")
}

/// The leaf of one key and its ciphertext.
fn leaf_hash(key: &str, value: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([TAG_LEAF]);
    hasher.update(key_length(key).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(Sha256::digest(value));
    hasher.finalize().into()
}

/// The hash of a bucket: its keys and their leaves, in key order. The keys are hashed
/// again (a leaf already covers its key) so that a bucket's listing can be checked
/// against its hash by a secondary, which has the keys and leaves but not the values.
fn bucket_hash<'a>(leaves: impl IntoIterator<Item = (&'a str, &'a Hash)>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([TAG_BUCKET]);
    for (key, leaf) in leaves {
        hasher.update(key_length(key).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update(leaf);
    }
    hasher.finalize().into()
}

/// The hash of a level above the buckets: its non-empty children as (byte, hash) pairs
/// in byte order, under the level's tag.
fn children_hash(tag: u8, children: impl IntoIterator<Item = (u8, Hash)>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([tag]);
    for (byte, hash) in children {
        hasher.update([byte]);
        hasher.update(hash);
    }
    hasher.finalize().into()
}

fn page_hash(buckets: impl IntoIterator<Item = (u8, Hash)>) -> Hash {
    children_hash(TAG_PAGE, buckets)
}

fn group_hash(pages: impl IntoIterator<Item = (u8, Hash)>) -> Hash {
    children_hash(TAG_GROUP, pages)
}

/// The root of a view: (group id, group root) pairs in id order.
fn view_hash<'a>(groups: impl IntoIterator<Item = (&'a str, Hash)>) -> Hash {
    let mut groups = groups.into_iter().peekable();
    if groups.peek().is_none() {
        return EMPTY_HASH;
    }
    let mut hasher = Sha256::new();
    hasher.update([TAG_VIEW]);
    for (id, root) in groups {
        hasher.update(key_length(id).to_le_bytes());
        hasher.update(id.as_bytes());
        hasher.update(root);
    }
    hasher.finalize().into()
}

/// The keys of one bucket and their leaves, in strictly increasing key order. A bucket
/// holds a few keys (1/65,536 of a group's), so a change copies its slice: an ordered
/// map there took a whole 16-slot node per bucket (~50 MB at 100,000 secrets). Shared,
/// so that copying a page's path on a change clones each bucket in O(1).
type Leaves = Arc<[(Arc<str>, Hash)]>;

/// One bucket: its leaves and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    leaves: Leaves,
    hash: Hash,
}

impl Bucket {
    fn new(leaves: Leaves) -> Self {
        let hash = bucket_hash(leaves.iter().map(|(key, leaf)| (&**key, leaf)));
        Self { leaves, hash }
    }

    fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.leaves.iter().map(|(key, _)| key)
    }

    /// Set (`Some`) or remove (`None`) the leaf of `key`, copying the bucket's few
    /// leaves with the one change and rehashing them; whether anything changed. A key
    /// given as an `Arc<str>` (the applied map's own) is shared, not copied.
    fn set_leaf<K: AsRef<str> + Into<Arc<str>>>(&mut self, key: K, leaf: Option<Hash>) -> bool {
        let old = &self.leaves[..];
        let position = old.binary_search_by(|(other, _)| (**other).cmp(key.as_ref()));
        let mut leaves: Vec<(Arc<str>, Hash)> = Vec::with_capacity(old.len() + 1);
        match (leaf, position) {
            (Some(leaf), Ok(at)) if old[at].1 == leaf => return false,
            (Some(leaf), position) => {
                let (at, skip) = match position {
                    Ok(at) => (at, 1),
                    Err(at) => (at, 0),
                };
                leaves.extend_from_slice(&old[..at]);
                leaves.push((key.into(), leaf));
                leaves.extend_from_slice(&old[at + skip..]);
            }
            (None, Ok(at)) => {
                leaves.extend_from_slice(&old[..at]);
                leaves.extend_from_slice(&old[at + 1..]);
            }
            (None, Err(_)) => return false,
        }
        *self = Self::new(leaves.into());
        true
    }
}

/// A page's or a group's hash, computed when first asked for and then kept. A change
/// rehashes its bucket at once (a few keys), but the page and group above it (up to 256
/// children each, 8 KiB to hash) only when a root or a summary is asked for: per status
/// read or sync, not per write (they were most of a writing node's SHA-256). The node
/// holding it is shared by every view of the index, so each is computed once per change.
#[derive(Debug, Clone, Default)]
struct LazyHash(std::sync::OnceLock<Hash>);

impl LazyHash {
    fn get_or(&self, compute: impl FnOnce() -> Hash) -> Hash {
        *self.0.get_or_init(compute)
    }
}

/// The hash is a function of the children beside it, which are compared instead; a
/// hash computed on one side and not yet on the other is no difference.
impl PartialEq for LazyHash {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LazyHash {}

/// The non-empty buckets of one page, by the low byte of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Page {
    buckets: OrdMap<u8, Bucket>,
    hash: LazyHash,
}

impl Page {
    fn new(buckets: OrdMap<u8, Bucket>) -> Self {
        Self {
            buckets,
            hash: LazyHash::default(),
        }
    }

    fn hash(&self) -> Hash {
        self.hash.get_or(|| {
            page_hash(
                self.buckets
                    .iter()
                    .map(|(byte, bucket)| (*byte, bucket.hash)),
            )
        })
    }

    /// Set or remove the leaf of `key` in bucket `bucket_byte` (see [`Bucket::set_leaf`]);
    /// an emptied bucket is removed, and the page's hash forgotten when anything changed.
    fn set_leaf<K: AsRef<str> + Into<Arc<str>>>(
        &mut self,
        bucket_byte: u8,
        key: K,
        leaf: Option<Hash>,
    ) -> bool {
        let changed = match (self.buckets.get_mut(&bucket_byte), leaf) {
            (Some(bucket), leaf) => bucket.set_leaf(key, leaf),
            (None, Some(leaf)) => {
                let leaves: Leaves = Arc::new([(key.into(), leaf)]);
                self.buckets.insert(bucket_byte, Bucket::new(leaves));
                true
            }
            (None, None) => false,
        };
        if changed {
            if self
                .buckets
                .get(&bucket_byte)
                .is_some_and(|bucket| bucket.leaves.is_empty())
            {
                self.buckets.remove(&bucket_byte);
            }
            self.hash = LazyHash::default();
        }
        changed
    }

    /// Every key of the page, in bucket order (then key order).
    fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.buckets.values().flat_map(Bucket::keys)
    }
}

/// One group's tree: its non-empty pages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupTree {
    group: KeyGroup,
    pages: OrdMap<u8, Page>,
    root: LazyHash,
}

impl GroupTree {
    fn new(group: KeyGroup, pages: OrdMap<u8, Page>) -> Self {
        Self {
            group,
            pages,
            root: LazyHash::default(),
        }
    }

    fn root(&self) -> Hash {
        self.root
            .get_or(|| group_hash(self.pages.iter().map(|(byte, page)| (*byte, page.hash()))))
    }

    /// Set or remove the leaf of `key` (see [`Page::set_leaf`]); an emptied page is
    /// removed, and the root forgotten when anything changed.
    fn set_leaf<K: AsRef<str> + Into<Arc<str>>>(
        &mut self,
        page_byte: u8,
        bucket_byte: u8,
        key: K,
        leaf: Option<Hash>,
    ) -> bool {
        let changed = match (self.pages.get_mut(&page_byte), leaf) {
            (Some(page), leaf) => page.set_leaf(bucket_byte, key, leaf),
            (None, Some(leaf)) => {
                let mut page = Page::new(OrdMap::new());
                page.set_leaf(bucket_byte, key, Some(leaf));
                self.pages.insert(page_byte, page);
                true
            }
            (None, None) => false,
        };
        if changed {
            if self
                .pages
                .get(&page_byte)
                .is_some_and(|page| page.buckets.is_empty())
            {
                self.pages.remove(&page_byte);
            }
            self.root = LazyHash::default();
        }
        changed
    }

    /// Every key of the tree, in bucket order (then key order).
    fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.pages.values().flat_map(Page::keys)
    }
}

/// The Merkle index of the replicated key space, per group. Clones in O(1).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MerkleIndex {
    /// By group id (the group's `Display` string), the order every view hashes them in.
    groups: OrdMap<Arc<str>, GroupTree>,
}

impl std::fmt::Debug for MerkleIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MerkleIndex")
            .field("groups", &self.groups.len())
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl MerkleIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of a whole key space, built bottom-up (each node hashed once), for a
    /// state installed from a snapshot. A key given twice keeps its last value. A key
    /// given as an `Arc<str>` (the applied map's own) is shared, not copied.
    pub fn from_entries<K: AsRef<str> + Into<Arc<str>>, V: AsRef<[u8]>>(
        entries: impl IntoIterator<Item = (K, KeyGroup, V)>,
    ) -> Self {
        type BucketLeaves = BTreeMap<Arc<str>, Hash>;
        let mut by_group: BTreeMap<String, (KeyGroup, BTreeMap<u16, BucketLeaves>)> =
            BTreeMap::new();
        for (key, group, value) in entries {
            let leaf = leaf_hash(key.as_ref(), value.as_ref());
            let bucket = bucket_of(key.as_ref());
            let (_, buckets) = by_group
                .entry(group.to_string())
                .or_insert_with(|| (group, BTreeMap::new()));
            buckets.entry(bucket).or_default().insert(key.into(), leaf);
        }
        let mut groups = OrdMap::new();
        for (id, (group, buckets)) in by_group {
            let mut pages: BTreeMap<u8, OrdMap<u8, Bucket>> = BTreeMap::new();
            for (bucket, leaves) in buckets {
                let [page, low] = bucket.to_be_bytes();
                pages
                    .entry(page)
                    .or_default()
                    .insert(low, Bucket::new(leaves.into_iter().collect()));
            }
            let pages = pages
                .into_iter()
                .map(|(page, buckets)| (page, Page::new(buckets)))
                .collect();
            groups.insert(Arc::from(id), GroupTree::new(group, pages));
        }
        Self { groups }
    }

    /// Record a change to the replicated key `key` of `group`: its new ciphertext, or
    /// `None` when it was deleted. Rehashes one bucket; its page and group root are
    /// rehashed when next asked for. A key given as an `Arc<str>` (the applied map's
    /// own) is shared, not copied.
    ///
    /// Each level is changed in place (`get_mut`): a node no other clone of the index
    /// shares is not copied, and one a clone shares is copied along the path to the key
    /// only. (Taking each level out as a clone and putting it back copied the whole path,
    /// up to 64 children per node, on every change, even with no clone alive.)
    pub fn apply<K: AsRef<str> + Into<Arc<str>>>(
        &mut self,
        key: K,
        group: &KeyGroup,
        value: Option<&[u8]>,
    ) {
        let [page_byte, bucket_byte] = bucket_of(key.as_ref()).to_be_bytes();
        let id = group.to_string();
        let leaf = value.map(|value| leaf_hash(key.as_ref(), value));
        match self.groups.get_mut(id.as_str()) {
            Some(tree) => {
                assert_eq!(&tree.group, group, "a group id names one group");
                if tree.set_leaf(page_byte, bucket_byte, key, leaf) && tree.pages.is_empty() {
                    self.groups.remove(id.as_str());
                }
            }
            None => {
                if leaf.is_some() {
                    let mut tree = GroupTree::new(group.clone(), OrdMap::new());
                    tree.set_leaf(page_byte, bucket_byte, key, leaf);
                    self.groups.insert(Arc::from(id), tree);
                }
            }
        }
    }

    /// The root over every group: the primary's unfiltered view.
    pub fn root(&self) -> Hash {
        self.view_root(|_| true)
    }

    /// The root of the view holding only the groups `allowed` keeps: what a secondary
    /// with that filter holds once in sync. One hash over the group roots.
    pub fn view_root(&self, allowed: impl Fn(&KeyGroup) -> bool) -> Hash {
        view_hash(
            self.groups
                .iter()
                .filter(|(_, tree)| allowed(&tree.group))
                .map(|(id, tree)| (&**id, tree.root())),
        )
    }

    /// The allowed groups and their roots, in id order: the first summary of a sync.
    pub fn group_roots(&self, allowed: impl Fn(&KeyGroup) -> bool) -> Vec<(KeyGroup, Hash)> {
        self.groups
            .values()
            .filter(|tree| allowed(&tree.group))
            .map(|tree| (tree.group.clone(), tree.root()))
            .collect()
    }

    /// The non-empty pages of `group` and their hashes, in page order (at most 256).
    pub fn page_hashes(&self, group: &KeyGroup) -> Vec<(u8, Hash)> {
        self.tree(group).map_or_else(Vec::new, |tree| {
            tree.pages
                .iter()
                .map(|(byte, page)| (*byte, page.hash()))
                .collect()
        })
    }

    /// The non-empty buckets of one page of `group`, by their low byte (at most 256).
    pub fn bucket_hashes(&self, group: &KeyGroup, page: u8) -> Vec<(u8, Hash)> {
        self.page(group, page).map_or_else(Vec::new, |page| {
            page.buckets
                .iter()
                .map(|(byte, bucket)| (*byte, bucket.hash))
                .collect()
        })
    }

    /// The keys of one bucket of `group` and their leaves, in key order.
    pub fn bucket_leaves(&self, group: &KeyGroup, bucket: u16) -> Vec<(Arc<str>, Hash)> {
        let [page, low] = bucket.to_be_bytes();
        self.page(group, page)
            .and_then(|page| page.buckets.get(&low))
            .map_or_else(Vec::new, |bucket| {
                bucket
                    .leaves
                    .iter()
                    .map(|(key, leaf)| (key.clone(), *leaf))
                    .collect()
            })
    }

    /// The root of `group`, or `None` when it holds no key.
    pub fn group_root(&self, group: &KeyGroup) -> Option<Hash> {
        self.tree(group).map(GroupTree::root)
    }

    /// Every key of `group` (in bucket order).
    fn group_keys(&self, group: &KeyGroup) -> impl Iterator<Item = &Arc<str>> {
        self.tree(group).into_iter().flat_map(GroupTree::keys)
    }

    /// Every key of one page of `group` (in bucket order).
    fn page_keys(&self, group: &KeyGroup, page: u8) -> impl Iterator<Item = &Arc<str>> {
        self.page(group, page).into_iter().flat_map(Page::keys)
    }

    fn tree(&self, group: &KeyGroup) -> Option<&GroupTree> {
        self.groups.get(group.to_string().as_str())
    }

    fn page(&self, group: &KeyGroup, page: u8) -> Option<&Page> {
        self.tree(group).and_then(|tree| tree.pages.get(&page))
    }

    /// The groups of the index, in id order.
    fn groups(&self) -> impl Iterator<Item = &KeyGroup> {
        self.groups.values().map(|tree| &tree.group)
    }
}
