//! Runtime cost at steady state: CPU (utime + stime from `/proc/PID/stat`
//! over a window of guest time, as % of one CPU) and resident memory
//! (`VmRSS`) of init and the daemons on `bench-office`, whose failoverd
//! probes four circuits at 20 ms (the bundle's three members and the T3),
//! with `bench-backup` answering. No peer: the figures stand against the
//! targets (<= 1 % of one CPU, failoverd <= 4 MiB, init + daemons <= 8 MiB).
//!
//! Under TCG every instruction and every emulated NIC access is paid many
//! times over, so the guest's figure is the emulator's cost more than the
//! daemon's. The native figure runs the same load on the host's real
//! kernel: a whole failoverd in a network namespace probing four circuits
//! at 20 ms over veth pairs, the far end's failoverd answering and probing
//! back (`steady_state_cpu_of_four_circuits_at_20_ms` in
//! `crates/failoverd/tests/netns.rs`), built with the images' optimisation
//! profile. Needs root (the namespaces).

use std::time::Duration;

use anyhow::{Context, Result};
use wanflash_testbed::peer::{self, BenchPair};

use super::{Ctx, Figure};

const G: &str = "runtime";
const CARD: u64 = 64 * 1024 * 1024;

/// One sample per process: `name pid ticks rss_kib`, then `uptime SECONDS`.
const SAMPLE: &str = "for n in init failoverd recorder; do\n\
  if [ $n = init ]; then ps=1; else ps=$(pidof $n); fi\n\
  for p in $ps; do\n\
    t=$(awk '{print $14+$15}' /proc/$p/stat)\n\
    r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status)\n\
    echo \"proc $n $p $t $r\"\n\
  done\n\
done\n\
echo \"uptime $(cut -d' ' -f1 /proc/uptime)\"\n";

#[derive(Debug, Default, Clone, Copy)]
struct Proc {
    ticks: f64,
    rss_kib: f64,
    pid: u32,
}

#[derive(Debug, Default)]
struct Sample {
    procs: Vec<(String, Proc)>,
    uptime: f64,
}

fn parse(out: &str) -> Sample {
    let mut s = Sample::default();
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["proc", name, pid, ticks, rss] => {
                if let (Ok(pid), Ok(t), Ok(r)) = (pid.parse(), ticks.parse(), rss.parse()) {
                    s.procs.push((
                        (*name).to_owned(),
                        Proc {
                            ticks: t,
                            rss_kib: r,
                            pid,
                        },
                    ));
                }
            }
            ["uptime", u] => s.uptime = u.parse().unwrap_or(f64::NAN),
            _ => {}
        }
    }
    s
}

fn get<'a>(s: &'a Sample, name: &str) -> Option<&'a Proc> {
    s.procs.iter().find(|(n, _)| n == name).map(|(_, p)| p)
}

/// The namespace lab's steady-state test.
const NATIVE_TEST: &str = "steady_state_cpu_of_four_circuits_at_20_ms";

/// One daemon thread's CPU over the lab's window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cpu {
    ms: f64,
    secs: f64,
    percent: f64,
}

/// `failoverd used X ms of CPU in Y s (Z % of one CPU)...`, after `prefix`.
fn cpu_after(out: &str, prefix: &str) -> Option<Cpu> {
    let rest = out.lines().find_map(|l| l.strip_prefix(prefix))?;
    let rest = rest.strip_prefix("failoverd used ")?;
    let (ms, rest) = rest.split_once(" ms of CPU in ")?;
    let (secs, rest) = rest.split_once(" s (")?;
    let (percent, _) = rest.split_once(" % of one CPU")?;
    let c = Cpu {
        ms: ms.trim().parse().ok()?,
        secs: secs.trim().parse().ok()?,
        percent: percent.trim().parse().ok()?,
    };
    (c.secs > 0.0 && c.ms.is_finite() && c.percent.is_finite()).then_some(c)
}

/// The lab's output: the measured router's daemon, then the far end's.
fn parse_native(out: &str) -> Option<(Cpu, Option<Cpu>)> {
    Some((
        cpu_after(out, "steady state: ")?,
        cpu_after(out, "steady state, far end: "),
    ))
}

/// Runs the namespace lab for `secs` of steady state.
fn native(ctx: &Ctx, secs: u32) -> Result<(Cpu, Option<Cpu>)> {
    // The images' profile (opt-level s, LTO): the code the box runs, built
    // for the host.
    let text = super::netns_lab(
        ctx,
        &["--profile", "image"],
        &[NATIVE_TEST, "--exact"],
        &[("WANFLASH_LAB_STEADY_S", secs.to_string())],
    )
    .with_context(|| format!("`{NATIVE_TEST}`"))?;
    parse_native(&text).with_context(|| {
        format!("the namespace lab printed no `steady state: failoverd used ...` line:\n{text}")
    })
}

/// The native figure, beside the TCG one.
fn push_native(ctx: &mut Ctx, a: Cpu, b: Option<Cpu>) {
    let far = b.map_or_else(
        || "the far end's daemon not read".to_owned(),
        |b| {
            format!(
                "the far end's daemon (answering and probing back) used {:.3} %",
                b.percent
            )
        },
    );
    ctx.push(
        Figure::new(
            G,
            "CPU, failoverd native (host kernel, 4 circuits at 20 ms, veth)",
            "%",
            a.percent,
        )
        .target(1.0)
        .note(&format!(
            "the daemon thread's run time (user + system, /proc/self/task/TID/schedstat) over {:.0} s \
             of steady state: a whole failoverd (images' profile, glibc host build) in a network \
             namespace probing 4 paths at 20 ms x 3 over veth with the images' history tiers, \
             its probes answered (the test asserts it); {far}; veth delivery's softirq work may be charged to either \
             side; the host's CPU, not the box's",
            a.secs
        )),
    );
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    // Natively first, on a host not yet loaded by the VMs; a lab that
    // cannot run fails the group, after the TCG figures.
    let native = native(ctx, if ctx.quick { 10 } else { 60 });
    if let Ok((a, b)) = native {
        push_native(ctx, a, b);
    }
    tcg(ctx)?;
    native.map(|_| ())
}

/// The figures of the office router under QEMU (TCG).
fn tcg(ctx: &mut Ctx) -> Result<()> {
    let ws = ctx.ws.clone();
    let mut imgs = Vec::new();
    for name in ["bench-office", "bench-backup"] {
        let mut opts = wanflash_image::Options::new(&ws, name);
        opts.images_dir = ws.join("tests/images");
        opts.out_root = ws.join("target/bench/images");
        imgs.push(crate::build_image::build_with(&opts)?.image_path);
    }
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::QEMU, &[], &mut |_| {})?;
    let work = ctx.work.join("runtime");
    let mut p = BenchPair::boot(&imgs[0], &imgs[1], &work, CARD, Duration::from_secs(180))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Settle: both daemons up and probing, the boot's work done.
    std::thread::sleep(Duration::from_secs(if ctx.quick { 5 } else { 15 }));
    let window = if ctx.quick { 10 } else { 60 };
    let a = parse(&peer::sh_ok(&mut p.office, SAMPLE).map_err(|e| anyhow::anyhow!("{e}"))?);
    std::thread::sleep(Duration::from_secs(window));
    let b = parse(&peer::sh_ok(&mut p.office, SAMPLE).map_err(|e| anyhow::anyhow!("{e}"))?);
    let console = p.bed.office.console();
    drop(p);
    let secs = b.uptime - a.uptime;
    // USER_HZ is 100 on x86 Linux.
    let cpu = |n: &str| -> f64 {
        match (get(&a, n), get(&b, n)) {
            (Some(x), Some(y)) if x.pid == y.pid => (y.ticks - x.ticks) / 100.0 / secs * 100.0,
            _ => f64::NAN,
        }
    };
    let rss = |n: &str| get(&b, n).map(|p| p.rss_kib / 1024.0).unwrap_or(f64::NAN);
    let members_ok = !console.contains("failoverd: error");
    let probing = if members_ok {
        "failoverd probes 4 circuits at 20 ms x 3 (t1 with members eth0-2, t3)".to_owned()
    } else {
        "failoverd logged errors with member probing (see the console): figures are what it cost while so".to_owned()
    };
    let restarted = if get(&a, "failoverd").map(|x| x.pid) != get(&b, "failoverd").map(|x| x.pid) {
        "; failoverd was restarted during the window"
    } else {
        ""
    };
    let window_note = format!(
        "{probing}{restarted}; {secs:.1} s window of guest time, utime+stime from /proc/PID/stat; \
         netcfg is a oneshot that exits after configuring: no steady-state cost"
    );
    let recorder = get(&b, "recorder").is_some();
    let init_cpu = cpu("init");
    let fo_cpu = cpu("failoverd");
    ctx.push(Figure::new(G, "CPU, init", "%", init_cpu).note(&window_note));
    ctx.push(Figure::new(G, "CPU, failoverd (4 circuits at 20 ms)", "%", fo_cpu).target(1.0));
    let mut total_cpu = init_cpu + fo_cpu;
    let mut total_rss = rss("init") + rss("failoverd");
    if recorder {
        ctx.push(Figure::new(G, "CPU, recorder", "%", cpu("recorder")));
        ctx.push(Figure::new(G, "RSS, recorder", "MiB", rss("recorder")));
        total_cpu += cpu("recorder");
        total_rss += rss("recorder");
    }
    ctx.push(
        Figure::new(G, "CPU, init + daemons", "%", total_cpu)
            .target(1.0)
            .note(if recorder {
                "init, failoverd, recorder"
            } else {
                "init and failoverd; no separate recorder process (the line-quality recorder runs inside failoverd)"
            }),
    );
    ctx.push(Figure::new(G, "RSS, init", "MiB", rss("init")));
    ctx.push(Figure::new(G, "RSS, failoverd", "MiB", rss("failoverd")).target(4.0));
    ctx.push(Figure::new(G, "RSS, init + daemons", "MiB", total_rss).target(8.0));
    if !secs.is_finite() || secs <= 0.0 {
        return Err(anyhow::anyhow!("no guest uptime read")).context("runtime window");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_sample() {
        let s = parse("proc init 1 12 516\nproc failoverd 77 40 600\nuptime 33.50\n");
        assert_eq!(get(&s, "init").map(|p| p.ticks), Some(12.0));
        assert_eq!(get(&s, "failoverd").map(|p| p.pid), Some(77));
        assert_eq!(s.uptime, 33.5);
        assert!(get(&s, "recorder").is_none());
    }

    #[test]
    fn parses_the_labs_steady_state_lines() {
        let out = "failoverd: path t3 up (first reply); no route moves\n\
            steady state, t1a: 3000 probes sent, 3000 answered\n\
            steady state: failoverd used 190.3 ms of CPU in 60.0 s (0.317 % of one CPU), 4 circuits at 20 ms x 3\n\
            steady state, far end: failoverd used 201.0 ms of CPU in 60.0 s (0.335 % of one CPU), 4 circuits at 20 ms x 3\n";
        let (a, b) = parse_native(out).unwrap();
        assert_eq!(
            a,
            Cpu {
                ms: 190.3,
                secs: 60.0,
                percent: 0.317
            }
        );
        assert_eq!(b.map(|b| b.percent), Some(0.335));
        // Without the far end's line: the measured daemon alone.
        let (a, b) =
            parse_native(out.lines().take(3).collect::<Vec<_>>().join("\n").as_str()).unwrap();
        assert_eq!(a.ms, 190.3);
        assert!(b.is_none());
        // No line, or a garbled one: nothing.
        assert!(parse_native("steady state, t1a: 3000 probes sent\n").is_none());
        assert!(
            parse_native("steady state: failoverd used x ms of CPU in 60 s (1 % of one CPU)")
                .is_none()
        );
        assert!(
            parse_native("steady state: failoverd used 1 ms of CPU in 0 s (1 % of one CPU)")
                .is_none()
        );
    }
}
