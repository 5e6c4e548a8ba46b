//! TLS at the HTTP edge: the API listener's server configuration (swappable, so SIGHUP
//! can load a new certificate without dropping the listener) and the client
//! configuration used to reach an `https://` API address (the CLI, and a node joining a
//! leader).
//!
//! Inputs are PEM bytes, never paths: the process shell reads the files (the disk seam
//! does not cover operator-provided certificates) and names the file and the setting in
//! its error. Outputs are rustls configurations with the ring provider.
//!
//! TLS exists in the real build only. Under `cfg(madsim)` [`ServerTls`] is an empty
//! enum, so a simulated node cannot be given a TLS listener at all: ring draws its
//! randomness from the OS, which the simulator cannot replay.

#[cfg(madsim)]
/// No TLS in the simulator: this type has no values, so `Option<Arc<ServerTls>>` is
/// always `None` there.
#[derive(Debug)]
pub enum ServerTls {}

#[cfg(not(madsim))]
pub use real::*;

#[cfg(not(madsim))]
mod real {
    use std::sync::{Arc, RwLock};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
    use zeroize::Zeroizing;

    use crate::http::tls_policy::TlsPolicy;

    /// Which operator-supplied PEM input a [`TlsError`] is about.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PemInput {
        Certificate,
        PrivateKey,
        ClientCa,
        ServerCa,
        ClientCertificate,
        ClientKey,
    }

    /// A TLS setup that cannot be built. Never carries key material: messages name
    /// what was wrong, not what the file held.
    #[derive(Debug, thiserror::Error)]
    pub enum TlsError {
        #[error("{reason}")]
        Pem { input: PemInput, reason: String },
        #[error("the private key does not match the certificate: {0}")]
        KeyMismatch(String),
        #[error("{0}")]
        Rustls(String),
        /// The listener's `tls_cipher_suites` cannot work with its key.
        #[error("{0}")]
        Policy(String),
    }

    impl TlsError {
        /// The input at fault, when one input is; the caller maps it to its setting.
        pub fn input(&self) -> Option<PemInput> {
            match self {
                TlsError::Pem { input, .. } => Some(*input),
                TlsError::KeyMismatch(_) => Some(PemInput::PrivateKey),
                TlsError::Rustls(_) | TlsError::Policy(_) => None,
            }
        }
    }

    /// The ring provider, chosen explicitly rather than through a process default, so
    /// the server never depends on who installed what first.
    pub fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Every certificate in `pem`, in order (a chain: leaf first).
    pub fn certificates(
        pem: &[u8],
        input: PemInput,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
        let certificates = certificates.map_err(|error| TlsError::Pem {
            input,
            reason: format!("invalid PEM: {error}"),
        })?;
        if certificates.is_empty() {
            return Err(TlsError::Pem {
                input,
                reason: "no PEM-encoded CERTIFICATE block found".to_string(),
            });
        }
        Ok(certificates)
    }

    /// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
    pub fn private_key(pem: &[u8], input: PemInput) -> Result<PrivateKeyDer<'static>, TlsError> {
        // The error text of the PEM reader names a section kind, never key bytes.
        PrivateKeyDer::from_pem_slice(pem).map_err(|error| TlsError::Pem {
            input,
            reason: match error {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM-encoded private key found".to_string()
                }
                other => format!("invalid PEM private key: {other}"),
            },
        })
    }

    fn root_store(pems: &[&[u8]], input: PemInput) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for pem in pems {
            for certificate in certificates(pem, input)? {
                roots.add(certificate).map_err(|error| TlsError::Pem {
                    input,
                    reason: format!("not a usable CA certificate: {error}"),
                })?;
            }
        }
        Ok(roots)
    }

    /// What a TLS listener is built from: the contents of its files.
    pub struct ListenerPem {
        pub certificate_chain: Vec<u8>,
        pub private_key: Zeroizing<Vec<u8>>,
        /// `tls_client_ca_file`, needed when client certificates are required.
        pub client_ca: Option<Vec<u8>>,
        /// `tls_min_version`, `tls_max_version`, `tls_cipher_suites`.
        pub policy: TlsPolicy,
        /// `tls_require_and_verify_client_cert`.
        pub require_client_certificate: bool,
    }

    /// A listener's rustls configuration, checked: the key matches the certificate, the
    /// policy's suites suit the key, and a required client certificate has a CA to
    /// verify it with.
    pub fn server_config(pem: &ListenerPem) -> Result<rustls::ServerConfig, TlsError> {
        let provider = pem.policy.provider();
        let chain = certificates(&pem.certificate_chain, PemInput::Certificate)?;
        let key = private_key(&pem.private_key, PemInput::PrivateKey)?;
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|error| TlsError::Pem {
                input: PemInput::PrivateKey,
                reason: error.to_string(),
            })?;
        pem.policy
            .check_key(signing_key.as_ref())
            .map_err(TlsError::Policy)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&pem.policy.protocol_versions())
            .map_err(|error| TlsError::Rustls(error.to_string()))?;
        let builder = if pem.require_client_certificate {
            let Some(client_ca) = &pem.client_ca else {
                return Err(TlsError::Pem {
                    input: PemInput::ClientCa,
                    reason: "a CA file is required to verify client certificates".to_string(),
                });
            };
            let roots = root_store(&[client_ca], PemInput::ClientCa)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|error| TlsError::Pem {
                        input: PemInput::ClientCa,
                        reason: error.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            // Vault only requests a client certificate here, for its cert auth method;
            // Arca has none, so none is asked for.
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch(error.to_string()),
                other => TlsError::Pem {
                    input: PemInput::PrivateKey,
                    reason: other.to_string(),
                },
            })?;
        // The API is served over HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A listener's current TLS configuration. Each new connection takes the one in
    /// place when it arrives; a reload replaces it for later connections only, so open
    /// connections are never cut by a certificate rotation.
    pub struct ServerTls {
        current: RwLock<Arc<rustls::ServerConfig>>,
    }

    impl std::fmt::Debug for ServerTls {
        // Nothing of the configuration is shown: it holds the private key.
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("ServerTls(..)")
        }
    }

    impl ServerTls {
        pub fn new(config: rustls::ServerConfig) -> Arc<ServerTls> {
            Arc::new(ServerTls {
                current: RwLock::new(Arc::new(config)),
            })
        }

        pub fn current(&self) -> Arc<rustls::ServerConfig> {
            // A poisoned lock still holds a whole configuration: replacing it is one
            // assignment, which cannot be left half-done.
            match self.current.read() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            }
        }

        pub fn replace(&self, config: rustls::ServerConfig) {
            let config = Arc::new(config);
            match self.current.write() {
                Ok(mut guard) => *guard = config,
                Err(poisoned) => *poisoned.into_inner() = config,
            }
        }
    }

    /// How a client reaches an `https://` server: Vault's `VAULT_CACERT`/`VAULT_CAPATH`,
    /// `VAULT_CLIENT_CERT`/`VAULT_CLIENT_KEY`, `VAULT_TLS_SERVER_NAME` and
    /// `VAULT_SKIP_VERIFY`, or a `retry_join` block's `leader_*` settings.
    #[derive(Default)]
    pub struct ClientPem<'a> {
        /// CA certificates to trust instead of the system's; empty means the system's.
        pub ca_certificates: Vec<&'a [u8]>,
        pub client_certificate: Option<&'a [u8]>,
        pub client_key: Option<&'a [u8]>,
        /// The name the server's certificate must carry, instead of the address's host.
        pub server_name: Option<&'a str>,
        pub skip_verify: bool,
    }

    /// A client configuration for `pem`. As in Vault, naming a CA replaces the system's
    /// roots rather than adding to them.
    pub fn client_config(pem: &ClientPem<'_>) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = if pem.skip_verify {
            Arc::new(AcceptAnyCertificate {
                provider: provider.clone(),
            })
        } else if pem.ca_certificates.is_empty() {
            Arc::new(SystemRoots {
                provider: provider.clone(),
            })
        } else {
            let roots = root_store(&pem.ca_certificates, PemInput::ServerCa)?;
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.into(),
                provider.clone(),
            )
            .build()
            .map_err(|error| TlsError::Pem {
                input: PemInput::ServerCa,
                reason: error.to_string(),
            })?
        };
        let verifier: Arc<dyn ServerCertVerifier> = match pem.server_name {
            Some(name) if !pem.skip_verify => Arc::new(ExpectedServerName {
                name: ServerName::try_from(name.to_string())
                    .map_err(|_| TlsError::Rustls(format!("invalid TLS server name {name:?}")))?,
                inner: verifier,
            }),
            _ => verifier,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rustls(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (pem.client_certificate, pem.client_key) {
            (Some(certificate), Some(key)) => {
                let chain = certificates(certificate, PemInput::ClientCertificate)?;
                let key = private_key(key, PemInput::ClientKey)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| match error {
                        rustls::Error::InconsistentKeys(_) => TlsError::Pem {
                            input: PemInput::ClientKey,
                            reason: format!(
                                "the client key does not match the client certificate: {error}"
                            ),
                        },
                        other => TlsError::Pem {
                            input: PemInput::ClientKey,
                            reason: other.to_string(),
                        },
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsError::Pem {
                    input: PemInput::ClientKey,
                    reason: "a client certificate was given without its key".to_string(),
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::Pem {
                    input: PemInput::ClientCertificate,
                    reason: "a client key was given without its certificate".to_string(),
                });
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Checks the server's certificate against a configured name rather than the host
    /// the connection went to (`VAULT_TLS_SERVER_NAME`, `leader_tls_servername`): a
    /// cluster reached by IP whose certificates name the service.
    #[derive(Debug)]
    struct ExpectedServerName {
        name: ServerName<'static>,
        inner: Arc<dyn ServerCertVerifier>,
    }

    impl ServerCertVerifier for ExpectedServerName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            self.inner
                .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner
                .verify_tls12_signature(message, certificate, signature)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner
                .verify_tls13_signature(message, certificate, signature)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }

    /// The system's roots, loaded on the first `https://` connection that needs them and
    /// kept for the process: a CLI talking plain HTTP, or a node whose joins name a CA,
    /// never reads the system's store (which may be absent in a container).
    #[derive(Debug)]
    struct SystemRoots {
        provider: Arc<CryptoProvider>,
    }

    static SYSTEM_ROOTS: std::sync::OnceLock<Result<Arc<dyn ServerCertVerifier>, String>> =
        std::sync::OnceLock::new();

    impl SystemRoots {
        fn verifier(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
            SYSTEM_ROOTS
                .get_or_init(|| {
                    rustls_platform_verifier::Verifier::new(self.provider.clone())
                        .map(|verifier| Arc::new(verifier) as Arc<dyn ServerCertVerifier>)
                        .map_err(|error| format!("loading the system's CA certificates: {error}"))
                })
                .as_ref()
                .map_err(|error| rustls::Error::General(error.clone()))
        }
    }

    impl ServerCertVerifier for SystemRoots {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            self.verifier()?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                certificate,
                signature,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                certificate,
                signature,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// `-tls-skip-verify`: any certificate is accepted, as the operator asked. The
    /// handshake signatures are still checked, so the peer must hold the key of the
    /// certificate it shows.
    #[derive(Debug)]
    struct AcceptAnyCertificate {
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                certificate,
                signature,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                certificate,
                signature,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// Go's text for a failed certificate check, which scripts written for Vault match
    /// on: `tls: failed to verify certificate: x509: ...`.
    pub fn go_style_error(error: &rustls::Error) -> Option<String> {
        use rustls::CertificateError;
        let rustls::Error::InvalidCertificate(certificate_error) = error else {
            return None;
        };
        let x509 = match certificate_error {
            CertificateError::UnknownIssuer => {
                "certificate signed by unknown authority".to_string()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired or is not yet valid".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate has expired or is not yet valid".to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate is not valid for the requested name ({certificate_error:?})")
            }
            other => format!("{other:?}"),
        };
        Some(format!("tls: failed to verify certificate: x509: {x509}"))
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let certificate = params.self_signed(&key).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    fn listener(certificate: &str, key: &str) -> ListenerPem {
        ListenerPem {
            certificate_chain: certificate.as_bytes().to_vec(),
            private_key: zeroize::Zeroizing::new(key.as_bytes().to_vec()),
            client_ca: None,
            policy: crate::http::tls_policy::TlsPolicy::default(),
            require_client_certificate: false,
        }
    }

    #[test]
    fn a_listener_is_built_from_a_matching_certificate_and_key() {
        let (certificate, key) = self_signed(&["localhost"]);
        server_config(&listener(&certificate, &key)).unwrap();
    }

    #[test]
    fn bad_inputs_name_the_input_at_fault() {
        let (certificate, key) = self_signed(&["localhost"]);
        let (_, other_key) = self_signed(&["localhost"]);
        let error = server_config(&listener(&certificate, &other_key)).unwrap_err();
        assert_eq!(error.input(), Some(PemInput::PrivateKey), "{error}");
        let error = server_config(&listener("not pem", &key)).unwrap_err();
        assert_eq!(error.input(), Some(PemInput::Certificate), "{error}");
        let error = server_config(&listener(&certificate, &certificate)).unwrap_err();
        assert_eq!(error.input(), Some(PemInput::PrivateKey), "{error}");
        let mut required = listener(&certificate, &key);
        required.require_client_certificate = true;
        let error = server_config(&required).unwrap_err();
        assert_eq!(error.input(), Some(PemInput::ClientCa), "{error}");
    }

    #[test]
    fn errors_never_show_the_key() {
        let (certificate, key) = self_signed(&["localhost"]);
        let broken_key = key.replace("PRIVATE KEY-----\n", "PRIVATE KEY-----\n!!");
        let error = server_config(&listener(&certificate, &broken_key)).unwrap_err();
        let body: String = key.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!error.to_string().contains(&body), "{error}");
    }
}
