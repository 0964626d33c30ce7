//! weft's data model, shared by every backend and component. Pure: no I/O.
//!
//! Layout in the store (identical in both backends):
//! - `/weft/networks/<name>`             → [`Network`]
//! - `/weft/vnis/<vni>`                  → name of the network owning the VNI (uniqueness guard)
//! - `/weft/hosts/<id>`                  → [`Host`], under the host's lease
//! - `/weft/endpoints/<network>/<id>`    → [`Endpoint`], under the owning host's lease
//! - `/weft/ipam/<network>/<address>`    → [`Allocation`], under the owning host's lease
//! - `/weft/ports/<host>/<proto>/<port>` → [`PortClaim`]: a published host port, under the host's lease

pub mod keys;
pub mod mac;
pub mod ports;
pub mod records;
pub mod validate;

pub use mac::Mac;
pub use ports::{Proto, Publish};
pub use records::*;

/// The record layout this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("record at {key} has schema version {found}, this weft reads version {SCHEMA_VERSION}; upgrade weft")]
    Schema { key: String, found: u32 },
    #[error("record at {key} is not valid: {reason}")]
    Decode { key: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}
