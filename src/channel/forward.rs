//! `arca-fwd/1`: a standby sends a client's request whole to the active node and relays
//! the answer. The active node knows a request was forwarded because it arrived on
//! this protocol, never from anything the client could set.
//!
//! The HTTP edge of the standby already enforced the request limits; the active node
//! checks them again on decode, since a frame is only as good as its sender.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use crate::http::{ApiRequest, ApiResponse, REQUEST_PATH_BYTES_MAX, request_body_bytes_max};

/// The most headers a forwarded request may carry.
pub const FORWARD_HEADERS_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub method: String,
    /// The path after `/v1/`.
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Header names and raw values, in the client's order (repeated names repeat).
    pub headers: Vec<(String, Vec<u8>)>,
    #[serde(with = "crate::storage::byte_string::bytes_field")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "crate::storage::byte_string::bytes_field")]
    pub body: Vec<u8>,
}

impl ForwardRequest {
    pub fn from_api(request: &ApiRequest) -> Self {
        Self {
            method: request.method.as_str().to_string(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
                .collect(),
            body: request.body.to_vec(),
        }
    }

    /// The request as the active node's core sees it, or why it is refused.
    pub fn into_api(self) -> Result<ApiRequest, String> {
        if self.path.len() > REQUEST_PATH_BYTES_MAX {
            return Err(format!(
                "forwarded path exceeds {REQUEST_PATH_BYTES_MAX} bytes"
            ));
        }
        if self.headers.len() > FORWARD_HEADERS_MAX {
            return Err(format!(
                "forwarded request has more than {FORWARD_HEADERS_MAX} headers"
            ));
        }
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| "forwarded request has an invalid method".to_string())?;
        // The same limit the standby's own listener applied.
        let body_bytes_max = request_body_bytes_max(&method, &self.path);
        if self.body.len() > body_bytes_max {
            return Err(format!("forwarded body exceeds {body_bytes_max} bytes"));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| "forwarded request has an invalid header name".to_string())?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|_| "forwarded request has an invalid header value".to_string())?;
            headers.append(name, value);
        }
        Ok(ApiRequest {
            method,
            path: self.path,
            query: self.query,
            headers,
            body: Bytes::from(self.body),
            delegated_caller: None,
        })
    }
}

impl ForwardResponse {
    pub fn from_api(response: ApiResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body.to_vec(),
        }
    }

    pub fn into_api(self) -> ApiResponse {
        ApiResponse {
            status: self.status,
            body: Bytes::from(self.body),
            headers: self.headers,
            stream: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_trip_and_bad_fields_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("x-vault-token", HeaderValue::from_static("s.abc"));
        headers.append("x-custom", HeaderValue::from_static("one"));
        headers.append("x-custom", HeaderValue::from_static("two"));
        let request = ApiRequest {
            method: Method::PUT,
            path: "secret/data/a".into(),
            query: BTreeMap::from([("version".to_string(), "2".to_string())]),
            headers,
            body: Bytes::from_static(b"{\"data\":{}}"),
            delegated_caller: None,
        };
        let back = ForwardRequest::from_api(&request).into_api().unwrap();
        assert_eq!(back.method, request.method);
        assert_eq!(back.path, request.path);
        assert_eq!(back.query, request.query);
        assert_eq!(back.headers, request.headers);
        assert_eq!(back.body, request.body);

        let mut bad = ForwardRequest::from_api(&request);
        bad.headers.push(("bad name".into(), b"x".to_vec()));
        assert!(bad.into_api().is_err());
        let mut bad = ForwardRequest::from_api(&request);
        bad.method = "GE T".into();
        assert!(bad.into_api().is_err());
        let mut bad = ForwardRequest::from_api(&request);
        bad.path = "a".repeat(REQUEST_PATH_BYTES_MAX + 1);
        assert!(bad.into_api().is_err());
    }
}
