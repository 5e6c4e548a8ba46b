//! What a TLS listener negotiates: the versions it accepts (`tls_min_version`,
//! `tls_max_version`) and the TLS 1.2 cipher suites it offers (`tls_cipher_suites`),
//! named as Vault names them (Go's `crypto/tls` names).
//!
//! A [`TlsPolicy`] can only hold a combination that can work: the oldest version is not
//! newer than the newest, and a suite list is never given to a listener that speaks only
//! TLS 1.3 (whose suites are not configurable, in Vault either: Go ignores the list for
//! TLS 1.3). Whether the listed suites suit the certificate's key is checked where the
//! key is known, when the listener's rustls configuration is built.
//!
//! The policy itself is plain data, so the configuration holds it in both builds; only
//! the mapping to rustls exists in the real build (the simulator has no TLS).

/// A TLS protocol version a listener may speak. Vault also knows `tls10` and `tls11`;
/// they are refused: TLS 1.0 and 1.1 are broken and rustls does not speak them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Vault's spelling (`tls12`, `tls13`), as the configuration file writes it.
    pub fn parse(text: &str) -> Result<TlsVersion, String> {
        match text {
            "tls12" => Ok(TlsVersion::Tls12),
            "tls13" => Ok(TlsVersion::Tls13),
            // Refusing beats silently serving a version the operator did not name.
            old @ ("tls10" | "tls11") => Err(format!(
                "{old:?} is not supported: TLS 1.0 and 1.1 are insecure; use \"tls12\" or \"tls13\""
            )),
            other => Err(format!(
                "invalid TLS version {other:?}: expected \"tls12\" or \"tls13\""
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls12",
            TlsVersion::Tls13 => "tls13",
        }
    }
}

/// The TLS 1.2 cipher suites a listener can offer: the ECDHE AEAD suites rustls
/// implements. Go's CBC, RC4, 3DES and static-RSA suites have no counterpart and are
/// refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tls12CipherSuite {
    EcdheEcdsaWithAes128GcmSha256,
    EcdheEcdsaWithAes256GcmSha384,
    EcdheEcdsaWithChacha20Poly1305Sha256,
    EcdheRsaWithAes128GcmSha256,
    EcdheRsaWithAes256GcmSha384,
    EcdheRsaWithChacha20Poly1305Sha256,
}

/// Go's names for the suites Arca offers, including Go's older aliases of the ChaCha20
/// suites (Vault accepts both spellings).
const SUITE_NAMES: &[(&str, Tls12CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Tls12CipherSuite::EcdheEcdsaWithAes128GcmSha256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Tls12CipherSuite::EcdheEcdsaWithAes256GcmSha384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12CipherSuite::EcdheEcdsaWithChacha20Poly1305Sha256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        Tls12CipherSuite::EcdheEcdsaWithChacha20Poly1305Sha256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Tls12CipherSuite::EcdheRsaWithAes128GcmSha256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Tls12CipherSuite::EcdheRsaWithAes256GcmSha384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12CipherSuite::EcdheRsaWithChacha20Poly1305Sha256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        Tls12CipherSuite::EcdheRsaWithChacha20Poly1305Sha256,
    ),
];

/// Go's TLS 1.3 suite names: Vault accepts them in the list and Go ignores them there.
const TLS13_SUITE_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go's names for TLS 1.2 suites that are weak (CBC, RC4, 3DES, no forward secrecy) and
/// that rustls does not implement: known, so the error says why rather than "unknown".
const REFUSED_SUITE_NAMES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

impl Tls12CipherSuite {
    /// Go's (current) name of the suite.
    pub fn name(self) -> &'static str {
        SUITE_NAMES
            .iter()
            .find(|(_, suite)| *suite == self)
            .map(|(name, _)| *name)
            .expect("every suite has a name")
    }

    /// One of Go's suite names, with the reason when it cannot be offered.
    pub fn parse(name: &str) -> Result<Tls12CipherSuite, String> {
        if let Some((_, suite)) = SUITE_NAMES.iter().find(|(known, _)| *known == name) {
            return Ok(*suite);
        }
        if TLS13_SUITE_NAMES.contains(&name) {
            return Err(format!(
                "{name:?} is a TLS 1.3 suite: TLS 1.3 suites are not configurable (Vault ignores them too); list only TLS 1.2 suites"
            ));
        }
        if REFUSED_SUITE_NAMES.contains(&name) {
            return Err(format!(
                "{name:?} is not supported: only the ECDHE suites with AES-GCM or ChaCha20-Poly1305 are offered"
            ));
        }
        Err(format!(
            "unknown cipher suite {name:?}: expected Go's names, such as \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\""
        ))
    }

    /// A comma-separated list, as `tls_cipher_suites` holds it. Spaces around a name
    /// are allowed; an empty item, an unknown name or an empty list is refused.
    pub fn parse_list(text: &str) -> Result<Vec<Tls12CipherSuite>, String> {
        let mut suites = Vec::new();
        for name in text.split(',') {
            let name = name.trim();
            if name.is_empty() {
                return Err(format!(
                    "empty cipher suite name in {text:?}: expected a comma-separated list"
                ));
            }
            let suite = Tls12CipherSuite::parse(name)?;
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
        Ok(suites)
    }
}

/// A listener's negotiation settings, checked to be able to work together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    min_version: TlsVersion,
    max_version: TlsVersion,
    /// The TLS 1.2 suites offered, in preference order; empty means every suite rustls
    /// offers by default.
    cipher_suites: Vec<Tls12CipherSuite>,
}

impl Default for TlsPolicy {
    /// Vault's defaults: TLS 1.2 and 1.3, the default suites.
    fn default() -> Self {
        TlsPolicy {
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
        }
    }
}

/// Why a combination of settings cannot work; the configuration names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsPolicyError {
    #[error(
        "tls_min_version {min:?} is newer than tls_max_version {max:?}: no version is left to speak"
    )]
    VersionsCrossed {
        min: &'static str,
        max: &'static str,
    },
    #[error(
        "tls_cipher_suites lists TLS 1.2 suites, but the listener speaks only TLS 1.3, whose suites are not configurable; remove tls_cipher_suites or allow tls12"
    )]
    SuitesWithoutTls12,
}

impl TlsPolicy {
    /// `cipher_suites` empty means the defaults.
    pub fn new(
        min_version: TlsVersion,
        max_version: TlsVersion,
        cipher_suites: Vec<Tls12CipherSuite>,
    ) -> Result<TlsPolicy, TlsPolicyError> {
        if min_version > max_version {
            return Err(TlsPolicyError::VersionsCrossed {
                min: min_version.name(),
                max: max_version.name(),
            });
        }
        if !cipher_suites.is_empty() && min_version > TlsVersion::Tls12 {
            return Err(TlsPolicyError::SuitesWithoutTls12);
        }
        Ok(TlsPolicy {
            min_version,
            max_version,
            cipher_suites,
        })
    }

    pub fn min_version(&self) -> TlsVersion {
        self.min_version
    }

    pub fn max_version(&self) -> TlsVersion {
        self.max_version
    }

    /// The configured TLS 1.2 suites; empty when the defaults apply.
    pub fn cipher_suites(&self) -> &[Tls12CipherSuite] {
        &self.cipher_suites
    }

    // Read only by the rustls mapping, which the simulator build does not have.
    #[cfg_attr(madsim, allow(dead_code))]
    fn speaks(&self, version: TlsVersion) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}

#[cfg(not(madsim))]
mod real {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;
    use rustls::sign::SigningKey;
    use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

    use super::{Tls12CipherSuite, TlsPolicy, TlsVersion};

    impl Tls12CipherSuite {
        fn rustls(self) -> SupportedCipherSuite {
            use rustls::crypto::ring::cipher_suite as ring;
            match self {
                Tls12CipherSuite::EcdheEcdsaWithAes128GcmSha256 => {
                    ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                }
                Tls12CipherSuite::EcdheEcdsaWithAes256GcmSha384 => {
                    ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                }
                Tls12CipherSuite::EcdheEcdsaWithChacha20Poly1305Sha256 => {
                    ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                }
                Tls12CipherSuite::EcdheRsaWithAes128GcmSha256 => {
                    ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                }
                Tls12CipherSuite::EcdheRsaWithAes256GcmSha384 => {
                    ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                }
                Tls12CipherSuite::EcdheRsaWithChacha20Poly1305Sha256 => {
                    ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
                }
            }
        }
    }

    impl TlsPolicy {
        /// The rustls protocol versions, newest first.
        pub fn protocol_versions(&self) -> Vec<&'static SupportedProtocolVersion> {
            let mut versions = Vec::new();
            if self.speaks(TlsVersion::Tls13) {
                versions.push(&rustls::version::TLS13);
            }
            if self.speaks(TlsVersion::Tls12) {
                versions.push(&rustls::version::TLS12);
            }
            versions
        }

        /// The ring provider offering this policy's suites: every TLS 1.3 suite, and
        /// the configured TLS 1.2 suites in their order (or ring's defaults).
        pub fn provider(&self) -> Arc<CryptoProvider> {
            let mut provider = rustls::crypto::ring::default_provider();
            if !self.cipher_suites.is_empty() {
                let tls13 = provider
                    .cipher_suites
                    .iter()
                    .filter(|suite| suite.version() == &rustls::version::TLS13)
                    .copied();
                let tls12 = self.cipher_suites.iter().map(|suite| suite.rustls());
                provider.cipher_suites = tls13.chain(tls12).collect();
            }
            Arc::new(provider)
        }

        /// Refuses a suite list none of whose suites `key` can sign for, when TLS 1.2
        /// is spoken: such a listener would fail every TLS 1.2 handshake.
        pub fn check_key(&self, key: &dyn SigningKey) -> Result<(), String> {
            if self.cipher_suites.is_empty() || !self.speaks(TlsVersion::Tls12) {
                return Ok(());
            }
            let usable = self.cipher_suites.iter().any(|suite| match suite.rustls() {
                SupportedCipherSuite::Tls12(tls12) => key.choose_scheme(tls12.sign).is_some(),
                SupportedCipherSuite::Tls13(_) => false,
            });
            if usable {
                return Ok(());
            }
            let names: Vec<&str> = self
                .cipher_suites
                .iter()
                .map(|suite| suite.name())
                .collect();
            Err(format!(
                "tls_cipher_suites ({}) has no suite for the certificate's {:?} key: TLS 1.2 clients could never connect",
                names.join(","),
                key.algorithm()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_and_aliases_are_read() {
        assert_eq!(
            Tls12CipherSuite::parse_list(
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            )
            .unwrap(),
            vec![
                Tls12CipherSuite::EcdheEcdsaWithAes128GcmSha256,
                Tls12CipherSuite::EcdheRsaWithChacha20Poly1305Sha256,
            ]
        );
        for (name, suite) in SUITE_NAMES {
            assert_eq!(Tls12CipherSuite::parse(name).unwrap(), *suite);
        }
    }

    #[test]
    fn unusable_names_say_why() {
        let error = Tls12CipherSuite::parse("TLS_AES_128_GCM_SHA256").unwrap_err();
        assert!(error.contains("TLS 1.3 suite"), "{error}");
        let error = Tls12CipherSuite::parse("TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err();
        assert!(error.contains("not supported"), "{error}");
        let error = Tls12CipherSuite::parse("TLS_MADE_UP").unwrap_err();
        assert!(error.starts_with("unknown cipher suite"), "{error}");
        let error =
            Tls12CipherSuite::parse_list("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,").unwrap_err();
        assert!(error.starts_with("empty cipher suite name"), "{error}");
    }

    #[test]
    fn only_combinations_that_can_work_are_policies() {
        use TlsVersion::*;
        let suites = vec![Tls12CipherSuite::EcdheRsaWithAes128GcmSha256];
        assert!(TlsPolicy::new(Tls12, Tls12, suites.clone()).is_ok());
        assert!(TlsPolicy::new(Tls12, Tls13, suites.clone()).is_ok());
        assert!(TlsPolicy::new(Tls13, Tls13, Vec::new()).is_ok());
        assert_eq!(
            TlsPolicy::new(Tls13, Tls12, Vec::new()),
            Err(TlsPolicyError::VersionsCrossed {
                min: "tls13",
                max: "tls12"
            })
        );
        assert_eq!(
            TlsPolicy::new(Tls13, Tls13, suites),
            Err(TlsPolicyError::SuitesWithoutTls12)
        );
    }

    #[cfg(not(madsim))]
    #[test]
    fn the_provider_offers_tls13_and_only_the_listed_tls12_suites() {
        use TlsVersion::*;
        let policy = TlsPolicy::new(
            Tls12,
            Tls12,
            vec![Tls12CipherSuite::EcdheRsaWithAes256GcmSha384],
        )
        .unwrap();
        assert_eq!(policy.protocol_versions(), vec![&rustls::version::TLS12]);
        let provider = policy.provider();
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|suite| suite.version() == &rustls::version::TLS12)
            .map(|suite| suite.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
        );
        // rcgen makes ECDSA P-256 keys: an RSA-only list cannot serve one.
        let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
        let key = provider.key_provider.load_private_key(der).unwrap();
        let error = policy.check_key(key.as_ref()).unwrap_err();
        assert!(
            error.contains("no suite for the certificate's ECDSA key"),
            "{error}"
        );
        let ecdsa = TlsPolicy::new(
            Tls12,
            Tls13,
            vec![Tls12CipherSuite::EcdheEcdsaWithAes128GcmSha256],
        )
        .unwrap();
        assert!(ecdsa.check_key(key.as_ref()).is_ok());
        assert_eq!(
            TlsPolicy::default().protocol_versions(),
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        );
    }
}
