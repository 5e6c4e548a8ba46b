//! `subkeys/:path`: the shape of a version's data with every leaf value replaced by
//! `null`, optionally cut at `?depth=`.

use serde_json::{Map, Value};

use crate::barrier::View;
use crate::engines::input::field_int;
use crate::engines::kv_v2::data::{VersionRead, read_requested_version};
use crate::logical::{LogicalError, Request, Response};

/// Deepest level walked even when `depth` is 0 (no limit); anything deeper reads as a
/// leaf. The JSON decoder refuses nesting past 128, so this only guards hand-built input.
pub const SUBKEYS_DEPTH_MAX: i64 = 128;

pub fn read(view: &View, path: &str, request: &Request) -> Result<Option<Response>, LogicalError> {
    let depth = field_int(&request.data, "depth")?.unwrap_or(0);
    let (mut body, data) = match read_requested_version(view, path, request, "subkeys")? {
        VersionRead::Gone(response) => return Ok(Some(*response)),
        VersionRead::Live { body, data } => (body, data),
    };
    let depth_max = if depth == 0 {
        SUBKEYS_DEPTH_MAX
    } else {
        depth.min(SUBKEYS_DEPTH_MAX)
    };
    body.insert(
        "subkeys".to_string(),
        Value::Object(remove_values(data, 1, depth_max)),
    );
    Ok(Some(Response::data(body)))
}

/// Vault's `removeValues`: a non-empty object below the depth limit is walked, anything
/// else becomes `null`, so no value can leak.
fn remove_values(object: Map<String, Value>, depth: i64, depth_max: i64) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| {
            let shape = match value {
                Value::Object(inner) if !inner.is_empty() && depth < depth_max => {
                    Value::Object(remove_values(inner, depth + 1, depth_max))
                }
                _ => Value::Null,
            };
            (key, shape)
        })
        .collect()
}
