//! The cluster channel between real `arca server` processes: standbys forward over it
//! (TLS under the cluster's own CA), never to the active node's public API; a plaintext
//! connection to a `cluster_address` gets nothing back, even a well-formed channel
//! handshake, and a TLS peer whose certificate is not under the cluster's CA is refused.
//!
//! Every node advertises an `api_addr` that is a trap: a listener this test holds and
//! never serves. Nodes find each other through `retry_join` (the real API addresses);
//! if anything a node does used a peer's advertised `api_addr` (the old forwarding
//! did), the trap would see the connection.

// Test harness: real processes, sockets and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, call, client, eventually, free_port};

#[test]
fn standbys_forward_over_the_channel_and_plaintext_gets_nothing() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let addresses: Vec<String> = ports
        .iter()
        .map(|(api, _)| format!("http://127.0.0.1:{api}"))
        .collect();
    let traps: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    for trap in &traps {
        trap.set_nonblocking(true).unwrap();
    }
    let mut nodes = Vec::new();
    for (index, (api_port, cluster_port)) in ports.iter().enumerate() {
        let others: Vec<String> = addresses
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, address)| address.clone())
            .collect();
        let trap = format!("http://{}", traps[index].local_addr().unwrap());
        let mut node = ServerProcess::configure_advertising(
            root.path(),
            &format!("node{}", index + 1),
            *api_port,
            *cluster_port,
            &others,
            &trap,
        );
        node.start();
        nodes.push(node);
    }
    for node in &nodes {
        eventually(
            Duration::from_secs(30),
            &format!("{} answers", node.name),
            || call(&http, "GET", &node.address(), "sys/seal-status", None, None).ok(),
        );
    }

    let (status, init) = call(
        &http,
        "PUT",
        &addresses[0],
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .unwrap();
    assert_eq!(status, 200, "{init}");
    let unseal_key = init["keys_base64"][0].as_str().unwrap().to_string();
    let root_token = init["root_token"].as_str().unwrap().to_string();
    for node in &nodes {
        eventually(
            Duration::from_secs(30),
            &format!("{} unseals", node.name),
            || match call(
                &http,
                "PUT",
                &node.address(),
                "sys/unseal",
                None,
                Some(&json!({"key": unseal_key})),
            ) {
                Ok((200, body)) if body["sealed"] == Value::Bool(false) => Some(()),
                _ => None,
            },
        );
    }
    eventually(Duration::from_secs(30), "three voters", || {
        let (status, body) = call(
            &http,
            "GET",
            &addresses[0],
            "sys/storage/raft/configuration",
            Some(&root_token),
            None,
        )
        .ok()?;
        let servers = body["data"]["config"]["servers"].as_array()?.clone();
        (status == 200
            && servers
                .iter()
                .filter(|server| server["voter"] == Value::Bool(true))
                .count()
                == 3)
            .then_some(())
    });

    // Writes and reads through every node: two of the three are standbys and forward.
    let (status, body) = call(
        &http,
        "POST",
        &addresses[1],
        "sys/mounts/kv",
        Some(&root_token),
        Some(&json!({"type": "kv"})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");
    for number in 0..12 {
        let address = &addresses[number % 3];
        let (status, body) = call(
            &http,
            "PUT",
            address,
            &format!("kv/key-{number}"),
            Some(&root_token),
            Some(&json!({"value": number})),
        )
        .unwrap();
        assert_eq!(status, 204, "write {number} through {address}: {body}");
    }
    for number in 0..12 {
        let address = &addresses[(number + 1) % 3];
        let (status, body) = call(
            &http,
            "GET",
            address,
            &format!("kv/key-{number}"),
            Some(&root_token),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "read {number} through {address}: {body}");
        assert_eq!(body["data"]["value"], json!(number));
    }
    // A forwarded error keeps its status and Vault's envelope.
    let (status, body) =
        call(&http, "GET", &addresses[2], "kv/key-0", Some("bogus"), None).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body["errors"].is_array(), "{body}");

    for (index, trap) in traps.iter().enumerate() {
        match trap.accept() {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!(
                "node{}'s advertised api_addr was contacted: {other:?}",
                index + 1
            ),
        }
    }

    // Plaintext to a cluster address, HTTP or the channel's own Hello frame (what the
    // channel accepted before it spoke TLS), is answered with nothing at all.
    let plaintext_hello = arca::channel::frame::encode_frame(
        &arca::channel::frame::Frame::Hello {
            protocol: "arca-raft/1".into(),
        },
        arca::channel::frame::HANDSHAKE_FRAME_BYTES_MAX,
    )
    .unwrap();
    for ((_, cluster_port), attempt) in ports.iter().flat_map(|port| {
        [
            (
                port,
                b"GET /v1/sys/health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            ),
            (port, plaintext_hello.clone()),
        ]
    }) {
        let mut stream = TcpStream::connect(("127.0.0.1", *cluster_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let _ = stream.write_all(&attempt);
        let mut received = Vec::new();
        match stream.read_to_end(&mut received) {
            Ok(_) => assert!(received.is_empty(), "{received:?}"),
            Err(error) => assert_ne!(
                error.kind(),
                std::io::ErrorKind::WouldBlock,
                "the cluster port kept a plaintext connection open"
            ),
        }
    }

    // A TLS peer with a certificate of its own making (another CA) gets no Raft and no
    // forwarding from any node.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rng = arca::env::SharedRng::from_entropy();
    let stranger_ca = arca::channel::ClusterCa::generate(&rng).unwrap();
    let identity = arca::channel::ChannelIdentity::new(rng.clone(), arca::env::Clock::system());
    identity
        .install(stranger_ca.issue(&rng, "stranger").unwrap())
        .unwrap();
    let stranger = arca::channel::ChannelClient::new(arca::env::Clock::system(), identity);
    for (_, cluster_port) in &ports {
        for protocol in [
            arca::channel::Protocol::Raft,
            arca::channel::Protocol::Forward,
        ] {
            let refused = runtime.block_on(stranger.call(
                &format!("127.0.0.1:{cluster_port}"),
                protocol,
                arca::channel::Lane::Control,
                vec![0; 8],
                Duration::from_secs(10),
            ));
            assert!(
                matches!(refused, Err(arca::channel::CallError::Unreachable(_))),
                "{protocol} from a stranger: {refused:?}"
            );
        }
    }
}
