//! Reconciliation, free of I/O: the cluster state an agent has seen, the datapath state it implies
//! for one host, and the difference between two datapath states. The agent applies the difference
//! through a datapath driver; nothing is ever flushed and rebuilt.

pub mod desired;
pub mod diagnose;
pub mod diff;
pub mod firewall;
pub mod names;
pub mod path;
pub mod report;
pub mod state;
pub mod trace;

pub use desired::{desired, BridgeL3, FdbEntry, NeighEntry, NetDesired};
pub use diff::{diff_network, NetChanges};
pub use firewall::{firewall, HostFirewall, NetFirewall, PublishedPort};
pub use path::{choose, Path};
pub use state::ClusterState;
