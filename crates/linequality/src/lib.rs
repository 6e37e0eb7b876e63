//! Line-quality history: what failoverd measured on every circuit, kept
//! in fixed-size tiers so that memory is bounded whatever the uptime, and
//! the ways out of the box (JSON/CSV export, Prometheus metrics, RFC 5424
//! syslog, the control requests `wanctl` sends).
//!
//! No I/O except where named: [`syslog::Sender`] (UDP), [`http::Server`]
//! (the daemon's TCP socket), [`export::Export::read`] and the sysfs and
//! procfs reads of [`host`]. Time is passed
//! in: monotonic milliseconds with every input, and the offset to the wall
//! clock ([`Recorder::new`], [`Recorder::set_wall_offset`]).
//!
//! # Feeding the recorder (failoverd)
//!
//! Circuits are declared once ([`CircuitSpec`]: each path, each bond
//! member); their index is the [`CircuitId`] every input takes.
//!
//! | failoverd knows | call |
//! |---|---|
//! | a probe is due (`Tick::probes`), even if the send fails | [`Recorder::probe_sent`] |
//! | a reply was decoded (`probe::measure`) | [`Recorder::probe_answered`] |
//! | a probe counted missed | [`Recorder::probe_lost`] (or [`Recorder::expire`]) |
//! | a netlink link event | [`Recorder::carrier`] |
//! | the interface counters ([`host::read_counters`]), every few seconds | [`Recorder::counters`] |
//! | a member taken out or put back, the bond's link-failure count ([`host::read_bonding`]) | [`Recorder::member`] |
//! | it begins moving a member into or out of its bond, and when the move is over (its re-link) | [`Recorder::relinking`] |
//! | `PathDown` / `MemberOut` (with `detection_ms`) | [`Recorder::begin`] |
//! | `PathUp` (the outage already ended at the first answer) / `MemberIn` | [`Recorder::end`] (and [`Recorder::point`] for `member_in`) |
//! | a route set moved | [`Recorder::point`] with [`EventKind::Failover`] |
//! | every loop turn | [`Recorder::advance`] |
//! | `timesync`'s state, every few seconds: synchronised or not | [`clock::ClockTracker::observe`] (through [`Recorder::clock_mut`]) |
//! | a step in that state | [`Recorder::clock_step`], then [`Recorder::set_wall_offset`] |
//!
//! # Statistics per bucket
//!
//! In carrier terms (ITU-T G.826, [`g826`]): seconds observed (a probe
//! sent in it, or the carrier down), unavailable, errored (ES) and
//! severely errored (SES), the last two in available time only; a second
//! is booked into the bucket that covers it when decided, up to about
//! 20 s after it ended. [`availability::monthly`] turns an export into
//! the availability per calendar month, [`sla::compare`] each month
//! against the carrier's SLA.
//!
//! Probes sent, answered, lost; the longest run of consecutive losses;
//! answers that came back after a later probe's answer (reordered) or
//! twice (duplicates), by sequence number over the last 64 probes; RTT
//! min, median, mean, p95, max and population standard deviation;
//! RFC 3393 delay variation (mean absolute difference of the delays of
//! consecutive probes) of the round trip and, for the UDP echo, of each
//! one-way delay; carrier changes; bond link failures; interface byte,
//! packet, error and drop counts. Median and p95 come from a fixed
//! histogram of 896 logarithmic buckets (32 per power of two, see
//! [`stats`]): within 1/64 (1.6 %) of the exact nearest-rank value.
//!
//! Each tier keeps its own accumulator fed by the raw samples (not a
//! roll-up of the finer tier), so the 1 h median is the median of the
//! hour's probes. Tiers are rings allocated when the recorder is made:
//! [`stats::BUCKET_BYTES`] (62) bytes per bucket, so the default tiers
//! (10 s for 6 h, 15 min for 31 days, 1 h for 400 days: 14,736 buckets)
//! take [`Recording::bytes_per_circuit`] (913,632 bytes) per circuit plus
//! three 3.5 KiB histograms: the five circuits of the WAN images keep 400
//! days in 4.6 MiB (`tests/wan_history.rs`). [`stats::Bucket`] says what
//! precision each column keeps; the export's integers are unchanged.
//!
//! # Export format, version 2
//!
//! One JSON object:
//!
//! ```json
//! {
//!   "schema": "wanflash-linequality",
//!   "version": 2,
//!   "host": "wan-router",
//!   "exported_ms": 1795646771000,
//!   "circuits": [
//!     { "name": "t1", "kind": "path", "path": "t1", "interface": "bond0",
//!       "tiers": [
//!         { "width_s": 10, "buckets": 8640,
//!           "columns": ["start_ms", "sent", "received", "..."],
//!           "rows": [[1795646770000, 500, 498, 2, 1, 0, 0, 20011, ...]] } ] } ],
//!   "events": [
//!     { "id": 1, "kind": "outage", "circuit": "t1", "path": "t1",
//!       "start_ms": 1795646771000, "end_ms": 1795646783500,
//!       "duration_ms": 12500, "cause": "3 probes missed", "detection_ms": 60 } ]
//! }
//! ```
//!
//! - `exported_ms`, `start_ms`, `end_ms`: Unix milliseconds (UTC).
//! - `kind` of a circuit: `path` or `member`; of an event: `outage`,
//!   `failover`, `member_out`, `member_in`, `clock_step` (circuit and
//!   path `clock`). `end_ms` and `duration_ms` are
//!   `null` while an event lasts; `detection_ms` is `null` when not
//!   measured; `detail` (optional) says what moved where.
//! - `rows`: one array per bucket that holds data, oldest first, values in
//!   the order of [`export::COLUMNS`]; the last row of a tier may be the
//!   bucket in progress. A bucket where probes were sent and none came
//!   back is 100 % loss; a bucket that is absent holds no data. RTT and
//!   delay-variation values are microseconds, `null` without a reply (or
//!   without two consecutive ones), exact while the bucket's largest is
//!   under 65.5 ms and within 1/32768 of it above; counters are what was
//!   counted in the bucket (interface errors and drops exact up to 32,767
//!   a bucket, within 1/1024 above). See [`stats::Bucket`].
//! - Version 2 added the last four columns ([`export::COLUMNS_V2`]):
//!   `observed_s`, `unavailable_s`, `errored_s`, `severely_errored_s`,
//!   the bucket's seconds in carrier terms as decided at the export (the
//!   last 10 to 20 s are not decided yet). `errored_s` and
//!   `severely_errored_s` are G.826's: counted in available time only
//!   (an SES is also an ES); the raw counts including unavailable time
//!   are not kept.
//! - A version 1 export (26 columns) is still read: its rows have these
//!   four fields `None`, the others read as before; a row whose length
//!   does not match the file's version is refused.
//! - Optional on each circuit (left out when the description gives none,
//!   absent from older exports, which read as before; no version
//!   change): `carrier`, `circuit_id` (the carrier's reference) and `sla`
//!   (`availability_percent`, `monthly_loss_percent`, `rtt_ms` as the
//!   month's median, `time_to_repair_h`), from the description's
//!   `[[circuit]]`; a bond member has its bundle's.
//! - Optional `clock` (absent without a time client and in older
//!   exports; no version change): `source` (`sntp` or `none`), `servers`,
//!   `spans` (`from_ms`, `to_ms`, `synchronised`: consecutive spans of
//!   wall time, at most [`clock::MAX_SPANS`], oldest first) and `steps`
//!   (`at_ms` after the step, `offset_ms`; at most [`clock::MAX_STEPS`]).
//! - A reader refuses another `schema` or a `version` it does not read
//!   (other than 1 or 2) with an error naming
//!   the file; a truncated file is an error naming the byte offset.
//!
//! The CSV export has one line per bucket: `circuit,path,width_s,start`
//! (RFC 3339) and the same columns, empty for `null`.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// The recording settings are a format of the typed base.
pub use wanflash_schema::recording as config;
pub mod availability;
pub mod clock;
pub mod control;
pub mod event;
pub mod export;
pub mod g826;
pub mod host;
pub mod http;
pub mod metrics;
pub mod recorder;
pub mod sla;
pub mod snapshot;
pub mod stats;
pub mod summary;
pub mod syslog;
pub mod time;

pub use config::{Recording, TierSpec};
pub use event::{Event, EventKind};
pub use export::{Export, ExportError, Row};
pub use metrics::{render_metrics, Extra, RouteInfo};
pub use recorder::{CircuitId, CircuitKind, CircuitSpec, Ms, Recorder, Sample, Totals};
pub use stats::Counters;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid recording settings: {0}")]
    Config(String),
}
