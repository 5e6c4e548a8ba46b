//! The TLS files an operator names in the configuration, read by the server process:
//! at start, and again for the API listener on SIGHUP.
//!
//! These reads happen outside the disk seam on purpose: the files are the operator's,
//! not the node's data, and TLS runs in the real build only (the simulator serves plain
//! TCP). Every error names the setting and the file; none shows file contents, so a
//! private key never reaches a message or a log line.

use std::path::Path;

use zeroize::Zeroizing;

use crate::config::{ListenerTlsFiles, PemSource, RetryJoinConfig};
use crate::core::JoinTarget;
use crate::http::client::PeerTls;
use crate::http::tls::{ListenerPem, PemInput, ServerTls, TlsError};

/// The largest PEM file accepted: a long chain is a few kilobytes, a CA bundle a few
/// hundred; anything bigger is not a certificate file.
pub const PEM_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Read one operator-named file, bounded, naming the setting on failure.
fn read_pem_file(setting: &str, path: &Path) -> Result<Vec<u8>, String> {
    let describe = |why: String| format!("{setting} {:?}: {why}", path.display().to_string());
    #[allow(clippy::disallowed_methods)]
    let metadata = std::fs::metadata(path).map_err(|error| describe(error.to_string()))?; // seam-ok: operator TLS files, real build only
    if metadata.len() > PEM_FILE_BYTES_MAX {
        return Err(describe(format!(
            "file is larger than {PEM_FILE_BYTES_MAX} bytes"
        )));
    }
    #[allow(clippy::disallowed_methods)]
    let bytes = std::fs::read(path).map_err(|error| describe(error.to_string()))?; // seam-ok: operator TLS files, real build only
    Ok(bytes)
}

/// The listener's files, read and checked into a rustls configuration.
pub fn load_listener(files: &ListenerTlsFiles) -> Result<rustls::ServerConfig, String> {
    let pem = ListenerPem {
        certificate_chain: read_pem_file("tls_cert_file", &files.cert_file)?,
        private_key: Zeroizing::new(read_pem_file("tls_key_file", &files.key_file)?),
        client_ca: match &files.client_ca_file {
            Some(path) => Some(read_pem_file("tls_client_ca_file", path)?),
            None => None,
        },
        policy: files.policy.clone(),
        require_client_certificate: files.require_client_cert,
    };
    crate::http::tls::server_config(&pem).map_err(|error| listener_error(files, &error))
}

/// A listener error with the setting and file it is about.
fn listener_error(files: &ListenerTlsFiles, error: &TlsError) -> String {
    if let TlsError::Policy(reason) = error {
        return format!(
            "{reason} (tls_cert_file {:?})",
            files.cert_file.display().to_string()
        );
    }
    let (setting, path) = match error.input() {
        Some(PemInput::Certificate) => ("tls_cert_file", Some(&files.cert_file)),
        Some(PemInput::PrivateKey) => ("tls_key_file", Some(&files.key_file)),
        Some(PemInput::ClientCa) => ("tls_client_ca_file", files.client_ca_file.as_ref()),
        _ => ("tls_cert_file", Some(&files.cert_file)),
    };
    match path {
        Some(path) => format!("{setting} {:?}: {error}", path.display().to_string()),
        None => format!("{setting}: {error}"),
    }
}

/// A `retry_join` block as a [`JoinTarget`], its PEM files read now so a bad path
/// stops the server at start rather than failing every join attempt quietly.
pub fn load_join_target(join: &RetryJoinConfig) -> Result<JoinTarget, String> {
    let read = |setting: &str, source: &Option<PemSource>| -> Result<Option<Vec<u8>>, String> {
        match source {
            Some(PemSource::File(path)) => read_pem_file(setting, path).map(Some),
            Some(PemSource::Inline(text)) => Ok(Some(text.as_bytes().to_vec())),
            None => Ok(None),
        }
    };
    let tls = PeerTls {
        ca_certificate_pem: read("leader_ca_cert_file", &join.leader_ca_cert)?,
        client_certificate_pem: read("leader_client_cert_file", &join.leader_client_cert)?,
        client_key_pem: read("leader_client_key_file", &join.leader_client_key)?
            .map(Zeroizing::new),
        server_name: join.leader_tls_servername.clone(),
    };
    // Checked once here: the same PEM is used for every attempt.
    if join.leader_api_addr.starts_with("https://")
        && let Err(error) = tls.client_config()
    {
        let setting = match error.input() {
            Some(PemInput::ClientCertificate) => "leader_client_cert_file",
            Some(PemInput::ClientKey) => "leader_client_key_file",
            Some(PemInput::ServerCa) => "leader_ca_cert_file",
            _ => "leader_tls_servername",
        };
        return Err(format!(
            "retry_join {:?}: {setting}: {error}",
            join.leader_api_addr
        ));
    }
    Ok(JoinTarget {
        leader_api_addr: join.leader_api_addr.clone(),
        tls,
    })
}

/// Read the listener's files again and swap the certificate in (SIGHUP). A bad file is
/// logged and the listener keeps serving with the certificate it has, as Vault does: a
/// failed rotation must not take the API down.
pub fn reload_listener(tls: &ServerTls, files: &ListenerTlsFiles) {
    match load_listener(files) {
        Ok(config) => {
            tls.replace(config);
            tracing::info!(
                cert_file = %files.cert_file.display(),
                "reloaded the API listener's certificate"
            );
        }
        Err(error) => tracing::error!(
            %error,
            "reload of the API listener's certificate failed; still serving the previous one"
        ),
    }
}
