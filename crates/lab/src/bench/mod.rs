//! The parts of `weft lab bench`, one file per concern; the command itself is `cmd/bench.rs`.

pub mod convergence;
pub mod handwired;
pub mod icmp;
pub mod iperf;
pub mod report;
pub mod stats;
