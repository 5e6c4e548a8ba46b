//! TLS 1.3 for the cluster channel, built so that the same code runs in production and in
//! the simulator, deterministically from the seam:
//!
//! - every random byte rustls draws (hello randoms, the ephemeral key exchange) comes from
//!   the node's [`SharedRng`] through [`SeamCrypto`]: a `SecureRandom` and an X25519
//!   `SupportedKxGroup` whose secret is drawn from the seam, because ring's own X25519
//!   draws OS randomness the simulator cannot replay;
//! - certificates are Ed25519 (deterministic signatures, no randomness at all);
//! - the time that certificates are checked against comes from the seam's [`Clock`];
//! - no session tickets and no resumption: connections are long-lived, and a cache would
//!   be state outside the seam.
//!
//! The rest (AES-GCM, HKDF, signature verification) is ring's, which is deterministic.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, NamedGroup, RootCertStore, ServerConfig};

use super::identity::NodeCertificate;
use super::protocol::Protocol;
use crate::env::{Clock, SharedRng};

/// The name an unsealed node's certificate carries, which forwarding and replication
/// clients ask for: a node is authenticated by its certificate chaining to the cluster's
/// CA, not by an address (addresses change, and a node may be reached through any).
pub const CLUSTER_SERVER_NAME: &str = "cluster.arca.internal";
/// The name every node's certificate carries, the follower certificate of a sealed node
/// included, which Raft clients ask for.
pub const FOLLOWER_SERVER_NAME: &str = "follower.arca.internal";

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the cluster channel's TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the cluster channel's TLS setup failed: {0}")]
    Verifier(String),
}

/// Randomness and key exchange drawn from the seam. One per node, leaked once: rustls keeps
/// `&'static` references to both.
pub struct SeamCrypto {
    rng: SharedRng,
}

impl std::fmt::Debug for SeamCrypto {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SeamCrypto")
    }
}

impl SeamCrypto {
    pub fn leak(rng: SharedRng) -> &'static SeamCrypto {
        Box::leak(Box::new(SeamCrypto { rng }))
    }
}

impl SecureRandom for SeamCrypto {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        self.rng.fill(buf);
        Ok(())
    }
}

impl SupportedKxGroup for SeamCrypto {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let secret = x25519_dalek::StaticSecret::from(self.rng.bytes::<32>());
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // A low-order peer key gives an all-zero secret (RFC 7748 §6.1): refuse it.
        if !shared.was_contributory() {
            return Err(rustls::PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// The seam's clock, as rustls's notion of "now" for certificate validity.
#[derive(Debug)]
struct SeamTime {
    clock: Clock,
}

impl rustls::time_provider::TimeProvider for SeamTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(
            self.clock.unix_millis().max(0) as u64,
        )))
    }
}

pub(crate) fn provider(crypto: &'static SeamCrypto) -> Arc<CryptoProvider> {
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![crypto],
        signature_verification_algorithms: ring.signature_verification_algorithms,
        secure_random: crypto,
        key_provider: ring.key_provider,
    })
}

/// Who may dial this cluster's `arca-repl/1`: holders of a certificate under its
/// replication CA whose SHA-256 is one of its current secondaries'. Revoking a secondary
/// takes its certificate off the list, so its next handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationClients {
    pub ca_cert_der: Vec<u8>,
    pub allowed_sha256: std::collections::BTreeSet<[u8; 32]>,
}

/// The client verifier of `arca-repl/1`: a WebPKI check under the replication CA, then
/// the allow-list. Both change in place when secondaries come and go, so a change cuts
/// no connection (a revoked secondary's open connection is refused request by request,
/// by its HMAC; its next handshake is refused here).
#[derive(Debug)]
pub struct ReplicationClientsVerifier {
    provider: Arc<CryptoProvider>,
    current: std::sync::RwLock<Option<AllowList>>,
}

#[derive(Debug)]
struct AllowList {
    webpki: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    allowed_sha256: std::collections::BTreeSet<[u8; 32]>,
}

impl ReplicationClientsVerifier {
    pub fn new(crypto: &'static SeamCrypto) -> Arc<Self> {
        Arc::new(ReplicationClientsVerifier {
            provider: provider(crypto),
            current: std::sync::RwLock::new(None),
        })
    }

    /// Accept `clients` from now on (`None`: nobody).
    pub fn set(&self, clients: Option<ReplicationClients>) -> Result<(), TlsSetupError> {
        let next = match clients {
            None => None,
            Some(clients) => {
                let mut roots = RootCertStore::empty();
                roots.add(CertificateDer::from(clients.ca_cert_der.clone()))?;
                let webpki = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|error| TlsSetupError::Verifier(error.to_string()))?;
                Some(AllowList {
                    webpki,
                    allowed_sha256: clients.allowed_sha256,
                })
            }
        };
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
        Ok(())
    }
}

impl rustls::server::danger::ClientCertVerifier for ReplicationClientsVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // Hints are optional; a secondary holds one certificate for this primary.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(list) = current.as_ref() else {
            // Never a primary: no secondary to accept.
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        };
        let verified = list
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if !list.allowed_sha256.contains(&digest) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client check of `arca-fwd/1`: a certificate under the cluster's CA, and a
/// member's. A follower certificate (a sealed node's, kept on its disk, so readable by
/// whoever reads that disk) chains to the same CA but lacks [`CLUSTER_SERVER_NAME`]: it
/// opens `arca-raft/1` only, never the protocol that carries clients' requests and
/// tokens to the active node.
#[derive(Debug)]
struct MemberClientsVerifier {
    under_ca: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl rustls::server::danger::ClientCertVerifier for MemberClientsVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.under_ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .under_ca
            .verify_client_cert(end_entity, intermediates, now)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, &server_name(Protocol::Forward))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.under_ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.under_ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.under_ca.supported_verify_schemes()
    }
}

/// What a node may do on the channel with a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Unsealed: serves and dials every protocol.
    Member,
    /// Sealed: takes part in Raft (`arca-raft/1`, both ends) and nothing else: it is
    /// sent no forwarded request and no replication traffic, which need the name only a
    /// member certificate carries, and it dials no other protocol.
    Follower,
}

/// The TLS configurations of one node identity: what it serves with and dials with.
/// Replaced whole when the identity changes (unseal, seal).
pub struct ChannelTls {
    crypto: &'static SeamCrypto,
    clock: Clock,
    standing: Standing,
    certificate: NodeCertificate,
    replication_clients: Arc<ReplicationClientsVerifier>,
    /// Per protocol, so the ALPN the server answers is the one the client asked for.
    servers: Vec<(Protocol, Arc<ServerConfig>)>,
    members: Vec<(Protocol, Arc<ClientConfig>)>,
}

impl std::fmt::Debug for ChannelTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ChannelTls")
    }
}

impl ChannelTls {
    pub fn new(
        crypto: &'static SeamCrypto,
        clock: Clock,
        standing: Standing,
        certificate: NodeCertificate,
        replication_clients: Arc<ReplicationClientsVerifier>,
    ) -> Result<ChannelTls, TlsSetupError> {
        let mut tls = ChannelTls {
            crypto,
            clock,
            standing,
            certificate,
            replication_clients,
            servers: Vec::new(),
            members: Vec::new(),
        };
        for protocol in Protocol::ALL {
            if standing == Standing::Follower && protocol != Protocol::Raft {
                continue;
            }
            let server = tls.server_config(protocol)?;
            tls.servers.push((protocol, server));
            let client = tls.client_config(protocol, &tls.certificate.ca_cert_der.clone())?;
            tls.members.push((protocol, client));
        }
        Ok(tls)
    }

    pub fn standing(&self) -> Standing {
        self.standing
    }

    pub fn certificate(&self) -> &NodeCertificate {
        &self.certificate
    }

    /// The CA certificate this identity chains to (DER).
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.certificate.ca_cert_der
    }

    fn time(&self) -> Arc<dyn rustls::time_provider::TimeProvider> {
        Arc::new(SeamTime {
            clock: self.clock.clone(),
        })
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.certificate.cert_der.clone())]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            self.certificate.key_pkcs8.as_slice().to_vec(),
        ))
    }

    fn roots(ca_cert_der: &[u8]) -> Result<Arc<RootCertStore>, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca_cert_der.to_vec()))?;
        Ok(Arc::new(roots))
    }

    /// What this node serves `protocol` with. The cluster's own protocols require a
    /// client certificate under this cluster's CA. `arca-repl/1` is dialled by other
    /// clusters' nodes: it requires a client certificate under this cluster's
    /// replication CA, which the secondary received in its activation bundle (and every
    /// request still carries the secondary's HMAC, which `revoke-secondary` withdraws).
    fn server_config(&self, protocol: Protocol) -> Result<Arc<ServerConfig>, TlsSetupError> {
        let provider = provider(self.crypto);
        let builder = ServerConfig::builder_with_details(provider.clone(), self.time())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let under_ca = || {
            WebPkiClientVerifier::builder_with_provider(
                Self::roots(&self.certificate.ca_cert_der)?,
                provider.clone(),
            )
            .build()
            .map_err(|error| TlsSetupError::Verifier(error.to_string()))
        };
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = match protocol {
            Protocol::Raft => under_ca()?,
            Protocol::Forward => Arc::new(MemberClientsVerifier {
                under_ca: under_ca()?,
            }),
            Protocol::Replication => self.replication_clients.clone(),
        };
        let builder = builder.with_client_cert_verifier(verifier);
        let mut config = builder.with_single_cert(self.chain(), self.key())?;
        config.alpn_protocols = vec![protocol.alpn().as_bytes().to_vec()];
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(Arc::new(config))
    }

    /// A client configuration for `protocol` that trusts servers under `ca_cert_der` and
    /// presents this node's certificate when asked.
    pub fn client_config(
        &self,
        protocol: Protocol,
        ca_cert_der: &[u8],
    ) -> Result<Arc<ClientConfig>, TlsSetupError> {
        self.client_config_as(protocol, ca_cert_der, &self.certificate)
    }

    /// [`ChannelTls::client_config`] presenting `certificate` instead (a secondary's
    /// certificate under its primary's replication CA).
    pub fn client_config_as(
        &self,
        protocol: Protocol,
        ca_cert_der: &[u8],
        certificate: &NodeCertificate,
    ) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let chain = vec![CertificateDer::from(certificate.cert_der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certificate.key_pkcs8.as_slice().to_vec(),
        ));
        let mut config = ClientConfig::builder_with_details(provider(self.crypto), self.time())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(Self::roots(ca_cert_der)?)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![protocol.alpn().as_bytes().to_vec()];
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }

    pub fn server(&self, protocol: Protocol) -> Option<Arc<ServerConfig>> {
        self.servers
            .iter()
            .find(|(served, _)| *served == protocol)
            .map(|(_, config)| config.clone())
    }

    /// How this node dials a member of its own cluster for `protocol` (`None` for a
    /// follower identity and a protocol other than Raft).
    pub fn member_client(&self, protocol: Protocol) -> Option<Arc<ClientConfig>> {
        self.members
            .iter()
            .find(|(served, _)| *served == protocol)
            .map(|(_, config)| config.clone())
    }
}

/// The server name a client of `protocol` asks for: Raft reaches sealed followers too;
/// forwarding and replication reach only unsealed nodes, which alone hold requests'
/// secrets (a sealed node's follower certificate lives on its disk).
pub fn server_name(protocol: Protocol) -> ServerName<'static> {
    let name = match protocol {
        Protocol::Raft => FOLLOWER_SERVER_NAME,
        Protocol::Forward | Protocol::Replication => CLUSTER_SERVER_NAME,
    };
    ServerName::try_from(name).expect("the cluster server names are DNS names")
}
