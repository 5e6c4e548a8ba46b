//! The `sys/wrapping/*` endpoints, as Vault's system backend serves them.
//!
//! `request.path` is relative to `sys/`. The router must let `wrapping/unwrap`,
//! `wrapping/lookup` and `wrapping/rewrap` through when the caller's token is itself a
//! wrapping token (Vault checks those tokens here, not in the token store), and serves
//! `wrapping/lookup` and `wrapping/pubkey` unauthenticated.

use serde_json::{Map, Value};

use super::store::{self, WrappingStore};
use super::wrap_info::WrapFormat;
use crate::http::envelope;
use crate::logical::{LogicalError, Operation, Request, Response, field_str, parse_duration_text};

/// The creation path recorded for `sys/wrapping/wrap`.
const WRAP_CREATION_PATH: &str = "sys/wrapping/wrap";

/// Serve a `sys/wrapping/*` request. `wrap_ttl` is the request's parsed
/// `X-Vault-Wrap-TTL` (see [`parse_wrap_ttl`]). `Ok(None)` means the path is not one
/// of ours.
pub async fn handle(
    store: &WrappingStore,
    request: &Request,
    wrap_ttl: Option<i64>,
) -> Result<Option<Response>, LogicalError> {
    let writes = matches!(request.operation, Operation::Update | Operation::Create);
    let response = match request.path.as_str() {
        "wrapping/wrap" if writes => wrap(store, request, wrap_ttl).await?,
        "wrapping/unwrap" if writes => {
            let token = presented_token(request)?;
            let inner = store.unwrap(token, request.now_unix).await?;
            Response {
                raw: Some(inner),
                ..Response::default()
            }
        }
        "wrapping/lookup" if writes || request.operation == Operation::Read => {
            let token = presented_token(request)?;
            let lookup = store.lookup(token, request.now_unix).await?;
            let mut data = Map::new();
            data.insert("creation_path".into(), Value::from(lookup.creation_path));
            data.insert("creation_time".into(), Value::from(lookup.creation_time));
            data.insert("creation_ttl".into(), Value::from(lookup.creation_ttl));
            Response::data(data)
        }
        "wrapping/rewrap" if writes => {
            let token = presented_token(request)?;
            store.rewrap(token, request.now_unix).await?.into_response()
        }
        "wrapping/pubkey" if request.operation == Operation::Read => {
            Response::from_value(store.public_key_vault().await?)
        }
        "wrapping/wrap" | "wrapping/unwrap" | "wrapping/lookup" | "wrapping/rewrap"
        | "wrapping/pubkey" => return Err(LogicalError::UnsupportedOperation),
        _ => return Ok(None),
    };
    Ok(Some(response))
}

/// `sys/wrapping/wrap`: the request body becomes the `data` of the wrapped response.
/// Always the short token form: Vault refuses to mint JWTs here so that nobody can
/// forge something that looks like a replication activation token.
async fn wrap(
    store: &WrappingStore,
    request: &Request,
    wrap_ttl: Option<i64>,
) -> Result<Response, LogicalError> {
    let Some(ttl_seconds) = wrap_ttl.filter(|ttl| *ttl > 0) else {
        return Err(LogicalError::BadRequest(
            "endpoint requires response wrapping to be used".to_string(),
        ));
    };
    let inner = envelope::envelope(
        &store.new_request_id(),
        &Response::data(request.data.clone()),
        None,
        false,
    );
    let info = store
        .wrap(
            &inner,
            ttl_seconds,
            WRAP_CREATION_PATH,
            None,
            request.now_unix,
            WrapFormat::Token,
        )
        .await?;
    Ok(info.into_response())
}

/// The wrapping token: the body's `token` when present (the caller authenticates with
/// its own token), otherwise the caller's token itself. Never both.
fn presented_token(request: &Request) -> Result<&str, LogicalError> {
    match field_str(&request.data, "token")? {
        Some("") => Err(LogicalError::BadRequest(
            "empty token in request body".to_string(),
        )),
        Some(token) => Ok(token),
        None => request
            .client_token
            .as_deref()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                LogicalError::BadRequest("missing \"token\" value in input".to_string())
            }),
    }
}

/// Parse an `X-Vault-Wrap-TTL` header: whole seconds (`"60"`) or a duration (`"5m"`).
/// Zero means "do not wrap", as in Vault; negative values and values above
/// [`store::WRAP_TTL_SECONDS_MAX`] are refused.
pub fn parse_wrap_ttl(header_value: &str) -> Result<i64, LogicalError> {
    let text = header_value.trim();
    if text.starts_with('-') {
        return Err(LogicalError::BadRequest(
            "requested wrap ttl cannot be negative".to_string(),
        ));
    }
    let seconds = parse_duration_text(text).map_err(|error| {
        LogicalError::BadRequest(format!("invalid X-Vault-Wrap-TTL header: {error}"))
    })?;
    if seconds == 0 {
        return Ok(0);
    }
    store::check_ttl(seconds)?;
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::env::SharedRng;
    use crate::storage::MemoryBackend;
    use crate::wrapping::jwt;
    use serde_json::json;
    use std::sync::Arc;

    const NOW: i64 = 1_774_633_958;

    fn store() -> WrappingStore {
        let rng = SharedRng::from_u64(21);
        let barrier = Barrier::new(Arc::new(MemoryBackend::new()), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        WrappingStore::new(barrier.view(crate::storage::Store::Wrapping.prefix()), rng)
    }

    fn request(
        operation: Operation,
        path: &str,
        data: Value,
        client_token: Option<&str>,
    ) -> Request {
        let Value::Object(data) = data else {
            panic!("request bodies are objects");
        };
        let mut request = Request::new(operation, path, data, NOW);
        request.client_token = client_token.map(str::to_string);
        request
    }

    async fn call(
        store: &WrappingStore,
        request: &Request,
        wrap_ttl: Option<i64>,
    ) -> Result<Response, LogicalError> {
        handle(store, request, wrap_ttl)
            .await
            .map(|response| response.expect("a wrapping path"))
    }

    fn wrapped_token(response: &Response) -> String {
        let body = response
            .raw
            .as_ref()
            .expect("a wrapped response is a raw body");
        body["wrap_info"]["token"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn wrap_then_unwrap_with_the_token_as_client_token() {
        let store = store();

        // sys/wrapping/wrap needs a wrap TTL, like Vault.
        let wrap = request(
            Operation::Update,
            "wrapping/wrap",
            json!({"password": "hunter2", "user": "bob"}),
            Some("hvs.caller"),
        );
        assert_eq!(
            call(&store, &wrap, None).await,
            Err(LogicalError::BadRequest(
                "endpoint requires response wrapping to be used".to_string()
            ))
        );
        assert!(call(&store, &wrap, Some(0)).await.is_err());

        // With one, the answer is an envelope holding only wrap_info.
        let wrapped = call(&store, &wrap, Some(120)).await.unwrap();
        let body = wrapped.raw.clone().unwrap();
        assert_eq!(body["request_id"], "");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["auth"], Value::Null);
        assert_eq!(body["wrap_info"]["ttl"], 120);
        assert_eq!(body["wrap_info"]["creation_path"], "sys/wrapping/wrap");
        let token = wrapped_token(&wrapped);
        assert!(
            token.starts_with("hvs."),
            "sys/wrapping/wrap never mints JWTs"
        );

        // Lookup (unauthenticated, token in the body) shows Vault's three fields.
        let lookup = request(
            Operation::Update,
            "wrapping/lookup",
            json!({"token": token}),
            None,
        );
        let data = call(&store, &lookup, None).await.unwrap().data.unwrap();
        assert_eq!(data["creation_path"], "sys/wrapping/wrap");
        assert_eq!(data["creation_ttl"], 120);
        assert_eq!(data["creation_time"], crate::util::rfc3339_seconds(NOW));

        // Unwrap with the wrapping token as X-Vault-Token returns the inner body as is.
        let unwrap = request(
            Operation::Update,
            "wrapping/unwrap",
            json!({}),
            Some(&token),
        );
        let inner = call(&store, &unwrap, None).await.unwrap().raw.unwrap();
        assert_eq!(inner["data"], json!({"password": "hunter2", "user": "bob"}));
        assert_eq!(inner["wrap_info"], Value::Null);
        assert_eq!(inner["request_id"].as_str().unwrap().len(), 36);
        for field in [
            "lease_id",
            "renewable",
            "lease_duration",
            "auth",
            "warnings",
        ] {
            assert!(inner.get(field).is_some(), "{field}");
        }

        // Once only.
        assert_eq!(
            call(&store, &unwrap, None).await,
            Err(LogicalError::BadRequest(
                "wrapping token is not valid or does not exist".to_string()
            ))
        );
    }

    #[tokio::test]
    async fn a_body_token_wins_over_the_callers_own_token() {
        let store = store();
        let wrap = request(Operation::Update, "wrapping/wrap", json!({"k": "v"}), None);
        let token = wrapped_token(&call(&store, &wrap, Some(60)).await.unwrap());

        // The caller authenticates with its own token and names the wrapping token in
        // the body: the body's token is the one unwrapped.
        let unwrap = request(
            Operation::Update,
            "wrapping/unwrap",
            json!({"token": token}),
            Some("hvs.callersowntokenxxxxxxxx"),
        );
        let inner = call(&store, &unwrap, None).await.unwrap().raw.unwrap();
        assert_eq!(inner["data"], json!({"k": "v"}));

        // An empty or non-string body token, or no token at all: clear 400s.
        for (body, message) in [
            (json!({"token": ""}), "empty token in request body"),
            (
                json!({"token": 5}),
                "error converting input for field \"token\": expected a string",
            ),
            (json!({}), "missing \"token\" value in input"),
        ] {
            let unwrap = request(Operation::Update, "wrapping/unwrap", body, None);
            assert_eq!(
                call(&store, &unwrap, None).await,
                Err(LogicalError::BadRequest(message.to_string()))
            );
        }
    }

    #[tokio::test]
    async fn rewrap_pubkey_and_unknown_operations() {
        let store = store();
        let wrap = request(Operation::Update, "wrapping/wrap", json!({"k": "v"}), None);
        let old = wrapped_token(&call(&store, &wrap, Some(60)).await.unwrap());

        // Rewrap answers with new wrap_info keeping the original creation path.
        let rewrap = request(
            Operation::Update,
            "wrapping/rewrap",
            json!({"token": old}),
            None,
        );
        let rewrapped = call(&store, &rewrap, None).await.unwrap();
        let body = rewrapped.raw.clone().unwrap();
        assert_eq!(body["wrap_info"]["creation_path"], "sys/wrapping/wrap");
        assert_eq!(body["wrap_info"]["ttl"], 60);
        let new = wrapped_token(&rewrapped);
        assert_ne!(new, old);
        let unwrap_old = request(
            Operation::Update,
            "wrapping/unwrap",
            json!({"token": old}),
            None,
        );
        assert!(call(&store, &unwrap_old, None).await.is_err());
        let unwrap_new = request(
            Operation::Update,
            "wrapping/unwrap",
            json!({"token": new}),
            None,
        );
        assert!(call(&store, &unwrap_new, None).await.is_ok());

        // pubkey is Vault's shape: decimal coordinates and the curve name.
        let pubkey = request(Operation::Read, "wrapping/pubkey", json!({}), None);
        let data = call(&store, &pubkey, None).await.unwrap().data.unwrap();
        assert_eq!(data["jwt_curve"], "p521");
        let jwk = store.public_key_jwk().await.unwrap();
        let x = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwk["x"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(data["jwt_x"], jwt::decimal_from_big_endian(&x));
        assert!(
            data["jwt_y"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
        );

        // Wrong operations are 405; other paths are not ours.
        let delete = request(Operation::Delete, "wrapping/unwrap", json!({}), None);
        assert_eq!(
            call(&store, &delete, None).await,
            Err(LogicalError::UnsupportedOperation)
        );
        let other = request(Operation::Read, "mounts", json!({}), None);
        assert_eq!(handle(&store, &other, None).await, Ok(None));
    }

    #[test]
    fn wrap_ttl_headers_parse_like_vault() {
        assert_eq!(parse_wrap_ttl("60"), Ok(60));
        assert_eq!(parse_wrap_ttl("5m"), Ok(300));
        assert_eq!(parse_wrap_ttl(" 1h30m "), Ok(5400));
        assert_eq!(parse_wrap_ttl("0"), Ok(0));
        assert_eq!(parse_wrap_ttl("768h"), Ok(store::WRAP_TTL_SECONDS_MAX));
        assert_eq!(
            parse_wrap_ttl("-5m"),
            Err(LogicalError::BadRequest(
                "requested wrap ttl cannot be negative".to_string()
            ))
        );
        assert!(parse_wrap_ttl("769h").is_err());
        assert!(parse_wrap_ttl("soon").is_err());
        assert!(parse_wrap_ttl("99999999999999999999").is_err());
    }
}
