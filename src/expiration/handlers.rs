//! Vault's `sys/leases/*` endpoints over the [`ExpirationManager`]. Paths are relative
//! to `sys/` (`leases/lookup`, `leases/renew`, `leases/revoke`,
//! `leases/revoke-prefix/:prefix`, `LIST leases/lookup/:prefix`); the router checks
//! sudo for `revoke-prefix` as Vault does.

use serde_json::Value;

use super::manager::ExpirationManager;
use crate::logical::{Lease, LogicalError, Operation, Request, Response, field_str};

impl ExpirationManager {
    pub async fn handle_leases(&self, request: &Request) -> Result<Response, LogicalError> {
        let path = request.path.trim_start_matches('/');
        let write = matches!(request.operation, Operation::Create | Operation::Update);
        if request.operation == Operation::List {
            let prefix = path
                .strip_prefix("leases/lookup")
                .ok_or(LogicalError::UnsupportedOperation)?
                .trim_start_matches('/');
            return Response::list(self.list(prefix)?);
        }
        if !write {
            return Err(LogicalError::UnsupportedOperation);
        }
        if let Some(prefix) = path.strip_prefix("leases/revoke-prefix/") {
            self.revoke_prefix(prefix).await?;
            return Ok(Response::default());
        }
        let lease_id = field_str(&request.data, "lease_id")?
            .or_else(|| field_str(&request.data, "url_lease_id").ok().flatten())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| LogicalError::BadRequest("missing lease ID".to_string()))?;
        match path {
            "leases/lookup" => {
                let lease = self
                    .lookup(lease_id)?
                    .filter(|lease| lease.expire_time > request.now_unix)
                    .ok_or_else(|| LogicalError::BadRequest("invalid lease".to_string()))?;
                Ok(Response::data(lease.lookup_data(request.now_unix)))
            }
            "leases/renew" => {
                let increment = match request.data.get("increment") {
                    None | Some(Value::Null) => 0,
                    Some(value) => crate::logical::parse_duration_seconds(value)
                        .map_err(LogicalError::BadRequest)?,
                };
                let lease = self.renew(lease_id, increment, request.now_unix).await?;
                Ok(Response {
                    lease: Some(Lease {
                        lease_id: lease.lease_id.clone(),
                        lease_duration: lease.expire_time.saturating_sub(request.now_unix),
                        renewable: lease.renewable,
                    }),
                    ..Response::default()
                })
            }
            "leases/revoke" => {
                self.revoke(lease_id).await?;
                Ok(Response::default())
            }
            _ => Err(LogicalError::UnsupportedPath(format!(
                "no handler for route \"sys/{path}\". route entry not found."
            ))),
        }
    }
}
