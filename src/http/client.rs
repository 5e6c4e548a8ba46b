//! A small HTTP/1 client over `tokio::net`, used between nodes (Raft join, unwrapping a
//! replication activation token). reqwest cannot run in the simulator; hyper can.
//!
//! An `https://` address is reached over TLS in the real build, trusting what the
//! caller's [`PeerTls`] names (a `retry_join` block's `leader_*` settings) or else the
//! system's roots. The simulator has no TLS: there an `https://` address is reached in
//! plain TCP, as every simulated address is.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// The largest response body accepted from a peer.
pub const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    #[error("connecting to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("request to {address} failed: {reason}")]
    Request { address: String, reason: String },
    #[error("request to {0} timed out")]
    Timeout(String),
}

/// How to reach a peer's `https://` API: PEM contents (Vault's `leader_ca_cert`,
/// `leader_client_cert`, `leader_client_key`) and the name its certificate must carry
/// (`leader_tls_servername`). All empty means: trust the system's roots, check the
/// address's host. Ignored for `http://` addresses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PeerTls {
    pub ca_certificate_pem: Option<Vec<u8>>,
    pub client_certificate_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub server_name: Option<String>,
}

impl std::fmt::Debug for PeerTls {
    // The client key never reaches a log line, even through `{:?}` of a config.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PeerTls")
            .field("ca_certificate", &self.ca_certificate_pem.is_some())
            .field("client_certificate", &self.client_certificate_pem.is_some())
            .field("client_key", &self.client_key_pem.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

#[cfg(not(madsim))]
impl PeerTls {
    /// The rustls client configuration this describes.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, super::tls::TlsError> {
        super::tls::client_config(&super::tls::ClientPem {
            ca_certificates: self.ca_certificate_pem.as_deref().into_iter().collect(),
            client_certificate: self.client_certificate_pem.as_deref(),
            client_key: self.client_key_pem.as_ref().map(|key| key.as_slice()),
            server_name: self.server_name.as_deref(),
            skip_verify: false,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `http://host:port`, `https://host:port` (or bare `host:port`) into `host:port`.
pub fn host_port(address: &str) -> Result<String, ClientError> {
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    let host_port = rest.split('/').next().unwrap_or_default();
    if host_port.is_empty() {
        return Err(ClientError::InvalidAddress(address.to_string()));
    }
    Ok(host_port.to_string())
}

/// The host of a `host:port` pair, without IPv6 brackets.
#[cfg(not(madsim))]
fn host_of(host_port: &str) -> &str {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
}

/// One request on a fresh connection, bounded by `timeout`; over TLS to an `https://`
/// address (real build), trusting what `tls` names.
pub async fn request(
    address: &str,
    tls: &PeerTls,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    let target = host_port(address)?;
    let work = async {
        let stream = tokio::net::TcpStream::connect(target.as_str())
            .await
            .map_err(|error| ClientError::Connect {
                address: target.clone(),
                reason: error.to_string(),
            })?;
        // A request is written as it is ready, not held for the ACK of the last write.
        stream
            .set_nodelay(true)
            .map_err(|error| ClientError::Connect {
                address: target.clone(),
                reason: error.to_string(),
            })?;
        #[cfg(not(madsim))]
        if address.starts_with("https://") {
            let config = tls.client_config().map_err(|error| ClientError::Connect {
                address: target.clone(),
                reason: format!("TLS configuration: {error}"),
            })?;
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| host_of(&target).to_string());
            let name = rustls::pki_types::ServerName::try_from(name).map_err(|error| {
                ClientError::Connect {
                    address: target.clone(),
                    reason: format!("TLS server name: {error}"),
                }
            })?;
            let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, stream)
                .await
                .map_err(|error| ClientError::Connect {
                    address: target.clone(),
                    reason: tls_reason(&error),
                })?;
            return exchange(stream, &target, method, path_and_query, headers, body).await;
        }
        #[cfg(madsim)]
        let _ = tls;
        exchange(stream, &target, method, path_and_query, headers, body).await
    };
    crate::env::runtime::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(target.clone()))?
}

/// A TLS failure in Go's words where there are some (`x509: certificate signed by
/// unknown authority`), so an operator's log reads as Vault's would.
#[cfg(not(madsim))]
fn tls_reason(error: &std::io::Error) -> String {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(super::tls::go_style_error)
        .unwrap_or_else(|| error.to_string())
}

/// Send one request on an open connection and read the whole answer.
async fn exchange<S>(
    stream: S,
    target: &str,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ClientResponse, ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let target = target.to_string();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| ClientError::Connect {
            address: target.clone(),
            reason: error.to_string(),
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, target.as_str());
    for (name, value) in headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|error| ClientError::Request {
            address: target.clone(),
            reason: error.to_string(),
        })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| ClientError::Request {
            address: target.clone(),
            reason: error.to_string(),
        })?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, RESPONSE_BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| ClientError::Request {
            address: target.clone(),
            reason: error.to_string(),
        })?
        .to_bytes();
    Ok(ClientResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// POST a JSON body and parse a JSON answer.
pub async fn post_json(
    address: &str,
    tls: &PeerTls,
    path: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), ClientError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-vault-request", http::HeaderValue::from_static("true"));
    let response = request(
        address,
        tls,
        Method::POST,
        path,
        &headers,
        Bytes::from(serde_json::to_vec(body).expect("JSON values serialize")),
        timeout,
    )
    .await?;
    let value = if response.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&response.body).map_err(|error| ClientError::Request {
            address: address.to_string(),
            reason: format!("invalid JSON answer: {error}"),
        })?
    };
    Ok((response.status, value))
}
