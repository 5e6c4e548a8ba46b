//! The apply core against a model: a `BTreeMap` and a list of every WAL entry.

use std::collections::BTreeMap;

use openraft::alias::LeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderIdExt;
use proptest::prelude::*;

use super::*;
use crate::raft::types::TypeConfig;
use crate::replication::merkle::EMPTY_HASH;

/// A WAL buffer small enough that long sequences wrap it.
const WAL_ENTRIES: usize = 8;

fn log_id(index: u64) -> LogId {
    LogId::new(
        LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
        index,
    )
}

/// Keys of every class, few enough that operations collide.
const KEYS: &[&str] = &[
    "logical/m1/a",
    "logical/m1/b/c",
    "auth/u1/user/bob",
    "sys/token/id/t1",
    "core/keyring",
    "core/raft/x",
    // Its presence turns the Merkle index on, its delete off.
    REPLICATION_STATE_KEY,
];
const VALUES: &[&[u8]] = &[b"", b"1", b"2"];

#[derive(Debug, Clone)]
enum Step {
    /// A client batch: (key index, Some(value index) for a put, None for a delete).
    Batch(Vec<(usize, Option<usize>)>),
    /// A leader's blank entry.
    Blank,
    /// Encode a snapshot of the current state and carry on from its decoding.
    SnapshotRestore,
}

fn step() -> impl Strategy<Value = Step> {
    let op = (0..KEYS.len(), proptest::option::of(0..VALUES.len()));
    prop_oneof![
        6 => proptest::collection::vec(op, 0..6).prop_map(Step::Batch),
        1 => Just(Step::Blank),
        1 => Just(Step::SnapshotRestore),
    ]
}

type Model = BTreeMap<String, Vec<u8>>;
/// (wal index, log index, key, value)
type ModelWal = Vec<(u64, u64, String, Option<Vec<u8>>)>;

fn map_of(state: &AppliedState) -> Model {
    state
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_vec()))
        .collect()
}

fn wal_of(state: &AppliedState) -> ModelWal {
    state
        .wal()
        .iter()
        .map(|entry| {
            (
                entry.wal_index,
                entry.log_index,
                entry.key.to_string(),
                entry.value.as_ref().map(|value| value.to_vec()),
            )
        })
        .collect()
}

/// The Merkle index of the replicated keys of `model`, built from scratch.
fn merkle_of(model: &Model) -> MerkleIndex {
    MerkleIndex::from_entries(model.iter().filter_map(|(key, value)| {
        replicated_group(key).map(|group| (key.as_str(), group, value.as_slice()))
    }))
}

/// The index a state of `model` keeps: [`merkle_of`] while it stores a replication
/// state, none otherwise.
fn kept_merkle_of(model: &Model) -> Option<MerkleIndex> {
    model
        .contains_key(REPLICATION_STATE_KEY)
        .then(|| merkle_of(model))
}

fn restore(state: &AppliedState) -> AppliedState {
    let bytes = state.encode_snapshot().unwrap();
    AppliedState::decode_snapshot(&state.snapshot_meta(), &bytes, WAL_ENTRIES).unwrap()
}

proptest! {
    #[test]
    fn the_apply_core_matches_a_model_and_reports_exactly_the_diff(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut state = AppliedState::new(WAL_ENTRIES);
        let mut model = Model::new();
        let mut model_wal = ModelWal::new();
        // What the buffer keeps: the model's WAL entries since the replication state
        // was last stored (none while it is not).
        let mut model_buffer = ModelWal::new();
        let mut log_index = 0;
        for step in steps {
            let entry = match step {
                Step::SnapshotRestore => {
                    let restored = restore(&state);
                    prop_assert_eq!(map_of(&restored), map_of(&state));
                    prop_assert_eq!(wal_of(&restored), wal_of(&state));
                    prop_assert_eq!(restored.merkle(), state.merkle());
                    prop_assert_eq!(restored.last_applied(), state.last_applied());
                    state = restored;
                    continue;
                }
                Step::Blank => {
                    log_index += 1;
                    Entry::new_blank(log_id(log_index))
                }
                Step::Batch(ops) => {
                    log_index += 1;
                    let ops = ops
                        .into_iter()
                        .map(|(key, value)| match value {
                            Some(value) => Op::Put {
                                key: KEYS[key].to_string(),
                                value: VALUES[value].to_vec().into(),
                            },
                            None => Op::Delete { key: KEYS[key].to_string() },
                        })
                        .collect();
                    Entry::new_normal(log_id(log_index), Command::Apply { ops })
                }
            };

            // The model: apply the batch to a BTreeMap, and diff before against after.
            let before = model.clone();
            if let EntryPayload::Normal(Command::Apply { ops }) = &entry.payload {
                for op in ops {
                    match op {
                        Op::Put { key, value } => {
                            model.insert(key.clone(), value.to_vec());
                        }
                        Op::Delete { key } => {
                            model.remove(key);
                        }
                    }
                }
            }
            let mut touched: Vec<&String> = before.keys().chain(model.keys()).collect();
            touched.sort();
            touched.dedup();
            let expected: Vec<(String, KeyClass, Option<Vec<u8>>)> = touched
                .into_iter()
                .filter(|key| before.get(*key) != model.get(*key))
                .map(|key| (key.clone(), crate::storage::key_class(key), model.get(key).cloned()))
                .collect();
            let wal_start = model_wal.last().map_or(0, |entry| entry.0) + 1;
            let replicating = model.contains_key(REPLICATION_STATE_KEY);
            if !replicating {
                model_buffer.clear();
            }
            for (key, class, value) in &expected {
                if *class == KeyClass::Replicated {
                    let wal_index = model_wal.last().map_or(0, |entry| entry.0) + 1;
                    let entry = (wal_index, log_index, key.clone(), value.clone());
                    if replicating {
                        model_buffer.push(entry.clone());
                    }
                    model_wal.push(entry);
                }
            }
            let wal_end = model_wal.last().map_or(0, |entry| entry.0) + 1;

            let (next, applied) = state.apply(entry);
            state = next;
            prop_assert_eq!(applied.log_index, log_index);
            prop_assert_eq!(applied.wal_indexes.clone(), wal_start..wal_end);
            let Changes::Keys(changes) = applied.changes else {
                panic!("an entry reports its keys");
            };
            let reported: Vec<(String, KeyClass, Option<Vec<u8>>)> = changes
                .into_iter()
                .map(|change| {
                    (change.key.to_string(), change.class, change.value.map(|value| value.to_vec()))
                })
                .collect();
            prop_assert_eq!(reported, expected);
            prop_assert_eq!(map_of(&state), model.clone());
            let kept = kept_merkle_of(&model);
            prop_assert_eq!(state.merkle(), kept.as_ref());

            // The buffer is the newest `WAL_ENTRIES` of what the model keeps: dense,
            // bounded, and empty while no replication state is stored.
            let kept = model_buffer.len().saturating_sub(WAL_ENTRIES);
            prop_assert_eq!(wal_of(&state), model_buffer[kept..].to_vec());
            prop_assert_eq!(state.wal().last_wal_index(), model_wal.len() as u64);
        }
    }
}

/// The index is built by the entry that first stores a replication state, equals a
/// rebuild from then on, survives a snapshot, and goes with the state: a cluster that
/// never replicates keeps none.
#[test]
fn the_merkle_index_is_kept_exactly_while_a_replication_state_is_stored() {
    let apply = |state: AppliedState, index: u64, ops: Vec<Op>| {
        state
            .apply(Entry::new_normal(log_id(index), Command::Apply { ops }))
            .0
    };
    let state = apply(
        AppliedState::new(WAL_ENTRIES),
        1,
        vec![put("logical/m1/a", b"1"), put("sys/policy/admin", b"x")],
    );
    assert!(state.merkle().is_none(), "no replication state, no index");
    assert!(restore(&state).merkle().is_none());

    let state = apply(
        state,
        2,
        vec![
            put(REPLICATION_STATE_KEY, b"primary"),
            put("logical/m1/b", b"2"),
        ],
    );
    assert_eq!(state.merkle(), Some(&state.merkle_rebuilt()));
    assert_ne!(state.merkle().map(MerkleIndex::root), Some(EMPTY_HASH));

    let state = apply(
        state,
        3,
        vec![
            put("logical/m1/a", b"3"),
            Op::Delete {
                key: "sys/policy/admin".to_string(),
            },
        ],
    );
    assert_eq!(state.merkle(), Some(&state.merkle_rebuilt()));
    assert_eq!(restore(&state).merkle(), state.merkle());

    let state = apply(
        state,
        4,
        vec![Op::Delete {
            key: REPLICATION_STATE_KEY.to_string(),
        }],
    );
    assert!(state.merkle().is_none(), "the index goes with the state");
    assert!(restore(&state).merkle().is_none());
}

/// A snapshot body that carries WAL entries but no replication state (one written
/// before the buffer followed that state) decodes to an empty buffer at the same WAL
/// index, as the state of a node that applied the log holds.
#[test]
fn a_snapshot_without_a_replication_state_keeps_no_wal_entries() {
    let mut map = OrdMap::new();
    map.insert(Arc::<str>::from("logical/m1/a"), Bytes::from_static(b"v"));
    let mut wal = WalBuffer::new(WAL_ENTRIES);
    wal.append(1, Arc::from("logical/m1/a"), Some(Bytes::from_static(b"v")));
    let (last_wal_index, records) = wal.records();
    let body = SnapshotBodyRef {
        entries: MapEntries(&map),
        last_wal_index,
        wal: records,
    };
    let mut bytes = vec![SNAPSHOT_FORMAT_VERSION];
    bincode::serde::encode_into_std_write(&body, &mut bytes, bincode::config::standard()).unwrap();
    let meta = AppliedState::new(WAL_ENTRIES).snapshot_meta();

    let decoded = AppliedState::decode_snapshot(&meta, &bytes, WAL_ENTRIES).unwrap();
    assert_eq!(decoded.wal().last_wal_index(), 1);
    assert_eq!(
        decoded.wal().iter().count(),
        0,
        "no entries without a state"
    );
    assert!(decoded.merkle().is_none());
}

#[test]
fn a_snapshot_of_an_unknown_format_or_damaged_body_is_refused() {
    let (state, _) = AppliedState::new(WAL_ENTRIES).apply(Entry::new_normal(
        log_id(1),
        Command::Apply {
            ops: vec![Op::Put {
                key: "logical/m1/a".to_string(),
                value: b"v".to_vec().into(),
            }],
        },
    ));
    let meta = state.snapshot_meta();
    let mut bytes = state.encode_snapshot().unwrap();
    assert!(AppliedState::decode_snapshot(&meta, &bytes, WAL_ENTRIES).is_ok());

    bytes[0] = SNAPSHOT_FORMAT_VERSION + 1;
    let error = AppliedState::decode_snapshot(&meta, &bytes, WAL_ENTRIES).unwrap_err();
    assert_eq!(
        error,
        SnapshotFormatError::UnknownVersion {
            found: SNAPSHOT_FORMAT_VERSION + 1
        }
    );
    assert!(error.to_string().contains("is not supported"), "{error}");

    bytes[0] = SNAPSHOT_FORMAT_VERSION;
    let truncated = &bytes[..bytes.len() - 1];
    assert!(matches!(
        AppliedState::decode_snapshot(&meta, truncated, WAL_ENTRIES),
        Err(SnapshotFormatError::Invalid(_))
    ));
    assert_eq!(
        AppliedState::decode_snapshot(&meta, &[], WAL_ENTRIES).unwrap_err(),
        SnapshotFormatError::Empty
    );
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec().into(),
    }
}

fn apply_remote(
    state: AppliedState,
    index: u64,
    after: Option<u64>,
    last_remote_wal: u64,
    ops: Vec<Op>,
) -> (AppliedState, Applied) {
    state.apply(Entry::new_normal(
        log_id(index),
        Command::ApplyRemote {
            after,
            last_remote_wal,
            ops,
        },
    ))
}

/// A batch from the primary applies only where it continues this cluster's position,
/// and moves the position in the same step; a batch that would skip or repeat WAL
/// entries changes nothing and says why; the position survives a snapshot.
#[test]
fn remote_batches_apply_only_in_order_and_move_the_position_with_them() {
    let state = AppliedState::new(WAL_ENTRIES);
    assert_eq!(state.last_remote_wal(), 0);
    let (state, applied) = apply_remote(state, 1, Some(0), 3, vec![put("logical/m1/a", b"1")]);
    assert_eq!(applied.refused, None);
    assert_eq!(state.last_remote_wal(), 3);
    assert_eq!(
        state.get("logical/m1/a").map(|v| v.to_vec()),
        Some(b"1".to_vec())
    );

    for (after, why) in [(Some(2), "repeats"), (Some(4), "skips")] {
        let (next, applied) =
            apply_remote(state.clone(), 2, after, 9, vec![put("logical/m1/a", b"x")]);
        assert!(applied.refused.is_some(), "a batch that {why} is refused");
        assert_eq!(next.last_remote_wal(), 3);
        assert_eq!(
            next.get("logical/m1/a").map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(applied.changes, Changes::Keys(Vec::new()));
    }

    // A sync chunk applies whatever the position and sets it.
    let (state, applied) = apply_remote(state, 3, None, 7, vec![put("logical/m1/b/c", b"2")]);
    assert_eq!(applied.refused, None);
    assert_eq!(state.last_remote_wal(), 7);
    assert_eq!(restore(&state).last_remote_wal(), 7);
}

/// Activation replaces everything: every old key is gone (local ones included), the
/// new ones are there, and the report names each change.
#[test]
fn replace_all_leaves_exactly_the_new_keys() {
    let (state, _) = AppliedState::new(WAL_ENTRIES).apply(Entry::new_normal(
        log_id(1),
        Command::Apply {
            ops: vec![
                put("logical/m1/a", b"1"),
                put("sys/token/id/t1", b"root"),
                put("core/keyring", b"old"),
            ],
        },
    ));
    let (state, applied) = state.apply(Entry::new_normal(
        log_id(2),
        Command::ReplaceAll {
            ops: vec![put("core/keyring", b"new"), put("core/seal-config", b"{}")],
        },
    ));
    let keys: Vec<String> = map_of(&state).into_keys().collect();
    assert_eq!(keys, ["core/keyring", "core/seal-config"]);
    let Changes::Keys(changes) = applied.changes else {
        panic!("a replacement reports its keys");
    };
    let changed: Vec<&str> = changes.iter().map(|change| &*change.key).collect();
    assert_eq!(
        changed,
        [
            "core/keyring",
            "core/seal-config",
            "logical/m1/a",
            "sys/token/id/t1"
        ]
    );
}

/// Keys of several replicated groups (and a few local ones), for the Merkle tests.
const MERKLE_KEYS: &[&str] = &[
    "logical/m1/a",
    "logical/m1/b",
    "logical/m2/a",
    "auth/u1/user/bob",
    "core/mounts/m1",
    "sys/policy/admin",
    "identity/entity/e1",
    "core/keyring",
    REPLICATION_STATE_KEY,
    "sys/token/id/t1",
    "local-logical/m3/a",
];

proptest! {
    #[test]
    fn a_node_that_installs_a_snapshot_holds_the_merkle_root_of_the_node_that_applied_the_log(
        batches in proptest::collection::vec(
            proptest::collection::vec(
                (0..MERKLE_KEYS.len(), proptest::option::of(0..VALUES.len())),
                0..6,
            ),
            1..40,
        )
    ) {
        // Phase 1: one node applies a log of batches.
        let mut applier = AppliedState::new(WAL_ENTRIES);
        for (index, batch) in batches.into_iter().enumerate() {
            let ops = batch
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => Op::Put {
                        key: MERKLE_KEYS[key].to_string(),
                        value: VALUES[value].to_vec().into(),
                    },
                    None => Op::Delete { key: MERKLE_KEYS[key].to_string() },
                })
                .collect();
            let entry = Entry::new_normal(log_id(index as u64 + 1), Command::Apply { ops });
            applier = applier.apply(entry).0;
        }

        // Phase 2: another node installs its snapshot (the index is not in the body).
        let bytes = applier.encode_snapshot().unwrap();
        let installed =
            AppliedState::decode_snapshot(&applier.snapshot_meta(), &bytes, WAL_ENTRIES).unwrap();

        // The indexes agree, cover only the replicated keys, and equal a rebuild.
        prop_assert_eq!(
            installed.merkle().map(MerkleIndex::root),
            applier.merkle().map(MerkleIndex::root)
        );
        prop_assert_eq!(installed.merkle(), applier.merkle());
        let kept = kept_merkle_of(&map_of(&applier));
        prop_assert_eq!(applier.merkle(), kept.as_ref());
        let replicated = map_of(&applier)
            .keys()
            .any(|key| replicated_group(key).is_some());
        if let Some(merkle) = applier.merkle() {
            prop_assert_eq!(merkle.root() != EMPTY_HASH, replicated);
        }
    }
}

/// A staged restore: entries written under the staging prefix in ordinary batches are
/// swapped in by one small entry; everything else, other staging included, is gone,
/// and no staging key ever reaches the WAL. A count that does not match is refused
/// whole, and clearing staging leaves the rest untouched.
#[test]
fn a_staged_restore_swaps_in_exactly_its_entries_or_nothing() {
    use crate::storage::key_space::{restore_staging_key, restore_staging_prefix};
    use crate::storage::restore_staging;
    let staged = |id: &str, ordinal: u64, key: &str, value: &[u8]| {
        put(
            &restore_staging_key(id, ordinal),
            &restore_staging::encode(key, value),
        )
    };
    let (state, _) = AppliedState::new(WAL_ENTRIES).apply(Entry::new_normal(
        log_id(1),
        Command::Apply {
            ops: vec![put("logical/m1/old", b"1"), put("core/keyring", b"old")],
        },
    ));
    let wal_before = state.wal.last_wal_index();
    let (state, _) = state.apply(Entry::new_normal(
        log_id(2),
        Command::Apply {
            ops: vec![
                staged("r1", 0, "core/keyring", b"new"),
                staged("r1", 1, "logical/m1/a", b"2"),
                staged("abandoned", 0, "logical/m1/x", b"3"),
            ],
        },
    ));
    assert_eq!(
        state.wal.last_wal_index(),
        wal_before,
        "staging is never replicated"
    );

    // Phase 1: a count that does not match changes nothing.
    let before = map_of(&state);
    let (state, applied) = state.apply(Entry::new_normal(
        log_id(3),
        Command::ReplaceAllFromStaging {
            restore_id: "r1".into(),
            entries: 3,
            ops: vec![put("core/cluster/snapshot-restore", b"{}")],
        },
    ));
    assert!(applied.refused.is_some());
    assert_eq!(map_of(&state), before);

    // Phase 2: the right count swaps in the staged entries and the record, alone.
    let (state, applied) = state.apply(Entry::new_normal(
        log_id(4),
        Command::ReplaceAllFromStaging {
            restore_id: "r1".into(),
            entries: 2,
            ops: vec![put("core/cluster/snapshot-restore", b"{}")],
        },
    ));
    assert_eq!(applied.refused, None);
    let keys: Vec<String> = map_of(&state).into_keys().collect();
    assert_eq!(
        keys,
        [
            "core/cluster/snapshot-restore",
            "core/keyring",
            "logical/m1/a"
        ]
    );
    assert_eq!(state.get("core/keyring").unwrap().as_ref(), b"new");

    // Phase 3: clearing removes staging of every restore and nothing else.
    let (state, _) = state.apply(Entry::new_normal(
        log_id(5),
        Command::Apply {
            ops: vec![staged("r2", 0, "logical/m1/y", b"4")],
        },
    ));
    let (state, _) = state.apply(Entry::new_normal(log_id(6), Command::ClearRestoreStaging));
    assert!(
        map_of(&state)
            .keys()
            .all(|key| !key.starts_with(&restore_staging_prefix("r2")))
    );
    assert_eq!(map_of(&state).len(), 3);
}
