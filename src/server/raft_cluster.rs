//! The Raft node seen as the core's [`Cluster`].

use futures::future::BoxFuture;

use crate::channel::frame::{decode_body, encode_body};
use crate::channel::{ForwardRequest, ForwardResponse, Lane, Protocol};
use crate::core::forwarding::FORWARD_TIMEOUT;
use crate::core::{Cluster, NodeAddress, Peer, RaftIndexes};
use crate::raft::{NodeInfo, RaftNode};
use crate::storage::SharedBackend;

#[derive(Debug)]
pub struct RaftCluster {
    raft: RaftNode,
}

impl RaftCluster {
    pub fn new(raft: RaftNode) -> Self {
        Self { raft }
    }
}

impl Cluster for RaftCluster {
    fn backend(&self) -> SharedBackend {
        self.raft.backend()
    }

    fn is_bootstrapped(&self) -> bool {
        !self.raft.configuration().is_empty()
    }

    fn bootstrap(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.raft
                .bootstrap()
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn set_channel_identity(
        &self,
        certificate: Option<crate::channel::NodeCertificate>,
    ) -> Result<(), String> {
        let identity = self.raft.channel_client().identity();
        match certificate {
            Some(certificate) => self
                .raft
                .set_member_identity(certificate)
                .map_err(|error| error.to_string())?,
            None => {
                identity.clear();
            }
        }
        Ok(())
    }

    fn set_replication_clients(
        &self,
        clients: Option<crate::channel::tls::ReplicationClients>,
    ) -> Result<(), String> {
        self.raft
            .channel_client()
            .identity()
            .set_replication_clients(clients)
            .map_err(|error| error.to_string())
    }

    fn follower_identity_trusts(&self, ca_cert_der: &[u8]) -> bool {
        self.raft
            .channel_client()
            .identity()
            .follower_trusts(ca_cert_der)
    }

    fn set_follower_identity(
        &self,
        certificate: crate::channel::NodeCertificate,
    ) -> Result<(), String> {
        self.raft
            .channel_client()
            .identity()
            .install_follower(certificate)
            .map_err(|error| error.to_string())
    }

    fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    fn disk_full(&self) -> bool {
        self.raft.disk_full()
    }

    fn leader(&self) -> Option<NodeAddress> {
        self.raft.leader().map(|(node_id, info)| NodeAddress {
            node_id,
            api_addr: info.api_addr,
            // Raft stores the bare host:port it dials; clients are shown Vault's form.
            cluster_addr: format!("https://{}", info.cluster_addr),
        })
    }

    fn add_voter(&self, node: NodeAddress) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let info = NodeInfo {
                api_addr: node.api_addr,
                cluster_addr: crate::http::client::host_port(&node.cluster_addr)
                    .unwrap_or(node.cluster_addr),
            };
            self.raft
                .add_voter(node.node_id, info)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn remove_peer(&self, node_id: &str) -> BoxFuture<'_, Result<(), String>> {
        let node_id = node_id.to_string();
        Box::pin(async move {
            self.raft
                .remove_peer(&node_id)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn configuration(&self) -> Vec<Peer> {
        self.raft
            .configuration()
            .into_iter()
            .map(|peer| Peer {
                node_id: peer.node_id,
                address: peer.address,
                api_address: peer.api_address,
                leader: peer.leader,
                voter: peer.voter,
                last_acknowledged: peer.last_acknowledged,
                matched_index: peer.matched_index,
            })
            .collect()
    }

    fn step_down(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if !self.raft.is_leader() {
                return Ok(());
            }
            let me = self.raft.node_id().to_string();
            let voters: Vec<(String, Option<u64>)> = self
                .raft
                .configuration()
                .into_iter()
                .filter(|peer| peer.voter)
                .map(|peer| (peer.node_id, peer.matched_index))
                .collect();
            let Some(target) = hand_over_target(&me, voters) else {
                return Ok(());
            };
            self.raft
                .transfer_leadership(target)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.raft
                .confirm_leadership()
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn forward(
        &self,
        leader: &NodeAddress,
        request: ForwardRequest,
    ) -> BoxFuture<'_, Result<ForwardResponse, String>> {
        let address = crate::http::client::host_port(&leader.cluster_addr)
            .unwrap_or_else(|_| leader.cluster_addr.clone());
        Box::pin(async move {
            let payload = encode_body(&request).map_err(|error| error.to_string())?;
            let reply = self
                .raft
                .channel_client()
                .call(
                    &address,
                    Protocol::Forward,
                    Lane::Control,
                    payload,
                    FORWARD_TIMEOUT,
                )
                .await
                .map_err(|error| error.to_string())?;
            decode_body(&reply).map_err(|error| error.to_string())
        })
    }

    fn indexes(&self) -> RaftIndexes {
        let status = self.raft.status();
        RaftIndexes {
            term: status.term,
            committed: status.committed_index,
            committed_term: status.committed_term,
            applied: status.applied_index,
        }
    }
}

/// The voter a leader hands over to when it steps down, from each voter's id and the
/// highest log index it is known to hold: among the voters furthest along (openraft
/// ignores a hand-over to one that lacks the leader's last entry, and an election
/// follows), the next one after this node in id order, wrapping around. Deterministic,
/// and repeated step-downs of an idle cluster visit every voter (a fixed choice, such as
/// the lowest other id, would bounce the lead between two nodes). None when this node is
/// the only voter.
fn hand_over_target(me: &str, voters: Vec<(String, Option<u64>)>) -> Option<String> {
    let others: Vec<(String, Option<u64>)> = voters
        .into_iter()
        .filter(|(voter, _)| voter != me)
        .collect();
    let furthest = others.iter().map(|(_, matched)| *matched).max()?;
    let mut candidates: Vec<String> = others
        .into_iter()
        .filter(|(_, matched)| *matched == furthest)
        .map(|(voter, _)| voter)
        .collect();
    candidates.sort();
    let after_me = candidates.iter().find(|voter| voter.as_str() > me).cloned();
    after_me.or_else(|| candidates.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::hand_over_target;

    fn voters(ids: &[&str]) -> Vec<(String, Option<u64>)> {
        ids.iter().map(|id| (id.to_string(), Some(7))).collect()
    }

    #[test]
    fn step_downs_hand_the_lead_round_the_voters() {
        let all = voters(&["node3", "node1", "node2"]);
        assert_eq!(
            hand_over_target("node1", all.clone()).as_deref(),
            Some("node2")
        );
        assert_eq!(
            hand_over_target("node2", all.clone()).as_deref(),
            Some("node3")
        );
        assert_eq!(
            hand_over_target("node3", all.clone()).as_deref(),
            Some("node1")
        );
        assert_eq!(hand_over_target("node1", voters(&["node1"])), None);
    }

    #[test]
    fn a_step_down_passes_over_a_voter_that_lags() {
        let lagging = vec![
            ("node1".to_string(), Some(9)),
            ("node2".to_string(), Some(8)),
            ("node3".to_string(), Some(9)),
        ];
        assert_eq!(hand_over_target("node1", lagging).as_deref(), Some("node3"));
        let unknown = vec![
            ("node1".to_string(), Some(9)),
            ("node2".to_string(), None),
            ("node3".to_string(), Some(4)),
        ];
        assert_eq!(hand_over_target("node1", unknown).as_deref(), Some("node3"));
    }
}
