//! The channel over real loopback sockets: the handshake, its bounds, multiplexing,
//! reconnection.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{
    FRAME_BYTES_MAX, Frame, HANDSHAKE_FRAME_BYTES_MAX, encode_frame, read_frame, write_frame,
};
use super::*;
use crate::env::Clock;

const TTL: Duration = Duration::from_secs(5);

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
    let server = ChannelServer::new();
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);
    (server, address)
}

/// Everything the server sends before it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read =
        crate::env::runtime::timeout(Duration::from_secs(10), stream.read_to_end(&mut received));
    match read.await {
        Ok(_) => received,
        Err(_) => panic!("the server kept the connection open"),
    }
}

#[tokio::test]
async fn requests_are_multiplexed_on_one_connection_and_failures_come_back() {
    let (_server, address) = reverse_server().await;
    let client = ChannelClient::new(Clock::system());
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
    let client = ChannelClient::new(Clock::system());
    let result = client
        .call(&address, Protocol::Forward, Lane::Control, vec![1], TTL)
        .await;
    assert!(
        matches!(result, Err(CallError::Unreachable(_))),
        "{result:?}"
    );

    for protocol in ["arca-repl/1", "h2", ""] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let hello = Frame::Hello {
            protocol: protocol.into(),
        };
        stream
            .write_all(&encode_frame(&hello, HANDSHAKE_FRAME_BYTES_MAX).unwrap())
            .await
            .unwrap();
        assert!(
            read_until_closed(&mut stream).await.is_empty(),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn plaintext_that_is_not_a_handshake_gets_nothing() {
    let (_server, address) = reverse_server().await;
    // An HTTP request, a request frame before any Hello, and a Hello above the
    // handshake bound: each connection is closed without a byte in answer.
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
    let server = ChannelServer::new();
    server.install(Protocol::Raft, Arc::new(Reverse));
    server.spawn(listener);
    let client = ChannelClient::new(Clock::system());
    let target = address.to_string();
    let call = || client.call(&target, Protocol::Raft, Lane::Control, vec![1, 2], TTL);
    assert_eq!(call().await.unwrap(), vec![2, 1]);

    server.shutdown();
    // Until a server listens again, calls fail (refused, or backing off) without hanging.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(call().await.is_err());

    let listener = TcpListener::bind(address).await.unwrap();
    let server = ChannelServer::new();
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
    let client = ChannelClient::new(Clock::system());
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
    let server = ChannelServer::new();
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
    let server = ChannelServer::new();
    server.install(Protocol::Forward, Arc::new(Slow));
    server.spawn(listener);
    let client = ChannelClient::new(Clock::system());
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
        let (mut stream, _) = listener.accept().await.unwrap();
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
    let client = ChannelClient::new(clock.clone());
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
async fn welcome(stream: &mut TcpStream, protocol: Protocol) {
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
        let (mut stalled, _) = listener.accept().await.unwrap();
        welcome(&mut stalled, Protocol::Forward).await;
        let swallow = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while stalled.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
        });
        // The second one echoes requests and answers pings.
        let (mut fresh, _) = listener.accept().await.unwrap();
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
    let client = ChannelClient::new(Clock::system());
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
