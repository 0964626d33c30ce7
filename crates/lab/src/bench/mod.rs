//! The parts of `weft lab bench` and `weft lab bench-datapaths`, one file per concern; the commands
//! themselves are `cmd/bench.rs` and `cmd/bench_datapaths.rs`.

pub mod convergence;
pub mod datapaths;
pub mod deps;
pub mod dns;
pub mod docker;
pub mod handwired;
pub mod icmp;
pub mod iperf;
pub mod ping;
pub mod report;
pub mod sh;
pub mod stats;
pub mod wireguard;
