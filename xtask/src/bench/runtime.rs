//! Runtime cost at steady state: CPU (utime + stime from `/proc/PID/stat`
//! over a window of guest time, as % of one CPU) and resident memory
//! (`VmRSS`) of init and the daemons on `bench-office`, whose failoverd
//! probes four circuits at 20 ms (the bundle's three members and the T3),
//! with `bench-backup` answering. No peer: the figures stand against the
//! targets (<= 1 % of one CPU, failoverd <= 4 MiB, init + daemons <= 8 MiB).

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

pub fn run(ctx: &mut Ctx) -> Result<()> {
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
}
