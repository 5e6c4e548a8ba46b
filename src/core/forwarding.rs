//! [`ForwardHandler`]: the active node's side of `arca-fwd/1`. A request that arrives
//! here came from a standby over the cluster channel; the core serves it without
//! forwarding it again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;

use super::Core;
use crate::channel::frame::{decode_body, encode_body};
use crate::channel::{ForwardRequest, ForwardResponse, ProtocolHandler};

/// How long a standby waits for the active node to answer a forwarded request.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves forwarded requests with a node's core. Holds the core weakly: the core owns
/// the cluster, which owns the channel server, which owns this handler.
pub struct ForwardHandler {
    core: Weak<Core>,
}

impl ForwardHandler {
    pub fn new(core: &Arc<Core>) -> Arc<Self> {
        Arc::new(Self {
            core: Arc::downgrade(core),
        })
    }
}

impl ProtocolHandler for ForwardHandler {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let core = self
                .core
                .upgrade()
                .ok_or_else(|| "the node is shutting down".to_string())?;
            let request: ForwardRequest =
                decode_body(&payload).map_err(|error| format!("bad forwarded request: {error}"))?;
            // A fault point: a forwarded request that reaches the active node late (a slow
            // link, a busy standby). By then this node may have lost its leadership, which
            // `handle_forwarded` must notice rather than serve from a stale state.
            if crate::buggify::buggify("forwarded-request-delayed") {
                tokio::time::sleep(crate::buggify::delay_ms(1_000)).await;
            }
            let response = core.handle_forwarded(request.into_api()?).await;
            encode_body(&ForwardResponse::from_api(response)).map_err(|error| error.to_string())
        })
    }
}
