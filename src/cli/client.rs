//! The one place the CLI talks HTTP: Vault's request headers, its retry policy, and its
//! error text (`Error making API request. ... Code: 403. Errors: ...`).

use std::time::Duration;

use serde_json::Value;

use super::secret::Secret;

/// How a request is made; `List` is `GET ?list=true`, as Vault's client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Patch,
    Delete,
    List,
}

impl Method {
    fn http(self) -> reqwest::Method {
        match self {
            Method::Get | Method::List => reqwest::Method::GET,
            Method::Put => reqwest::Method::PUT,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }

    /// The capabilities a policy must grant for this method (Vault's `-output-policy`).
    fn capabilities(self) -> &'static [&'static str] {
        match self {
            Method::Get => &["read"],
            Method::Put | Method::Post => &["create", "update"],
            Method::Patch => &["patch"],
            Method::Delete => &["delete"],
            Method::List => &["list"],
        }
    }
}

/// Whether requests are sent, or only described (`-output-curl-string`, `-output-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    #[default]
    Send,
    CurlString,
    Policy,
}

/// Everything needed to build a client, resolved from flags and the environment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub address: String,
    pub token: Option<String>,
    pub namespace: Option<String>,
    pub wrap_ttl: Option<String>,
    /// How the server's certificate is checked and which certificate we show it.
    pub tls: ClientTls,
    /// Retries after the first attempt (`VAULT_MAX_RETRIES`, default 2).
    pub retries_max: u32,
    pub timeout: Duration,
    /// Extra headers from `-header` (never `X-Vault-*`: the CLI sets those itself).
    pub headers: Vec<(String, String)>,
    pub output_mode: OutputMode,
    /// For the curl string: the `-ca-cert` path, as given.
    pub ca_cert_path: Option<String>,
}

/// The CLI's TLS settings, already read from disk: `-ca-cert`/`VAULT_CACERT`,
/// `-ca-path`/`VAULT_CAPATH`, `-client-cert`/`-client-key`, `-tls-server-name` and
/// `-tls-skip-verify`.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) that replace the system's roots; empty means the system's.
    pub ca_certificates_pem: Vec<Vec<u8>>,
    pub client_certificate_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub server_name: Option<String>,
    pub skip_verify: bool,
}

impl std::fmt::Debug for ClientTls {
    // The client key never reaches a debug print.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClientTls")
            .field("ca_certificates", &self.ca_certificates_pem.len())
            .field("client_certificate", &self.client_certificate_pem.is_some())
            .field("client_key", &self.client_key_pem.is_some())
            .field("server_name", &self.server_name)
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

/// Vault's client waits between 1 and 1.5 s before a retry; a fixed second keeps the
/// CLI free of randomness.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// A non-2xx answer, printed the way Vault's Go client prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub errors: Vec<String>,
    /// The body when it was not Vault's `{"errors": [...]}` JSON.
    pub raw_body: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "Error making API request.\n\nURL: {} {}\n",
            self.method, self.url
        )?;
        match &self.raw_body {
            Some(raw) => write!(formatter, "Code: {}. Raw Message:\n\n{raw}", self.status),
            None => {
                write!(formatter, "Code: {}. Errors:\n\n", self.status)?;
                let lines: Vec<String> = self
                    .errors
                    .iter()
                    .map(|error| format!("* {error}"))
                    .collect();
                write!(formatter, "{}", lines.join("\n"))
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Api(ApiError),
    #[error("{0}")]
    Transport(String),
    /// Not an error: the request was described instead of sent (`-output-curl-string`,
    /// `-output-policy`); the text is what the command prints.
    #[error("{0}")]
    Described(String),
}

impl RequestError {
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Api(error) => Some(error.status),
            RequestError::Transport(_) | RequestError::Described(_) => None,
        }
    }
}

/// A 2xx answer: its status and its JSON body (`None` for 204 or an empty body).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
}

impl Response {
    pub fn secret(&self) -> Option<Secret> {
        self.body.as_ref().and_then(Secret::from_body)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    /// The TLS settings `http` was built with, for a client without a total timeout
    /// ([`Client::stream`]).
    tls_config: rustls::ClientConfig,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, String> {
        // reqwest is built without a default TLS provider; ring is chosen here, before
        // any client exists (a second install is a harmless no-op error).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // One rustls configuration for every TLS setting, so a named CA replaces the
        // system's roots (as in Vault) and a server name can differ from the host.
        let tls = &config.tls;
        let tls_config = crate::http::tls::client_config(&crate::http::tls::ClientPem {
            ca_certificates: tls.ca_certificates_pem.iter().map(Vec::as_slice).collect(),
            client_certificate: tls.client_certificate_pem.as_deref(),
            client_key: tls.client_key_pem.as_ref().map(|key| key.as_slice()),
            server_name: tls.server_name.as_deref(),
            skip_verify: tls.skip_verify,
        })
        .map_err(|error| {
            use crate::http::tls::PemInput;
            let what = match error.input() {
                Some(PemInput::ServerCa) => "Error loading CA certificate",
                Some(PemInput::ClientCertificate) | Some(PemInput::ClientKey) => {
                    "Error loading client certificate"
                }
                _ => "Error configuring TLS",
            };
            format!("{what}: {error}")
        })?;
        let builder = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .tls_backend_preconfigured(tls_config.clone());
        let http = builder
            .build()
            .map_err(|error| format!("Error initializing client: {error}"))?;
        Ok(Client {
            http,
            tls_config,
            config,
        })
    }

    pub fn address(&self) -> &str {
        &self.config.address
    }

    /// A client that really sends, without response wrapping: for the lookups a command
    /// makes before its own request (the `kv` mount preflight), which Vault also sends
    /// when only the command's request is to be described or wrapped.
    pub fn for_preflight(&self) -> Client {
        let mut preflight = self.clone();
        preflight.config.output_mode = OutputMode::Send;
        preflight.config.wrap_ttl = None;
        preflight
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.config.token = token;
    }

    fn url(&self, method: Method, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!(
            "{}/v1/{}",
            self.config.address.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{}={}", encode_query(key), encode_query(value)))
            .collect();
        if method == Method::List {
            pairs.push("list=true".to_string());
        }
        if !pairs.is_empty() {
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        url
    }

    /// Send one logical request; non-2xx answers become [`RequestError::Api`].
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Response, RequestError> {
        let url = self.url(method, path, query);
        match self.config.output_mode {
            OutputMode::Send => {}
            OutputMode::CurlString => {
                return Err(RequestError::Described(
                    self.curl_string(method, &url, body),
                ));
            }
            OutputMode::Policy => {
                return Err(RequestError::Described(policy_for(method, path)));
            }
        }
        let mut attempt = 0;
        loop {
            let result = self.send_once(method, &url, body);
            let retry = match &result {
                Err(RequestError::Transport(_)) => true,
                Err(RequestError::Api(error)) => {
                    error.status == 412 || (error.status >= 500 && error.status != 501)
                }
                Ok(_) | Err(RequestError::Described(_)) => false,
            };
            if !retry || attempt >= self.config.retries_max {
                return result;
            }
            attempt += 1;
            std::thread::sleep(RETRY_WAIT);
        }
    }

    /// Every header a request carries besides `Content-Type`, in a fixed order.
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("X-Vault-Request".to_string(), "true".to_string())];
        if let Some(token) = self
            .config
            .token
            .as_deref()
            .filter(|token| !token.is_empty())
        {
            headers.push(("X-Vault-Token".to_string(), token.to_string()));
        }
        if let Some(namespace) = &self.config.namespace {
            headers.push(("X-Vault-Namespace".to_string(), namespace.clone()));
        }
        if let Some(wrap_ttl) = &self.config.wrap_ttl {
            headers.push(("X-Vault-Wrap-TTL".to_string(), wrap_ttl.clone()));
        }
        headers.extend(self.config.headers.iter().cloned());
        headers
    }

    /// Vault's `-output-curl-string`: the request as a curl command line, with the
    /// token replaced by `$(arca print token)` so the line can be shared.
    pub fn curl_string(&self, method: Method, url: &str, body: Option<&Value>) -> String {
        let mut line = String::from("curl ");
        if self.config.tls.skip_verify {
            line.push_str("--insecure ");
        }
        if method.http() != reqwest::Method::GET {
            line.push_str(&format!("-X {} ", method.http()));
        }
        if let Some(path) = &self.config.ca_cert_path {
            line.push_str(&format!("--cacert {} ", shell_single_quoted(path)));
        }
        for (name, value) in self.headers() {
            let value = if name == "X-Vault-Token" {
                "$(arca print token)".to_string()
            } else {
                value
            };
            line.push_str(&format!("-H \"{name}: {value}\" "));
        }
        if let Some(body) = body {
            let text = serde_json::to_string(body).unwrap_or_default();
            line.push_str(&format!("-d {} ", shell_single_quoted(&text)));
        }
        line.push_str(url);
        line
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Response, RequestError> {
        let mut request = self.http.request(method.http(), url);
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            let content_type = if method == Method::Patch {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header("Content-Type", content_type)
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let go_method = go_method_name(method);
        let response = request.send().map_err(|error| {
            RequestError::Transport(format!("{go_method} \"{url}\": {}", error_chain(&error)))
        })?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|error| {
            RequestError::Transport(format!("{go_method} \"{url}\": {}", error_chain(&error)))
        })?;
        let parsed: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            serde_json::from_str(&text).ok()
        };
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                body: parsed,
            });
        }
        Err(api_error(method, url, status, &text))
    }

    /// A binary download (`sys/storage/raft/snapshot`), read in chunks so `progress`
    /// sees it arrive; at most `bytes_max` bytes are taken.
    pub fn download(
        &self,
        path: &str,
        bytes_max: usize,
        progress: &mut super::local::ProgressMeter,
    ) -> Result<Vec<u8>, RequestError> {
        use std::io::Read;
        let url = self.url(Method::Get, path, &[]);
        if let Some(described) = self.described(Method::Get, path, &url) {
            return Err(described);
        }
        let mut request = self
            .http
            .get(&url)
            .timeout(transfer_timeout(self.config.timeout, bytes_max as u64));
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        let transport = |error: &dyn std::fmt::Display| {
            RequestError::Transport(format!("GET \"{url}\": {error}"))
        };
        let mut response = request.send().map_err(|error| transport(&error))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().map_err(|error| transport(&error))?;
            return Err(api_error(Method::Get, &url, status, &text));
        }
        progress.set_total(response.content_length());
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; TRANSFER_CHUNK_BYTES];
        loop {
            let read = response
                .read(&mut chunk)
                .map_err(|error| transport(&error))?;
            if read == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..read]);
            if bytes.len() > bytes_max {
                return Err(transport(&format!("the body exceeds {bytes_max} bytes")));
            }
            progress.advance(read as u64);
        }
        progress.finish();
        Ok(bytes)
    }

    /// A streamed answer (`sys/monitor`): each piece of the body is handed to `sink` as
    /// it arrives, until the server ends it or `sink` returns false. No total timeout:
    /// a stream lasts as long as the user wants it.
    pub fn stream(
        &self,
        path: &str,
        query: &[(String, String)],
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), RequestError> {
        use std::io::Read;
        let url = self.url(Method::Get, path, query);
        if let Some(described) = self.described(Method::Get, path, &url) {
            return Err(described);
        }
        let transport = |error: &dyn std::fmt::Display| {
            RequestError::Transport(format!("GET \"{url}\": {error}"))
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .connect_timeout(self.config.timeout)
            .tls_backend_preconfigured(self.tls_config.clone())
            .build()
            .map_err(|error| transport(&error))?;
        let mut request = http.get(&url);
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        let mut response = request.send().map_err(|error| transport(&error))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().map_err(|error| transport(&error))?;
            return Err(api_error(Method::Get, &url, status, &text));
        }
        let mut chunk = vec![0u8; TRANSFER_CHUNK_BYTES];
        loop {
            let read = response
                .read(&mut chunk)
                .map_err(|error| transport(&error))?;
            if read == 0 || !sink(&chunk[..read]) {
                return Ok(());
            }
        }
    }

    /// A binary upload (a snapshot restore): `body` is sent as it is, with `progress`
    /// told as it leaves. Not retried: a restore is not something to repeat blindly.
    pub fn upload(
        &self,
        path: &str,
        body: Vec<u8>,
        progress: super::local::ProgressMeter,
    ) -> Result<Response, RequestError> {
        let url = self.url(Method::Post, path, &[]);
        if let Some(described) = self.described(Method::Post, path, &url) {
            return Err(described);
        }
        let length = body.len() as u64;
        let mut request = self
            .http
            .post(&url)
            .timeout(transfer_timeout(self.config.timeout, length));
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        let reader =
            super::local::ProgressReader::new(std::io::Cursor::new(body), progress, length);
        let response = request
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::sized(reader, length))
            .send()
            .map_err(|error| {
                RequestError::Transport(format!("POST \"{url}\": {}", error_chain(&error)))
            })?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|error| {
            RequestError::Transport(format!("POST \"{url}\": {}", error_chain(&error)))
        })?;
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                body: serde_json::from_str(&text).ok(),
            });
        }
        Err(api_error(Method::Post, &url, status, &text))
    }

    /// The description `-output-curl-string` or `-output-policy` asks for instead of
    /// sending (a binary body is shown as `@FILE`).
    fn described(&self, method: Method, path: &str, url: &str) -> Option<RequestError> {
        match self.config.output_mode {
            OutputMode::Send => None,
            OutputMode::CurlString => {
                Some(RequestError::Described(self.curl_string(method, url, None)))
            }
            OutputMode::Policy => Some(RequestError::Described(policy_for(method, path))),
        }
    }

    /// Vault's `Logical().Read`: a 404 without data is "nothing there", not an error.
    pub fn read(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, RequestError> {
        self.read_or_list(Method::Get, path, query)
    }

    /// Vault's `Logical().List`, with the same 404 rule as reads.
    pub fn list(&self, path: &str) -> Result<Option<Secret>, RequestError> {
        self.read_or_list(Method::List, path, &[])
    }

    fn read_or_list(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, RequestError> {
        match self.send(method, path, query, None) {
            Ok(response) => Ok(response.secret()),
            Err(RequestError::Api(error)) if error.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `PUT` with an optional JSON body; `None` back for 204 / empty answers.
    pub fn write(&self, path: &str, body: Option<&Value>) -> Result<Option<Secret>, RequestError> {
        self.send(Method::Put, path, &[], body)
            .map(|response| response.secret())
    }

    /// `PATCH` with a JSON merge patch (Vault's `JSONMergePatch`).
    pub fn patch(&self, path: &str, body: &Value) -> Result<Option<Secret>, RequestError> {
        self.send(Method::Patch, path, &[], Some(body))
            .map(|response| response.secret())
    }

    pub fn delete(&self, path: &str) -> Result<Option<Secret>, RequestError> {
        self.send(Method::Delete, path, &[], None)
            .map(|response| response.secret())
    }
}

/// Go's `http.Client` error text starts with the method in title case.
fn go_method_name(method: Method) -> &'static str {
    match method {
        Method::Get | Method::List => "Get",
        Method::Put => "Put",
        Method::Post => "Post",
        Method::Patch => "Patch",
        Method::Delete => "Delete",
    }
}

/// `'text'` for a POSIX shell, with embedded single quotes closed, escaped and reopened.
fn shell_single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\"'\"'"))
}

/// Paths that need `sudo` as well (Vault's client-side list of root-protected paths),
/// as prefixes; an entry ending in `/` covers everything below it.
const SUDO_PATH_PREFIXES: &[&str] = &[
    "auth/token/accessors/",
    "auth/token/revoke-orphan",
    "sys/audit",
    "sys/auth/",
    "sys/config/auditing/request-headers",
    "sys/config/cors",
    "sys/config/ui/headers",
    "sys/leases/lookup/",
    "sys/leases/revoke-force/",
    "sys/leases/revoke-prefix/",
    "sys/raw",
    "sys/remount",
    "sys/revoke-force/",
    "sys/revoke-prefix/",
    "sys/rotate",
    "sys/seal",
    "sys/step-down",
    "sys/storage/raft/remove-peer",
    "sys/storage/raft/snapshot",
    "sys/storage/raft/snapshot-force",
];

fn is_sudo_path(path: &str) -> bool {
    SUDO_PATH_PREFIXES.iter().any(|prefix| {
        path == prefix.trim_end_matches('/')
            || (prefix.ends_with('/') && path.starts_with(prefix))
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The size of each read of a binary download.
const TRANSFER_CHUNK_BYTES: usize = 64 * 1024;

/// The slowest rate a snapshot transfer is given time for beyond the client timeout
/// (`VAULT_CLIENT_TIMEOUT`, 60 s by default): a restore is staged through Raft before
/// it answers, and a 256 MiB transfer must not be cut off at the ordinary timeout. A
/// 42 MiB restore into a three-node debug cluster on a loaded two-core machine took
/// over 100 s, so a quarter MiB a second.
const TRANSFER_BYTES_PER_SECOND_MIN: u64 = 256 * 1024;

/// The time a transfer of up to `bytes` is allowed.
fn transfer_timeout(timeout: Duration, bytes: u64) -> Duration {
    timeout + Duration::from_secs(bytes / TRANSFER_BYTES_PER_SECOND_MIN)
}

/// A non-2xx answer as [`RequestError::Api`]: Vault's `errors` list, or the raw body.
fn api_error(method: Method, url: &str, status: u16, text: &str) -> RequestError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let errors = parsed
        .as_ref()
        .and_then(|body| body.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error
                        .as_str()
                        .map_or_else(|| error.to_string(), str::to_string)
                })
                .collect::<Vec<_>>()
        });
    RequestError::Api(ApiError {
        method: method.http().to_string(),
        url: url.to_string(),
        status,
        raw_body: if errors.is_none() {
            Some(text.to_string())
        } else {
            None
        },
        errors: errors.unwrap_or_default(),
    })
}

/// Vault's `-output-policy`: the smallest policy that allows the request.
pub fn policy_for(method: Method, path: &str) -> String {
    let path = path.trim_start_matches('/');
    let mut capabilities: Vec<&str> = method.capabilities().to_vec();
    if is_sudo_path(path) {
        capabilities.push("sudo");
    }
    let quoted: Vec<String> = capabilities
        .iter()
        .map(|capability| format!("\"{capability}\""))
        .collect();
    format!(
        "path \"{path}\" {{\n  capabilities = [{}]\n}}",
        quoted.join(", ")
    )
}

/// The innermost cause of a transport error ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer"): the part a user can act on, as Go's
/// `dial tcp ...: connection refused` is.
/// The innermost cause, as Go's client prints it; a certificate failure in Go's own
/// words (`tls: failed to verify certificate: x509: certificate signed by unknown
/// authority`), which scripts written for Vault look for.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    loop {
        if let Some(text) = innermost
            .downcast_ref::<rustls::Error>()
            .and_then(crate::http::tls::go_style_error)
        {
            return text;
        }
        // An `io::Error`'s `source()` skips the error it wraps (where rustls's is, two
        // `io::Error`s deep under reqwest), so step into it instead.
        let next = match innermost.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => innermost.source(),
        };
        match next {
            Some(cause) => innermost = cause,
            None => return innermost.to_string(),
        }
    }
}

/// Percent-encoding for query keys and values (unreserved characters pass through).
fn encode_query(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_print_like_vault() {
        let error = ApiError {
            method: "PUT".to_string(),
            url: "http://127.0.0.1:8200/v1/sys/policies/acl/x".to_string(),
            status: 403,
            errors: vec!["permission denied".to_string()],
            raw_body: None,
        };
        assert_eq!(
            error.to_string(),
            "Error making API request.\n\nURL: PUT http://127.0.0.1:8200/v1/sys/policies/acl/x\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    fn client(mode: OutputMode) -> Client {
        Client::new(ClientConfig {
            address: "http://127.0.0.1:8200".to_string(),
            token: Some("hvs.secret".to_string()),
            namespace: None,
            wrap_ttl: Some("5m".to_string()),
            tls: ClientTls::default(),
            retries_max: 0,
            timeout: Duration::from_secs(1),
            headers: vec![("X-Team".to_string(), "blue".to_string())],
            output_mode: mode,
            ca_cert_path: Some("/tmp/it's.pem".to_string()),
        })
        .unwrap()
    }

    #[test]
    fn a_described_request_is_a_curl_line_without_the_token() {
        let error = client(OutputMode::CurlString)
            .write(
                "secret/data/a",
                Some(&serde_json::json!({"data": {"k": "it's"}})),
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "curl -X PUT --cacert '/tmp/it'\"'\"'s.pem' -H \"X-Vault-Request: true\" -H \"X-Vault-Token: $(arca print token)\" -H \"X-Vault-Wrap-TTL: 5m\" -H \"X-Team: blue\" -d '{\"data\":{\"k\":\"it'\"'\"'s\"}}' http://127.0.0.1:8200/v1/secret/data/a"
        );
        let list = client(OutputMode::CurlString)
            .list("secret/metadata/")
            .unwrap_err();
        assert!(
            list.to_string()
                .ends_with(" http://127.0.0.1:8200/v1/secret/metadata/?list=true")
        );
        assert!(!list.to_string().contains("-X "));
    }

    #[test]
    fn a_policy_names_the_capabilities_and_sudo() {
        assert_eq!(
            client(OutputMode::Policy)
                .read("secret/data/a", &[])
                .unwrap_err()
                .to_string(),
            "path \"secret/data/a\" {\n  capabilities = [\"read\"]\n}"
        );
        assert_eq!(
            policy_for(Method::Put, "sys/rotate"),
            "path \"sys/rotate\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}"
        );
        assert_eq!(
            policy_for(Method::List, "sys/auditx"),
            "path \"sys/auditx\" {\n  capabilities = [\"list\"]\n}"
        );
        assert!(policy_for(Method::Put, "sys/audit/file").contains("\"sudo\""));
        assert!(policy_for(Method::Post, "sys/auth/userpass/tune").contains("\"sudo\""));
        // The preflight really sends, whatever the command's mode.
        assert_eq!(
            client(OutputMode::Policy)
                .for_preflight()
                .config
                .output_mode,
            OutputMode::Send
        );
    }

    #[test]
    fn list_becomes_get_with_a_query() {
        let client = Client::new(ClientConfig {
            address: "http://127.0.0.1:8200/".to_string(),
            token: None,
            namespace: None,
            wrap_ttl: None,
            tls: ClientTls::default(),
            retries_max: 0,
            timeout: Duration::from_secs(1),
            headers: Vec::new(),
            output_mode: OutputMode::Send,
            ca_cert_path: None,
        })
        .unwrap();
        assert_eq!(
            client.url(Method::List, "/secret/metadata/", &[]),
            "http://127.0.0.1:8200/v1/secret/metadata/?list=true"
        );
        assert_eq!(
            client.url(
                Method::Get,
                "secret/data/a",
                &[("version".to_string(), "2 &".to_string())]
            ),
            "http://127.0.0.1:8200/v1/secret/data/a?version=2%20%26"
        );
    }
}
