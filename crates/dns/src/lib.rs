//! weft's cluster DNS.
//!
//! Pure (no I/O, unit-tested): [`names`] (the name map from endpoint records), [`zone`] (which names
//! are weft's and what they mean to one asker), [`reverse`] (PTR names), [`answer`] (query bytes to
//! response bytes), [`resolvconf`] (the files weft reads and writes, as text).
//!
//! I/O at the edge: [`server`] (port-53 sockets inside each local container's network namespace,
//! forwarding upstream) and the file side of [`resolvconf`].

pub mod answer;
pub mod fuzz;
pub mod names;
pub mod probe;
pub mod redirect;
pub mod resolvconf;
pub mod reverse;
pub mod server;
pub mod stats;
pub mod upstream;
pub mod zone;

pub use answer::{answer, Kind, Outcome, Transport, TTL};
pub use names::NameMap;
pub use server::{DnsConfig, DnsServer};
pub use stats::DnsStats;
