//! The channel over real loopback sockets: TLS and the handshake, their bounds,
//! multiplexing, reconnection, identities.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{
    FRAME_BYTES_MAX, Frame, HANDSHAKE_FRAME_BYTES_MAX, encode_frame, read_frame, write_frame,
};
use super::*;
use crate::env::{Clock, SharedRng};

const TTL: Duration = Duration::from_secs(5);

/// The CA of the cluster the tests' nodes belong to (one per test process is enough).
fn cluster_ca() -> &'static ClusterCa {
    static CA: std::sync::OnceLock<ClusterCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| ClusterCa::generate(&SharedRng::from_u64(1)).unwrap())
}

/// An identity holding a certificate from `ca`.
fn identity_under(ca: &ClusterCa, node: &str) -> ChannelIdentity {
    let rng = SharedRng::from_entropy();
    let identity = ChannelIdentity::new(rng.clone(), Clock::system());
    identity.install(ca.issue(&rng, node).unwrap()).unwrap();
    identity
}

/// A member of the tests' cluster.
fn member(node: &str) -> ChannelIdentity {
    identity_under(cluster_ca(), node)
}

fn member_client() -> ChannelClient {
    ChannelClient::new(Clock::system(), member("client"))
}

/// The server end of TLS for a hand-written peer: a member answering `protocol`.
async fn accept_tls(
    listener: &TcpListener,
    protocol: Protocol,
) -> tokio_rustls::server::TlsStream<TcpStream> {
    let (stream, _) = listener.accept().await.unwrap();
    let config = member("peer").serving().unwrap().server(protocol).unwrap();
    tokio_rustls::TlsAcceptor::from(config)
        .accept(stream)
        .await
        .unwrap()
}

/// Answers a payload with the payload reversed; `fail` is refused.
struct Reverse;

impl ProtocolHandler for Reverse {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if payload == b"fail" {
                return Err("refused on purpose".into());
            }
            Ok(payload.into_iter().rev().collect())
        })
    }
}

async fn reverse_server() -> (Arc<ChannelServer>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = ChannelServer::new(member("server"));
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);
    (server, address)
}

#[tokio::test]
async fn requests_are_multiplexed_on_one_connection_and_failures_come_back() {
    let (_server, address) = reverse_server().await;
    let client = member_client();
    let calls = (0..20u8).map(|number| {
        let client = client.clone();
        let address = address.clone();
        async move {
            client
                .call(
                    &address,
                    Protocol::Raft,
                    Lane::Control,
                    vec![number, 1, 2],
                    TTL,
                )
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (number, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), vec![2, 1, number as u8]);
    }
    let failed = client
        .call(
            &address,
            Protocol::Raft,
            Lane::Control,
            b"fail".to_vec(),
            TTL,
        )
        .await;
    assert_eq!(failed, Err(CallError::Failed("refused on purpose".into())));
    // The failure left the connection usable.
    assert_eq!(
        client
            .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
            .await
            .unwrap(),
        vec![2, 1]
    );
}

#[tokio::test]
async fn a_protocol_the_node_does_not_serve_is_refused_without_an_answer() {
    let (_server, address) = reverse_server().await;
    let client = member_client();
    let result = client
        .call(&address, Protocol::Forward, Lane::Control, vec![1], TTL)
        .await;
    assert!(
        matches!(result, Err(CallError::Unreachable(_))),
        "{result:?}"
    );

    // Over TLS for arca-raft/1, a Hello naming anything else is refused too.
    let tls = member("client")
        .dialing(Protocol::Raft)
        .unwrap()
        .member_client(Protocol::Raft)
        .unwrap();
    for protocol in ["arca-repl/1", "h2", ""] {
        let stream = TcpStream::connect(&address).await.unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(tls::server_name(Protocol::Raft), stream)
            .await
            .unwrap();
        let hello = Frame::Hello {
            protocol: protocol.into(),
        };
        stream
            .write_all(&encode_frame(&hello, HANDSHAKE_FRAME_BYTES_MAX).unwrap())
            .await
            .unwrap();
        stream.flush().await.unwrap();
        let mut received = Vec::new();
        let read = crate::env::runtime::timeout(
            Duration::from_secs(10),
            stream.read_to_end(&mut received),
        )
        .await
        .expect("the server kept the connection open");
        assert!(read.is_err() || received.is_empty(), "{protocol}");
    }
}

#[tokio::test]
async fn plaintext_that_is_not_a_handshake_gets_nothing() {
    let (_server, address) = reverse_server().await;
    // An HTTP request, a request frame before any Hello, a Hello above the handshake
    // bound, and a well-formed plaintext Hello: no TLS, so each connection is closed
    // without a byte in answer.
    let plaintext_hello = encode_frame(
        &Frame::Hello {
            protocol: Protocol::Raft.alpn().into(),
        },
        HANDSHAKE_FRAME_BYTES_MAX,
    )
    .unwrap();
    let oversized_hello = encode_frame(
        &Frame::Hello {
            protocol: "x".repeat(2 * HANDSHAKE_FRAME_BYTES_MAX),
        },
        FRAME_BYTES_MAX,
    )
    .unwrap();
    let early_request = encode_frame(
        &Frame::Request {
            id: 1,
            payload: vec![1, 2, 3],
        },
        FRAME_BYTES_MAX,
    )
    .unwrap();
    for attempt in [
        b"GET /v1/sys/health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        early_request,
        oversized_hello,
        plaintext_hello,
    ] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        // The server may close before it reads everything; a reset is also "nothing".
        let _ = stream.write_all(&attempt).await;
        let mut received = Vec::new();
        let read = crate::env::runtime::timeout(
            Duration::from_secs(10),
            stream.read_to_end(&mut received),
        )
        .await
        .expect("the server kept the connection open");
        assert!(read.is_err() || received.is_empty());
    }
}

#[tokio::test]
async fn a_client_reconnects_after_the_server_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = ChannelServer::new(member("server"));
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);
    let client = member_client();
    let target = address.to_string();
    let call = || client.call(&target, Protocol::Raft, Lane::Control, vec![1, 2], TTL);
    assert_eq!(call().await.unwrap(), vec![2, 1]);

    server.shutdown();
    // Until a server listens again, calls fail (refused, or backing off) without hanging.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(call().await.is_err());

    let listener = TcpListener::bind(address).await.unwrap();
    let server = ChannelServer::new(member("server"));
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(reply) = call().await {
            answered = Some(reply);
            break;
        }
        tokio::time::sleep(super::client::RECONNECT_BACKOFF_MAX / 10).await;
    }
    assert_eq!(answered, Some(vec![2, 1]));
}

/// A forwarded client request made while the peer is in its reconnect backoff waits the
/// backoff out and is served once the peer is back, instead of failing at once; a Raft
/// call in the same situation fails at once (openraft retries on its own).
#[tokio::test]
async fn a_forwarded_call_waits_out_the_reconnect_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = member_client();
    let target = address.to_string();
    for protocol in [Protocol::Raft, Protocol::Forward] {
        assert!(
            client
                .call(&target, protocol, Lane::Control, vec![1], TTL)
                .await
                .is_err(),
            "nothing listens yet"
        );
    }

    let listener = TcpListener::bind(address).await.unwrap();
    let server = ChannelServer::new(member("server"));
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.install(Protocol::Forward, Arc::new(Reverse));
    server.spawn(listener);

    let raft = client
        .call(&target, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert!(
        matches!(raft, Err(super::client::CallError::Unreachable(_))),
        "a Raft call during the backoff fails at once: {raft:?}"
    );
    let forwarded = client
        .call(&target, Protocol::Forward, Lane::Control, vec![1, 2], TTL)
        .await;
    assert_eq!(forwarded.unwrap(), vec![2, 1]);
}

/// Sleeps longer than the heartbeat may stay silent, then answers.
struct Slow;

impl ProtocolHandler for Slow {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let silence_max = super::connection::HEARTBEAT_INTERVAL
                * (super::connection::HEARTBEAT_MISSES_MAX + 1);
            tokio::time::sleep(silence_max).await;
            Ok(payload)
        })
    }
}

/// A request the peer takes long to serve keeps its connection: the peer's reader
/// answers the pings meanwhile, so the connection is not mistaken for a stalled one.
#[tokio::test]
async fn a_slow_request_keeps_its_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = ChannelServer::new(member("server"));
    server.install(Protocol::Forward, Arc::new(Slow));
    server.spawn(listener);
    let client = member_client();
    let reply = client
        .call(
            &address,
            Protocol::Forward,
            Lane::Control,
            vec![7],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(reply.unwrap(), vec![7]);
}

/// A stream that goes silent while a request is outstanding (no response, no pong: a
/// connection stalled behind TCP's retransmission backoff) is closed after the missed
/// heartbeats, well before the caller's own deadline, so the next call reconnects.
#[tokio::test]
async fn a_silent_stream_is_closed_under_an_outstanding_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let silent_peer = tokio::spawn(async move {
        let mut stream = accept_tls(&listener, Protocol::Forward).await;
        let welcome = encode_frame(
            &Frame::Welcome {
                protocol: Protocol::Forward.alpn().to_string(),
            },
            HANDSHAKE_FRAME_BYTES_MAX,
        )
        .unwrap();
        // Read the Hello, answer it, then swallow everything and answer nothing.
        let mut buffer = vec![0u8; 4096];
        let _ = stream.read(&mut buffer).await.unwrap();
        stream.write_all(&welcome).await.unwrap();
        // The simulator's sockets send on flush.
        stream.flush().await.unwrap();
        while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
    });
    let clock = Clock::system();
    let client = ChannelClient::new(clock.clone(), member("client"));
    let caller_deadline = Duration::from_secs(60);
    let started = clock.now();
    let reply = client
        .call(
            &address,
            Protocol::Forward,
            Lane::Control,
            vec![7],
            caller_deadline,
        )
        .await;
    assert!(
        matches!(reply, Err(super::client::CallError::Network(_))),
        "the stalled connection is closed under the request: {reply:?}"
    );
    assert!(clock.now().saturating_duration_since(started) < caller_deadline / 2);
    silent_peer.abort();
}

/// Answers the handshake of `stream` for `protocol`.
async fn welcome(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    protocol: Protocol,
) {
    let hello = read_frame(stream, HANDSHAKE_FRAME_BYTES_MAX, None)
        .await
        .unwrap();
    assert!(matches!(hello, Frame::Hello { .. }));
    let welcome = Frame::Welcome {
        protocol: protocol.alpn().to_string(),
    };
    write_frame(stream, &welcome, HANDSHAKE_FRAME_BYTES_MAX)
        .await
        .unwrap();
    // The simulator's sockets send on flush.
    stream.flush().await.unwrap();
}

/// A connection that missed one heartbeat is not handed to new calls: they open a fresh
/// connection instead of queueing behind a stream that may stay stalled for seconds
/// (the simulator's leader-pause scenario lost a forwarded write that way), while the
/// call already on the stalled connection keeps waiting for its answer.
#[tokio::test]
async fn a_call_after_a_missed_heartbeat_opens_a_fresh_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        // The first connection goes silent after its handshake.
        let mut stalled = accept_tls(&listener, Protocol::Forward).await;
        welcome(&mut stalled, Protocol::Forward).await;
        let swallow = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while stalled.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
        });
        // The second one echoes requests and answers pings.
        let mut fresh = accept_tls(&listener, Protocol::Forward).await;
        welcome(&mut fresh, Protocol::Forward).await;
        while let Ok(frame) = read_frame(&mut fresh, FRAME_BYTES_MAX, None).await {
            let answer = match frame {
                Frame::Request { id, payload } => Frame::Response { id, payload },
                Frame::Ping { nonce } => Frame::Pong { nonce },
                _ => continue,
            };
            write_frame(&mut fresh, &answer, FRAME_BYTES_MAX)
                .await
                .unwrap();
            fresh.flush().await.unwrap();
        }
        swallow.abort();
    });
    let client = member_client();
    let stuck = {
        let client = client.clone();
        let address = address.clone();
        tokio::spawn(async move {
            client
                .call(
                    &address,
                    Protocol::Forward,
                    Lane::Control,
                    vec![1],
                    Duration::from_secs(60),
                )
                .await
        })
    };
    // The first interval is answered by the handshake; the second one is missed.
    tokio::time::sleep(super::connection::HEARTBEAT_INTERVAL * 2 + Duration::from_millis(500))
        .await;
    assert!(!stuck.is_finished(), "the stalled call is still waiting");
    let reply = client
        .call(&address, Protocol::Forward, Lane::Control, vec![2, 3], TTL)
        .await;
    assert_eq!(reply.unwrap(), vec![2, 3]);
    stuck.abort();
    peer.abort();
}

/// A peer whose certificate is not under this cluster's CA (another cluster's node, or
/// anyone with a self-made certificate) is refused by TLS on the cluster's protocols,
/// and a client does not talk to a server outside its CA either.
#[tokio::test]
async fn a_peer_without_this_clusters_certificate_is_refused() {
    let (_server, address) = reverse_server().await;
    let stranger_ca = ClusterCa::generate(&SharedRng::from_u64(99)).unwrap();
    let stranger = ChannelClient::new(Clock::system(), identity_under(&stranger_ca, "x"));
    let refused = stranger
        .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert!(
        matches!(refused, Err(CallError::Unreachable(_))),
        "{refused:?}"
    );
    // A stranger trusting our CA still has no client certificate under it.
    let trusting = stranger
        .call_trusting(
            &Trust::cluster(cluster_ca().cert_der().to_vec()),
            &address,
            Protocol::Raft,
            Lane::Control,
            vec![1, 2],
            TTL,
        )
        .await;
    assert!(
        matches!(trusting, Err(CallError::Unreachable(_))),
        "{trusting:?}"
    );
    // The member client is served.
    let served = member_client()
        .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert_eq!(served.unwrap(), vec![2, 1]);
}

/// A handshake refused for its certificate: the client reads the server's alert
/// (`CertificateRefused`), unless the connection closes before it arrives (the
/// simulator's sockets drop it), which reads as unreachable.
fn refused(result: &Result<Vec<u8>, CallError>) -> bool {
    matches!(
        result,
        Err(CallError::CertificateRefused(_) | CallError::Unreachable(_))
    )
}

/// `arca-repl/1` is dialled by other clusters' nodes. Both ends prove themselves: the
/// server under its cluster's CA, the client (a secondary) with the certificate the
/// primary's replication CA issued it. That certificate opens nothing else, and a node
/// whose cluster has no replication CA serves no `arca-repl/1` at all.
#[tokio::test]
async fn replication_authenticates_both_ends_across_clusters() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let rng = SharedRng::from_entropy();
    let replication_ca = ClusterCa::generate_named(&rng, identity::REPLICATION_CA_NAME).unwrap();
    let primary = member("primary");
    let server = ChannelServer::new(primary.clone());
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.install(Protocol::Replication, Arc::new(Reverse));
    server.spawn(listener);
    let other_ca = ClusterCa::generate(&SharedRng::from_u64(5)).unwrap();
    let secondary = ChannelClient::new(Clock::system(), identity_under(&other_ca, "s"));
    let certificate = replication_ca.issue_secondary(&rng, "s").unwrap();
    let certified = Trust::cluster_as(cluster_ca().cert_der().to_vec(), certificate.clone());
    let clients = |allowed: &[&NodeCertificate]| tls::ReplicationClients {
        ca_cert_der: replication_ca.cert_der().to_vec(),
        allowed_sha256: allowed
            .iter()
            .map(|certificate| {
                use sha2::Digest;
                sha2::Sha256::digest(&certificate.cert_der).into()
            })
            .collect(),
    };
    let call = |trust: Trust, protocol: Protocol| {
        let secondary = secondary.clone();
        let address = address.clone();
        async move {
            secondary
                .call_trusting(&trust, &address, protocol, Lane::Control, vec![1, 2], TTL)
                .await
        }
    };

    // No replication CA yet (the cluster never was a primary): refused.
    let no_ca = call(certified.clone(), Protocol::Replication).await;
    assert!(refused(&no_ca), "{no_ca:?}");

    primary
        .set_replication_clients(Some(clients(&[&certificate])))
        .unwrap();
    let mut served = None;
    for _ in 0..100 {
        if let Ok(reply) = call(certified.clone(), Protocol::Replication).await {
            served = Some(reply);
            break;
        }
        tokio::time::sleep(super::client::RECONNECT_BACKOFF_MAX / 10).await;
    }
    assert_eq!(
        served,
        Some(vec![2, 1]),
        "the certified secondary is served"
    );

    // Its certificate is for arca-repl/1 only.
    let raft = call(certified.clone(), Protocol::Raft).await;
    assert!(refused(&raft), "{raft:?}");
    // Without it (its own node certificate only) the secondary is refused.
    let uncertified = call(
        Trust::cluster(cluster_ca().cert_der().to_vec()),
        Protocol::Replication,
    )
    .await;
    assert!(refused(&uncertified), "{uncertified:?}");
    // Another certificate of the same CA that is not a current secondary's (revoked, or
    // never handed out) is refused.
    let unlisted = call(
        Trust::cluster_as(
            cluster_ca().cert_der().to_vec(),
            replication_ca.issue_secondary(&rng, "s").unwrap(),
        ),
        Protocol::Replication,
    )
    .await;
    assert!(refused(&unlisted), "{unlisted:?}");
    // And it does not talk to a server outside the CA it trusts.
    let wrong_trust = Trust::cluster_as(
        other_ca.cert_der().to_vec(),
        replication_ca.issue_secondary(&rng, "s").unwrap(),
    );
    let misdirected = call(wrong_trust, Protocol::Replication).await;
    assert!(
        matches!(misdirected, Err(CallError::Unreachable(_))),
        "{misdirected:?}"
    );

    // Revoked (off the list): its next handshake is refused. (A connection it already
    // has stays open; a revoked secondary's requests on it are refused by its HMAC.)
    primary.set_replication_clients(Some(clients(&[]))).unwrap();
    let reconnecting = ChannelClient::new(Clock::system(), identity_under(&other_ca, "s"));
    let revoked = reconnecting
        .call_trusting(
            &certified,
            &address,
            Protocol::Replication,
            Lane::Control,
            vec![1, 2],
            TTL,
        )
        .await;
    assert!(refused(&revoked), "{revoked:?}");
}

/// A node without an identity (sealed) answers no peer and dials none; once it has one
/// it serves, and clearing it again closes the connections made under it.
#[tokio::test]
async fn a_node_without_an_identity_neither_serves_nor_dials() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let identity = ChannelIdentity::new(SharedRng::from_entropy(), Clock::system());
    let server = ChannelServer::new(identity.clone());
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);

    let sealed_client = ChannelClient::new(Clock::system(), identity.clone());
    let dialled = sealed_client
        .call(&address, Protocol::Raft, Lane::Control, vec![1], TTL)
        .await;
    assert!(
        matches!(&dialled, Err(CallError::Unreachable(reason)) if reason.contains("sealed")),
        "{dialled:?}"
    );
    let client = member_client();
    let served = client
        .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert!(
        matches!(served, Err(CallError::Unreachable(_))),
        "{served:?}"
    );

    identity
        .install(
            cluster_ca()
                .issue(&SharedRng::from_entropy(), "server")
                .unwrap(),
        )
        .unwrap();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(reply) = client
            .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
            .await
        {
            answered = Some(reply);
            break;
        }
        tokio::time::sleep(super::client::RECONNECT_BACKOFF_MAX / 10).await;
    }
    assert_eq!(answered, Some(vec![2, 1]));

    identity.clear();
    let mut refused = false;
    for _ in 0..100 {
        if client
            .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "a cleared identity closes the server's connections"
    );
}

/// A sealed node keeps a follower certificate: with it, it takes part in Raft (it
/// receives the log, votes, and dials Raft) and nothing else: it is sent no forwarded
/// request and dials no other protocol.
#[tokio::test]
async fn a_follower_identity_takes_part_in_raft_only() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let rng = SharedRng::from_entropy();
    let sealed = ChannelIdentity::new(rng.clone(), Clock::system());
    sealed
        .install_follower(cluster_ca().issue_follower(&rng, "sealed").unwrap())
        .unwrap();
    let server = ChannelServer::new(sealed.clone());
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.install(Protocol::Forward, Arc::new(Reverse));
    server.spawn(listener);

    let client = member_client();
    let raft = client
        .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert_eq!(raft.unwrap(), vec![2, 1], "a sealed follower receives Raft");
    let forwarded = client
        .call(&address, Protocol::Forward, Lane::Control, vec![1, 2], TTL)
        .await;
    assert!(
        matches!(forwarded, Err(CallError::Unreachable(_))),
        "a sealed node is sent no forwarded request: {forwarded:?}"
    );

    let sealed_client = ChannelClient::new(Clock::system(), sealed.clone());
    let (_member_server, member_address) = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = ChannelServer::new(member("server"));
        server.install(Protocol::Raft, Arc::new(Reverse));
        server.install(Protocol::Forward, Arc::new(Reverse));
        server.spawn(listener);
        (server, address)
    };
    let dialled = sealed_client
        .call(
            &member_address,
            Protocol::Raft,
            Lane::Control,
            vec![1, 2],
            TTL,
        )
        .await;
    assert_eq!(dialled.unwrap(), vec![2, 1], "a sealed node dials Raft");
    let forwarded = sealed_client
        .call(
            &member_address,
            Protocol::Forward,
            Lane::Control,
            vec![1],
            TTL,
        )
        .await;
    assert!(
        matches!(&forwarded, Err(CallError::Unreachable(reason)) if reason.contains("sealed")),
        "a sealed node forwards nothing: {forwarded:?}"
    );
}

/// A follower certificate lives on a sealed node's disk, so whoever reads that disk
/// holds one. Presented on `arca-fwd/1` (the protocol that carries clients' requests to
/// the active node), it is refused by the server, though it chains to the cluster's CA;
/// on `arca-raft/1` it is served.
#[tokio::test]
async fn a_follower_certificate_opens_raft_but_not_forwarding() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = ChannelServer::new(member("active"));
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.install(Protocol::Forward, Arc::new(Reverse));
    server.spawn(listener);

    // A client that dials every protocol, holding a follower's certificate.
    let rng = SharedRng::from_entropy();
    let holder = ChannelIdentity::new(rng.clone(), Clock::system());
    holder
        .install(cluster_ca().issue_follower(&rng, "sealed").unwrap())
        .unwrap();
    let client = ChannelClient::new(Clock::system(), holder);
    let forwarded = client
        .call(&address, Protocol::Forward, Lane::Control, vec![1, 2], TTL)
        .await;
    assert!(refused(&forwarded), "{forwarded:?}");
    let raft = client
        .call(&address, Protocol::Raft, Lane::Control, vec![1, 2], TTL)
        .await;
    assert_eq!(raft.unwrap(), vec![2, 1]);
    let member_forwarded = member_client()
        .call(&address, Protocol::Forward, Lane::Control, vec![1, 2], TTL)
        .await;
    assert_eq!(member_forwarded.unwrap(), vec![2, 1]);
}
