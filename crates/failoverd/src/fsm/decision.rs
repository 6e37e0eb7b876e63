//! What the machine says: each [`Decision`] is an [`Event`] (with its
//! [`Cause`]) and the route moves it brings; [`ProbeOut`] is a probe to
//! send. Plain data, so the daemon, the recorder and the tests read them.

use std::fmt;

use super::{Ms, REJOIN_GRACE_MS};

/// Why something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// This many probes in a row went unanswered.
    Missed {
        probes: u32,
    },
    CarrierLost,
    /// A member's carrier went while its path was down (or took the path
    /// down with it) and was not back when the path came up.
    CarrierNotBack,
    /// Loss in tenths of a percent over the last `window` probes.
    Loss {
        permille: u32,
        window: u32,
    },
    /// Healthy for this long (the hold-down) after a failure.
    Healthy {
        for_ms: Ms,
    },
    /// The first answer since failoverd started.
    FirstReply,
    /// No answer within [`REJOIN_GRACE_MS`] of being put back.
    NoReplyAfterRejoin,
    /// The far end's failoverd has the member out of its bond (its probes
    /// say so): what this end sends on the circuit would be dropped there.
    FarEndOut,
    /// The path's own probes and every member's went unanswered, this
    /// many in a row each ([`super::BUNDLE_SILENT_MISSES`]).
    BundleSilent {
        probes: u32,
    },
}

pub(super) fn percent(permille: u32) -> String {
    format!("{}.{} %", permille / 10, permille % 10)
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Missed { probes: 1 } => f.write_str("1 probe missed"),
            Cause::Missed { probes } => write!(f, "{probes} probes missed"),
            Cause::CarrierLost => f.write_str("carrier lost"),
            Cause::CarrierNotBack => {
                f.write_str("no carrier when the path came up, lost while it was down")
            }
            Cause::Loss { permille, window } => {
                write!(
                    f,
                    "loss {} over the last {window} probes",
                    percent(*permille)
                )
            }
            Cause::Healthy { for_ms } => write!(f, "healthy for {for_ms} ms"),
            Cause::FirstReply => f.write_str("first reply"),
            Cause::NoReplyAfterRejoin => write!(
                f,
                "no reply within {} s of being put back",
                REJOIN_GRACE_MS / 1000
            ),
            Cause::FarEndOut => f.write_str("the far end took it out of its bond"),
            Cause::BundleSilent { probes } => {
                write!(f, "{probes} probes missed on the path and on every member")
            }
        }
    }
}

/// What happened, the first half of a [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `detection_ms`: from the first missed probe's transmission (or the
    /// carrier event) to the decision. `suppressed_ms`: the failure left
    /// its flap penalty above `suppress`: kept out at least this long.
    PathDown {
        path: usize,
        cause: Cause,
        detection_ms: Ms,
        suppressed_ms: Option<Ms>,
    },
    /// `flaps`: failures while it was recovering, since it went down.
    PathUp {
        path: usize,
        cause: Cause,
        flaps: u32,
    },
    /// A path answers again while no path is up: used before its
    /// hold-down ends.
    PathAnswers {
        path: usize,
    },
    MemberOut {
        path: usize,
        member: usize,
        cause: Cause,
        detection_ms: Ms,
        suppressed_ms: Option<Ms>,
    },
    MemberIn {
        path: usize,
        member: usize,
        healthy_ms: Ms,
        loss_permille: u32,
        flaps: u32,
    },
    /// The member would be taken out, but it is the last one in the bond.
    MemberKept {
        path: usize,
        member: usize,
        cause: Cause,
    },
    Forced {
        path: usize,
    },
    Released,
    /// No path is up (when no other event says so).
    AllDown,
}

/// A route set moves to another path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMove {
    pub set: usize,
    pub from: Option<usize>,
    pub to: usize,
}

/// A route set whose paths are all down: its routes stay on `on` (the
/// path it was last on, `None` if it was never placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub set: usize,
    pub on: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub at: Ms,
    pub event: Event,
    pub moves: Vec<RouteMove>,
    pub kept: Vec<Kept>,
}

/// A probe the caller must send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOut {
    pub target: usize,
    pub seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Path(usize),
    Member { path: usize, member: usize },
}
