//! weft's operations, shared by the CLI, the agent and the lab: they read and write cluster state in a
//! store and, for attach/detach, program the local host. Choosing a store backend from a URL happens
//! here, above the backends, so that the store trait never depends on them.

pub mod addresses;
pub mod attach;
pub mod detach;
pub mod doctor;
pub mod expose;
pub mod firewall;
pub mod hide;
pub mod hosts;
pub mod networks;
pub mod ports;
pub mod psk;
pub mod read;
pub mod resolver;
pub mod state;
pub mod store;
pub mod trace;

pub use store::{open as open_store, StoreUrl};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
