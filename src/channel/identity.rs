//! Who a node is on the cluster channel.
//!
//! - [`ClusterCa`]: the cluster's certificate authority, created at init and stored under
//!   the barrier (a local key: every cluster has its own, and an activation keeps it), so
//!   only an unsealed node can read it.
//! - [`NodeCertificate`]: what a node issues itself from the CA when it unseals, with a
//!   fresh key, in two kinds:
//!   - a *member* certificate, good for serving and dialing every protocol, which lives in
//!     memory only: a sealed node has none;
//!   - a *follower* certificate, good for `arca-raft/1` only (it lacks the name that
//!     forwarding and replication clients ask for, and the node dials nothing else with
//!     it), kept on the node's disk so that a sealed node still takes part in Raft.
//!     Unlike Vault, whose state machine is a database on disk, Arca rebuilds its state
//!     from the log and needs the commit index from its leader before an unseal can read
//!     the seal it must open; a restarted node that missed a rekey catches up while sealed.
//! - [`ChannelIdentity`]: the node's current identities, shared by its channel server and
//!   client. With neither, the node's channel refuses every peer and dials none.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::protocol::Protocol;
use super::tls::{
    CLUSTER_SERVER_NAME, ChannelTls, FOLLOWER_SERVER_NAME, ReplicationClients,
    ReplicationClientsVerifier, SeamCrypto, Standing, TlsSetupError,
};
use crate::env::{Clock, SharedRng};

/// The fixed prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410 §7), before the
/// 32-byte seed: the form ring and rcgen load.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Bound on a stored CA record, checked before parsing.
pub const CLUSTER_CA_RECORD_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the cluster CA record is malformed: {0}")]
    Malformed(String),
    #[error("issuing a cluster certificate failed: {0}")]
    Issue(String),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
}

fn ed25519_pkcs8(seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&ED25519_PKCS8_PREFIX);
    der.extend_from_slice(seed);
    der
}

fn key_pair(seed: &[u8; 32]) -> Result<rcgen::KeyPair, IdentityError> {
    let der = ed25519_pkcs8(seed);
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.as_slice()),
        &rcgen::PKCS_ED25519,
    )
    .map_err(|error| IdentityError::Issue(error.to_string()))
}

/// The common name of a cluster's CA (its nodes' certificates).
pub const CLUSTER_CA_NAME: &str = "Arca cluster CA";
/// The common name of a primary's replication CA (its secondaries' certificates).
pub const REPLICATION_CA_NAME: &str = "Arca replication CA";
/// The name a secondary's client certificate carries.
pub const SECONDARY_NAME: &str = "secondary.arca.internal";

fn cluster_ca_name() -> String {
    CLUSTER_CA_NAME.to_string()
}

/// The CA's parameters, rebuilt identically whenever it issues: a certificate's issuer
/// name and key identifier come from them and must match the stored CA certificate.
fn ca_params(common_name: &str) -> Result<rcgen::CertificateParams, IdentityError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|error| IdentityError::Issue(error.to_string()))?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A certificate authority: a cluster's own (its nodes), or a primary's replication CA
/// (its secondaries): its name, its certificate and its key's seed.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterCa {
    #[serde(default = "cluster_ca_name")]
    common_name: String,
    #[serde(with = "base64_bytes")]
    cert_der: Vec<u8>,
    #[serde(with = "base64_seed")]
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClusterCa")
    }
}

impl ClusterCa {
    /// A new CA with a key drawn from the seam. Its certificate carries the default
    /// validity (1975 to 4096): node certificates live only as long as an unseal, and
    /// nodes whose clocks disagree must still trust each other.
    pub fn generate(rng: &SharedRng) -> Result<ClusterCa, IdentityError> {
        Self::generate_named(rng, CLUSTER_CA_NAME)
    }

    /// A new CA named `common_name` (the replication CA is one).
    pub fn generate_named(rng: &SharedRng, common_name: &str) -> Result<ClusterCa, IdentityError> {
        let seed = Zeroizing::new(rng.bytes::<32>());
        let key = key_pair(&seed)?;
        let cert = ca_params(common_name)?
            .self_signed(&key)
            .map_err(|error| IdentityError::Issue(error.to_string()))?;
        Ok(ClusterCa {
            common_name: common_name.to_string(),
            cert_der: cert.der().to_vec(),
            seed,
        })
    }

    /// A client certificate for the secondary `secondary_id`, under a replication CA:
    /// good for client authentication only, so it opens `arca-repl/1` on the primary
    /// and nothing else (the cluster's own protocols trust the cluster CA).
    pub fn issue_secondary(
        &self,
        rng: &SharedRng,
        secondary_id: &str,
    ) -> Result<NodeCertificate, IdentityError> {
        let issuer = rcgen::Issuer::new(ca_params(&self.common_name)?, key_pair(&self.seed)?);
        let seed = Zeroizing::new(rng.bytes::<32>());
        let key = key_pair(&seed)?;
        let mut params = rcgen::CertificateParams::new(vec![SECONDARY_NAME.to_string()])
            .map_err(|error| IdentityError::Issue(error.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, secondary_id);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|error| IdentityError::Issue(error.to_string()))?;
        Ok(NodeCertificate {
            cert_der: cert.der().to_vec(),
            key_pkcs8: ed25519_pkcs8(&seed),
            ca_cert_der: self.cert_der.clone(),
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The record stored under the barrier.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).expect("a CA record serializes"))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterCa, IdentityError> {
        if bytes.len() > CLUSTER_CA_RECORD_BYTES_MAX {
            return Err(IdentityError::Malformed("too large".into()));
        }
        serde_json::from_slice(bytes).map_err(|error| IdentityError::Malformed(error.to_string()))
    }

    /// A member certificate for `node_id` with a fresh key, for both ends of a connection.
    pub fn issue(&self, rng: &SharedRng, node_id: &str) -> Result<NodeCertificate, IdentityError> {
        self.issue_as(rng, node_id, Standing::Member)
    }

    /// A follower certificate for `node_id`: takes part in Raft, nothing else.
    pub fn issue_follower(
        &self,
        rng: &SharedRng,
        node_id: &str,
    ) -> Result<NodeCertificate, IdentityError> {
        self.issue_as(rng, node_id, Standing::Follower)
    }

    fn issue_as(
        &self,
        rng: &SharedRng,
        node_id: &str,
        standing: Standing,
    ) -> Result<NodeCertificate, IdentityError> {
        let issuer = rcgen::Issuer::new(ca_params(&self.common_name)?, key_pair(&self.seed)?);
        let seed = Zeroizing::new(rng.bytes::<32>());
        let key = key_pair(&seed)?;
        let (names, usages) = match standing {
            Standing::Member => (
                vec![
                    CLUSTER_SERVER_NAME.to_string(),
                    FOLLOWER_SERVER_NAME.to_string(),
                ],
                vec![
                    rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth,
                ],
            ),
            Standing::Follower => (
                vec![FOLLOWER_SERVER_NAME.to_string()],
                vec![
                    rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth,
                ],
            ),
        };
        let mut params = rcgen::CertificateParams::new(names)
            .map_err(|error| IdentityError::Issue(error.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_id);
        params.extended_key_usages = usages;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|error| IdentityError::Issue(error.to_string()))?;
        Ok(NodeCertificate {
            cert_der: cert.der().to_vec(),
            key_pkcs8: ed25519_pkcs8(&seed),
            ca_cert_der: self.cert_der.clone(),
        })
    }
}

/// A node's certificate, its key, and the CA certificate it trusts peers under.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeCertificate {
    #[serde(with = "base64_bytes")]
    pub cert_der: Vec<u8>,
    #[serde(with = "base64_secret")]
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    #[serde(with = "base64_bytes")]
    pub ca_cert_der: Vec<u8>,
}

/// Where a node keeps its follower certificate (the seam's disk, beside the Raft log).
pub const FOLLOWER_IDENTITY_PATH: &str = "channel/follower-identity";
/// Bound on that file, checked before parsing.
pub const FOLLOWER_IDENTITY_BYTES_MAX: usize = 16 * 1024;

impl NodeCertificate {
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).expect("a certificate record serializes"))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<NodeCertificate, IdentityError> {
        if bytes.len() > FOLLOWER_IDENTITY_BYTES_MAX {
            return Err(IdentityError::Malformed("too large".into()));
        }
        serde_json::from_slice(bytes).map_err(|error| IdentityError::Malformed(error.to_string()))
    }
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("NodeCertificate")
    }
}

/// The identities a node holds now.
#[derive(Clone, Default)]
pub struct Identities {
    pub member: Option<Arc<ChannelTls>>,
    pub follower: Option<Arc<ChannelTls>>,
}

/// The node's current identities on the channel; clones share them.
#[derive(Clone)]
pub struct ChannelIdentity {
    crypto: &'static SeamCrypto,
    clock: Clock,
    /// Who `arca-repl/1` accepts, shared by every identity this node holds.
    replication_clients: Arc<ReplicationClientsVerifier>,
    current: Arc<watch::Sender<Identities>>,
}

impl std::fmt::Debug for ChannelIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current.borrow();
        formatter
            .debug_struct("ChannelIdentity")
            .field("member", &current.member.is_some())
            .field("follower", &current.follower.is_some())
            .finish()
    }
}

impl ChannelIdentity {
    pub fn new(rng: SharedRng, clock: Clock) -> ChannelIdentity {
        let crypto = SeamCrypto::leak(rng);
        ChannelIdentity {
            crypto,
            clock,
            replication_clients: ReplicationClientsVerifier::new(crypto),
            current: Arc::new(watch::channel(Identities::default()).0),
        }
    }

    /// Serve and dial as the member `certificate` from now on (the node unsealed).
    /// Connections made under an earlier identity are closed.
    pub fn install(&self, certificate: NodeCertificate) -> Result<(), IdentityError> {
        let tls = self.tls(Standing::Member, certificate)?;
        self.current
            .send_modify(|current| current.member = Some(tls));
        Ok(())
    }

    fn tls(
        &self,
        standing: Standing,
        certificate: NodeCertificate,
    ) -> Result<Arc<ChannelTls>, IdentityError> {
        let tls = ChannelTls::new(
            self.crypto,
            self.clock.clone(),
            standing,
            certificate,
            self.replication_clients.clone(),
        )?;
        Ok(Arc::new(tls))
    }

    /// Accept `arca-repl/1` clients as `clients` says (this cluster's current
    /// secondaries under its replication CA), or none. Takes effect at the next
    /// handshake; no connection is cut.
    pub fn set_replication_clients(
        &self,
        clients: Option<ReplicationClients>,
    ) -> Result<(), IdentityError> {
        self.replication_clients.set(clients)?;
        Ok(())
    }

    /// Serve Raft as a follower with `certificate` while no member identity is held.
    pub fn install_follower(&self, certificate: NodeCertificate) -> Result<(), IdentityError> {
        let tls = self.tls(Standing::Follower, certificate)?;
        self.current
            .send_modify(|current| current.follower = Some(tls));
        Ok(())
    }

    /// Forget the member identity (the node sealed): its connections close, and the
    /// node takes part in Raft only, with its follower identity if it has one.
    pub fn clear(&self) {
        self.current.send_modify(|current| current.member = None);
    }

    /// What the node serves with: its member identity, else its follower identity.
    pub fn serving(&self) -> Option<Arc<ChannelTls>> {
        let current = self.current.borrow();
        current.member.clone().or_else(|| current.follower.clone())
    }

    /// What the node dials `protocol` with: its member identity, or for Raft its
    /// follower identity while it is sealed (a sealed node still takes part in Raft).
    pub fn dialing(&self, protocol: Protocol) -> Option<Arc<ChannelTls>> {
        let current = self.current.borrow();
        match (protocol, &current.member) {
            (_, Some(member)) => Some(member.clone()),
            (Protocol::Raft, None) => current.follower.clone(),
            _ => None,
        }
    }

    /// The follower identity's certificate chains to `ca_cert_der` (it need not be
    /// issued again).
    pub fn follower_trusts(&self, ca_cert_der: &[u8]) -> bool {
        self.current
            .borrow()
            .follower
            .as_ref()
            .is_some_and(|follower| follower.ca_cert_der() == ca_cert_der)
    }

    /// Notified whenever an identity is installed or cleared.
    pub fn subscribe(&self) -> watch::Receiver<Identities> {
        self.current.subscribe()
    }
}

mod base64_bytes {
    use super::BASE64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

mod base64_secret {
    use super::{BASE64, Zeroizing};
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: &Zeroizing<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        BASE64
            .decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

mod base64_seed {
    use super::{BASE64, Zeroizing};
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        seed: &Zeroizing<[u8; 32]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(seed.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Zeroizing<[u8; 32]>, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.as_bytes())
                .map_err(serde::de::Error::custom)?,
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("a CA key seed is 32 bytes"))?;
        Ok(Zeroizing::new(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_record_round_trips_and_issues_certificates_that_chain_to_it() {
        let rng = SharedRng::from_u64(7);
        let ca = ClusterCa::generate(&rng).unwrap();
        let again = ClusterCa::from_bytes(&ca.to_bytes()).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());
        let node = again.issue(&rng, "node-1").unwrap();
        assert_eq!(node.ca_cert_der, ca.cert_der());
        assert!(ClusterCa::from_bytes(b"{}").is_err());
        assert!(ClusterCa::from_bytes(&vec![b' '; CLUSTER_CA_RECORD_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn the_same_seed_makes_the_same_ca() {
        let first = ClusterCa::generate(&SharedRng::from_u64(3)).unwrap();
        let second = ClusterCa::generate(&SharedRng::from_u64(3)).unwrap();
        assert_eq!(first.cert_der(), second.cert_der());
    }
}
