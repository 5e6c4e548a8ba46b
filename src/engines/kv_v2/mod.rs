//! KV version 2: versioned secrets with check-and-set, soft delete, undelete, destroy,
//! per-key metadata and an engine-wide configuration.
//!
//! Routes (relative to the mount): `config`, `data/:path`, `metadata/:path`,
//! `delete/:path`, `undelete/:path`, `destroy/:path`, `subkeys/:path`. Anything else
//! answers like Vault's catch-all: 404 with a warning pointing at `vault kv`.
//!
//! Storage below the mount's view:
//! - `config`: the engine [`config::Config`] as JSON;
//! - `metadata/<path>`: a key's [`metadata::KeyMetadata`] as JSON (the user path is the
//!   key suffix, so listing `metadata/<folder>/` is Vault's folder listing);
//! - `versions/<hex SHA-256 of path>/<n>`: the data object of version `n`. Hashing keeps
//!   a key's versions apart from any other key's, whatever characters paths contain.
//!
//! Invariants: every logical write is one `View::commit` batch (metadata and version data
//! change together); a key never holds more than [`metadata::KEY_VERSIONS_MAX`] versions;
//! time comes only from `request.now_unix`.

mod config;
mod data;
mod metadata;
mod subkeys;
mod versions;

use crate::barrier::View;
use crate::engines::input::entry_path;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Where a request lands inside the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route<'a> {
    Config,
    Data(&'a str),
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
    /// The bare names `data`, `metadata`, `delete`, `undelete`, `destroy`.ete`, `undelete`, `destroy`.
    Root,
    /// No known prefix (`foo` instead of `data/foo`).
    Invalid,
}

fn route(path: &str) -> Route<'_> {
    if path == "config" {
        return Route::Config;
    }
    let Some((prefix, rest)) = path.split_once('/') else {
        // Vault's catch-all singles out these bare names (not `subkeys`).
        return match path {
            "data" | "metadata" | "delete" | "undelete" | "destroy" => Route::Root,
            _ => Route::Invalid,
        };
    };
    match prefix {
        // Vault's data pattern needs a key that does not end with '/'; anything else
        // falls through to its catch-all.
        "data" if rest.is_empty() || rest.ends_with('/') => Route::Invalid,
        "data" => Route::Data(rest),
        "metadata" => Route::Metadata(rest),
        "delete" => Route::Delete(rest),
        "undelete" => Route::Undelete(rest),
        "destroy" => Route::Destroy(rest),
        "subkeys" => Route::Subkeys(rest),
        _ => Route::Invalid,
    }
}

pub async fn handle(view: &View, request: &Request) -> Result<Option<Response>, LogicalError> {
    use Operation::{Create, Delete, List, Patch, Read, Update};
    let operation = request.operation;
    match (route(&request.path), operation) {
        // Vault's HTTP layer adds the '/' a listing needs; accept the bare name too.
        (Route::Root, List) if request.path == "metadata" => metadata::list(view, ""),
        (Route::Root, _) => Ok(Some(root_warning())),
        (Route::Invalid, _) => Ok(Some(invalid_path_warning(operation))),

        (Route::Config, Read) => config::read(view),
        (Route::Config, Create | Update) => config::write(view, request).await,

        (Route::Data(path), Read) => data::read(view, entry_path(path)?, request),
        (Route::Data(path), Create | Update) => data::write(view, entry_path(path)?, request).await,
        (Route::Data(path), Patch) => data::patch(view, entry_path(path)?, request).await,
        (Route::Data(path), Delete) => data::delete_latest(view, entry_path(path)?, request).await,

        (Route::Metadata(path), List) => metadata::list(view, path),
        (Route::Metadata(path), Read) => metadata::read(view, entry_path(path)?),
        (Route::Metadata(path), Create | Update) => {
            metadata::write(view, entry_path(path)?, request).await
        }
        (Route::Metadata(path), Patch) => metadata::patch(view, entry_path(path)?, request).await,
        (Route::Metadata(path), Delete) => metadata::delete(view, entry_path(path)?).await,

        (Route::Delete(path), Create | Update) => {
            versions::delete(view, entry_path(path)?, request).await
        }
        (Route::Undelete(path), Create | Update) => {
            versions::undelete(view, entry_path(path)?, request).await
        }
        (Route::Destroy(path), Create | Update) => {
            versions::destroy(view, entry_path(path)?, request).await
        }

        (Route::Subkeys(path), Read) => subkeys::read(view, entry_path(path)?, request),

        _ => Err(LogicalError::UnsupportedOperation),
    }
}

/// Whether the target exists, for the router's create-versus-update decision. Like
/// Vault, only `data/` and `metadata/` have an existence check (the key's metadata);
/// every other path is always an update.
pub fn exists(view: &View, request: &Request) -> Result<bool, LogicalError> {
    match route(&request.path) {
        Route::Data(path) | Route::Metadata(path) => metadata::exists(view, entry_path(path)?),
        _ => Ok(true),
    }
}

/// Vault's answer to a non-listing operation on the bare names `data`, `metadata`, `delete`, `undelete`, `destroy`.
fn root_warning() -> Response {
    Response {
        status: Some(404),
        ..Response::default()
    }
    .with_warning("Non-listing operations on the root of a K/V v2 mount are not supported.")
}

/// Vault's answer to a path outside the engine's routes, naming the `vault kv`
/// sub-command the caller probably meant.
fn invalid_path_warning(operation: Operation) -> Response {
    let sub_command = match operation {
        Operation::Create | Operation::Update => "put",
        Operation::Patch => "patch",
        Operation::Read => "get",
        Operation::List => "list",
        Operation::Delete => "delete",
    };
    Response {
        status: Some(404),
        ..Response::default()
    }
    .with_warning(format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate \
         API endpoints to use. If using the Vault CLI, use 'vault kv {sub_command}' for this \
         operation."
    ))
}

#[cfg(test)]
mod tests;
