//! The packet filter of a host: what its networks need beyond switching (the gateway kept off the
//! overlay, egress, isolation between routed networks, published ports). The rules are built
//! from the desired state without I/O ([`rules`]); a backend applies them ([`nft`]). Only weft's
//! own tables are ever written or removed: whatever else the host's filter holds stays as it is.

pub mod nft;
pub mod rules;

use anyhow::Result;
use async_trait::async_trait;
use weft_reconcile::HostFirewall;

pub use nft::NftFirewall;

/// The name of weft's tables (`inet weft` for routing and NAT, `bridge weft` for the bridges).
pub const TABLE: &str = "weft";

#[async_trait]
pub trait Firewall: Send + Sync {
    /// Makes weft's part of the host's filter exactly `fw`, atomically: no packet ever sees half
    /// of an old and half of a new rule set. An empty `fw` leaves no trace of weft.
    async fn apply(&self, fw: &HostFirewall) -> Result<()>;

    /// Whether weft's tables are present exactly when `fw` needs them. A cheap check for a
    /// periodic pass (tables flushed by someone else are put back); it does not compare rules.
    async fn in_place(&self, fw: &HostFirewall) -> Result<bool>;
}
