//! Structure-aware: bytes become a run of the replication cores (primary batches,
//! pulls of any size, stale pulls replayed, paged syncs, filter changes, the
//! secondary's local writes), and every invariant of `replication::model` must hold.
#![no_main]
use arca::replication::model::{Step, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let steps = Step::decode(data);
    if let Err(violation) = run(&steps) {
        panic!("replication invariant violated: {violation}\nsteps: {steps:?}");
    }
});
