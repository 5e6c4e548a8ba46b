//! Three real nodes on loopback TCP with file disks: election, replication, failover,
//! and a restarted node catching up from its own files.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::env::Env;

const WAIT: Duration = Duration::from_secs(20);

async fn start_node(dir: &Path, node_id: &str, cluster_addr: Option<&str>) -> RaftNode {
    let listener = tokio::net::TcpListener::bind(cluster_addr.unwrap_or("127.0.0.1:0"))
        .await
        .unwrap();
    let cluster_addr = listener.local_addr().unwrap().to_string();
    let env = Env::production(dir).unwrap();
    let info = NodeInfo {
        api_addr: format!("http://{node_id}.api"),
        cluster_addr,
    };
    let node = RaftNode::start(env, node_id.to_string(), info, listener)
        .await
        .unwrap();
    // What an unsealed node holds: a member certificate under the cluster's CA.
    static CA: std::sync::OnceLock<crate::channel::ClusterCa> = std::sync::OnceLock::new();
    let rng = crate::env::SharedRng::from_entropy();
    let ca = CA.get_or_init(|| crate::channel::ClusterCa::generate(&rng).unwrap());
    node.set_member_identity(ca.issue(&rng, node_id).unwrap())
        .unwrap();
    node
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT; // seam-ok: test harness
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}"); // seam-ok: test harness
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leader_of(nodes: &[&RaftNode]) -> Option<RaftNode> {
    nodes
        .iter()
        .find(|node| node.is_leader())
        .map(|node| (*node).clone())
}

/// Commit through whichever node leads, retrying across elections.
async fn write(nodes: &[&RaftNode], key: &str, value: &[u8]) -> u64 {
    let deadline = Instant::now() + WAIT; // seam-ok: test harness
    loop {
        if let Some(leader) = leader_of(nodes) {
            let ops = vec![Op::Put {
                key: key.to_string(),
                value: value.to_vec().into(),
            }];
            match leader.backend().commit(ops).await {
                Ok(index) => return index,
                Err(error) => tracing::info!(%error, "write retried"),
            }
        }
        assert!(Instant::now() < deadline, "no leader accepted {key}"); // seam-ok: test harness
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n1 = start_node(dirs[0].path(), "n1", None).await;
    let n2 = start_node(dirs[1].path(), "n2", None).await;
    let n3 = start_node(dirs[2].path(), "n3", None).await;

    // Bootstrap n1 alone, then grow to three voters.
    assert!(!n1.is_bootstrapped().await.unwrap());
    n1.bootstrap().await.unwrap();
    assert!(matches!(
        n1.bootstrap().await,
        Err(RaftError::AlreadyInitialized)
    ));
    wait_until("n1 to lead", || n1.is_leader()).await;
    n1.add_voter("n2".to_string(), n2.info().clone())
        .await
        .unwrap();
    n1.add_voter("n3".to_string(), n3.info().clone())
        .await
        .unwrap();
    let configuration = n1.configuration();
    assert_eq!(configuration.len(), 3);
    assert!(configuration.iter().all(|peer| peer.voter));
    assert_eq!(configuration.iter().filter(|peer| peer.leader).count(), 1);

    // Writes replicate to every node; a follower refuses to commit and names the leader.
    for index in 0..10 {
        write(
            &[&n1, &n2, &n3],
            &format!("logical/m/secret/{index}"),
            b"v1",
        )
        .await;
    }
    for node in [&n1, &n2, &n3] {
        wait_until("replication", || {
            node.state_machine().get("logical/m/secret/9").is_some()
        })
        .await;
    }
    assert_eq!(n2.backend().list("logical/m/secret/").unwrap().len(), 10);
    let refused = n2
        .backend()
        .commit(vec![Op::Delete {
            key: "logical/m/secret/0".to_string(),
        }])
        .await;
    assert_eq!(
        refused,
        Err(StorageError::NotLeader {
            leader_api_addr: Some("http://n1.api".to_string())
        })
    );

    // The leader stops: another node takes over and writes continue.
    let n1_cluster_addr = n1.info().cluster_addr.clone();
    n1.shutdown().await.unwrap();
    drop(n1);
    wait_until("a new leader", || n2.is_leader() || n3.is_leader()).await;
    for index in 10..20 {
        write(&[&n2, &n3], &format!("logical/m/secret/{index}"), b"v2").await;
    }

    // n1 restarts on its own files and catches up.
    let n1 = start_node(dirs[0].path(), "n1", Some(&n1_cluster_addr)).await;
    assert!(n1.is_bootstrapped().await.unwrap());
    wait_until("n1 to catch up", || {
        n1.state_machine().get("logical/m/secret/19").is_some()
    })
    .await;
    let expected = n2.state_machine().dump();
    wait_until("n1 to converge", || n1.state_machine().dump() == expected).await;
    assert_eq!(expected.len(), 20);
    let status = n1.status();
    assert!(status.applied_index >= 20 && status.term >= 2, "{status:?}");

    // The leader removes a peer; an unknown peer is a typed error.
    let leader = leader_of(&[&n1, &n2, &n3]).unwrap();
    let removed = if leader.node_id() == "n3" { "n2" } else { "n3" };
    leader.remove_peer(removed).await.unwrap();
    let configuration = leader.configuration();
    assert_eq!(configuration.len(), 2, "{configuration:?}");
    assert!(configuration.iter().all(|peer| peer.node_id != removed));
    assert!(matches!(
        leader.remove_peer("nobody").await,
        Err(RaftError::UnknownPeer(_))
    ));
    write(&[&leader], "logical/m/secret/after-removal", b"v3").await;

    for node in [&n1, &n2, &n3] {
        node.shutdown().await.unwrap();
    }
}

/// A hand-over moves the lead at once, and the old leader's read lease goes first: the
/// followers stop refusing votes when told of the hand-over, so a lease kept past it could
/// answer reads while the new leader commits writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_moves_the_lead_and_revokes_the_read_lease_first() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n1 = start_node(dirs[0].path(), "n1", None).await;
    let n2 = start_node(dirs[1].path(), "n2", None).await;
    let n3 = start_node(dirs[2].path(), "n3", None).await;
    n1.bootstrap().await.unwrap();
    wait_until("n1 to lead", || n1.is_leader()).await;
    for node in [&n2, &n3] {
        n1.add_voter(node.node_id().to_string(), node.info().clone())
            .await
            .unwrap();
    }
    write(&[&n1], "logical/m/secret/before", b"v1").await;
    wait_until("n2 to hold the write", || {
        n2.state_machine().get("logical/m/secret/before").is_some()
    })
    .await;

    n1.confirm_leadership().await.unwrap();
    let term = n1.status().term;
    assert!(n1.lease_holds(term), "a confirmation leaves a lease");

    n1.transfer_leadership("n2".to_string()).await.unwrap();
    assert!(
        !n1.lease_holds(term),
        "the lease is revoked before the hand-over"
    );
    // Well inside the revoked lease's lifetime, the old leader no longer confirms.
    assert!(n1.confirm_leadership().await.is_err());
    wait_until("n2 to lead", || n2.is_leader()).await;
    assert!(n2.status().term > term);
    write(&[&n2], "logical/m/secret/after", b"v2").await;
    wait_until("n1 to follow n2", || {
        !n1.is_leader() && n1.state_machine().get("logical/m/secret/after").is_some()
    })
    .await;
    assert!(n1.confirm_leadership().await.is_err());

    for node in [n1, n2, n3] {
        node.shutdown().await.unwrap();
    }
}
