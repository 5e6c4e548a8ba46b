//! A tiny Vault API client for the simulated workload, over the same hyper client the
//! server uses between nodes (it runs on madsim's network).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

/// Every simulated request gives up after this long (virtual time).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The status and JSON body (or `Null`) of one request, or why it never got an answer.
pub async fn call(
    address: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut headers = HeaderMap::new();
    headers.insert("x-vault-request", HeaderValue::from_static("true"));
    if let Some(token) = token {
        headers.insert(
            "x-vault-token",
            HeaderValue::from_str(token).map_err(|error| error.to_string())?,
        );
    }
    let body = body
        .map(|value| Bytes::from(value.to_string()))
        .unwrap_or_default();
    // Simulated nodes serve plain HTTP: the simulator has no TLS.
    let response = arca::http::client::request(
        address,
        &arca::http::client::PeerTls::default(),
        method,
        &format!("/v1/{path}"),
        &headers,
        body,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|error| error.to_string())?;
    let value = if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&response.body).unwrap_or(Value::Null)
    };
    Ok((response.status, value))
}
