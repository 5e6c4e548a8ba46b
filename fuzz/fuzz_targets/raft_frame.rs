//! Payloads of `arca-raft/1` come from the network: decoding any bytes as a Raft RPC
//! request or response must fail cleanly, never panic or allocate past the frame limit.
#![no_main]
use arca::channel::frame::decode_body;
use arca::raft::network::{RpcRequest, RpcResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_body::<RpcRequest>(data);
    let _ = decode_body::<RpcResponse>(data);
});
