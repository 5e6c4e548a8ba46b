//! The protocols of the cluster channel, named as TLS ALPN names.

/// What a channel connection carries; chosen once, in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Raft RPC between the members of one cluster.
    Raft,
    /// Requests a standby forwards to the active node.
    Forward,
    /// Performance replication between clusters (not served yet: the name is reserved
    /// so a peer offering it is refused by name rather than misparsed).
    Replication,
}

impl Protocol {
    /// Whether a call made during the peer's reconnect backoff waits for it to end and
    /// tries (a client is waiting on a forwarded request), rather than failing at once
    /// (Raft retries on its own schedule).
    pub fn waits_out_reconnect_backoff(self) -> bool {
        match self {
            Protocol::Raft => false,
            Protocol::Forward | Protocol::Replication => true,
        }
    }

    pub const ALL: [Protocol; 3] = [Protocol::Raft, Protocol::Forward, Protocol::Replication];

    /// The ALPN protocol name.
    pub fn alpn(self) -> &'static str {
        match self {
            Protocol::Raft => "arca-raft/1",
            Protocol::Forward => "arca-fwd/1",
            Protocol::Replication => "arca-repl/1",
        }
    }

    pub fn from_alpn(name: &[u8]) -> Option<Protocol> {
        Self::ALL
            .into_iter()
            .find(|protocol| protocol.alpn().as_bytes() == name)
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.alpn())
    }
}

/// Connections to one peer for one protocol are kept per lane, so bulk transfers (a
/// Raft snapshot, Raft log entries) never queue heartbeats and small RPCs behind them,
/// and a heartbeat's timeout, which closes its connection, never cuts a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    Control,
    Bulk,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_names_round_trip_and_unknown_names_are_refused() {
        for protocol in Protocol::ALL {
            assert_eq!(
                Protocol::from_alpn(protocol.alpn().as_bytes()),
                Some(protocol)
            );
        }
        assert_eq!(Protocol::from_alpn(b"h2"), None);
        assert_eq!(Protocol::from_alpn(b""), None);
    }
}
