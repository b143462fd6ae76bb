//! `bulkhead-init`: the init of a compartment (docs/ARCHITECTURE.md decision 5), a
//! binary of its own so that it maps only what it uses. It is charged to
//! the service's memory.max, and the daemon's code (tokio, axum, tracing)
//! would cost it a megabyte of relocated pages; see
//! `tests/spawn.rs::the_init_stays_under_one_mib_of_unique_memory`.
//! Started only by the spawn, as `bulkhead-init __init`.

#![deny(unsafe_code)]

fn main() {
    bulkhead::sandbox::init::main()
}
