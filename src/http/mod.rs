//! The HTTP edge: Vault's `/v1/` API on an axum `Router`, served by our own hyper accept
//! loop over `tokio::net` (so it runs in the simulator too; `axum::serve` does not).
//!
//! This layer only translates: bytes and headers in, an [`ApiRequest`] to the core, an
//! [`ApiResponse`] back out with Vault's headers. Every limit is enforced here, before
//! anything is parsed.

pub mod client;
pub mod envelope;
pub mod server;
pub mod tls;
pub mod tls_policy;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Limited};

/// Vault's default maximum request size.
pub const REQUEST_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// The largest body of a snapshot restore (`sys/storage/raft/snapshot[-force]`), the
/// one request that carries a whole saved snapshot.
pub const RESTORE_BODY_BYTES_MAX: usize = crate::raft::saved_snapshot::SAVED_SNAPSHOT_BYTES_MAX;
/// The longest request path accepted.
pub const REQUEST_PATH_BYTES_MAX: usize = 8 * 1024;

/// A request as the core sees it: the path after `/v1/`, the query, the body bytes.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The caller a verified performance secondary authenticated, for a write it
    /// forwarded to this primary: its token lives only there. Set by the replication
    /// handler alone, never from HTTP.
    pub delegated_caller: Option<std::sync::Arc<crate::token::entry::TokenEntry>>,
}

impl ApiRequest {
    /// A boolean query flag (`?list=True`), read as Vault reads every query flag: with
    /// Go's `strconv.ParseBool`. Absent or empty is `None` (Vault treats both as not
    /// set, i.e. false); anything else that is not a boolean is refused, never guessed.
    pub fn query_flag(&self, name: &str) -> Result<Option<bool>, InvalidQueryFlag> {
        match self.query.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(text) => {
                crate::util::parse_go_bool(text)
                    .map(Some)
                    .ok_or_else(|| InvalidQueryFlag {
                        name: name.to_string(),
                        value: text.to_string(),
                    })
            }
        }
    }
}

/// A query flag whose value is not one of Go's booleans; the answer is a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid value {value:?} for query parameter {name:?}: expected one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False"
)]
pub struct InvalidQueryFlag {
    pub name: String,
    pub value: String,
}

impl From<InvalidQueryFlag> for crate::logical::LogicalError {
    fn from(error: InvalidQueryFlag) -> Self {
        crate::logical::LogicalError::BadRequest(error.to_string())
    }
}

/// What the core answers: a status, a body (empty for 204) and extra headers.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
    pub headers: Vec<(String, String)>,
    /// A body sent as it is produced, in place of `body` (`sys/monitor`). Only the HTTP
    /// edge sends one: a response forwarded over the cluster channel carries `body`.
    pub stream: Option<ResponseStream>,
}

/// A response body that arrives in chunks until its producer ends it. Cloning shares
/// it; the HTTP edge takes it once.
#[derive(Clone)]
pub struct ResponseStream(Arc<std::sync::Mutex<Option<BoxStream<'static, Bytes>>>>);

type BoxStream<'a, T> = std::pin::Pin<Box<dyn futures::Stream<Item = T> + Send + 'a>>;

impl ResponseStream {
    pub fn new(stream: impl futures::Stream<Item = Bytes> + Send + 'static) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(Box::pin(stream)))))
    }

    /// The stream, the first time only.
    pub fn take(&self) -> Option<BoxStream<'static, Bytes>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ResponseStream")
    }
}

impl PartialEq for ResponseStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl ApiResponse {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            body: Bytes::from(serde_json::to_vec(value).expect("JSON values serialize")),
            headers: Vec::new(),
            stream: None,
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: Bytes::new(),
            headers: Vec::new(),
            stream: None,
        }
    }

    /// Vault's error envelope: `{"errors": [...]}`.
    pub fn error(status: u16, messages: Vec<String>) -> Self {
        Self::json(status, &serde_json::json!({ "errors": messages }))
    }
}

/// The one thing the HTTP layer calls.
pub trait ApiHandler: Send + Sync + 'static {
    fn handle(&self, request: ApiRequest) -> futures::future::BoxFuture<'_, ApiResponse>;
}

/// The axum router: everything under `/v1/` goes to the handler.
pub fn router(handler: Arc<dyn ApiHandler>) -> Router {
    Router::new().fallback(move |request: Request| {
        let handler = handler.clone();
        async move { serve_one(handler, request).await }
    })
}

/// Stage timings (`crate::metrics::stages`, off unless asked for): the whole request
/// from hyper's parsed head to the response handed back to hyper, the body's
/// collection and the request's checks, the core's handling, and building the response.
async fn serve_one(handler: Arc<dyn ApiHandler>, request: Request) -> Response {
    use tracing::Instrument as _;
    let stage =
        tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.http.total");
    async move {
        let parsed = to_api_request(request)
            .instrument(tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.http.request"))
            .await;
        let response = match parsed {
            Ok(api_request) => {
                handler
                    .handle(api_request)
                    .instrument(tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.core"))
                    .await
            }
            Err(refusal) => refusal,
        };
        let _stage = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.http.response").entered();
        to_http_response(response)
    }
    .instrument(stage)
    .await
}

async fn to_api_request(request: Request) -> Result<ApiRequest, ApiResponse> {
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    if raw_path.len() > REQUEST_PATH_BYTES_MAX {
        return Err(ApiResponse::error(
            400,
            vec!["request path is too long".into()],
        ));
    }
    let Some(path) = raw_path.strip_prefix("/v1/") else {
        return Err(ApiResponse::error(404, Vec::new()));
    };
    let path = percent_decode(path)
        .ok_or_else(|| ApiResponse::error(400, vec!["invalid request path encoding".into()]))?;
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(ApiResponse::error(
            400,
            vec![format!("invalid path {path:?}")],
        ));
    }
    let body_bytes_max = request_body_bytes_max(&parts.method, &path);
    if let Some(length) = parts.headers.get(http::header::CONTENT_LENGTH)
        && length
            .to_str()
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .is_some_and(|length| length > body_bytes_max)
    {
        return Err(too_large());
    }
    // Collected once into one buffer; the restore decodes from it without a copy.
    let body = Limited::new(body, body_bytes_max)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes();
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    Ok(ApiRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        delegated_caller: None,
    })
}

/// The body limit of a request: [`RESTORE_BODY_BYTES_MAX`] for a snapshot restore,
/// Vault's [`REQUEST_BODY_BYTES_MAX`] for everything else.
pub fn request_body_bytes_max(method: &Method, path: &str) -> usize {
    let restore = matches!(
        path.trim_end_matches('/'),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    ) && (method == Method::POST || method == Method::PUT);
    if restore {
        RESTORE_BODY_BYTES_MAX
    } else {
        REQUEST_BODY_BYTES_MAX
    }
}

fn too_large() -> ApiResponse {
    ApiResponse::error(413, vec!["http: request body too large".into()])
}

fn to_http_response(response: ApiResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let stream = response.stream.as_ref().and_then(ResponseStream::take);
    let has_body = !response.body.is_empty();
    let body = match stream {
        // Chunked: hyper sends each piece as it comes, and drops the stream (ending
        // its producer) when the client goes away.
        Some(stream) => Body::from_stream(futures::StreamExt::map(
            stream,
            Ok::<Bytes, std::convert::Infallible>,
        )),
        None => Body::from(response.body),
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    let headers = out.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if has_body {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
    out
}

/// `a=1&b=x%20y` into a sorted map (the last value of a repeated key wins).
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                percent_decode(&key.replace('+', " "))?,
                percent_decode(&value.replace('+', " "))?,
            ))
        })
        .collect()
}

/// Decode `%XX` escapes; `None` for invalid escapes or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The client token of a request: `X-Vault-Token`, else `Authorization: Bearer`.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers
        .get("x-vault-token")
        .and_then(|value| value.to_str().ok())
    {
        let token = token.trim();
        if !token.is_empty() {
            return Some(token.to_string());
        }
    }
    let bearer = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = bearer
        .strip_prefix("Bearer ")
        .or_else(|| bearer.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_escapes_decode() {
        let query = parse_query("list=true&version=2&x=a%20b+c");
        assert_eq!(query["list"], "true");
        assert_eq!(query["x"], "a b c");
        assert_eq!(percent_decode("a%2Fb"), Some("a/b".into()));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("bad%f"), None);
    }

    #[test]
    fn tokens_come_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer hvs.abc"));
        assert_eq!(request_token(&headers).as_deref(), Some("hvs.abc"));
        headers.insert("x-vault-token", HeaderValue::from_static("hvs.def"));
        assert_eq!(request_token(&headers).as_deref(), Some("hvs.def"));
    }
}
