//! Micro-benchmarks of the pure cores and the log on both disks: the barrier's AEAD,
//! Shamir, ACL matching, KV v2 through its engine on a memory barrier, and Raft log
//! appends (group commit) on `SimDisk` and on real files with fsync.
//!
//! Run: `cargo bench --bench core` (add `-- --quick` for a short pass). The numbers
//! are per operation on this machine; `benches/README.md` records a run.

// Bench harness: real clocks and files, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use openraft::alias::LeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use serde_json::{Map, Value, json};

use arca::acl::{Acl, Policy};
use arca::barrier::{Barrier, Keyring, aead};
use arca::engines::kv_v2;
use arca::env::{Disk, FileDisk, SharedRng, SimDisk};
use arca::logical::{Operation, Request};
use arca::raft::types::{Entry, LogId};
use arca::raft::{Command, LogStore, LogStoreOptions, TypeConfig};
use arca::storage::{MemoryBackend, Op};

/// The value size of the barrier benchmark.
const VALUE_BYTES: usize = 1024;
/// The value size of the KV and log benchmarks: etcd's benchmark value (256 B).
const SECRET_BYTES: usize = 256;

fn barrier_seal_open(criterion: &mut Criterion) {
    let rng = SharedRng::from_u64(7);
    let keyring = Keyring::generate(&rng, 0);
    let term_key = keyring.active();
    let plaintext = vec![0x5a_u8; VALUE_BYTES];
    let associated = b"logical/0b1c/secret/data/app";
    let sealed = aead::seal(&rng, term_key.term, &term_key.key, associated, &plaintext);

    let mut group = criterion.benchmark_group("barrier");
    group.throughput(Throughput::Bytes(VALUE_BYTES as u64));
    group.bench_function("seal_1KiB", |bencher| {
        bencher.iter(|| {
            aead::seal(
                &rng,
                term_key.term,
                &term_key.key,
                associated,
                black_box(&plaintext),
            )
        })
    });
    group.bench_function("open_1KiB", |bencher| {
        bencher.iter(|| aead::open(&term_key.key, associated, black_box(&sealed)).unwrap())
    });
    group.finish();
}

fn shamir_split_combine(criterion: &mut Criterion) {
    let rng = SharedRng::from_u64(9);
    let root_key = [0x42_u8; 32];
    let shares = arca::seal::shamir::split(&rng, &root_key, 5, 3).unwrap();
    let three = shares[..3].to_vec();

    let mut group = criterion.benchmark_group("shamir");
    group.bench_function("split_32B_5_of_3", |bencher| {
        bencher.iter(|| arca::seal::shamir::split(&rng, black_box(&root_key), 5, 3).unwrap())
    });
    group.bench_function("combine_32B_3_shares", |bencher| {
        bencher.iter(|| arca::seal::shamir::combine(black_box(&three)).unwrap())
    });
    group.finish();
}

/// A policy set shaped like a real deployment: exact paths, prefix globs, `+` segments
/// and a deny, across several policies merged into one ACL.
fn policy_set() -> Vec<Policy> {
    let mut texts: Vec<(String, String)> = Vec::new();
    for team in 0..8 {
        texts.push((
            format!("team-{team}"),
            format!(
                r#"
path "secret/data/team-{team}/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "secret/metadata/team-{team}/*" {{ capabilities = ["list", "read"] }}
path "secret/data/shared/+/team-{team}" {{ capabilities = ["read"] }}
path "secret/data/team-{team}/locked" {{ capabilities = ["deny"] }}
path "transit/encrypt/team-{team}-*" {{ capabilities = ["update"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
"#
            ),
        ));
    }
    texts.push((
        "ops".into(),
        r#"
path "sys/mounts/+" { capabilities = ["read"] }
path "sys/policies/acl/*" { capabilities = ["read", "list"] }
path "secret/+/ops/+/config" { capabilities = ["read", "update"] }
"#
        .into(),
    ));
    texts
        .iter()
        .map(|(name, text)| Policy::parse(name, text).unwrap())
        .collect()
}

fn acl_matching(criterion: &mut Criterion) {
    let policies = policy_set();
    let acl = Acl::new(&policies);
    let body = Map::new();
    let paths = [
        (Operation::Update, "secret/data/team-3/app/db"),
        (Operation::Read, "secret/data/shared/x/team-5"),
        (Operation::Update, "secret/data/team-2/locked"),
        (Operation::Read, "secret/data/ops/eu/config"),
        (Operation::List, "secret/metadata/team-7/"),
        (Operation::Read, "secret/data/nobody/here"),
    ];

    let mut group = criterion.benchmark_group("acl");
    group.bench_function("build_9_policies", |bencher| {
        bencher.iter(|| Acl::new(black_box(&policies)))
    });
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.bench_function("allowed_6_paths_glob_plus_deny", |bencher| {
        bencher.iter(|| {
            for (operation, path) in &paths {
                black_box(acl.allowed(*operation, black_box(path), &body));
            }
        })
    });
    group.finish();
}

fn kv_v2_engine(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rng = SharedRng::from_u64(1);
    let barrier = Barrier::new(Arc::new(MemoryBackend::new()), rng.clone());
    barrier.unseal_with(Keyring::generate(&rng, 0));
    let view = barrier.view("logical/bench/");
    let value = "v".repeat(SECRET_BYTES);
    let body = |value: &str| -> Map<String, Value> {
        match json!({"data": {"value": value}}) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    };
    let keys_count = 1000_u64;
    runtime.block_on(async {
        for key in 0..keys_count {
            let request = Request::new(
                Operation::Create,
                format!("data/key-{key}"),
                body(&value),
                0,
            );
            kv_v2::handle(&view, &request).await.unwrap();
        }
    });

    let mut group = criterion.benchmark_group("kv_v2");
    group.throughput(Throughput::Elements(1));
    let mut counter = 0_u64;
    group.bench_function("write_256B_memory_barrier", |bencher| {
        bencher.iter(|| {
            counter += 1;
            let request = Request::new(
                Operation::Update,
                format!("data/key-{}", counter % keys_count),
                body(&value),
                0,
            );
            runtime.block_on(kv_v2::handle(&view, &request)).unwrap()
        })
    });
    group.bench_function("read_256B_memory_barrier", |bencher| {
        bencher.iter(|| {
            counter += 1;
            let request = Request::new(
                Operation::Read,
                format!("data/key-{}", counter % keys_count),
                Map::new(),
                0,
            );
            runtime.block_on(kv_v2::handle(&view, &request)).unwrap()
        })
    });
    group.finish();
}

fn log_entry(index: u64) -> Entry {
    let log_id = LogId::new(
        LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
        index,
    );
    Entry::new_normal(
        log_id,
        Command::Apply {
            ops: vec![Op::Put {
                key: format!("logical/bench/versions/key-{index}/1"),
                value: vec![0x5a; SECRET_BYTES + 64].into(),
            }],
        },
    )
}

/// Submit `batch` single-entry appends back to back, as openraft does under concurrent
/// load, then wait for every `IOFlushed`: the writer task gathers them into few fsyncs.
async fn append_batch(store: &mut LogStore, next_index: &mut u64, batch: u64) {
    let mut flushed = Vec::with_capacity(batch as usize);
    for _ in 0..batch {
        let (sender, receiver) = TypeConfig::oneshot();
        store
            .append(vec![log_entry(*next_index)], IOFlushed::signal(sender))
            .await
            .unwrap();
        *next_index += 1;
        flushed.push(receiver);
    }
    for receiver in flushed {
        receiver.await.unwrap().unwrap();
    }
}

fn raft_log_append(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let disks: Vec<(&str, Arc<dyn Disk>)> = vec![
        ("sim_disk", Arc::new(SimDisk::new(0))),
        (
            "file_disk",
            Arc::new(FileDisk::open(directory.path()).unwrap()),
        ),
    ];

    let mut group = criterion.benchmark_group("raft_log_append");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for (disk_name, disk) in disks {
        let mut store = runtime
            .block_on(LogStore::open(disk, LogStoreOptions::default()))
            .unwrap();
        let mut next_index = 1_u64;
        for batch in [1_u64, 16, 64] {
            group.throughput(Throughput::Elements(batch));
            group.bench_function(
                format!("{disk_name}/{batch}_concurrent_appends"),
                |bencher| {
                    bencher.iter_batched(
                        || (),
                        |()| runtime.block_on(append_batch(&mut store, &mut next_index, batch)),
                        BatchSize::PerIteration,
                    )
                },
            );
        }
    }
    group.finish();
}

/// One small append plus fsync on `SimDisk`, on files of growing size: the simulator's
/// cost per fsync should not depend on how much of the file was synced before.
fn sim_disk_sync(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("sim_disk_sync");
    let record = vec![0x5a_u8; 400];
    for file_bytes_mib in [0_usize, 1, 16] {
        let disk = SimDisk::new(0);
        disk.append("log/segment", &vec![0_u8; file_bytes_mib << 20])
            .unwrap();
        disk.sync("log/segment").unwrap();
        group.bench_function(
            format!("append_400B_then_sync/file_{file_bytes_mib}MiB"),
            |bencher| {
                // Cut the file back to its starting size before each timed append, so
                // every sample sees the same file size.
                bencher.iter_batched(
                    || {
                        disk.truncate("log/segment", (file_bytes_mib << 20) as u64)
                            .unwrap()
                    },
                    |()| {
                        disk.append("log/segment", &record).unwrap();
                        disk.sync("log/segment").unwrap();
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

/// The key count of the key-space benchmarks: the issue's "node holding 100,000 secrets".
const KEY_SPACE_KEYS: u64 = 100_000;

fn key_space_key(index: u64) -> String {
    format!("logical/0b1c/secret/data/app-{index:08}")
}

/// The persistent map under the apply core (imbl `OrdMap`) against the `BTreeMap` it
/// replaced, at 100,000 keys: a point-in-time view (clone), an insert while a view is
/// alive (path copying) and while none is, a point read and a 100-key range scan; then
/// the apply core's write path at 100,000 keys against an empty map, and the snapshot
/// encoding that runs outside the lock.
fn key_space(criterion: &mut Criterion) {
    use std::collections::BTreeMap;

    use arca::raft::AppliedState;

    let value = bytes::Bytes::from(vec![0x5a_u8; SECRET_BYTES]);
    let mut persistent: imbl::OrdMap<Arc<str>, bytes::Bytes> = imbl::OrdMap::new();
    let mut btree: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for index in 0..KEY_SPACE_KEYS {
        persistent.insert(Arc::from(key_space_key(index)), value.clone());
        btree.insert(key_space_key(index), value.to_vec());
    }
    let probe = key_space_key(KEY_SPACE_KEYS / 2);
    let range_start = key_space_key(KEY_SPACE_KEYS / 3);

    let mut group = criterion.benchmark_group("key_space_100k");
    group.bench_function("imbl_clone", |bencher| {
        bencher.iter(|| black_box(&persistent).clone())
    });
    group.bench_function("btree_clone", |bencher| {
        bencher.iter(|| black_box(&btree).clone())
    });
    let mut next = KEY_SPACE_KEYS;
    group.bench_function("imbl_insert_unshared", |bencher| {
        bencher.iter(|| {
            next += 1;
            persistent.insert(
                Arc::from(key_space_key(next % KEY_SPACE_KEYS)),
                value.clone(),
            )
        })
    });
    // A view taken, then an insert (which must copy the path it changes), then the
    // view dropped: what an apply costs while a snapshot holds a view.
    group.bench_function("imbl_view_then_insert", |bencher| {
        bencher.iter(|| {
            let view = persistent.clone();
            next += 1;
            persistent.insert(
                Arc::from(key_space_key(next % KEY_SPACE_KEYS)),
                value.clone(),
            );
            view
        })
    });
    group.bench_function("btree_insert", |bencher| {
        bencher.iter(|| {
            next += 1;
            btree.insert(key_space_key(next % KEY_SPACE_KEYS), value.to_vec())
        })
    });
    group.bench_function("imbl_get", |bencher| {
        bencher.iter(|| {
            persistent
                .get(black_box(probe.as_str()))
                .map(|value| value.len())
        })
    });
    group.bench_function("btree_get", |bencher| {
        bencher.iter(|| {
            btree
                .get(black_box(probe.as_str()))
                .map(|value| value.len())
        })
    });
    group.bench_function("imbl_range_100", |bencher| {
        bencher.iter(|| {
            persistent
                .range::<_, str>((
                    std::ops::Bound::Included(range_start.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take(100)
                .count()
        })
    });
    group.bench_function("btree_range_100", |bencher| {
        bencher.iter(|| btree.range(range_start.clone()..).take(100).count())
    });

    // The apply core: one 1-put entry on a state of 100,000 keys (overwriting them in
    // turn) and on an almost empty one (one key, overwritten).
    let entry = |log_index: u64, key_index: u64| {
        let log_id = LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            log_index,
        );
        Entry::new_normal(
            log_id,
            Command::Apply {
                ops: vec![Op::Put {
                    key: key_space_key(key_index),
                    value: value.clone(),
                }],
            },
        )
    };
    let mut full = AppliedState::new(16_384);
    for index in 1..=KEY_SPACE_KEYS {
        full = full.apply(entry(index, index)).0;
    }
    for (name, distinct_keys, mut state) in [
        ("apply_put_at_100k", KEY_SPACE_KEYS, full.clone()),
        ("apply_put_when_empty", 1, AppliedState::new(16_384)),
    ] {
        let mut log_index = state.last_applied().map_or(0, |log_id| log_id.index);
        group.bench_function(name, |bencher| {
            bencher.iter_batched(
                || {
                    log_index += 1;
                    entry(log_index, log_index % distinct_keys)
                },
                |entry| {
                    let (next, applied) =
                        std::mem::replace(&mut state, AppliedState::new(16_384)).apply(entry);
                    state = next;
                    applied
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The Merkle index the apply core keeps: a changed value in a group of 100,000 keys
    // (one bucket, one page of about 256 buckets and the group root of 256 pages are
    // rehashed), and the O(1) clone a sync serves from.
    let mount = arca::storage::KeyGroup::Mount("0b1c".to_string());
    let keys: Vec<String> = (0..KEY_SPACE_KEYS).map(key_space_key).collect();
    let mut merkle = arca::replication::merkle::MerkleIndex::from_entries(
        keys.iter()
            .map(|key| (key.as_str(), mount.clone(), &value[..])),
    );
    let mut change = 0_u64;
    group.bench_function("merkle_apply_at_100k", |bencher| {
        bencher.iter(|| {
            change += 1;
            let key = &keys[(change % KEY_SPACE_KEYS) as usize];
            merkle.apply(key.as_str(), &mount, Some(&change.to_le_bytes()));
        })
    });
    group.bench_function("merkle_clone_at_100k", |bencher| {
        bencher.iter(|| black_box(&merkle).clone())
    });
    group.sample_size(10);
    // What a node pays at start for the index it does not persist: one pass over
    // 100,000 replicated keys.
    group.bench_function("merkle_rebuild_100k", |bencher| {
        bencher.iter(|| {
            arca::replication::merkle::MerkleIndex::from_entries(
                keys.iter()
                    .map(|key| (key.as_str(), mount.clone(), &value[..])),
            )
            .root()
        })
    });
    group.bench_function("snapshot_encode_100k", |bencher| {
        bencher.iter(|| full.encode_snapshot().unwrap().len())
    });
    group.finish();
}

/// Read latency on a state machine holding 100,000 secrets, idle and while another
/// thread builds snapshots back to back (encode and write to `SimDisk`). The state
/// machine takes an O(1) view and encodes outside its lock, so reads should not wait
/// for a snapshot; before this change the whole map was encoded under the read lock,
/// so a read could wait for a full encode (`key_space_100k/snapshot_encode_100k`).
/// Prints p50/p99/max per phase; it is a measurement, not a criterion benchmark.
fn read_latency_during_snapshot(_criterion: &mut Criterion) {
    use std::sync::atomic::{AtomicBool, Ordering};

    use arca::raft::StateMachine;
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

    const READS: usize = 200_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut machine = runtime
        .block_on(StateMachine::open(Arc::new(SimDisk::new(1)), 16_384))
        .unwrap();
    let entries = (1..=KEY_SPACE_KEYS).map(|index| {
        let log_id = LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            index,
        );
        let entry = Entry::new_normal(
            log_id,
            Command::Apply {
                ops: vec![Op::Put {
                    key: key_space_key(index),
                    value: vec![0x5a; SECRET_BYTES].into(),
                }],
            },
        );
        Ok((entry, None))
    });
    runtime
        .block_on(machine.apply(futures::stream::iter(entries)))
        .unwrap();

    let measure = |phase: &str| {
        let mut latencies_ns: Vec<u64> = Vec::with_capacity(READS);
        for read in 0..READS {
            let key = key_space_key(1 + (read as u64 * 7919) % KEY_SPACE_KEYS);
            let started = std::time::Instant::now();
            black_box(machine.get(&key));
            latencies_ns.push(started.elapsed().as_nanos() as u64);
        }
        latencies_ns.sort_unstable();
        let at = |quantile: f64| latencies_ns[((READS as f64 - 1.0) * quantile) as usize];
        println!(
            "state_machine_read_100k/{phase}: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns ({READS} reads)",
            at(0.5),
            at(0.99),
            at(0.999),
            latencies_ns[READS - 1]
        );
    };
    measure("idle");

    let stop = Arc::new(AtomicBool::new(false));
    let builder = {
        let stop = stop.clone();
        let mut machine = machine.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut snapshots = 0_u32;
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                runtime.block_on(machine.build_snapshot()).unwrap();
                snapshots += 1;
            }
            (snapshots, started.elapsed())
        })
    };
    measure("while_building_snapshots");
    stop.store(true, Ordering::Relaxed);
    let (snapshots, elapsed) = builder.join().unwrap();
    println!(
        "state_machine_read_100k: {snapshots} snapshots built during the reads, {:.1} ms each",
        elapsed.as_secs_f64() * 1000.0 / f64::from(snapshots.max(1))
    );
}

criterion_group!(
    benches,
    key_space,
    read_latency_during_snapshot,
    barrier_seal_open,
    shamir_split_combine,
    acl_matching,
    kv_v2_engine,
    raft_log_append,
    sim_disk_sync
);
criterion_main!(benches);
