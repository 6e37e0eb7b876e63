//! Types shared by the image builder and the programs on the appliance.
//! No I/O here: callers read files and pass their text in.

pub mod system;

#[cfg(feature = "description")]
pub mod description;
pub mod failover;
pub mod network;
pub mod size;

pub use system::{SystemConfig, READY_MARKER, SYSTEM_CONFIG_PATH};
