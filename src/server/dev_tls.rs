//! `arca server -dev -dev-tls`: a throwaway CA and a server certificate for loopback,
//! written where the operator can point `VAULT_CACERT` at them, as Vault's `-dev-tls`.
//!
//! Vault writes `vault-ca.pem`, `vault-cert.pem` and `vault-key.pem` into a new
//! temporary directory (or `-dev-tls-cert-dir`); Arca writes the same three names so
//! scripts written for Vault find them. The keys come from the OS's randomness through
//! ring: this is the real build's dev mode, never simulated.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cli::local;
use crate::config::ListenerTlsFiles;
use crate::http::tls_policy::TlsPolicy;

pub const CA_FILE_NAME: &str = "vault-ca.pem";
pub const CERT_FILE_NAME: &str = "vault-cert.pem";
pub const KEY_FILE_NAME: &str = "vault-key.pem";
/// Attempts at a fresh temporary directory name before giving up.
const TEMP_DIR_ATTEMPTS_MAX: u32 = 100;

/// Where `-dev-tls` put its files, and whether the directory is ours to remove.
#[derive(Debug)]
pub struct DevTlsFiles {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    pub listener: ListenerTlsFiles,
    /// True when Arca created the directory (no `-dev-tls-cert-dir`): it goes at exit.
    pub remove_on_exit: bool,
}

/// Generate the CA and a certificate for `localhost`, `127.0.0.1`, `::1` and
/// `listen_ip`, and write them into `cert_dir` (or a new temporary directory).
pub fn generate(cert_dir: Option<&Path>, listen_ip: IpAddr) -> Result<DevTlsFiles, String> {
    let (dir, remove_on_exit) = match cert_dir {
        Some(dir) => {
            local::create_dir_all(dir)
                .map_err(|error| format!("Error creating -dev-tls-cert-dir {dir:?}: {error}"))?;
            (dir.to_path_buf(), false)
        }
        None => (new_temp_dir()?, true),
    };
    let issue = |why: rcgen::Error| format!("Error generating the dev TLS certificates: {why}");

    let ca_key = rcgen::KeyPair::generate().map_err(issue)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(issue)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Arca Development CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_certificate = ca_params.self_signed(&ca_key).map_err(issue)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen_ip.is_unspecified() && !names.contains(&listen_ip.to_string()) {
        names.push(listen_ip.to_string());
    }
    let server_key = rcgen::KeyPair::generate().map_err(issue)?;
    let mut server_params = rcgen::CertificateParams::new(names).map_err(issue)?;
    server_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_certificate = server_params
        .signed_by(&server_key, &issuer)
        .map_err(issue)?;

    let ca_file = dir.join(CA_FILE_NAME);
    let cert_file = dir.join(CERT_FILE_NAME);
    let key_file = dir.join(KEY_FILE_NAME);
    write_file(&ca_file, ca_certificate.pem().as_bytes(), 0o644)?;
    write_file(&cert_file, server_certificate.pem().as_bytes(), 0o644)?;
    let key_pem = zeroize::Zeroizing::new(server_key.serialize_pem());
    write_file(&key_file, key_pem.as_bytes(), 0o600)?;
    Ok(DevTlsFiles {
        dir,
        ca_file,
        listener: ListenerTlsFiles {
            cert_file,
            key_file,
            policy: TlsPolicy::default(),
            client_ca_file: None,
            require_client_cert: false,
        },
        remove_on_exit,
    })
}

/// Remove what [`generate`] wrote, when it chose the directory.
pub fn remove(files: &DevTlsFiles) {
    if files.remove_on_exit {
        let _ = local::remove_dir_all(&files.dir);
    }
}

/// `$TMPDIR/arca-tls-PID[-N]`, created fresh (never reusing someone's directory).
fn new_temp_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for attempt in 0..TEMP_DIR_ATTEMPTS_MAX {
        let name = if attempt == 0 {
            format!("arca-tls-{pid}")
        } else {
            format!("arca-tls-{pid}-{attempt}")
        };
        let dir = base.join(name);
        match local::create_new_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(format!(
                    "Error creating a directory for the dev TLS certificates in {base:?}: {error}"
                ));
            }
        }
    }
    Err(format!(
        "Error creating a directory for the dev TLS certificates in {base:?}: every name is taken"
    ))
}

/// Write a new file with `mode` from the start, so the key is never readable by others
/// even for a moment.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    local::write_file_with_mode(path, bytes, mode)
        .map_err(|error| format!("Error writing {path:?}: {error}"))
}
