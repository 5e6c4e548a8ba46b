//! The Merkle index against a model (a `BTreeMap` of the key space), and the diff walker
//! against honest and altered answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;
use crate::storage::CoreGroup;

type Model = BTreeMap<String, Vec<u8>>;

/// Replicated keys of several groups, with names of each shape the registry knows, plus
/// keys chosen because they share a bucket with another, so buckets of several leaves
/// are common (random names of a few dozen keys would almost never share one).
static KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut keys = vec![
        "core/keyring".to_string(),
        "core/mounts/m1".to_string(),
        "core/auth/m3".to_string(),
    ];
    for index in 0..8 {
        keys.push(format!("logical/m1/data/{index}"));
        keys.push(format!("logical/m2/{index}"));
        keys.push(format!("auth/m3/user/{index}"));
        keys.push(format!("sys/policy/p{index}"));
        keys.push(format!("identity/entity/{index}"));
    }
    let mut by_bucket: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for index in 0..3000 {
        let key = format!("logical/m2/collide/{index}");
        by_bucket.entry(bucket_of(&key)).or_default().push(key);
    }
    keys.extend(
        by_bucket
            .into_values()
            .filter(|keys| keys.len() > 1)
            .take(6)
            .flatten(),
    );
    keys
});

const VALUES: &[&[u8]] = &[b"", b"a", b"b"];

fn group_of(key: &str) -> KeyGroup {
    replicated_group(key).unwrap_or_else(|| panic!("{key} is replicated"))
}

/// Every group the keys fall in, in id order.
fn all_groups() -> Vec<KeyGroup> {
    let groups: BTreeMap<String, KeyGroup> = KEYS
        .iter()
        .map(|key| (group_of(key).to_string(), group_of(key)))
        .collect();
    groups.into_values().collect()
}

fn build(model: &Model) -> MerkleIndex {
    MerkleIndex::from_entries(
        model
            .iter()
            .map(|(key, value)| (key.as_str(), group_of(key), value.as_slice())),
    )
}

/// A change: (key index, Some(value index) for a put, None for a delete).
type Change = (usize, Option<usize>);

fn changes(length: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Change>> {
    let change = (0..KEYS.len(), proptest::option::of(0..VALUES.len()));
    proptest::collection::vec(change, length)
}

/// Apply `changes` to the model and to the index, incrementally.
fn apply(model: &mut Model, index: &mut MerkleIndex, changes: &[Change]) {
    for (key, value) in changes {
        let key = &KEYS[*key];
        let value = value.map(|value| VALUES[value]);
        match value {
            Some(value) => model.insert(key.clone(), value.to_vec()),
            None => model.remove(key),
        };
        index.apply(key.as_str(), &group_of(key), value);
    }
}

fn hash_of(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Walk `local` against `remote`'s view through `allowed`, answering each round of
/// requests in reverse order, so answers arrive out of the order they were asked in.
fn sync(
    local: &MerkleIndex,
    remote: &MerkleIndex,
    allowed: &dyn Fn(&KeyGroup) -> bool,
) -> Result<SyncPlan, MerkleDiffError> {
    let mut walk = MerkleDiff::new(local, remote.group_roots(allowed))?;
    loop {
        let round: Vec<MerkleRequest> = std::iter::from_fn(|| walk.next_request()).collect();
        assert!(round.len() <= REQUESTS_IN_FLIGHT_MAX);
        if round.is_empty() {
            break;
        }
        for request in round.iter().rev() {
            walk.on_response(remote.answer(request))?;
        }
    }
    assert!(
        walk.is_done(),
        "no request left to send means none is left at all"
    );
    Ok(walk.into_plan().expect("a finished walk has a plan"))
}

/// A filter keeping the groups whose bit is set in `mask`, in the order of
/// [`all_groups`].
fn filter(mask: u32) -> impl Fn(&KeyGroup) -> bool {
    let allowed: BTreeSet<KeyGroup> = all_groups()
        .into_iter()
        .enumerate()
        .filter(|(position, _)| mask & (1 << position) != 0)
        .map(|(_, group)| group)
        .collect();
    move |group| allowed.contains(group)
}

#[test]
fn the_key_pool_has_shared_buckets_and_many_groups() {
    let mut per_bucket: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for key in KEYS.iter() {
        *per_bucket
            .entry((group_of(key).to_string(), bucket_of(key)))
            .or_default() += 1;
    }
    assert!(per_bucket.values().filter(|count| **count > 1).count() >= 4);
    assert!(all_groups().len() >= 6 && all_groups().len() <= 32);
}

#[test]
fn a_one_key_index_hashes_as_the_format_says() {
    let key = "sys/policy/admin";
    let group = KeyGroup::Core(CoreGroup::Policies);
    let mut index = MerkleIndex::new();
    index.apply(key, &group, Some(b"ciphertext"));

    // Each level spelled out by hand from the module's description.
    let leaf = hash_of(&[
        &[1],
        &(key.len() as u32).to_le_bytes(),
        key.as_bytes(),
        &Sha256::digest(b"ciphertext"),
    ]);
    let [page, low] = Sha256::digest(key.as_bytes())[..2] else {
        unreachable!()
    };
    let bucket = hash_of(&[
        &[2],
        &(key.len() as u32).to_le_bytes(),
        key.as_bytes(),
        &leaf,
    ]);
    let page_hash = hash_of(&[&[3], &[low], &bucket]);
    let group_root = hash_of(&[&[4], &[page], &page_hash]);
    let id = "core:Policies";
    let view = hash_of(&[
        &[5],
        &(id.len() as u32).to_le_bytes(),
        id.as_bytes(),
        &group_root,
    ]);

    assert_eq!(index.root(), view);
    assert_eq!(
        index.group_roots(|_| true),
        vec![(group.clone(), group_root)]
    );
    assert_eq!(index.page_hashes(&group), vec![(page, page_hash)]);
    assert_eq!(index.bucket_hashes(&group, page), vec![(low, bucket)]);
    assert_eq!(
        index.bucket_leaves(&group, u16::from_be_bytes([page, low])),
        vec![(Arc::from(key), leaf)]
    );

    // Deleting the key empties every level: the index is the empty index again.
    index.apply(key, &group, None);
    assert_eq!(index, MerkleIndex::new());
    assert_eq!(index.root(), EMPTY_HASH);
    assert!(index.page_hashes(&group).is_empty());
}

#[test]
fn a_clone_is_a_point_in_time_view() {
    let mut index = MerkleIndex::new();
    index.apply(
        "sys/policy/a",
        &KeyGroup::Core(CoreGroup::Policies),
        Some(b"1"),
    );
    let snapshot = index.clone();
    let root = snapshot.root();
    index.apply(
        "sys/policy/a",
        &KeyGroup::Core(CoreGroup::Policies),
        Some(b"2"),
    );
    index.apply("logical/m1/x", &KeyGroup::Mount("m1".into()), Some(b"3"));
    assert_eq!(snapshot.root(), root);
    assert_ne!(index.root(), root);
}

#[test]
fn the_helper_names_a_group_for_replicated_keys_only() {
    assert_eq!(
        replicated_group("logical/m1/a"),
        Some(KeyGroup::Mount("m1".to_string()))
    );
    assert_eq!(
        replicated_group("core/keyring"),
        Some(KeyGroup::Core(CoreGroup::Keyring))
    );
    assert_eq!(replicated_group("sys/token/id/t"), None);
    assert_eq!(replicated_group("local-logical/m1/a"), None);
    assert_eq!(replicated_group("no/such/prefix"), None);
}

proptest! {
    #[test]
    fn incremental_apply_equals_a_rebuild_of_the_final_key_space(
        changes in changes(0..200)
    ) {
        let mut model = Model::new();
        let mut index = MerkleIndex::new();
        apply(&mut model, &mut index, &changes);
        let rebuilt = build(&model);
        prop_assert_eq!(index.root(), rebuilt.root());
        for group in all_groups() {
            prop_assert_eq!(index.page_hashes(&group), rebuilt.page_hashes(&group));
        }
        // Every level, down to the leaves, is the same value.
        prop_assert_eq!(&index, &rebuilt);
        prop_assert_eq!(index.root() == EMPTY_HASH, model.is_empty());
    }

    #[test]
    fn a_filtered_view_root_is_the_root_of_the_allowed_groups_alone(
        changes in changes(0..120),
        mask in any::<u32>(),
    ) {
        let mut model = Model::new();
        let mut index = MerkleIndex::new();
        apply(&mut model, &mut index, &changes);
        let allowed = filter(mask);
        let kept: Model = model
            .into_iter()
            .filter(|(key, _)| allowed(&group_of(key)))
            .collect();
        prop_assert_eq!(index.view_root(&allowed), build(&kept).root());
        prop_assert_eq!(index.view_root(|_| false), EMPTY_HASH);
    }

    #[test]
    fn a_sync_plan_makes_the_local_index_equal_the_remote_view_and_fetches_only_what_differs(
        common in changes(0..80),
        remote_changes in changes(0..40),
        local_changes in changes(0..40),
        mask in any::<u32>(),
    ) {
        // Phase 1: two key spaces that share a history and then diverge.
        let (mut remote_model, mut remote) = (Model::new(), MerkleIndex::new());
        apply(&mut remote_model, &mut remote, &common);
        let (mut local_model, mut local) = (remote_model.clone(), remote.clone());
        apply(&mut remote_model, &mut remote, &remote_changes);
        apply(&mut local_model, &mut local, &local_changes);
        let allowed = filter(mask);

        // Phase 2: the plan is exactly the difference between the remote's view and
        // the local key space.
        let plan = sync(&local, &remote, &allowed).unwrap();
        let view: Model = remote_model
            .iter()
            .filter(|(key, _)| allowed(&group_of(key)))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let expected_fetch: Vec<&String> = view
            .iter()
            .filter(|(key, value)| local_model.get(*key) != Some(*value))
            .map(|(key, _)| key)
            .collect();
        let expected_delete: Vec<&String> =
            local_model.keys().filter(|key| !view.contains_key(*key)).collect();
        let fetch: Vec<String> = plan.fetch.iter().map(|key| key.to_string()).collect();
        let delete: Vec<String> = plan.delete.iter().map(|key| key.to_string()).collect();
        prop_assert_eq!(fetch.iter().collect::<Vec<_>>(), expected_fetch);
        prop_assert_eq!(delete.iter().collect::<Vec<_>>(), expected_delete);

        // Phase 3: carrying out the plan makes the local root the remote view's root.
        for key in &plan.fetch {
            local.apply(key.clone(), &group_of(key), Some(&remote_model[&**key]));
        }
        for key in &plan.delete {
            local.apply(key.clone(), &group_of(key), None);
        }
        prop_assert_eq!(local.root(), remote.view_root(&allowed));
        prop_assert_eq!(&local, &build(&view));

        // Phase 4: a second sync finds nothing to do and asks for nothing.
        let mut walk = MerkleDiff::new(&local, remote.group_roots(&allowed)).unwrap();
        prop_assert!(walk.next_request().is_none());
        prop_assert_eq!(walk.into_plan(), Some(SyncPlan::default()));
    }

    #[test]
    fn every_altered_answer_is_refused_and_leaves_the_walk_intact(
        remote_changes in changes(1..80),
        local_changes in changes(0..20),
        alterations in proptest::collection::vec((any::<u8>(), any::<u16>()), 1..40),
    ) {
        let (mut remote_model, mut remote) = (Model::new(), MerkleIndex::new());
        apply(&mut remote_model, &mut remote, &remote_changes);
        let (mut local_model, mut local) = (Model::new(), MerkleIndex::new());
        apply(&mut local_model, &mut local, &local_changes);
        let expected = sync(&local, &remote, &|_| true).unwrap();

        // Each request first gets an altered answer (refused), then the honest one.
        let mut walk = MerkleDiff::new(&local, remote.group_roots(|_| true)).unwrap();
        let mut alterations = alterations.into_iter().cycle();
        while let Some(request) = walk.next_request() {
            let honest = remote.answer(&request);
            let (kind, at) = alterations.next().unwrap();
            if let Some(altered) = alter(&honest, kind, at) {
                prop_assert!(altered != honest);
                prop_assert!(walk.on_response(altered).is_err());
            }
            walk.on_response(honest).unwrap();
        }
        prop_assert_eq!(walk.into_plan(), Some(expected));
    }
}

/// A changed copy of an honest answer: an entry dropped, duplicated, moved or with a
/// flipped hash bit, a key moved to another mount, or the answer addressed elsewhere.
/// `None` when the alteration does not apply (an empty list).
fn alter(honest: &MerkleResponse, kind: u8, at: u16) -> Option<MerkleResponse> {
    fn change_list<T: Clone>(list: &mut Vec<T>, kind: u8, at: u16, flip: impl Fn(&mut T)) -> bool {
        if list.is_empty() {
            return false;
        }
        let position = usize::from(at) % list.len();
        match kind % 4 {
            0 => {
                list.remove(position);
            }
            1 => list.insert(position, list[position].clone()),
            2 if list.len() > 1 => {
                let next = (position + 1) % list.len();
                list.swap(position, next);
            }
            _ => flip(&mut list[position]),
        }
        true
    }
    let flip_bit = move |hash: &mut Hash| hash[usize::from(at) % 32] ^= 1 << (at % 8);
    let mut altered = honest.clone();
    let changed = match &mut altered {
        _ if kind % 7 == 6 => {
            // Addressed to something that was never asked for.
            return Some(match honest {
                MerkleResponse::Pages { group, pages } => MerkleResponse::Buckets {
                    group: group.clone(),
                    page: 0,
                    buckets: pages.clone(),
                },
                _ => MerkleResponse::Pages {
                    group: KeyGroup::Mount("never-asked".to_string()),
                    pages: Vec::new(),
                },
            });
        }
        MerkleResponse::Pages { pages, .. } => {
            change_list(pages, kind, at, |entry| flip_bit(&mut entry.1))
        }
        MerkleResponse::Buckets { buckets, .. } => {
            change_list(buckets, kind, at, |entry| flip_bit(&mut entry.1))
        }
        MerkleResponse::Leaves { leaves, .. } if kind % 7 == 5 && !leaves.is_empty() => {
            let position = usize::from(at) % leaves.len();
            let moved = leaves[position].0.replacen("logical/m2/", "logical/m9/", 1);
            let moved = moved.replacen("sys/policy/", "logical/m9/", 1);
            leaves[position].0 = Arc::from(format!("{moved}x"));
            true
        }
        MerkleResponse::Leaves { leaves, .. } => {
            change_list(leaves, kind, at, |entry| flip_bit(&mut entry.1))
        }
    };
    changed.then_some(altered)
}

#[test]
fn malformed_group_roots_are_refused() {
    let local = MerkleIndex::new();
    let policies = KeyGroup::Core(CoreGroup::Policies);
    let mount = KeyGroup::Mount("m1".to_string());
    let root = [7; 32];

    let unordered = vec![(mount.clone(), root), (policies.clone(), root)];
    assert_eq!(
        MerkleDiff::new(&local, unordered).unwrap_err(),
        MerkleDiffError::Unordered {
            list: SummaryList::GroupRoots,
            position: 1
        }
    );
    let repeated = vec![(mount.clone(), root), (mount.clone(), root)];
    assert!(matches!(
        MerkleDiff::new(&local, repeated),
        Err(MerkleDiffError::Unordered { .. })
    ));
    let empty = vec![(policies.clone(), EMPTY_HASH)];
    assert_eq!(
        MerkleDiff::new(&local, empty).unwrap_err(),
        MerkleDiffError::EmptySubtree {
            list: SummaryList::GroupRoots,
            position: 0
        }
    );
    let too_many: Vec<(KeyGroup, Hash)> = (0..=GROUPS_MAX)
        .map(|index| (KeyGroup::Mount(format!("{index:08}")), root))
        .collect();
    let error = MerkleDiff::new(&local, too_many).unwrap_err();
    assert!(matches!(error, MerkleDiffError::TooLong { count, .. } if count == GROUPS_MAX + 1));
    assert!(error.to_string().contains("over the limit"), "{error}");
}

#[test]
fn malformed_answers_are_refused_with_their_reason() {
    // A remote with one policy; the local node holds nothing, so it asks for everything.
    let group = KeyGroup::Core(CoreGroup::Policies);
    let mut remote = MerkleIndex::new();
    remote.apply("sys/policy/a", &group, Some(b"v"));
    let mut walk = MerkleDiff::new(&MerkleIndex::new(), remote.group_roots(|_| true)).unwrap();

    // An answer before any request is in flight.
    let pages = remote.answer(&MerkleRequest::Pages {
        group: group.clone(),
    });
    assert!(matches!(
        walk.on_response(pages.clone()),
        Err(MerkleDiffError::Unexpected { .. })
    ));
    assert_eq!(
        walk.next_request(),
        Some(MerkleRequest::Pages {
            group: group.clone()
        })
    );
    let too_many = MerkleResponse::Pages {
        group: group.clone(),
        pages: (0..=CHILDREN_MAX)
            .map(|index| (index as u8, [1; 32]))
            .collect(),
    };
    assert!(matches!(
        walk.on_response(too_many),
        Err(MerkleDiffError::TooLong { count, .. }) if count == CHILDREN_MAX + 1
    ));
    let wrong = MerkleResponse::Pages {
        group: group.clone(),
        pages: vec![(0, [1; 32])],
    };
    assert_eq!(
        walk.on_response(wrong),
        Err(MerkleDiffError::HashMismatch {
            list: SummaryList::Pages
        })
    );
    walk.on_response(pages).unwrap();

    let buckets_request = walk.next_request().unwrap();
    walk.on_response(remote.answer(&buckets_request)).unwrap();
    let leaves_request = walk.next_request().unwrap();
    let MerkleRequest::Leaves { bucket, .. } = leaves_request.clone() else {
        panic!("the third level asks for leaves, not {leaves_request:?}");
    };

    // A key outside the bucket, a key of another group, an oversized key, a bucket over
    // its limit: each refused before its hash is even checked.
    let leaves = |leaves: Vec<(Arc<str>, Hash)>| MerkleResponse::Leaves {
        group: group.clone(),
        bucket,
        leaves,
    };
    let other_bucket = (0..)
        .map(|index| format!("sys/policy/{index}"))
        .find(|key| bucket_of(key) != bucket)
        .unwrap();
    assert!(matches!(
        walk.on_response(leaves(vec![(Arc::from(other_bucket), [1; 32])])),
        Err(MerkleDiffError::Misplaced { .. })
    ));
    let other_group = (0..)
        .map(|index| format!("logical/m1/{index}"))
        .find(|key| bucket_of(key) == bucket)
        .unwrap();
    assert!(matches!(
        walk.on_response(leaves(vec![(Arc::from(other_group), [1; 32])])),
        Err(MerkleDiffError::Misplaced { .. })
    ));
    let long = format!("sys/policy/{}", "x".repeat(crate::storage::KEY_BYTES_MAX));
    assert!(matches!(
        walk.on_response(leaves(vec![(Arc::from(long), [1; 32])])),
        Err(MerkleDiffError::KeyTooLong { .. })
    ));
    let crowd: Vec<(Arc<str>, Hash)> = (0..=LEAVES_PER_BUCKET_MAX)
        .map(|index| (Arc::from(format!("sys/policy/{index:08}")), [1; 32]))
        .collect();
    assert!(matches!(
        walk.on_response(leaves(crowd)),
        Err(MerkleDiffError::TooLong { .. })
    ));

    // After every refusal the honest answer still completes the walk.
    walk.on_response(remote.answer(&leaves_request)).unwrap();
    assert!(walk.is_done());
    assert_eq!(
        walk.into_plan().unwrap().fetch,
        vec![Arc::<str>::from("sys/policy/a")]
    );
}

#[test]
fn a_walk_with_requests_in_flight_has_no_plan_yet() {
    let group = KeyGroup::Core(CoreGroup::Policies);
    let mut remote = MerkleIndex::new();
    remote.apply("sys/policy/a", &group, Some(b"v"));
    let mut walk = MerkleDiff::new(&MerkleIndex::new(), remote.group_roots(|_| true)).unwrap();
    assert!(walk.next_request().is_some());
    assert!(walk.next_request().is_none());
    assert!(!walk.is_done());
    assert_eq!(walk.into_plan(), None);
}

#[test]
fn groups_absent_on_either_side_are_fetched_or_deleted_whole() {
    let mut remote = MerkleIndex::new();
    let mut local = MerkleIndex::new();
    let kept = KeyGroup::Mount("m1".to_string());
    let dropped = KeyGroup::Mount("m2".to_string());
    for index in 0..50 {
        remote.apply(format!("logical/m1/{index}"), &kept, Some(b"v"));
        local.apply(format!("logical/m2/{index}"), &dropped, Some(b"v"));
    }
    let plan = sync(&local, &remote, &|_| true).unwrap();
    assert_eq!(plan.fetch.len(), 50);
    assert!(plan.fetch.iter().all(|key| key.starts_with("logical/m1/")));
    assert_eq!(plan.delete.len(), 50);
    assert!(plan.delete.iter().all(|key| key.starts_with("logical/m2/")));
}
