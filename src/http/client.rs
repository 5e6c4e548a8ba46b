//! A small HTTP/1 client over `tokio::net`, used between nodes (request forwarding from
//! standbys, Raft join). reqwest cannot run in the simulator; hyper can.

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

#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `http://host:port` (or bare `host:port`) into `host:port`; `https://` is accepted
/// the same way until TLS between nodes exists.
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

/// One request on a fresh connection, bounded by `timeout`.
pub async fn request(
    address: &str,
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
        let response =
            sender
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
    };
    crate::env::runtime::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(target.clone()))?
}

/// POST a JSON body and parse a JSON answer.
pub async fn post_json(
    address: &str,
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
