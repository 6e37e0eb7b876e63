//! What the store holds: the slot state of A/B updates, a ring of reset
//! reasons and, when the description asks, a line-quality snapshot.

use serde::{Deserialize, Serialize};

/// Reset reasons kept, oldest dropped first.
pub const RESET_RING: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    #[default]
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    /// The syslinux label and `wanflash.slot=` value.
    pub fn label(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }
    /// MBR partition number of the slot's root.
    pub fn partition(self) -> u8 {
        match self {
            Slot::A => 2,
            Slot::B => 3,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What a slot holds, as the update that wrote it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SlotInfo {
    pub image: String,
    pub version: String,
    pub build_id: String,
    /// The bundle's release (records written before releases: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatible: Option<String>,
}

/// Downgrade records kept, oldest dropped first.
pub const DOWNGRADE_RING: usize = 8;

/// An update the operator allowed although its release was not newer
/// (`wanctl update --allow-downgrade`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgrade {
    /// The floor it went under: the committed slot's release.
    pub from: u64,
    /// The bundle's release.
    pub to: u64,
    /// The slot written.
    pub slot: Slot,
    pub build_id: String,
    /// The box's clock (seconds since 1970) when it was installed.
    pub unix_s: u64,
}

/// A trial boot armed by an update and not yet committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub slot: Slot,
    /// Trial boots seen so far (the boot-once entry allows one).
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetReason {
    PowerOn,
    Watchdog,
    OrderlyReboot,
    Poweroff,
    Rollback,
    KernelPanic,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::PowerOn => "power-on",
            ResetReason::Watchdog => "watchdog",
            ResetReason::OrderlyReboot => "orderly-reboot",
            ResetReason::Poweroff => "poweroff",
            ResetReason::Rollback => "rollback",
            ResetReason::KernelPanic => "kernel-panic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    pub reason: ResetReason,
    /// The slot that was running when it happened.
    pub slot: Slot,
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct State {
    /// The slot syslinux boots when no boot-once entry is armed.
    #[serde(default)]
    pub default_slot: Slot,
    #[serde(default)]
    pub trial: Option<Trial>,
    /// The last update's outcome, in words.
    #[serde(default)]
    pub last_result: Option<String>,
    #[serde(default)]
    pub slot_a: Option<SlotInfo>,
    #[serde(default)]
    pub slot_b: Option<SlotInfo>,
    #[serde(default)]
    pub resets: Vec<Reset>,
    /// Left by `wanflash-update shutdown` (init's orderly reboot or power
    /// off, images with `reset_log` only): `orderly-reboot` or `poweroff`.
    /// The next boot turns it into a [`Reset`] and clears it; its absence
    /// with no watchdog or panic evidence means a power cut or cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<ResetReason>,
    /// The slot that booted last, written with the reset log's boot record
    /// so the next boot knows which slot the run it reports was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Slot>,
    /// The last line-quality snapshot, opaque (hex), written only when the
    /// description asks for snapshots.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Updates installed with `--allow-downgrade`, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downgrades: Vec<Downgrade>,
    /// The SSH server's host key (Dropbear's private key file, hex), made
    /// on the box at its first boot with `[ssh]` and written here once, so
    /// it survives reboots and updates (issue 16). Kept by every later
    /// write, which rewrites the whole record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key: Option<String>,
}

impl State {
    pub fn slot_info(&self, s: Slot) -> Option<&SlotInfo> {
        match s {
            Slot::A => self.slot_a.as_ref(),
            Slot::B => self.slot_b.as_ref(),
        }
    }
    pub fn set_slot_info(&mut self, s: Slot, info: SlotInfo) {
        match s {
            Slot::A => self.slot_a = Some(info),
            Slot::B => self.slot_b = Some(info),
        }
    }
    /// Appends to the ring of downgrade records, dropping the oldest.
    pub fn push_downgrade(&mut self, d: Downgrade) {
        self.downgrades.push(d);
        if self.downgrades.len() > DOWNGRADE_RING {
            let extra = self.downgrades.len() - DOWNGRADE_RING;
            self.downgrades.drain(..extra);
        }
    }
    /// Appends to the ring of reset reasons, dropping the oldest.
    pub fn push_reset(&mut self, r: Reset) {
        self.resets.push(r);
        if self.resets.len() > RESET_RING {
            let extra = self.resets.len() - RESET_RING;
            self.resets.drain(..extra);
        }
    }
}
