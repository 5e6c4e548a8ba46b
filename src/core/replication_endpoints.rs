//! `sys/replication/...`: Vault's performance-replication endpoints, answered with
//! Vault's fields and warnings. The work is done by [`crate::replication::Replication`];
//! this file reads requests and shapes answers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::router::LogicalCore;
use crate::logical::{LogicalError, Operation, Request, Response, field_str};
use crate::replication::Replication;
use crate::replication::state::PathsFilter;
use crate::wrapping::WrapFormat;

/// Vault's default TTL of an activation token.
const SECONDARY_TOKEN_TTL_DEFAULT: i64 = 30 * 60;

fn warning(text: &str) -> Response {
    Response {
        warnings: vec![text.to_string()],
        ..Response::default()
    }
}

impl LogicalCore {
    fn replication(&self) -> Result<Arc<Replication>, LogicalError> {
        self.core()?.replication().ok_or_else(|| {
            LogicalError::UnsupportedPath("performance replication is not available".into())
        })
    }

    /// `sys/replication/...` below `sys/`; `segments` starts after `replication`.
    pub(crate) async fn handle_replication(
        &self,
        segments: &[&str],
        request: &Request,
    ) -> Result<Option<Response>, LogicalError> {
        let operation = request.operation;
        let writes = matches!(operation, Operation::Create | Operation::Update);
        let replication = self.replication()?;
        let performance = || replication.status();
        match (segments, operation) {
            (["status"], Operation::Read) => Ok(Some(Response::from_value(json!({
                "dr": { "mode": "disabled" },
                "performance": performance(),
            })))),
            (["performance", "status"], Operation::Read) => {
                Ok(Some(Response::from_value(performance())))
            }
            (["dr", "status"], Operation::Read) => {
                Ok(Some(Response::from_value(json!({ "mode": "disabled" }))))
            }
            (["performance", "primary", "enable"] | ["primary", "enable"], _) if writes => {
                let address = field_str(&request.data, "primary_cluster_addr")?.unwrap_or("");
                replication.enable_primary(address).await?;
                Ok(Some(warning(
                    "This cluster is being enabled as a primary for replication. Vault will be \
                     unavailable for a brief period and will resume service shortly.",
                )))
            }
            (["performance", "primary", "disable"] | ["primary", "disable"], _) if writes => {
                replication.disable_primary().await?;
                Ok(Some(warning(
                    "This cluster is having replication disabled. Vault will be unavailable for \
                     a brief period and will resume service shortly.",
                )))
            }
            (["performance", "primary", "secondary-token"] | ["primary", "secondary-token"], _)
                if writes =>
            {
                self.secondary_token(&replication, request).await.map(Some)
            }
            (
                ["performance", "primary", "revoke-secondary"] | ["primary", "revoke-secondary"],
                _,
            ) if writes => {
                let id = field_str(&request.data, "id")?
                    .ok_or_else(|| LogicalError::BadRequest("missing id".into()))?;
                replication.revoke_secondary(id).await?;
                Ok(None)
            }
            (
                [
                    "performance",
                    "primary",
                    "paths-filter" | "mount-filter",
                    id,
                ],
                Operation::Read,
            ) => match replication.paths_filter(id)? {
                None => Err(LogicalError::NotFound),
                Some(filter) => Ok(Some(Response::from_value(json!({
                    "mode": match filter.mode {
                        crate::replication::state::FilterMode::Allow => "allow",
                        crate::replication::state::FilterMode::Deny => "deny",
                    },
                    "paths": filter.paths,
                })))),
            },
            (
                [
                    "performance",
                    "primary",
                    "paths-filter" | "mount-filter",
                    id,
                ],
                _,
            ) if writes => {
                let mode = field_str(&request.data, "mode")?;
                let paths = match request.data.get("paths") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(value) => super::mounts::string_list("paths", value)?,
                };
                let filter = PathsFilter::parse(mode, paths)?;
                replication.set_paths_filter(id, Some(filter)).await?;
                Ok(None)
            }
            (
                [
                    "performance",
                    "primary",
                    "paths-filter" | "mount-filter",
                    id,
                ],
                Operation::Delete,
            ) => {
                replication.set_paths_filter(id, None).await?;
                Ok(None)
            }
            (
                ["performance", "secondary", "generate-public-key"]
                | ["secondary", "generate-public-key"],
                _,
            ) if writes => {
                let public_key = replication.generate_public_key().await?;
                Ok(Some(Response::from_value(
                    json!({ "secondary_public_key": public_key }),
                )))
            }
            (["performance", "secondary", "enable"] | ["secondary", "enable"], _) if writes => {
                let token = field_str(&request.data, "token")?
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| LogicalError::BadRequest("missing token".into()))?;
                let primary_api_addr = field_str(&request.data, "primary_api_addr")?;
                replication
                    .enable_secondary(token, primary_api_addr)
                    .await?;
                Ok(Some(warning(
                    "Vault has successfully found secondary information; it may take a while to \
                     perform setup tasks. Vault will be unavailable until these tasks and initial \
                     sync complete.",
                )))
            }
            (["performance", "primary", "demote"] | ["primary", "demote"], _) if writes => {
                replication.demote_primary().await?;
                Ok(Some(warning(
                    "This cluster is being demoted to a replication secondary. Vault will be \
                     unavailable for a brief period and will resume service shortly.",
                )))
            }
            (["performance", "secondary", "promote"] | ["secondary", "promote"], _) if writes => {
                let force =
                    crate::engines::input::field_bool(&request.data, "force")?.unwrap_or(false);
                let address = field_str(&request.data, "primary_cluster_addr")?.unwrap_or("");
                replication.promote_secondary(force, address).await?;
                Ok(Some(warning(
                    "This cluster is being promoted to a replication primary. Vault will be \
                     unavailable for a brief period and will resume service shortly.",
                )))
            }
            (
                ["performance", "secondary", "update-primary"] | ["secondary", "update-primary"],
                _,
            ) if writes => {
                let token = field_str(&request.data, "token")?;
                let addrs = match request.data.get("update_primary_addrs") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(super::mounts::string_list("update_primary_addrs", value)?),
                };
                match (token, addrs) {
                    (Some(_), Some(_)) => Err(LogicalError::BadRequest(
                        "token and update_primary_addrs are mutually exclusive".into(),
                    )),
                    (None, None) => Err(LogicalError::BadRequest("missing token".into())),
                    (None, Some(addrs)) => {
                        replication.update_primary_addrs(addrs).await?;
                        Ok(None)
                    }
                    // Vault: an empty token keeps the cluster a secondary that forgets its
                    // primary.
                    (Some(""), None) => {
                        replication.update_primary_addrs(Vec::new()).await?;
                        Ok(None)
                    }
                    (Some(token), None) => {
                        // `ca_file` and `ca_path` are accepted as Vault's are; the unwrap
                        // uses the address as given (the API is plain HTTP or trusts the
                        // system roots, as `secondary/enable` does).
                        let primary_api_addr = field_str(&request.data, "primary_api_addr")?;
                        replication.update_primary(token, primary_api_addr).await?;
                        Ok(Some(warning(
                            "Vault has successfully found secondary information; it may take a \
                             while to perform setup tasks. Vault will be unavailable until these \
                             tasks and initial sync complete.",
                        )))
                    }
                }
            }
            (["merkle-check"], _) if writes => {
                let (corrupted, root) = self.merkle_check()?;
                let now_ms = self.core()?.env().clock.unix_millis();
                Ok(Some(Response::from_value(json!({
                    "merkle_corruption_report": {
                        "corrupted_root": corrupted,
                        "corrupted_tree_map": {
                            "1": {
                                "corrupted_index_tuples_map": null,
                                "corrupted_subtree_root": corrupted,
                                "root_hash": base64::Engine::encode(
                                    &base64::engine::general_purpose::STANDARD,
                                    root,
                                ),
                                "tree_type": "replicated",
                            },
                        },
                        "last_corruption_check_epoch": crate::util::rfc3339(now_ms),
                    },
                }))))
            }
            (["reindex"] | ["performance", "reindex"], _) if writes => {
                let (corrupted, _) = self.merkle_check()?;
                Ok(Some(warning(if corrupted {
                    "The Merkle index differs from storage on this node. Each node rebuilds it \
                     from storage when it restarts or installs a snapshot: restart the nodes \
                     of this cluster one at a time."
                } else {
                    "The Merkle index was rebuilt from storage and compared: it matches the \
                     index kept on every write, so nothing needed replacing."
                })))
            }
            (["performance", "secondary", "disable"] | ["secondary", "disable"], _) if writes => {
                replication.disable_secondary().await?;
                Ok(Some(warning(
                    "This cluster is having replication disabled. Vault will be unavailable for \
                     a brief period and will resume service shortly.",
                )))
            }
            _ => Err(LogicalError::UnsupportedPath(format!(
                "unsupported path: sys/replication/{}",
                segments.join("/")
            ))),
        }
    }

    /// Rebuild this node's Merkle index from storage and compare it with the one kept
    /// on every apply: (differs, the kept root).
    fn merkle_check(&self) -> Result<(bool, crate::replication::merkle::Hash), LogicalError> {
        let view = self
            .core()?
            .cluster()
            .backend()
            .applied_view()
            .ok_or_else(|| {
                LogicalError::BadRequest("this storage backend keeps no Merkle index".into())
            })?;
        let kept = view.merkle().ok_or_else(|| {
            LogicalError::BadRequest(
                "this cluster keeps no Merkle index: replication is not enabled".into(),
            )
        })?;
        Ok((view.merkle_rebuilt() != *kept, kept.root()))
    }

    /// `secondary-token`: record the secondary and answer its bundle wrapped in a
    /// single-use ES512 JWT, with only `wrap_info` set, as Vault answers.
    async fn secondary_token(
        &self,
        replication: &Replication,
        request: &Request,
    ) -> Result<Response, LogicalError> {
        let id = field_str(&request.data, "id")?
            .ok_or_else(|| LogicalError::BadRequest("missing id".into()))?;
        let ttl = match request.data.get("ttl") {
            None | Some(Value::Null) => SECONDARY_TOKEN_TTL_DEFAULT,
            Some(value) => {
                crate::logical::parse_duration_seconds(value).map_err(LogicalError::BadRequest)?
            }
        };
        crate::wrapping::store::check_ttl(ttl)?;
        // Checked before the secondary is recorded, so a bad key leaves no record.
        let recipient = match field_str(&request.data, "secondary_public_key")? {
            None | Some("") => None,
            Some(text) => Some(
                crate::replication::activation_key::parse_public_key(text)
                    .map_err(|error| LogicalError::BadRequest(error.to_string()))?,
            ),
        };
        let first_contact_by = recipient.is_some().then_some(request.now_unix + ttl);
        let bundle = replication.issue_secondary(id, first_contact_by).await?;
        let core = self.core()?;
        if let Some(recipient) = recipient {
            // Public-key activation: the bundle itself, sealed to the secondary, with
            // no wrapping token (the secondary never calls this cluster's API).
            let token = crate::replication::activation_key::seal(
                &core.env().rng,
                &recipient,
                &bundle,
                request.now_unix + ttl,
            );
            return Ok(Response::from_value(json!({ "token": token })));
        }
        let body = json!({ "request_id": "", "data": bundle });
        let creation_path = "sys/replication/performance/primary/secondary-token";
        let wrapped = self
            .wrapping
            .wrap(
                &body,
                ttl,
                creation_path,
                None,
                request.now_unix,
                WrapFormat::Jwt {
                    addr: core.config().node.api_addr.clone(),
                },
            )
            .await;
        let info = match wrapped {
            Ok(info) => info,
            Err(error) => {
                // The record without a token would block the id: take it back.
                let _ = replication.revoke_secondary(id).await;
                return Err(error);
            }
        };
        let warnings = if info.warnings.is_empty() {
            Value::Null
        } else {
            json!(info.warnings)
        };
        Ok(Response {
            raw: Some(json!({
                "request_id": "",
                "lease_id": "",
                "renewable": false,
                "lease_duration": 0,
                "data": null,
                "wrap_info": info.to_value(),
                "warnings": warnings,
                "auth": null,
                "mount_type": "",
            })),
            status: Some(200),
            ..Response::default()
        })
    }
}
