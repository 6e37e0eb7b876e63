//! The Prometheus text exposition (format 0.0.4) of what is recorded.
//!
//! node_exporter's names where node_exporter has the figure
//! (`node_bonding_active`, `node_bonding_slaves`, `node_network_*_total`
//! with a `device` label), `wanflash_*` for the rest. Counters are totals
//! since failoverd started; RTT, jitter and loss gauges describe the last
//! complete bucket of the finest tier (10 s by default).

use std::fmt::Write as _;

use crate::recorder::{CircuitKind, Recorder};

/// What the daemon knows beyond the recorder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// Each path and its health (`up`, `down`, `holding`, `unknown`).
    pub paths: Vec<(String, String)>,
    /// Each route set: destination, table, the path carrying it.
    pub routes: Vec<RouteInfo>,
    /// The path forced by the operator.
    pub forced: Option<String>,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub destination: String,
    pub table: u32,
    pub path: Option<String>,
}

/// The health states a path may be in, as `wanflash_path_state` labels.
pub const PATH_STATES: [&str; 4] = ["unknown", "up", "holding", "down"];

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The whole page.
pub fn render_metrics(rec: &Recorder, extra: &Extra) -> String {
    let mut o = Out {
        text: String::with_capacity(8192),
    };
    let circuits: Vec<_> = rec.circuits().cloned().collect();
    let ids = || circuits.iter().enumerate();
    let lab = |c: &crate::CircuitSpec| [("circuit", c.name.clone()), ("path", c.path.clone())];

    type Get = fn(&crate::recorder::Totals) -> u64;
    let counters: [(&str, &str, Get); 9] = [
        (
            "wanflash_probes_sent_total",
            "Probes sent on the circuit.",
            |t| t.sent,
        ),
        (
            "wanflash_probes_received_total",
            "Probes answered in time.",
            |t| t.received,
        ),
        (
            "wanflash_probes_lost_total",
            "Probes given up as lost.",
            |t| t.lost,
        ),
        (
            "wanflash_probes_duplicate_total",
            "Answers received more than once.",
            |t| t.duplicates,
        ),
        (
            "wanflash_probes_reordered_total",
            "Answers that arrived after a later probe's answer.",
            |t| t.reordered,
        ),
        (
            "wanflash_carrier_changes_total",
            "Carrier transitions of the circuit's interface.",
            |t| t.carrier_changes,
        ),
        (
            "wanflash_errored_seconds_total",
            "Errored seconds (ITU-T G.826: a probe sent in the second lost), in available time, as decided so far (up to 10 s behind).",
            |t| t.errored_s,
        ),
        (
            "wanflash_severely_errored_seconds_total",
            "Severely errored seconds (ITU-T G.826: 30 % or more of the second's probes lost, or carrier down), in available time, as decided so far.",
            |t| t.severely_errored_s,
        ),
        (
            "wanflash_unavailable_seconds_total",
            "Unavailable seconds (ITU-T G.826 Annex A: from 10 consecutive severely errored seconds to 10 consecutive others), as decided so far.",
            |t| t.unavailable_s,
        ),
    ];
    for (name, help, get) in counters {
        o.family(name, "counter", help);
        for (i, c) in ids() {
            let l = lab(c);
            let t = rec.totals(i).unwrap_or_default();
            o.sample(
                name,
                &[("circuit", &l[0].1), ("path", &l[1].1)],
                get(&t) as f64,
            );
        }
    }

    o.family(
        "wanflash_outages_total",
        "counter",
        "Outages recorded on the path.",
    );
    for (i, c) in ids().filter(|(_, c)| c.kind == CircuitKind::Path) {
        let t = rec.totals(i).unwrap_or_default();
        o.sample(
            "wanflash_outages_total",
            &[("circuit", &c.name), ("path", &c.path)],
            t.outages as f64,
        );
    }

    o.family(
        "wanflash_rtt_seconds",
        "summary",
        "Round-trip time of answered probes; quantiles over the last complete bucket of the finest tier, sum and count since start.",
    );
    for (i, c) in ids() {
        let b = rec.last_fine(i).map(|b| b.row(0));
        let t = rec.totals(i).unwrap_or_default();
        for (q, v) in [
            ("0.5", b.and_then(|r| r.rtt_median_us)),
            ("0.95", b.and_then(|r| r.rtt_p95_us)),
        ] {
            o.sample(
                "wanflash_rtt_seconds",
                &[("circuit", &c.name), ("path", &c.path), ("quantile", q)],
                v.map_or(f64::NAN, secs),
            );
        }
        let l = [("circuit", c.name.as_str()), ("path", c.path.as_str())];
        o.sample("wanflash_rtt_seconds_sum", &l, secs(t.rtt_sum_us));
        o.sample("wanflash_rtt_seconds_count", &l, t.received as f64);
    }

    type Pick = fn(&crate::Row) -> Option<f64>;
    let gauges: [(&str, &str, Pick); 8] = [
        (
            "wanflash_rtt_min_seconds",
            "Smallest round-trip time in the last complete bucket.",
            |r| r.rtt_min_us.map(secs),
        ),
        (
            "wanflash_rtt_mean_seconds",
            "Mean round-trip time in the last complete bucket.",
            |r| r.rtt_mean_us.map(secs),
        ),
        (
            "wanflash_rtt_max_seconds",
            "Largest round-trip time in the last complete bucket.",
            |r| r.rtt_max_us.map(secs),
        ),
        (
            "wanflash_jitter_stddev_seconds",
            "Standard deviation of the round-trip time in the last complete bucket.",
            |r| r.rtt_stddev_us.map(secs),
        ),
        (
            "wanflash_ipdv_seconds",
            "Mean absolute RFC 3393 delay variation of consecutive round trips in the last complete bucket.",
            |r| r.ipdv_us.map(secs),
        ),
        (
            "wanflash_ipdv_forward_seconds",
            "Mean absolute RFC 3393 one-way delay variation toward the far end in the last complete bucket.",
            |r| r.ipdv_forward_us.map(secs),
        ),
        (
            "wanflash_ipdv_reverse_seconds",
            "Mean absolute RFC 3393 one-way delay variation from the far end in the last complete bucket.",
            |r| r.ipdv_reverse_us.map(secs),
        ),
        (
            "wanflash_loss_ratio",
            "Lost probes over given-up and answered ones in the last complete bucket.",
            |r| r.loss_ratio(),
        ),
    ];
    for (name, help, pick) in gauges {
        o.family(name, "gauge", help);
        for (i, c) in ids() {
            let v = rec.last_fine(i).and_then(|b| pick(&b.row(0)));
            o.sample(
                name,
                &[("circuit", &c.name), ("path", &c.path)],
                v.unwrap_or(f64::NAN),
            );
        }
    }

    o.family(
        "wanflash_loss_run_probes",
        "gauge",
        "Longest run of consecutive lost probes in the last complete bucket.",
    );
    for (i, c) in ids() {
        let v = rec.last_fine(i).map_or(0, |b| b.row(0).loss_run);
        o.sample(
            "wanflash_loss_run_probes",
            &[("circuit", &c.name), ("path", &c.path)],
            v as f64,
        );
    }

    o.family(
        "wanflash_carrier_up",
        "gauge",
        "1 when the circuit's interface has carrier.",
    );
    for (i, c) in ids() {
        if let Some(up) = rec.circuits[i].carrier {
            o.sample(
                "wanflash_carrier_up",
                &[("circuit", &c.name), ("path", &c.path)],
                f64::from(u8::from(up)),
            );
        }
    }

    // Bonds: a path whose members are recorded.
    let bonds: Vec<(&crate::CircuitSpec, Vec<usize>)> = circuits
        .iter()
        .filter(|c| c.kind == CircuitKind::Path)
        .map(|p| {
            let members = ids()
                .filter(|(_, m)| m.kind == CircuitKind::Member && m.path == p.name)
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            (p, members)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect();
    o.family(
        "node_bonding_slaves",
        "gauge",
        "Number of configured slaves per bonding interface.",
    );
    for (p, m) in &bonds {
        o.sample(
            "node_bonding_slaves",
            &[("master", &p.interface)],
            m.len() as f64,
        );
    }
    o.family(
        "node_bonding_active",
        "gauge",
        "Number of active slaves per bonding interface.",
    );
    for (p, m) in &bonds {
        let active = m
            .iter()
            .filter(|i| {
                let c = &rec.circuits[**i];
                c.in_bond != Some(false) && c.carrier != Some(false)
            })
            .count();
        o.sample(
            "node_bonding_active",
            &[("master", &p.interface)],
            active as f64,
        );
    }
    o.family(
        "wanflash_bond_member_in",
        "gauge",
        "1 while failoverd keeps the member circuit in its bond, 0 while it is taken out.",
    );
    for (i, c) in ids().filter(|(_, c)| c.kind == CircuitKind::Member) {
        if let Some(inb) = rec.circuits[i].in_bond {
            o.sample(
                "wanflash_bond_member_in",
                &[("circuit", &c.name), ("path", &c.path)],
                f64::from(u8::from(inb)),
            );
        }
    }
    o.family(
        "wanflash_bond_link_failures_total",
        "counter",
        "Link failures the bonding driver counted on the member.",
    );
    for (i, c) in ids().filter(|(_, c)| c.kind == CircuitKind::Member) {
        let t = rec.totals(i).unwrap_or_default();
        o.sample(
            "wanflash_bond_link_failures_total",
            &[("circuit", &c.name), ("path", &c.path)],
            t.link_failures as f64,
        );
    }

    // Interface counters, under node_exporter's names, once per device.
    type Field = fn(&crate::Counters) -> u64;
    let netdev: [(&str, &str, Field); 8] = [
        (
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
            |c| c.rx_bytes,
        ),
        (
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
            |c| c.tx_bytes,
        ),
        (
            "node_network_receive_packets_total",
            "Network device statistic receive_packets.",
            |c| c.rx_packets,
        ),
        (
            "node_network_transmit_packets_total",
            "Network device statistic transmit_packets.",
            |c| c.tx_packets,
        ),
        (
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
            |c| c.rx_errors,
        ),
        (
            "node_network_transmit_errs_total",
            "Network device statistic transmit_errs.",
            |c| c.tx_errors,
        ),
        (
            "node_network_receive_drop_total",
            "Network device statistic receive_drop.",
            |c| c.rx_drops,
        ),
        (
            "node_network_transmit_drop_total",
            "Network device statistic transmit_drop.",
            |c| c.tx_drops,
        ),
    ];
    let mut devices: Vec<(&str, crate::Counters)> = Vec::new();
    for (i, c) in ids() {
        if let Some(k) = rec.circuits[i].counters {
            if !devices.iter().any(|(d, _)| *d == c.interface) {
                devices.push((&c.interface, k));
            }
        }
    }
    for (name, help, get) in netdev {
        o.family(name, "counter", help);
        for (d, k) in &devices {
            o.sample(name, &[("device", d)], get(k) as f64);
        }
    }

    o.family(
        "wanflash_path_state",
        "gauge",
        "1 for the state the path is in, 0 for the others.",
    );
    for (p, state) in &extra.paths {
        for s in PATH_STATES {
            o.sample(
                "wanflash_path_state",
                &[("path", p), ("state", s)],
                f64::from(u8::from(state == s)),
            );
        }
    }
    o.family(
        "wanflash_route_path",
        "gauge",
        "1 for the path that carries the route set.",
    );
    for r in &extra.routes {
        let table = r.table.to_string();
        if let Some(p) = &r.path {
            o.sample(
                "wanflash_route_path",
                &[
                    ("destination", &r.destination),
                    ("table", &table),
                    ("path", p),
                ],
                1.0,
            );
        }
    }
    o.family(
        "wanflash_forced",
        "gauge",
        "1 while the operator forces routes onto a path (wanctl force).",
    );
    o.sample(
        "wanflash_forced",
        &[("path", extra.forced.as_deref().unwrap_or(""))],
        f64::from(u8::from(extra.forced.is_some())),
    );
    o.family(
        "wanflash_uptime_seconds",
        "gauge",
        "Time since failoverd started.",
    );
    o.sample("wanflash_uptime_seconds", &[], extra.uptime_ms as f64 / 1e3);
    if let Some(c) = rec.clock() {
        let now_s = rec.wall(extra.uptime_ms).div_euclid(1000);
        o.family(
            "wanflash_clock_synchronised",
            "gauge",
            "1 when the box's clock was set by an NTP server's answer within the time client's limit (four poll intervals), 0 otherwise; source `none`: the image names no server.",
        );
        o.sample(
            "wanflash_clock_synchronised",
            &[("source", c.record(0).source.as_str())],
            if c.synchronised { 1.0 } else { 0.0 },
        );
        o.family(
            "wanflash_clock_steps_total",
            "counter",
            "Steps of the box's clock since failoverd started (the time floor at boot, the first synchronisation; later ones mean the clock ran far off).",
        );
        o.sample("wanflash_clock_steps_total", &[], c.steps_total as f64);
        if let Some(off) = c.last_offset_ms {
            o.family(
                "wanflash_clock_offset_seconds",
                "gauge",
                "The offset measured at the last synchronisation (server minus box), before it was corrected.",
            );
            o.sample("wanflash_clock_offset_seconds", &[], off / 1e3);
        }
        if let Some(at) = c.last_sync_unix_s {
            o.family(
                "wanflash_clock_last_sync_age_seconds",
                "gauge",
                "Seconds since the box's clock was last synchronised.",
            );
            let age = now_s
                .saturating_sub(i64::try_from(at).unwrap_or(i64::MAX))
                .max(0);
            o.sample("wanflash_clock_last_sync_age_seconds", &[], age as f64);
        }
    }
    o.text
}
