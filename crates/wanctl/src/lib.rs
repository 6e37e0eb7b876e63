//! `wanctl`: the operator's view of failoverd, over its control socket
//! (JSON lines on a Unix stream socket, see `wanflash_schema::control`
//! and `wanflash_linequality::control`).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wanflash_linequality::control::{self as qctl, Format};
use wanflash_linequality::time::parse_duration;
use wanflash_schema::control::{self as fctl, Health, Status};

mod availability;
mod history;
pub mod ssh;
pub use availability::{availability_table, DEFAULT_MONTHS};
pub use history::{gather, history_summary, row_width_s, Gathered, MAX_ROWS};

pub const USAGE: &str = "usage: wanctl [--socket PATH] COMMAND
  status                                  paths, members, routes and health
  events [--since 24h] [--circuit NAME]   outages and failovers
  history CIRCUIT [--since 24h] [--all]   at most 25 rows covering the span, and a
                                          summary; --all (--every-bucket): every
                                          bucket of the tier
  availability [CIRCUIT] [--months 3]     per calendar month: availability, ES, SES,
                                          unavailable time (ITU-T G.826), time the
                                          router took a member out
  export --format csv|json                everything recorded, to stdout
  force PATH                              put every route PATH carries on it
  release                                 back to automatic choice
  undampen PATH|MEMBER|all                clear the flap penalty: a suppressed
                                          circuit is used again once healthy
                                          for its hold-down
  update [--allow-downgrade] FILE|-       verify a signed bundle of this image with a
                                          newer release, write the inactive slot,
                                          reboot into it once (wanflash-update);
                                          --allow-downgrade: also an older or equal
                                          release (logged in the store)
  commit                                  keep the running trial slot as the default
  slots [--format text|json]              slots, releases, last update, downgrades,
                                          reset reasons, a damaged store (json: one
                                          line, what `cargo xtask deploy` reads)
  store reset                             new store record after `slots` reports it
                                          damaged (forgets the slots' history)
  --socket PATH  failoverd's control socket (default /run/failoverd.sock)";

/// Longest answer read (a year of exports is a few MiB).
const MAX_ANSWER: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    Events {
        since_s: Option<u64>,
        circuit: Option<String>,
    },
    History {
        circuit: String,
        since_s: u64,
        /// Every bucket, not a screenful.
        all: bool,
    },
    /// Availability per calendar month.
    Availability {
        /// Every circuit when `None`.
        circuit: Option<String>,
        /// The newest months of each circuit shown.
        months: usize,
    },
    Export {
        format: Format,
    },
    Force {
        path: String,
    },
    Release,
    Undampen {
        circuit: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub socket: PathBuf,
    pub command: Command,
}

/// The arguments after the program name; `Ok(None)` for `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Invocation>, String> {
    let mut socket = PathBuf::from(wanflash_schema::failover::DEFAULT_CONTROL_SOCKET);
    let mut words: Vec<&str> = Vec::new();
    let mut since: Option<u64> = None;
    let mut circuit: Option<String> = None;
    let mut format: Option<Format> = None;
    let mut all = false;
    let mut months: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| format!("`{name}` needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" | "help" => return Ok(None),
            "--socket" => socket = PathBuf::from(value("--socket")?),
            "--since" => since = Some(parse_duration(value("--since")?)?),
            "--circuit" => circuit = Some(value("--circuit")?.to_owned()),
            "--all" | "--every-bucket" => all = true,
            "--months" => {
                let v = value("--months")?;
                months =
                    Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("`--months {v}`: give a number of months, like 3")
                    })?)
            }
            "--format" => {
                format = Some(match value("--format")? {
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    f => return Err(format!("unknown format `{f}`: use csv or json")),
                })
            }
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s => words.push(s),
        }
    }
    let only = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("`{what}` takes no such option"))
        }
    };
    if all && words.first() != Some(&"history") {
        return Err("`--all` is for `history` only".to_owned());
    }
    if months.is_some() && words.first() != Some(&"availability") {
        return Err("`--months` is for `availability` only".to_owned());
    }
    let command = match words.as_slice() {
        [] => return Err("no command given".to_owned()),
        ["status"] => {
            only(
                since.is_none() && circuit.is_none() && format.is_none(),
                "status",
            )?;
            Command::Status
        }
        ["events"] => {
            only(format.is_none(), "events")?;
            Command::Events {
                since_s: since,
                circuit,
            }
        }
        ["history", c] => {
            only(format.is_none() && circuit.is_none(), "history")?;
            Command::History {
                circuit: (*c).to_owned(),
                since_s: since.unwrap_or(86_400),
                all,
            }
        }
        ["history"] => return Err("`history` needs a circuit: wanctl history t1".to_owned()),
        ["availability", rest @ ..] if rest.len() <= 1 => {
            only(
                since.is_none() && circuit.is_none() && format.is_none(),
                "availability",
            )?;
            Command::Availability {
                circuit: rest.first().map(|c| (*c).to_owned()),
                months: months.unwrap_or(DEFAULT_MONTHS),
            }
        }
        ["export"] => {
            only(since.is_none() && circuit.is_none(), "export")?;
            Command::Export {
                format: format.ok_or("`export` needs `--format csv` or `--format json`")?,
            }
        }
        ["force", p] => {
            only(
                since.is_none() && circuit.is_none() && format.is_none(),
                "force",
            )?;
            Command::Force {
                path: (*p).to_owned(),
            }
        }
        ["force"] => return Err("`force` needs a path: wanctl force t3".to_owned()),
        ["undampen", c] => {
            only(
                since.is_none() && circuit.is_none() && format.is_none(),
                "undampen",
            )?;
            Command::Undampen {
                circuit: (*c).to_owned(),
            }
        }
        ["undampen"] => {
            return Err("`undampen` needs a path, a member or `all`: wanctl undampen t1".to_owned())
        }
        ["release"] => {
            only(
                since.is_none() && circuit.is_none() && format.is_none(),
                "release",
            )?;
            Command::Release
        }
        [w, ..] => {
            return Err(format!(
                "unknown command or extra argument `{}`",
                words.last().unwrap_or(w)
            ))
        }
    };
    Ok(Some(Invocation { socket, command }))
}

/// Why a command failed: one line for the terminal, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

/// Sends one request line, reads one answer line.
fn ask(socket: &Path, line: &str) -> Result<String, Failure> {
    let shown = socket.display();
    let mut s = UnixStream::connect(socket).map_err(|e| {
        fail(format!(
            "failoverd is not running (cannot connect to `{shown}`: {e})"
        ))
    })?;
    let timeout = Some(Duration::from_secs(30));
    let _ = s.set_read_timeout(timeout);
    let _ = s.set_write_timeout(timeout);
    s.write_all(line.as_bytes())
        .map_err(|e| fail(format!("failed to send to `{shown}`: {e}")))?;
    let mut answer = String::new();
    let mut r = BufReader::new(std::io::Read::take(s, MAX_ANSWER));
    r.read_line(&mut answer).map_err(|e| {
        fail(format!(
            "failed to read failoverd's answer on `{shown}`: {e}"
        ))
    })?;
    if !answer.ends_with('\n') {
        return Err(fail(format!(
            "failoverd closed `{shown}` without a whole answer"
        )));
    }
    Ok(answer)
}

/// Runs the command; what to print on success.
pub fn run(inv: &Invocation) -> Result<String, Failure> {
    let sock = &inv.socket;
    match &inv.command {
        Command::Status => {
            let r = failoverd(sock, &fctl::Request::Status)?;
            match r.status {
                Some(st) => Ok(render_status(&st) + &ssh::host_key_line()),
                None => Err(fail("failoverd answered without a status")),
            }
        }
        Command::Force { path } => {
            let r = failoverd(sock, &fctl::Request::Force { path: path.clone() })?;
            Ok(r.message.unwrap_or_default() + "\n")
        }
        Command::Release => {
            let r = failoverd(sock, &fctl::Request::Release)?;
            Ok(r.message.unwrap_or_default() + "\n")
        }
        Command::Undampen { circuit } => {
            let r = failoverd(
                sock,
                &fctl::Request::Undampen {
                    path: circuit.clone(),
                },
            )?;
            Ok(r.message.unwrap_or_default() + "\n")
        }
        Command::Events { since_s, circuit } => {
            let r = quality(
                sock,
                &qctl::Request::Events {
                    since_s: *since_s,
                    circuit: circuit.clone(),
                },
            )?;
            let events = r.events.unwrap_or_default();
            if events.is_empty() {
                return Ok("no outage or failover recorded in that span\n".to_owned());
            }
            Ok(events.iter().map(|e| e.describe() + "\n").collect())
        }
        Command::History {
            circuit,
            since_s,
            all,
        } => {
            let r = quality(
                sock,
                &qctl::Request::History {
                    circuit: circuit.clone(),
                    since_s: *since_s,
                },
            )?;
            let h = r
                .history
                .ok_or_else(|| fail("failoverd answered without a history"))?;
            if *all {
                return Ok(qctl::history_table(&h));
            }
            // The outages, for the down time of each row and the summary.
            let r = quality(
                sock,
                &qctl::Request::Events {
                    since_s: Some(*since_s),
                    circuit: Some(circuit.clone()),
                },
            )?;
            Ok(history_summary(&h, &r.events.unwrap_or_default()))
        }
        Command::Availability { circuit, months } => {
            let r = quality(
                sock,
                &qctl::Request::Export {
                    format: Format::Json,
                },
            )?;
            let text = r
                .export
                .ok_or_else(|| fail("failoverd answered without an export"))?;
            let e = wanflash_linequality::Export::parse("failoverd's export", &text)
                .map_err(|e| fail(e.to_string()))?;
            availability_table(&e, circuit.as_deref(), *months).map_err(fail)
        }
        Command::Export { format } => {
            let r = quality(sock, &qctl::Request::Export { format: *format })?;
            let mut text = r
                .export
                .ok_or_else(|| fail("failoverd answered without an export"))?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Ok(text)
        }
    }
}

fn failoverd(sock: &Path, req: &fctl::Request) -> Result<fctl::Response, Failure> {
    let line = ask(sock, &req.to_line())?;
    let r: fctl::Response = serde_json::from_str(&line)
        .map_err(|e| fail(format!("failoverd's answer is not understood: {e}")))?;
    if !r.ok {
        return Err(fail(
            r.error.unwrap_or_else(|| "failoverd refused".to_owned()),
        ));
    }
    Ok(r)
}

fn quality(sock: &Path, req: &qctl::Request) -> Result<qctl::Response, Failure> {
    let line = ask(sock, &req.to_line())?;
    // An older failoverd answers in its own shape: say what it said.
    let r: qctl::Response = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let said = serde_json::from_str::<fctl::Response>(&line)
                .ok()
                .and_then(|r| r.error);
            return Err(fail(said.unwrap_or_else(|| {
                format!("failoverd's answer is not understood: {e}")
            })));
        }
    };
    if !r.ok {
        return Err(fail(
            r.error.unwrap_or_else(|| "failoverd refused".to_owned()),
        ));
    }
    Ok(r)
}

/// A duration for people, truncated (never rounded up) to its two
/// largest units, the second left out when it is zero: `850 ms`, `4.2 s`,
/// `12 s`, `47 min 12 s`, `5 min`, `2 h 03 min`, `1 h`, `3 d 4 h`, `2 d`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let two = |big: u64, unit: &str, small: u64, small_unit: &str, pad: bool| match (small, pad) {
        (0, _) => format!("{big} {unit}"),
        (_, true) => format!("{big} {unit} {small:02} {small_unit}"),
        (_, false) => format!("{big} {unit} {small} {small_unit}"),
    };
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 10 {
        format!("{}.{} s", s, ms % 1000 / 100)
    } else if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        two(s / 60, "min", s % 60, "s", true)
    } else if s < 86_400 {
        two(s / 3600, "h", s % 3600 / 60, "min", true)
    } else {
        two(s / 86_400, "d", s % 86_400 / 3600, "h", false)
    }
}

/// In place of stale figures: `no answer, last 47 min 12 s ago`; `None`
/// while the figures are fresh. Stale means down, or silent for longer
/// than failoverd's interval x multiplier (`silent_after_ms`; an older
/// failoverd does not say, and then only down counts).
fn no_answer(down: bool, ago_ms: Option<u64>, silent_after_ms: Option<u64>) -> Option<String> {
    let silent = match (ago_ms, silent_after_ms) {
        (Some(ago), Some(limit)) => ago > limit,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    (down || silent).then(|| match ago_ms {
        Some(ago) => format!("no answer, last {} ago", human_duration(ago)),
        None => "no answer, never".to_owned(),
    })
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".to_owned(), |u| format!("{}.{:03}", u / 1000, u % 1000))
}

/// One screen: paths and members, routes, health. FLAPS counts the
/// times a path went down and a member was taken out of its bond since
/// failoverd started; a path or member without a recent answer says so
/// instead of showing its last RTT, loss and jitter.
pub fn render_status(st: &Status) -> String {
    let mut o = format!(
        "failoverd up {}{}\n\n{:<10} {:<8} {:<9} {:>11} {:>4} {:>9} {:>7} {:>15} {:>5}\n",
        human_duration(st.uptime_ms),
        st.forced.as_ref().map_or(String::new(), |p| format!(
            ", routes forced onto {p} (wanctl release)"
        )),
        "PATH",
        "IFACE",
        "STATE",
        "FOR",
        "CARR",
        "RTT ms",
        "LOSS %",
        "JITTER ms f/r",
        "FLAPS"
    );
    let figures =
        |stale: Option<String>, rtt: Option<u64>, loss: f64, jf: Option<u64>, jr: Option<u64>| {
            match stale {
                Some(s) => format!("  {s:<31}"),
                None => format!(
                    "{:>9} {:>7.1} {:>15}",
                    ms(rtt),
                    loss,
                    format!("{}/{}", ms(jf), ms(jr))
                ),
            }
        };
    for p in &st.paths {
        let stale = no_answer(
            p.state == Health::Down,
            p.last_answer_ago_ms,
            p.silent_after_ms,
        );
        o += &format!(
            "{:<10} {:<8} {:<9} {:>11} {:>4} {} {:>5}\n",
            p.name,
            p.interface,
            p.state.as_str(),
            human_duration(p.for_ms),
            if p.carrier { "yes" } else { "NO" },
            figures(
                stale,
                p.last_rtt_us,
                p.loss_percent,
                p.jitter_forward_us,
                p.jitter_reverse_us
            ),
            p.downs
        );
        for m in &p.members {
            let state = serde_json::to_value(m.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let stale = no_answer(!m.carrier, m.last_answer_ago_ms, m.silent_after_ms);
            o += &format!(
                "  {:<8} {:<8} {:<9} {:>11} {:>4} {} {:>5}\n",
                m.name,
                "member",
                state,
                human_duration(m.for_ms),
                if m.carrier { "yes" } else { "NO" },
                figures(
                    stale,
                    m.last_rtt_us,
                    m.loss_percent,
                    m.jitter_forward_us,
                    m.jitter_reverse_us
                ),
                m.take_outs
            );
        }
    }
    o += "\nROUTES\n";
    for r in &st.route_sets {
        o += &format!(
            "  {} (table {}) via {}{}  [paths: {}]\n",
            r.destination,
            r.table,
            r.path.as_deref().unwrap_or("(not placed yet)"),
            if r.stranded {
                ", every path down: kept"
            } else {
                ""
            },
            r.candidates.join(", ")
        );
    }
    let down: Vec<&str> = st
        .paths
        .iter()
        .filter(|p| p.state.as_str() != "up")
        .map(|p| p.name.as_str())
        .collect();
    let members_out: Vec<&str> = st
        .paths
        .iter()
        .flat_map(|p| p.members.iter())
        .filter(|m| {
            serde_json::to_value(m.state)
                .ok()
                .and_then(|v| v.as_str().map(|s| s != "in"))
                .unwrap_or(false)
        })
        .map(|m| m.name.as_str())
        .collect();
    // Flap dampening: only the circuits with a penalty.
    let mut damp = String::new();
    let circuits = st.paths.iter().flat_map(|p| {
        std::iter::once((p.name.as_str(), p.dampening))
            .chain(p.members.iter().map(|m| (m.name.as_str(), m.dampening)))
    });
    for (name, d) in circuits {
        if d.penalty == 0 && !d.suppressed {
            continue;
        }
        damp += &format!("  {name:<8} penalty {:>6}", d.penalty);
        if d.suppressed {
            damp += &format!(
                ", SUPPRESSED: kept out {} more, then its hold-down (wanctl undampen {name})",
                human_duration(d.reuse_in_ms.unwrap_or(0))
            );
        }
        damp += "\n";
    }
    if !damp.is_empty() {
        o += "\nFLAP DAMPENING (the penalty halves every half-life)\n";
        o += &damp;
    }
    let unknown = st.paths.iter().all(|p| p.state.as_str() == "unknown");
    let health = if unknown {
        "starting: no path has answered yet".to_owned()
    } else if st.route_sets.iter().any(|r| r.stranded) || down.len() == st.paths.len() {
        "DOWN: no path to the other site is up".to_owned()
    } else if down.is_empty() && members_out.is_empty() {
        "ok: every path is up".to_owned()
    } else {
        let mut parts = Vec::new();
        if !down.is_empty() {
            parts.push(format!("not up: {}", down.join(", ")));
        }
        if !members_out.is_empty() {
            parts.push(format!(
                "members not in their bond: {}",
                members_out.join(", ")
            ));
        }
        format!("degraded: {}", parts.join("; "))
    };
    o += &format!("\nHEALTH {health}\n");
    o
}
