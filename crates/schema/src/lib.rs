//! Types shared by the image builder and the programs on the appliance.
//! No I/O here: callers read files and pass their text in.

pub mod control;
pub mod system;

#[cfg(feature = "description")]
pub mod description;
pub mod failover;
pub mod network;
pub mod recording;
pub mod size;
pub mod ssh;
pub mod time;
pub mod update;

pub use system::{SystemConfig, READY_MARKER, SYSTEM_CONFIG_PATH};
