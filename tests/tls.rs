//! TLS on the API listener, against real `arca server` processes and a PKI each test
//! generates: the CLI with `VAULT_CACERT`/`-ca-path`/`-tls-skip-verify`/client
//! certificates, Go's x509 error for an unknown CA, `tls_min_version`, a certificate
//! swapped on SIGHUP, `server -dev-tls`, a client library over TLS, and a three-node
//! cluster that joins over `https://` and forwards a standby's write.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use cli_support::{Lab, text};
use serde_json::{Value, json};
use support::{NodeTls, ServerProcess, TestCluster, call, eventually, free_port};

// ---- a test PKI ----------------------------------------------------------------------

/// A CA that signs certificates for the tests.
struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A certificate and its key, PEM, and the certificate's DER to compare with what a
/// client is shown.
struct Issued {
    certificate_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Authority {
    fn root(common_name: &str) -> Authority {
        Self::new(common_name, None)
    }

    fn intermediate(&self, common_name: &str) -> Authority {
        Self::new(common_name, Some(self))
    }

    fn new(common_name: &str, parent: Option<&Authority>) -> Authority {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = match parent {
            Some(parent) => params.signed_by(&key, &parent.issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Authority {
            issuer: rcgen::Issuer::new(params, key),
            pem: certificate.pem(),
        }
    }

    /// A leaf for `names` (DNS names or IPs), usable by servers and clients.
    fn issue(&self, common_name: &str, names: &[&str]) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().to_vec(),
        }
    }
}

/// Files a test's servers and clients use, under one directory.
struct Pki {
    root: Authority,
    intermediate: Authority,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let root = Authority::root("Arca Test Root CA");
        let intermediate = root.intermediate("Arca Test Intermediate CA");
        std::fs::write(dir.join("ca.pem"), &root.pem).unwrap();
        std::fs::create_dir_all(dir.join("ca-dir")).unwrap();
        std::fs::write(dir.join("ca-dir").join("root.pem"), &root.pem).unwrap();
        let pki = Pki {
            root,
            intermediate,
            dir,
        };
        pki.write_server_certificate("arca-first");
        let client = pki.root.issue("arca-client", &["client.arca.test"]);
        pki.write("client.pem", &client.certificate_pem);
        pki.write("client-key.pem", &client.key_pem);
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.join(name), contents).unwrap();
    }

    /// A server certificate for loopback, issued by the intermediate: `server.pem`
    /// holds the chain (leaf, then intermediate), as an operator's file would.
    fn write_server_certificate(&self, common_name: &str) -> Issued {
        let leaf = self
            .intermediate
            .issue(common_name, &["localhost", "127.0.0.1", "::1"]);
        self.write(
            "server.pem",
            &format!("{}{}", leaf.certificate_pem, self.intermediate.pem),
        );
        self.write("server-key.pem", &leaf.key_pem);
        leaf
    }

    /// The `listener "tcp"` lines for this PKI's server certificate, plus `extra`.
    fn listener(&self, extra: &str) -> NodeTls {
        NodeTls {
            listener: format!(
                "  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n{extra}",
                self.path("server.pem"),
                self.path("server-key.pem")
            ),
            retry_join: format!("    leader_ca_cert_file = \"{}\"\n", self.path("ca.pem")),
        }
    }

    /// A reqwest client that trusts only this PKI's root and shows its client
    /// certificate when asked.
    fn http(&self) -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = format!(
            "{}{}",
            std::fs::read_to_string(self.path("client.pem")).unwrap(),
            std::fs::read_to_string(self.path("client-key.pem")).unwrap()
        );
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .tls_certs_only(
                reqwest::Certificate::from_pem_bundle(self.root.pem.as_bytes()).unwrap(),
            )
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
            .build()
            .unwrap()
    }
}

// ---- a raw TLS client, to see the certificate and to pin the protocol version -------------

/// Connect to `port` with rustls, trusting `ca_pem` and speaking only `versions`,
/// optionally with a client certificate; send one health request. The server's leaf
/// certificate (DER) on success, the TLS error's text otherwise.
fn handshake(
    port: u16,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<(&str, &str)>,
) -> Result<Vec<u8>, String> {
    negotiate(port, ca_pem, versions, None, client).map(|session| session.leaf)
}

/// What a successful handshake agreed on.
struct Session {
    leaf: Vec<u8>,
    version: rustls::ProtocolVersion,
    suite: rustls::CipherSuite,
}

/// [`handshake`], offering only `suites` when given (else ring's defaults), and
/// telling the version and suite the server chose.
fn negotiate(
    port: u16,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: Option<&[rustls::SupportedCipherSuite]>,
    client: Option<(&str, &str)>,
) -> Result<Session, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites.to_vec();
    }
    let provider = Arc::new(provider);
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((certificate, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(certificate.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    // TLS 1.3 delivers a refused client certificate as an alert after the handshake,
    // so the refusal shows on the first read.
    stream
        .read_to_end(&mut answer)
        .map_err(|error| error.to_string())?;
    if !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 ") {
        return Err(format!(
            "no HTTP answer: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no peer certificate")?
        .to_vec();
    Ok(Session {
        leaf,
        version: connection.protocol_version().ok_or("no protocol version")?,
        suite: connection
            .negotiated_cipher_suite()
            .ok_or("no cipher suite")?
            .suite(),
    })
}

// ---- helpers for one server and the CLI ----------------------------------------------------

fn start_node(root: &Path, pki: &Pki, extra_listener: &str) -> ServerProcess {
    let api_port = free_port();
    let mut node = ServerProcess::configure_with_tls(
        root,
        "node",
        api_port,
        free_port(),
        &[],
        &format!("https://127.0.0.1:{api_port}"),
        Some(&pki.listener(extra_listener)),
    );
    node.start();
    let http = pki.http();
    eventually(Duration::from_secs(30), "the TLS listener answers", || {
        call(&http, "GET", &node.address(), "sys/seal-status", None, None).ok()
    });
    node
}

/// `arca ARGS` in `lab` with `VAULT_ADDR` and the extra variables; never retried, so
/// a TLS refusal shows at once.
fn arca(lab: &Lab, address: &str, variables: &[(&str, &str)], args: &str) -> Output {
    let exports: String = variables
        .iter()
        .map(|(name, value)| format!("{name}='{value}' "))
        .collect();
    lab.sh(
        &format!("VAULT_ADDR='{address}' VAULT_MAX_RETRIES=0 {exports}arca {args}"),
        "",
    )
}

/// The seal status the CLI printed (`status` exits 2 for a sealed node), which must
/// say the node is not initialized: proof the request crossed TLS and was answered.
fn expect_health(output: &Output, what: &str) {
    let printed = text(&output.stdout);
    let health: Value = serde_json::from_str(&printed).unwrap_or_else(|_| {
        panic!(
            "{what}: no JSON health answer\nstdout: {printed}\nstderr: {}",
            text(&output.stderr)
        )
    });
    assert_eq!(health["initialized"], json!(false), "{what}: {health}");
}

// ---- the tests -------------------------------------------------------------------------

#[test]
fn the_cli_trusts_the_listener_through_its_ca_and_refuses_without_it() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    let node = start_node(lab.path(), &pki, "");
    let address = node.address();
    let health = "status -format=json";

    // VAULT_CACERT names the root; the server's file carries leaf and intermediate.
    let output = arca(
        &lab,
        &address,
        &[("VAULT_CACERT", &pki.path("ca.pem"))],
        health,
    );
    expect_health(&output, "VAULT_CACERT");
    // sys/health itself: an uninitialized node answers 501 with its health, which the
    // CLI prints as Vault's does.
    let output = arca(
        &lab,
        &address,
        &[("VAULT_CACERT", &pki.path("ca.pem"))],
        "read sys/health",
    );
    let answered = text(&output.stderr);
    assert!(
        answered.contains("Code: 501.") && answered.contains("\"initialized\":false"),
        "{answered}"
    );
    let output = arca(
        &lab,
        &address,
        &[],
        &format!("{health} -ca-cert={}", pki.path("ca.pem")),
    );
    expect_health(&output, "-ca-cert");
    let output = arca(
        &lab,
        &address,
        &[("VAULT_CAPATH", &pki.path("ca-dir"))],
        health,
    );
    expect_health(&output, "VAULT_CAPATH");
    let output = arca(
        &lab,
        &address,
        &[],
        &format!("{health} -ca-path={}", pki.path("ca-dir")),
    );
    expect_health(&output, "-ca-path");

    // Without the CA the system's roots do not know it: Go's x509 words, as Vault's CLI.
    let output = arca(&lab, &address, &[], health);
    assert_ne!(output.status.code(), Some(0));
    let refused = text(&output.stderr);
    assert!(
        refused.contains(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        ),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("\"{address}/v1/sys/seal-status\"")),
        "{refused}"
    );

    // Skipping verification is the operator's explicit choice, by flag or variable.
    expect_health(
        &arca(&lab, &address, &[], &format!("{health} -tls-skip-verify")),
        "-tls-skip-verify",
    );
    expect_health(
        &arca(&lab, &address, &[("VAULT_SKIP_VERIFY", "true")], health),
        "VAULT_SKIP_VERIFY",
    );

    // The certificate is checked for the server name asked for, not only the host.
    let ca = ("VAULT_CACERT", pki.path("ca.pem"));
    let output = arca(
        &lab,
        &address,
        &[(ca.0, &ca.1), ("VAULT_TLS_SERVER_NAME", "localhost")],
        health,
    );
    expect_health(&output, "VAULT_TLS_SERVER_NAME=localhost");
    let output = arca(
        &lab,
        &address,
        &[(ca.0, &ca.1)],
        &format!("{health} -tls-server-name=elsewhere.example"),
    );
    assert_ne!(output.status.code(), Some(0));
    assert!(
        text(&output.stderr).contains("x509: certificate is not valid"),
        "{}",
        text(&output.stderr)
    );

    // A plain-HTTP client gets no answer from a TLS listener.
    let plain = support::client();
    assert!(
        call(
            &plain,
            "GET",
            &format!("http://127.0.0.1:{}", node.api_port),
            "sys/health",
            None,
            None
        )
        .is_err()
    );
}

#[test]
fn client_certificates_and_tls13_are_enforced_when_configured() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    let node = start_node(
        lab.path(),
        &pki,
        &format!(
            "  tls_min_version = \"tls13\"\n  tls_client_ca_file = \"{}\"\n  tls_require_and_verify_client_cert = true\n",
            pki.path("ca.pem")
        ),
    );
    let address = node.address();
    let ca = pki.path("ca.pem");
    let health = "status -format=json";

    // Phase 1: no client certificate, no answer.
    let output = arca(&lab, &address, &[("VAULT_CACERT", &ca)], health);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output.stdout));

    // Phase 2: the client certificate by variables, then by flags.
    let output = arca(
        &lab,
        &address,
        &[
            ("VAULT_CACERT", &ca),
            ("VAULT_CLIENT_CERT", &pki.path("client.pem")),
            ("VAULT_CLIENT_KEY", &pki.path("client-key.pem")),
        ],
        health,
    );
    expect_health(&output, "VAULT_CLIENT_CERT");
    let output = arca(
        &lab,
        &address,
        &[("VAULT_CACERT", &ca)],
        &format!(
            "{health} -client-cert={} -client-key={}",
            pki.path("client.pem"),
            pki.path("client-key.pem")
        ),
    );
    expect_health(&output, "-client-cert");

    // Phase 3: a certificate from another CA is refused like none.
    let stranger = Authority::root("Stranger CA").issue("stranger", &["stranger"]);
    pki.write("stranger.pem", &stranger.certificate_pem);
    pki.write("stranger-key.pem", &stranger.key_pem);
    let output = arca(
        &lab,
        &address,
        &[
            ("VAULT_CACERT", &ca),
            ("VAULT_CLIENT_CERT", &pki.path("stranger.pem")),
            ("VAULT_CLIENT_KEY", &pki.path("stranger-key.pem")),
        ],
        health,
    );
    assert_ne!(output.status.code(), Some(0));

    // Phase 4: tls_min_version = "tls13": a client that speaks only TLS 1.2 is refused
    // even with a good certificate; the same client on TLS 1.3 is served.
    let client_pem = std::fs::read_to_string(pki.path("client.pem")).unwrap();
    let client_key = std::fs::read_to_string(pki.path("client-key.pem")).unwrap();
    let client = Some((client_pem.as_str(), client_key.as_str()));
    let refused = handshake(
        node.api_port,
        &pki.root.pem,
        &[&rustls::version::TLS12],
        client,
    )
    .expect_err("a TLS 1.2-only client must be refused");
    assert!(
        refused.to_lowercase().contains("protocolversion") || refused.contains("version"),
        "{refused}"
    );
    handshake(
        node.api_port,
        &pki.root.pem,
        &[&rustls::version::TLS13],
        client,
    )
    .unwrap();
}

#[test]
fn tls_max_version_and_cipher_suites_limit_what_the_listener_negotiates() {
    use rustls::crypto::ring::cipher_suite as ring;
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    // The test PKI's server key is ECDSA P-256, so an ECDSA suite is the one that works.
    let node = start_node(
        lab.path(),
        &pki,
        "  tls_max_version = \"tls12\"\n  tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"\n",
    );
    let all_versions = [&rustls::version::TLS13, &rustls::version::TLS12];

    // Phase 1: a client offering both versions and every suite is served at TLS 1.2,
    // with the one listed suite.
    let session = negotiate(node.api_port, &pki.root.pem, &all_versions, None, None).unwrap();
    assert_eq!(session.version, rustls::ProtocolVersion::TLSv1_2);
    assert_eq!(
        session.suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );

    // Phase 2: a client that speaks only TLS 1.3 is refused.
    let refused = negotiate(
        node.api_port,
        &pki.root.pem,
        &[&rustls::version::TLS13],
        None,
        None,
    )
    .err()
    .expect("a TLS 1.3-only client must be refused by a tls12-only listener");
    assert!(refused.to_lowercase().contains("version"), "{refused}");

    // Phase 3: a TLS 1.2 client offering only suites the listener does not list is
    // refused; offering the listed one among others, it is served.
    let refused = negotiate(
        node.api_port,
        &pki.root.pem,
        &[&rustls::version::TLS12],
        Some(&[
            ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]),
        None,
    )
    .err()
    .expect("a client offering only other suites must be refused");
    assert!(refused.to_lowercase().contains("handshake"), "{refused}");
    negotiate(
        node.api_port,
        &pki.root.pem,
        &[&rustls::version::TLS12],
        Some(&[
            ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ]),
        None,
    )
    .unwrap();

    // Phase 4: suites none of which fit the certificate's key stop the server at start,
    // naming the setting and the certificate.
    let mut wrong_key = ServerProcess::configure_with_tls(
        lab.path(),
        "rsa-only",
        free_port(),
        free_port(),
        &[],
        "https://127.0.0.1:1",
        Some(&pki.listener("  tls_cipher_suites = \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"\n")),
    );
    wrong_key.start();
    eventually(
        Duration::from_secs(20),
        "the server refuses to start",
        || {
            wrong_key
                .log()
                .contains("Error initializing listener")
                .then_some(())
        },
    );
    let log = wrong_key.log();
    assert!(
        log.contains("tls_cipher_suites (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) has no suite for the certificate's ECDSA key"),
        "{log}"
    );
    assert!(log.contains(&pki.path("server.pem")), "{log}");
}

#[test]
fn sighup_swaps_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    let first = pki.write_server_certificate("arca-first");
    let node = start_node(lab.path(), &pki, "");
    let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
    assert_eq!(
        handshake(node.api_port, &pki.root.pem, versions, None).unwrap(),
        first.der
    );

    // Phase 1: a broken key file and a SIGHUP: the error is logged, the old certificate
    // keeps being served, and the key's contents never reach the log.
    pki.write(
        "server-key.pem",
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    );
    node.signal("-HUP");
    eventually(
        Duration::from_secs(10),
        "the failed reload is logged",
        || {
            node.log()
                .contains("reload of the API listener's certificate failed")
                .then_some(())
        },
    );
    assert!(node.log().contains("tls_key_file"), "{}", node.log());
    assert_eq!(
        handshake(node.api_port, &pki.root.pem, versions, None).unwrap(),
        first.der
    );

    // Phase 2: a new certificate and key, a SIGHUP: new connections see the new one.
    let second = pki.write_server_certificate("arca-second");
    assert_ne!(first.der, second.der);
    node.signal("-HUP");
    eventually(
        Duration::from_secs(10),
        "the new certificate is served",
        || {
            (handshake(node.api_port, &pki.root.pem, versions, None).ok()? == second.der)
                .then_some(())
        },
    );
    assert!(!node.log().contains(second.key_pem.lines().nth(1).unwrap()));
    let output = arca(
        &lab,
        &node.address(),
        &[("VAULT_CACERT", &pki.path("ca.pem"))],
        "status -format=json",
    );
    expect_health(&output, "after the reload");
}

#[test]
fn a_bad_tls_file_stops_the_server_with_the_setting_and_file_named() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    pki.write(
        "server-key.pem",
        &Authority::root("other").issue("x", &["x"]).key_pem,
    );
    let mut node = ServerProcess::configure_with_tls(
        lab.path(),
        "node",
        free_port(),
        free_port(),
        &[],
        "https://127.0.0.1:1",
        Some(&pki.listener("")),
    );
    node.start();
    eventually(
        Duration::from_secs(20),
        "the server refuses to start",
        || {
            node.log()
                .contains("Error initializing listener")
                .then_some(())
        },
    );
    let log = node.log();
    assert!(log.contains("tls_key_file"), "{log}");
    assert!(log.contains(&pki.path("server-key.pem")), "{log}");
    assert!(log.contains("does not match"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn dev_tls_prints_a_ca_the_cli_and_a_client_library_trust() {
    let lab = Lab::new();
    let port = cli_support::free_port_pair();
    let cert_dir = lab.path().join("dev-tls");
    let log_path = lab.path().join("dev.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
        .args([
            "server",
            "-dev-tls",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-tls-cert-dir={}", cert_dir.display()),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = cli_support::Server {
        child,
        address: format!("https://127.0.0.1:{port}"),
        log_path: log_path.clone(),
    };
    cli_support::wait_listening(&mut server, port);

    // What Vault prints: the https address and the CA's path, ready to paste.
    let printed = eventually(Duration::from_secs(10), "the dev banner", || {
        let printed = std::fs::read_to_string(&log_path).ok()?;
        printed.contains("Root Token:").then_some(printed)
    });
    assert!(
        printed.contains(&format!("$ export VAULT_ADDR='https://127.0.0.1:{port}'\n")),
        "{printed}"
    );
    let ca_file = cert_dir.join("vault-ca.pem");
    assert!(
        printed.contains(&format!("$ export VAULT_CACERT='{}'\n", ca_file.display())),
        "{printed}"
    );

    // The printed lines pasted into a shell make the CLI work.
    let output = lab.sh(
        &format!(
            "export VAULT_ADDR='https://127.0.0.1:{port}'; export VAULT_CACERT='{}'; VAULT_TOKEN=root arca kv put secret/tls answer=42 >/dev/null && VAULT_TOKEN=root arca kv get -field=answer secret/tls",
            ca_file.display()
        ),
        "",
    );
    assert_eq!(text(&output.stdout), "42", "{}", text(&output.stderr));

    // A client library this project did not write, given the same CA file.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
        let client = VaultClient::new(
            VaultClientSettingsBuilder::default()
                .address(format!("https://127.0.0.1:{port}"))
                .token("root")
                .ca_certs(vec![ca_file.display().to_string()])
                .verify(true)
                .build()
                .unwrap(),
        )
        .unwrap();
        let secret: Value = vaultrs::kv2::read(&client, "secret", "tls").await.unwrap();
        assert_eq!(secret["answer"], json!("42"));
    });
}

#[test]
fn a_tls_cluster_joins_over_https_and_a_standby_forwards_a_write() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    let http = pki.http();
    // Every listener requires a client certificate, so a joining node must show one:
    // retry_join reaches each leader's https:// API trusting leader_ca_cert_file,
    // showing leader_client_cert_file, and checking the leader's certificate for
    // leader_tls_servername rather than the IP it dials.
    let mut tls = pki.listener(&format!(
        "  tls_client_ca_file = \"{}\"\n  tls_require_and_verify_client_cert = true\n",
        pki.path("ca.pem")
    ));
    tls.retry_join.push_str(&format!(
        "    leader_client_cert_file = \"{}\"\n    leader_client_key_file = \"{}\"\n    leader_tls_servername = \"localhost\"\n",
        pki.path("client.pem"),
        pki.path("client-key.pem")
    ));
    let cluster = TestCluster::start_with_tls(lab.path(), &http, Some(&tls));
    let leader = cluster.leader(&http);
    let standby = (leader + 1) % 3;
    let token = cluster.root_token.as_str();

    // A write sent to a standby is served by the active node (over the cluster port).
    let (status, body) = call(
        &http,
        "POST",
        &cluster.addresses[standby],
        "sys/mounts/tls-kv",
        Some(token),
        Some(&json!({"type": "kv"})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");
    let output = arca(
        &lab,
        &cluster.addresses[standby],
        &[
            ("VAULT_CACERT", &pki.path("ca.pem")),
            ("VAULT_CLIENT_CERT", &pki.path("client.pem")),
            ("VAULT_CLIENT_KEY", &pki.path("client-key.pem")),
            ("VAULT_TOKEN", token),
        ],
        "write tls-kv/app password=through-a-standby",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (status, body) = call(
        &http,
        "GET",
        &cluster.addresses[leader],
        "tls-kv/app",
        Some(token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["password"], json!("through-a-standby"));
}

#[test]
fn operator_raft_join_sends_the_leaders_ca_inline() {
    let lab = Lab::new();
    let pki = Pki::new(lab.path());
    let http = pki.http();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let mut nodes: Vec<ServerProcess> = ports
        .iter()
        .enumerate()
        .map(|(index, (api_port, cluster_port))| {
            ServerProcess::configure_with_tls(
                lab.path(),
                &format!("node{}", index + 1),
                *api_port,
                *cluster_port,
                &[],
                &format!("https://127.0.0.1:{api_port}"),
                Some(&pki.listener("")),
            )
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    for node in &nodes {
        eventually(Duration::from_secs(30), "the TLS listener answers", || {
            call(&http, "GET", &node.address(), "sys/seal-status", None, None).ok()
        });
    }
    let (status, init) = call(
        &http,
        "PUT",
        &nodes[0].address(),
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .unwrap();
    assert_eq!(status, 200, "{init}");
    let key = init["keys_base64"][0].as_str().unwrap().to_string();
    let token = init["root_token"].as_str().unwrap().to_string();
    let unseal = |node: &ServerProcess| {
        eventually(Duration::from_secs(30), "the node unseals", || {
            match call(
                &http,
                "PUT",
                &node.address(),
                "sys/unseal",
                None,
                Some(&json!({"key": key})),
            ) {
                Ok((200, body)) if body["sealed"] == json!(false) => Some(()),
                _ => None,
            }
        })
    };
    unseal(&nodes[0]);

    // Without the leader's CA the joining node cannot trust the leader: Go's words.
    let output = arca(
        &lab,
        &nodes[1].address(),
        &[("VAULT_CACERT", &pki.path("ca.pem"))],
        &format!("operator raft join {}", nodes[0].address()),
    );
    assert!(
        text(&output.stderr).contains("x509: certificate signed by unknown authority"),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );

    // Vault's `operator raft join -leader-ca-cert=@FILE`: the CA travels inline in the
    // join request, and the joining node dials the leader's https:// API with it.
    let output = arca(
        &lab,
        &nodes[1].address(),
        &[("VAULT_CACERT", &pki.path("ca.pem"))],
        &format!(
            "operator raft join -leader-ca-cert=@{} {}",
            pki.path("ca.pem"),
            nodes[0].address()
        ),
    );
    assert!(
        text(&output.stdout).contains("true"),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    unseal(&nodes[1]);
    eventually(Duration::from_secs(30), "two voters", || {
        let (_, body) = call(
            &http,
            "GET",
            &nodes[0].address(),
            "sys/storage/raft/configuration",
            Some(&token),
            None,
        )
        .ok()?;
        (body["data"]["config"]["servers"].as_array()?.len() == 2).then_some(())
    });
}
