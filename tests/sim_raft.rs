//! Three Raft nodes in the simulator, each with a `SimDisk` held by the test (it
//! survives kills), a client writing unique keys throughout, and faults: the leader
//! killed with a power loss and restarted, then the leader cut off by a partition and
//! healed. At the end every acknowledged write is on every node and the nodes agree.
//!
//! Reproduce a seed: `MADSIM_TEST_SEED=<seed> RUSTFLAGS="--cfg madsim"
//! CARGO_TARGET_DIR=target-sim cargo test --test sim_raft`.

#![cfg(madsim)]
// The supervisor reads the simulator's virtual clock (madsim intercepts `Instant::now`).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca::env::{Disk, Env, SimDisk};
use arca::raft::{LogStoreOptions, NodeInfo, RaftNode, RaftOptions};
use arca::storage::Op;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::time::{Instant, sleep, timeout};
use openraft::async_runtime::WatchReceiver;

const NODES: usize = 3;
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Small segments and frequent snapshots, so a run rolls segments, compacts the log and
/// catches a restarted node up from a snapshot.
const OPTIONS: RaftOptions = RaftOptions {
    log: LogStoreOptions {
        segment_bytes_max: 2048,
        preallocate_bytes: 512,
    },
    snapshot_logs_since_last: 40,
    logs_kept_after_snapshot: 5,
    wal_buffer_entries_max: 64,
    clock_drift_margin: std::time::Duration::from_millis(
        arca::raft::node::CLOCK_DRIFT_MARGIN_MS_DEFAULT,
    ),
    timers: arca::raft::RaftTimers::DEFAULT,
};

struct SimNode {
    id: String,
    info: NodeInfo,
    disk: SimDisk,
    /// The running instance, replaced on every restart.
    slot: Arc<Mutex<Option<RaftNode>>>,
    alive: Arc<Mutex<bool>>,
    handle: NodeHandle,
}

impl SimNode {
    fn raft(&self) -> Option<RaftNode> {
        if *self.alive.lock().unwrap() {
            self.slot.lock().unwrap().clone()
        } else {
            None
        }
    }
}

fn build_node(runtime: &Handle, index: usize, seed: u64) -> SimNode {
    let id = format!("node-{}", index + 1);
    let address: SocketAddr = format!("10.0.0.{}:8201", index + 1).parse().unwrap();
    let info = NodeInfo {
        api_addr: format!("http://10.0.0.{}:8200", index + 1),
        cluster_addr: address.to_string(),
    };
    let disk = SimDisk::new(seed ^ (index as u64 + 1));
    let slot: Arc<Mutex<Option<RaftNode>>> = Arc::new(Mutex::new(None));
    let (init_id, init_info, init_disk, init_slot) =
        (id.clone(), info.clone(), disk.clone(), slot.clone());
    let handle = runtime
        .create_node()
        .name(id.clone())
        .ip(address.ip())
        .init(move || {
            let (id, info, disk, slot) = (
                init_id.clone(),
                init_info.clone(),
                init_disk.clone(),
                init_slot.clone(),
            );
            async move {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .expect("bind the cluster address");
                let rng = arca::env::SharedRng::from_u64(seed);
                let certificate = arca::channel::ClusterCa::generate(&rng)
                    .and_then(|ca| ca.issue(&rng, &id))
                    .expect("a member certificate");
                let node =
                    RaftNode::start_with_options(Env::in_memory(disk), id, info, listener, OPTIONS)
                        .await
                        .expect("a node starts on its own disk");
                node.set_member_identity(certificate)
                    .expect("the member certificate installs");
                *slot.lock().unwrap() = Some(node);
                // The node's tasks live as long as this init task does.
                std::future::pending::<()>().await;
            }
        })
        .build();
    SimNode {
        id,
        info,
        disk,
        slot,
        alive: Arc::new(Mutex::new(true)),
        handle,
    }
}

fn leader(nodes: &[SimNode]) -> Option<(usize, RaftNode)> {
    nodes.iter().enumerate().find_map(|(index, node)| {
        node.raft()
            .filter(|raft| raft.is_leader())
            .map(|raft| (index, raft))
    })
}

async fn wait_for_leader(nodes: &[SimNode]) -> (usize, RaftNode) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        if let Some(found) = leader(nodes) {
            return found;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        sleep(Duration::from_millis(50)).await;
    }
}

#[madsim::test]
async fn acknowledged_writes_survive_kills_power_loss_and_partitions() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let runtime = Handle::current();
    let seed = runtime.seed();
    let start = Instant::now();
    let nodes: Arc<Vec<SimNode>> = Arc::new(
        (0..NODES)
            .map(|index| build_node(&runtime, index, seed))
            .collect(),
    );
    let net = NetSim::current();
    sleep(Duration::from_millis(100)).await;
    let elapsed = || format!("{:>7.3?}", start.elapsed());

    // Phase 1: bootstrap node-1 and grow the cluster to three voters.
    let first = nodes[0].raft().unwrap();
    first.bootstrap().await.unwrap();
    let (_, bootstrap_leader) = wait_for_leader(&nodes).await;
    for node in &nodes[1..] {
        bootstrap_leader
            .add_voter(node.id.clone(), node.info.clone())
            .await
            .unwrap();
    }
    println!(
        "{} cluster of {NODES} voters, leader {}",
        elapsed(),
        bootstrap_leader.node_id()
    );

    // A client writes unique keys through whichever node leads, the whole time.
    let acknowledged: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let stop = Arc::new(Mutex::new(false));
    let client = {
        let (nodes, acknowledged, stop) = (nodes.clone(), acknowledged.clone(), stop.clone());
        madsim::task::spawn(async move {
            let mut attempt = 0u64;
            while !*stop.lock().unwrap() {
                attempt += 1;
                let Some((_, raft)) = leader(&nodes) else {
                    sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let key = format!("logical/m/secret/{attempt:05}");
                let value = format!("value-{attempt}").into_bytes();
                let ops = vec![Op::Put {
                    key: key.clone(),
                    value: value.clone().into(),
                }];
                if let Ok(Ok(_)) = timeout(WRITE_TIMEOUT, raft.backend().commit(ops)).await {
                    acknowledged.lock().unwrap().insert(key, value);
                }
                sleep(Duration::from_millis(
                    10 + madsim::rand::random::<u64>() % 20,
                ))
                .await;
            }
        })
    };
    sleep(Duration::from_millis(500)).await;

    // Phase 2: kill the leader, lose its unsynced writes, restart it.
    for round in 0..2 {
        let (victim, _) = wait_for_leader(&nodes).await;
        println!(
            "{} round {round}: kill leader {} with power loss",
            elapsed(),
            nodes[victim].id
        );
        *nodes[victim].alive.lock().unwrap() = false;
        runtime.kill(nodes[victim].handle.id());
        nodes[victim].disk.crash(true);
        sleep(Duration::from_millis(
            1000 + madsim::rand::random::<u64>() % 1000,
        ))
        .await;
        let (next, _) = wait_for_leader(&nodes).await;
        println!("{} new leader {}", elapsed(), nodes[next].id);
        runtime.restart(nodes[victim].handle.id());
        sleep(Duration::from_millis(200)).await;
        *nodes[victim].alive.lock().unwrap() = true;
        sleep(Duration::from_millis(500)).await;
    }

    // Phase 3: cut the leader off; the majority elects another; heal.
    let (isolated, _) = wait_for_leader(&nodes).await;
    println!(
        "{} partition: isolate leader {}",
        elapsed(),
        nodes[isolated].id
    );
    net.clog_node(nodes[isolated].handle.id());
    sleep(Duration::from_millis(
        2500 + madsim::rand::random::<u64>() % 1000,
    ))
    .await;
    net.unclog_node(nodes[isolated].handle.id());
    println!("{} heal", elapsed());
    sleep(Duration::from_millis(1000)).await;

    *stop.lock().unwrap() = true;
    client.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    println!("{} {} writes acknowledged", elapsed(), acknowledged.len());
    assert!(
        acknowledged.len() > 20,
        "the cluster made too little progress"
    );

    // Every acknowledged write is on every node, and the nodes agree on everything.
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let states: Vec<Vec<(String, Vec<u8>)>> = nodes
            .iter()
            .map(|node| {
                node.raft()
                    .map(|raft| raft.state_machine().dump())
                    .unwrap_or_default()
            })
            .collect();
        // Each node's WAL (last index, then the buffered entries): derived from the same
        // log, it must be the same everywhere, and dense.
        type Wal = (u64, Vec<(u64, u64, String)>);
        let wals: Vec<Wal> = nodes
            .iter()
            .map(|node| {
                node.raft()
                    .map(|raft| {
                        let view = raft.state_machine().view();
                        let entries = view
                            .wal()
                            .iter()
                            .map(|entry| (entry.wal_index, entry.log_index, entry.key.to_string()))
                            .collect();
                        (view.wal().last_wal_index(), entries)
                    })
                    .unwrap_or_default()
            })
            .collect();
        for (last_wal_index, entries) in &wals {
            let indexes: Vec<u64> = entries.iter().map(|entry| entry.0).collect();
            let first = last_wal_index + 1 - indexes.len() as u64;
            assert_eq!(
                indexes,
                (first..=*last_wal_index).collect::<Vec<u64>>(),
                "WAL indexes are dense"
            );
        }
        let complete = states.iter().all(|state| {
            let map: BTreeMap<_, _> = state.iter().cloned().collect();
            acknowledged
                .iter()
                .all(|(key, value)| map.get(key) == Some(value))
        });
        if complete
            && states.windows(2).all(|pair| pair[0] == pair[1])
            && wals.windows(2).all(|pair| pair[0] == pair[1])
        {
            println!(
                "{} converged: {} keys and WAL index {} on each of {NODES} nodes",
                elapsed(),
                states[0].len(),
                wals[0].0
            );
            for node in nodes.iter() {
                let raft = node.raft().unwrap();
                let metrics = raft.raft().metrics().borrow_watched().clone();
                println!(
                    "{} {}: {:?} snapshot {:?} purged {:?} segments {} fsyncs {}",
                    elapsed(),
                    node.id,
                    raft.status(),
                    metrics.snapshot.map(|log_id| log_id.index),
                    metrics.purged.map(|log_id| log_id.index),
                    node.disk.list("raft/log").unwrap().len(),
                    node.disk.stats().fsyncs
                );
            }
            break;
        }
        if Instant::now() >= deadline {
            for (node, state) in nodes.iter().zip(&states) {
                let map: BTreeMap<_, _> = state.iter().cloned().collect();
                let missing: Vec<&String> = acknowledged
                    .keys()
                    .filter(|key| !map.contains_key(*key))
                    .collect();
                println!(
                    "{} {}: {} keys, status {:?}, missing {:?}",
                    elapsed(),
                    node.id,
                    state.len(),
                    node.raft().map(|raft| raft.status()),
                    missing
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge on the acknowledged writes"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[madsim::test]
async fn concurrent_commits_share_fsyncs() {
    const WRITES: u64 = 200;
    let runtime = Handle::current();
    let nodes = [build_node(&runtime, 0, runtime.seed())];
    sleep(Duration::from_millis(100)).await;
    let node = nodes[0].raft().unwrap();
    node.bootstrap().await.unwrap();

    // Many clients at once: openraft batches their entries and the log writer syncs
    // whatever is queued together.
    let fsyncs_before = nodes[0].disk.stats().fsyncs;
    let commits = (0..WRITES).map(|index| {
        let backend = node.backend();
        async move {
            backend
                .commit(vec![Op::Put {
                    key: format!("logical/m/secret/{index}"),
                    value: vec![1].into(),
                }])
                .await
        }
    });
    let results = futures::future::join_all(commits).await;
    assert!(results.iter().all(Result::is_ok));
    let fsyncs = nodes[0].disk.stats().fsyncs - fsyncs_before;
    println!("{WRITES} concurrent commits, {fsyncs} fsyncs");
    assert!(fsyncs * 4 <= WRITES, "{fsyncs} fsyncs for {WRITES} commits");
    assert_eq!(
        node.state_machine().list("logical/m/secret/").len() as u64,
        WRITES
    );
}
