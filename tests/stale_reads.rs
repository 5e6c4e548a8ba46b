//! No stale reads and no stale authorizations from a paused active node (issue 9).
//!
//! A three-node cluster of real processes. The active node is frozen with `SIGSTOP` while
//! its peers elect a new one, and resumed with `SIGCONT`: it wakes up still believing it
//! leads, with requests waiting in its sockets. Two stories:
//!
//! 1. A check-and-set counter bumped through every node while readers read it through
//!    every node, the active node paused and resumed several times (and once both of its
//!    followers instead). A single-register
//!    linearizability check in real time: no read returns an older version than the newest
//!    one acknowledged before the read began, and no acknowledged version is lost.
//! 2. A token revoked on the new active node while the old one is paused: a read with that
//!    token, queued on the paused node, is refused once it resumes, and the token is
//!    refused through every node.

// Test harness: real processes, threads and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TestCluster, call, client, eventually};

/// How long the active node stays frozen: several election timeouts, so a new leader is
/// elected and acknowledges writes while the old one sleeps.
const PAUSE: Duration = Duration::from_secs(3);
/// How many times the active node is paused in story 1 (`ARCA_STALE_READ_PAUSES`).
const PAUSES_DEFAULT: usize = 4;
/// How long the writer waits for one answer before it tries the next node.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Readers, each sending a read to the next node every `READ_INTERVAL`.
const READERS: usize = 3;
const READ_INTERVAL: Duration = Duration::from_millis(150);
/// A bound on reads waiting for an answer at once (threads of this test).
const READS_IN_FLIGHT_MAX: usize = 256;

/// A write the writer saw acknowledged: the version it created and when the answer came.
#[derive(Debug, Clone, Copy)]
struct Acknowledged {
    version: u64,
    at: Instant,
}

/// A read that succeeded: when it was sent, when it came back, what it saw, through whom.
#[derive(Debug, Clone)]
struct Read {
    began: Instant,
    ended: Instant,
    version: u64,
    node: usize,
}

/// Tells the workers to stop when the test ends, also when it ends by a failed check.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn counter_version(body: &Value) -> Option<u64> {
    body["data"]["metadata"]["version"].as_u64()
}

#[test]
fn a_paused_active_node_never_answers_reads_from_old_state() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let cluster = TestCluster::start(root.path(), &http);
    let token = cluster.root_token.clone();
    let (status, body) = call(
        &http,
        "POST",
        &cluster.addresses[0],
        "sys/mounts/kv",
        Some(&token),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");
    eventually(Duration::from_secs(30), "the first counter write", || {
        let (status, _) = call(
            &http,
            "POST",
            &cluster.addresses[0],
            "kv/data/counter",
            Some(&token),
            Some(&json!({"options": {"cas": 0}, "data": {"n": 1}})),
        )
        .ok()?;
        (status == 200).then_some(())
    });

    // Phase 1: one writer bumps the counter with check-and-set, through every node in
    // turn; three readers read it, each through every node in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::new(Mutex::new(vec![Acknowledged {
        version: 1,
        at: Instant::now(),
    }]));
    let reads: Arc<Mutex<Vec<Read>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    {
        let (stop, acknowledged, addresses, token) = (
            stop.clone(),
            acknowledged.clone(),
            cluster.addresses.clone(),
            token.clone(),
        );
        workers.push(std::thread::spawn(move || {
            // A short timeout: a write sent to the frozen node is given up (its outcome
            // unknown) and the writer moves on, so versions keep being acknowledged by
            // the new active node while the old one sleeps.
            let http = reqwest::blocking::Client::builder()
                .timeout(WRITE_TIMEOUT)
                .build()
                .unwrap();
            let mut known_version = 1;
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let address = &addresses[turn % addresses.len()];
                let answer = call(
                    &http,
                    "POST",
                    address,
                    "kv/data/counter",
                    Some(&token),
                    Some(&json!({"options": {"cas": known_version}, "data": {"n": known_version + 1}})),
                );
                match answer {
                    Ok((200, body)) => {
                        let version = body["data"]["version"].as_u64().expect("a version");
                        assert_eq!(version, known_version + 1, "CAS wrote a new version");
                        known_version = version;
                        acknowledged.lock().unwrap().push(Acknowledged {
                            version,
                            at: Instant::now(),
                        });
                    }
                    // Unknown outcome or a CAS mismatch: learn the current version again.
                    _ => {
                        if let Ok((200, body)) =
                            call(&http, "GET", address, "kv/data/counter", Some(&token), None)
                            && let Some(version) = counter_version(&body)
                        {
                            known_version = known_version.max(version);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }));
    }
    // Readers do not wait for one answer before asking again: each read runs on its own
    // thread, so reads sent to a frozen node pile up in its socket, some of them sent
    // after the new active node acknowledged newer versions. Those are the reads a
    // resumed node could answer from old state.
    let in_flight = Arc::new(AtomicUsize::new(0));
    for reader in 0..READERS {
        let (stop, reads, addresses, token, in_flight) = (
            stop.clone(),
            reads.clone(),
            cluster.addresses.clone(),
            token.clone(),
            in_flight.clone(),
        );
        workers.push(std::thread::spawn(move || {
            // One client per reader, shared by its reads: a client has its own runtime
            // thread, and a client per read would load the two cores more than the nodes.
            let http = client();
            let mut turn = reader;
            let mut pending = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(READ_INTERVAL);
                if in_flight.load(Ordering::Relaxed) >= READS_IN_FLIGHT_MAX {
                    continue;
                }
                turn += 1;
                let node = turn % addresses.len();
                let (http, reads, address, token, in_flight) = (
                    http.clone(),
                    reads.clone(),
                    addresses[node].clone(),
                    token.clone(),
                    in_flight.clone(),
                );
                in_flight.fetch_add(1, Ordering::Relaxed);
                pending.push(std::thread::spawn(move || {
                    let began = Instant::now();
                    let answer = call(
                        &http,
                        "GET",
                        &address,
                        "kv/data/counter",
                        Some(&token),
                        None,
                    );
                    let ended = Instant::now();
                    if let Ok((200, body)) = answer {
                        let version = counter_version(&body).expect("a version");
                        reads.lock().unwrap().push(Read {
                            began,
                            ended,
                            version,
                            node,
                        });
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            for read in pending {
                read.join().unwrap();
            }
        }));
    }

    // Phase 2: freeze the active node while the others elect a new one; resume it.
    let pauses = std::env::var("ARCA_STALE_READ_PAUSES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(PAUSES_DEFAULT);
    for round in 0..pauses {
        std::thread::sleep(Duration::from_millis(1500));
        let leader = cluster.leader(&http);
        eprintln!("round {round}: pausing the active node, node{}", leader + 1);
        cluster.nodes[leader].pause();
        std::thread::sleep(PAUSE);
        cluster.nodes[leader].resume();
        // Once, the other way round: the active node runs on while both of its followers
        // sleep, so its lease lapses and it cannot confirm that it leads. It must refuse
        // or delay reads, not serve them on faith.
        if round == 1 {
            std::thread::sleep(Duration::from_millis(1500));
            let leader = cluster.leader(&http);
            let followers: Vec<usize> = (0..3).filter(|index| *index != leader).collect();
            eprintln!(
                "round {round}: pausing both followers of node{}",
                leader + 1
            );
            for follower in &followers {
                cluster.nodes[*follower].pause();
            }
            std::thread::sleep(PAUSE);
            for follower in &followers {
                cluster.nodes[*follower].resume();
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    eprintln!("waiting for the workers");
    for worker in workers {
        worker.join().unwrap();
    }

    // Phase 3: the checks.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let reads = reads.lock().unwrap().clone();
    let highest_acknowledged = acknowledged.iter().map(|ack| ack.version).max().unwrap();
    assert!(
        acknowledged.len() > 10 && reads.len() > 100,
        "the workload made progress: {} writes, {} reads acknowledged",
        acknowledged.len(),
        reads.len()
    );
    let stale: Vec<String> = reads
        .iter()
        .filter_map(|read| {
            let newest_before = acknowledged
                .iter()
                .filter(|ack| ack.at < read.began)
                .map(|ack| ack.version)
                .max()
                .unwrap_or(0);
            (read.version < newest_before).then(|| {
                format!(
                    "node{} answered version {} ({} ms) after version {newest_before} was acknowledged",
                    read.node + 1,
                    read.version,
                    read.ended.duration_since(read.began).as_millis()
                )
            })
        })
        .collect();
    assert!(stale.is_empty(), "stale reads:\n{}", stale.join("\n"));
    for (index, address) in cluster.addresses.iter().enumerate() {
        let version = eventually(Duration::from_secs(30), "a final read", || {
            match call(&http, "GET", address, "kv/data/counter", Some(&token), None) {
                Ok((200, body)) => counter_version(&body),
                _ => None,
            }
        });
        assert!(
            version >= highest_acknowledged,
            "node{} lost acknowledged version {highest_acknowledged} (has {version})",
            index + 1
        );
    }
    let mut latencies: Vec<u128> = reads
        .iter()
        .map(|read| read.ended.duration_since(read.began).as_millis())
        .collect();
    latencies.sort_unstable();
    eprintln!(
        "read latency p50 {} ms, p90 {} ms, max {} ms",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
        latencies[latencies.len() - 1]
    );
    eprintln!(
        "{} writes and {} reads acknowledged over {pauses} pauses; none stale",
        acknowledged.len(),
        reads.len()
    );
}

#[test]
fn a_token_revoked_while_the_old_active_node_sleeps_is_refused_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let cluster = TestCluster::start(root.path(), &http);
    let root_token = cluster.root_token.clone();

    // Phase 1: a secret, a read policy, and a token holding it.
    let setup: [(&str, &str, Value, u16); 3] = [
        (
            "POST",
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": "2"}}),
            204,
        ),
        (
            "PUT",
            "sys/policies/acl/reader",
            json!({"policy": "path \"kv/data/*\" { capabilities = [\"read\"] }"}),
            204,
        ),
        (
            "POST",
            "kv/data/app",
            json!({"data": {"password": "only-for-valid-tokens"}}),
            200,
        ),
    ];
    for (method, path, body, expected) in setup {
        let (status, answer) = call(
            &http,
            method,
            &cluster.addresses[0],
            path,
            Some(&root_token),
            Some(&body),
        )
        .unwrap();
        assert_eq!(status, expected, "{path}: {answer}");
    }
    let (status, created) = call(
        &http,
        "POST",
        &cluster.addresses[0],
        "auth/token/create",
        Some(&root_token),
        Some(&json!({"policies": ["reader"]})),
    )
    .unwrap();
    assert_eq!(status, 200, "{created}");
    let reader = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let old_leader = cluster.leader(&http);
    let (status, _) = call(
        &http,
        "GET",
        &cluster.addresses[old_leader],
        "kv/data/app",
        Some(&reader),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "the token reads before it is revoked");

    // Phase 2: freeze the active node; the others elect a new one, which revokes the token.
    cluster.nodes[old_leader].pause();
    let others: Vec<usize> = (0..3).filter(|index| *index != old_leader).collect();
    let new_leader = eventually(Duration::from_secs(30), "a new active node", || {
        others
            .iter()
            .filter_map(|index| cluster.leader_seen_by(&http, *index))
            .find(|leader| *leader != old_leader)
    });
    eventually(Duration::from_secs(30), "the revocation", || {
        let (status, _) = call(
            &http,
            "POST",
            &cluster.addresses[new_leader],
            "auth/token/revoke",
            Some(&root_token),
            Some(&json!({"token": reader})),
        )
        .ok()?;
        (status == 204).then_some(())
    });
    let (status, _) = call(
        &http,
        "GET",
        &cluster.addresses[new_leader],
        "kv/data/app",
        Some(&reader),
        None,
    )
    .unwrap();
    assert_eq!(status, 403, "the new active node refuses the revoked token");

    // Phase 3: a read with the revoked token waits in the sleeping node's socket; the node
    // resumes and must not answer it from its old state.
    let queued = {
        let (address, reader) = (cluster.addresses[old_leader].clone(), reader.clone());
        std::thread::spawn(move || {
            call(
                &client(),
                "GET",
                &address,
                "kv/data/app",
                Some(&reader),
                None,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.nodes[old_leader].resume();
    let answer = queued.join().unwrap();
    if let Ok((status, body)) = &answer {
        assert_ne!(
            *status, 200,
            "the resumed old active node served a revoked token: {body}"
        );
        assert!(
            !body.to_string().contains("only-for-valid-tokens"),
            "the secret leaked: {body}"
        );
    }

    // Phase 4: the token is refused through every node.
    for (index, address) in cluster.addresses.iter().enumerate() {
        let status = eventually(Duration::from_secs(30), "an answer", || {
            match call(&http, "GET", address, "kv/data/app", Some(&reader), None) {
                Ok((status, _)) if status != 503 => Some(status),
                _ => None,
            }
        });
        assert_eq!(status, 403, "node{} refuses the revoked token", index + 1);
    }
}
