//! `sys/audit`, `sys/audit/:path` and `sys/audit-hash/:path`.
//!
//! Paths are relative to `sys/`. `Ok(None)` means the path is not one of these; a
//! successful enable or disable is `Response::default()`, Vault's 204. The router
//! enforces sudo on these paths before calling in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::broker::{AuditBroker, EnableRequest};
use crate::logical::{LogicalError, Operation, Request, Response, field_str};

pub async fn handle(
    broker: &AuditBroker,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let path = request.path.as_str();
    if path == "audit" {
        return match request.operation {
            Operation::Read => Ok(Some(Response::data(broker.table_json()))),
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(device_path) = path.strip_prefix("audit/").filter(|rest| !rest.is_empty()) {
        return match request.operation {
            Operation::Create | Operation::Update => {
                let enable = enable_request(device_path, &request.data)?;
                let now_unix_nanos = i128::from(request.now_unix) * 1_000_000_000;
                broker.enable(enable, now_unix_nanos).await?;
                Ok(Some(Response::default()))
            }
            Operation::Delete => {
                broker.disable(device_path).await?;
                Ok(Some(Response::default()))
            }
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(device_path) = path
        .strip_prefix("audit-hash/")
        .filter(|rest| !rest.is_empty())
    {
        return match request.operation {
            Operation::Create | Operation::Update => {
                let input = field_str(&request.data, "input")?.unwrap_or("");
                if input.is_empty() {
                    return Err(LogicalError::BadRequest(
                        "the \"input\" parameter is empty".into(),
                    ));
                }
                let hash = broker.hash(device_path, input)?;
                let mut data = Map::new();
                data.insert("hash".into(), Value::from(hash));
                Ok(Some(Response::data(data)))
            }
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    Ok(None)
}

/// Decode the enable body: `type`, `description`, `options`, `local`.
fn enable_request(path: &str, data: &Map<String, Value>) -> Result<EnableRequest, LogicalError> {
    let device_type = field_str(data, "type")?.unwrap_or("").to_string();
    let description = field_str(data, "description")?.unwrap_or("").to_string();
    let local = match data.get("local") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(local)) => *local,
        // Vault decodes body booleans weakly: an empty string is false.
        Some(Value::String(text)) if text.is_empty() => false,
        Some(Value::String(text)) => {
            crate::util::parse_go_bool(text).ok_or_else(|| bad_field("local"))?
        }
        Some(_) => return Err(bad_field("local")),
    };
    let mut options = BTreeMap::new();
    match data.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                // Vault decodes options as key/value strings, weakly: the CLI sends
                // strings, API clients sometimes send bools and numbers.
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Bool(flag) => flag.to_string(),
                    Value::Number(number) => number.to_string(),
                    _ => {
                        return Err(LogicalError::BadRequest(
                            "options must be string valued".into(),
                        ));
                    }
                };
                options.insert(name.clone(), text);
            }
        }
        Some(_) => return Err(bad_field("options")),
    }
    Ok(EnableRequest {
        path: path.to_string(),
        device_type,
        description,
        options,
        local,
    })
}

fn bad_field(field: &str) -> LogicalError {
    LogicalError::BadRequest(format!("invalid type for field {field:?}"))
}
