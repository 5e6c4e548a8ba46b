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
    Delete,
    List,
}

impl Method {
    fn http(self) -> reqwest::Method {
        match self {
            Method::Get | Method::List => reqwest::Method::GET,
            Method::Put => reqwest::Method::PUT,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Everything needed to build a client, resolved from flags and the environment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub address: String,
    pub token: Option<String>,
    pub namespace: Option<String>,
    pub wrap_ttl: Option<String>,
    pub ca_cert_pem: Option<Vec<u8>>,
    pub skip_verify: bool,
    /// Retries after the first attempt (`VAULT_MAX_RETRIES`, default 2).
    pub retries_max: u32,
    pub timeout: Duration,
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
}

impl RequestError {
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Api(error) => Some(error.status),
            RequestError::Transport(_) => None,
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

pub struct Client {
    http: reqwest::blocking::Client,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, String> {
        // reqwest is built without a default TLS provider; ring is chosen here, before
        // any client exists (a second install is a harmless no-op error).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .danger_accept_invalid_certs(config.skip_verify);
        if let Some(pem) = &config.ca_cert_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| format!("Error loading CA certificate: {error}"))?;
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|error| format!("Error initializing client: {error}"))?;
        Ok(Client { http, config })
    }

    pub fn address(&self) -> &str {
        &self.config.address
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
        let mut attempt = 0;
        loop {
            let result = self.send_once(method, &url, body);
            let retry = match &result {
                Err(RequestError::Transport(_)) => true,
                Err(RequestError::Api(error)) => {
                    error.status == 412 || (error.status >= 500 && error.status != 501)
                }
                Ok(_) => false,
            };
            if !retry || attempt >= self.config.retries_max {
                return result;
            }
            attempt += 1;
            std::thread::sleep(RETRY_WAIT);
        }
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Response, RequestError> {
        let mut request = self
            .http
            .request(method.http(), url)
            .header("X-Vault-Request", "true");
        if let Some(token) = self
            .config
            .token
            .as_deref()
            .filter(|token| !token.is_empty())
        {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(namespace) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(wrap_ttl) = &self.config.wrap_ttl {
            request = request.header("X-Vault-Wrap-TTL", wrap_ttl);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
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
        Err(RequestError::Api(ApiError {
            method: method.http().to_string(),
            url: url.to_string(),
            status,
            raw_body: if errors.is_none() { Some(text) } else { None },
            errors: errors.unwrap_or_default(),
        }))
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
        Method::Delete => "Delete",
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer"): the part a user can act on, as Go's
/// `dial tcp ...: connection refused` is.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
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

    #[test]
    fn list_becomes_get_with_a_query() {
        let client = Client::new(ClientConfig {
            address: "http://127.0.0.1:8200/".to_string(),
            token: None,
            namespace: None,
            wrap_ttl: None,
            ca_cert_pem: None,
            skip_verify: false,
            retries_max: 0,
            timeout: Duration::from_secs(1),
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
