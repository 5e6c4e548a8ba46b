//! Frames on the cluster port come from the network: decoding any bytes as a Raft RPC
//! request or response must fail cleanly, never panic or allocate past the frame limit.
#![no_main]
use arca::raft::network::{RpcRequest, RpcResponse, read_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    let _ = futures::executor::block_on(read_frame::<_, RpcRequest>(&mut reader));
    let mut reader = data;
    let _ = futures::executor::block_on(read_frame::<_, RpcResponse>(&mut reader));
});
