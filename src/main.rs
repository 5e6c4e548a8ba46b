//! The `arca` binary: the server and the Vault-compatible command line.

/// jemalloc instead of the system's malloc, for the server binary only (benches/README.md,
/// stop 22): on glibc's malloc a write cost 250–330 µs of CPU, a quarter of it in the
/// allocator, and a node holding 100,000 secrets kept 280–305 MiB resident after loading
/// them; on jemalloc 140–235 µs and 220–225 MiB.
#[cfg(all(not(madsim), not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF` in the
/// environment overrides them). A background thread returns freed memory to the system
/// (`dirty_decay_ms`) within a second and at once unmaps it for real (`muzzy_decay_ms:0`:
/// pages only marked lazily free still count as resident), so the tens of megabytes a
/// snapshot build frees come back without waiting for the next allocation.
#[cfg(all(not(madsim), not(target_env = "msvc")))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    arca::cli::main()
}

/// Under the simulator there is no process to run: the simulation drives the library.
#[cfg(madsim)]
fn main() {}
