//! `cargo xtask run`: boot an image in QEMU by hand, with the NICs its
//! description names; `--pair` boots the office and the backup site joined
//! by their circuits, with a prompt to cut, silence, impair and restore a
//! circuit.
//!
//! NICs follow the kernel's order: `ethN` is the N-th NIC QEMU gives the
//! guest. The first interface with addresses that is not a circuit is the
//! LAN: it gets QEMU user networking with `restrict=on` (the guest reaches
//! nothing outside) and the box's SSH port forwarded to 127.0.0.1. Every
//! other NIC is a unix datagram link: in a single run nobody is at the other
//! end (the circuits are up, their far ends silent), in a pair the circuits
//! go through a relay here that can drop or delay their frames.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wanflash_schema::description::Description;
use wanflash_testbed::{Vm, VmConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Image to boot (built first if it is missing). With --pair, the
    /// office's image.
    #[arg(long, default_value = wanflash_image::DEFAULT_IMAGE)]
    pub image: String,
    /// Boot the office and the backup site joined by their circuits, with
    /// a prompt to cut, silence, impair and restore each circuit.
    #[arg(long)]
    pub pair: bool,
    /// The backup site's image for --pair.
    #[arg(long, default_value = "wan-backup")]
    pub peer: String,
    /// Host port (on 127.0.0.1) forwarded to the box's SSH port 22; with
    /// --pair the backup site gets the next one.
    #[arg(long, default_value_t = 2222)]
    pub ssh_port: u16,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// Use KVM (TCG by default).
    #[arg(long)]
    pub kvm: bool,
}

/// What a guest NIC is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The LAN: QEMU user networking on the interface's subnet, the guest
    /// at `guest`, SSH forwarded.
    Lan { subnet: String, guest: IpAddr },
    /// One end of the named circuit.
    Circuit(String),
    /// Named by the description but neither: a link with nobody behind it.
    Unconnected,
}

/// One guest NIC: `ethN` and what it is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub attach: Attach,
}

/// The NICs an image's description names, `eth0` up to the highest
/// `ethN` it uses, in order. Interfaces with other names (bonds, VLANs,
/// renamed ones) are not NICs; a gap in the numbers is an unconnected NIC,
/// so that the kernel's numbering still matches.
pub fn nic_plan(desc: &Description, file: &str) -> Result<Vec<Nic>> {
    let net = desc
        .box_network(file)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .unwrap_or_default();
    let mut circuit_of: BTreeMap<String, String> = BTreeMap::new();
    for c in &desc.circuits {
        if let Some(i) = &c.interface {
            circuit_of.insert(i.clone(), c.name.clone());
        }
        if let Some(b) = &c.bond {
            for m in &b.members {
                circuit_of.insert(m.clone(), format!("{}-{m}", c.name));
            }
        }
    }
    let eth = |n: &str| n.strip_prefix("eth").and_then(|d| d.parse::<usize>().ok());
    let mut names: Vec<&str> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
    for b in &net.bonds {
        names.extend(b.members.iter().map(String::as_str));
    }
    let Some(highest) = names.iter().filter_map(|n| eth(n)).max() else {
        return Ok(Vec::new());
    };
    let mut lan_given = false;
    let mut nics = Vec::new();
    for n in 0..=highest {
        let name = format!("eth{n}");
        let attach = if let Some(c) = circuit_of.get(&name) {
            Attach::Circuit(c.clone())
        } else {
            let v4 = net
                .interfaces
                .iter()
                .find(|i| i.name == name)
                .and_then(|i| i.addresses.iter().find(|a| a.addr.is_ipv4()));
            match v4 {
                Some(a) if !lan_given => {
                    lan_given = true;
                    Attach::Lan {
                        subnet: a.network().to_string(),
                        guest: a.addr,
                    }
                }
                _ => Attach::Unconnected,
            }
        };
        nics.push(Nic { name, attach });
    }
    Ok(nics)
}

/// QEMU arguments for the NICs of `plan`. `link(circuit)` gives the local
/// and remote socket paths of a circuit's NIC; unconnected NICs and the
/// circuits of a single run use `work/<site>-<nic>.sock` towards a path
/// nobody binds.
fn nic_args(
    plan: &[Nic],
    site: &str,
    ssh_port: u16,
    work: &Path,
    link: &dyn Fn(&str) -> Option<(PathBuf, PathBuf)>,
) -> Vec<String> {
    let mut a = Vec::new();
    for (i, nic) in plan.iter().enumerate() {
        let id = format!("n{i}");
        let netdev = match &nic.attach {
            Attach::Lan { subnet, guest } => format!(
                "user,id={id},restrict=on,net={subnet},hostfwd=tcp:127.0.0.1:{ssh_port}-{guest}:22"
            ),
            other => {
                let (local, remote) = match other {
                    Attach::Circuit(c) => link(c),
                    _ => None,
                }
                .unwrap_or_else(|| {
                    (
                        work.join(format!("{site}-{}.sock", nic.name)),
                        work.join(format!("{site}-{}.nobody.sock", nic.name)),
                    )
                });
                format!(
                    "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                    local.display(),
                    remote.display()
                )
            }
        };
        a.push("-netdev".into());
        a.push(netdev);
        a.push("-device".into());
        // e1000e: see wanflash_testbed::E1000E (the e1000 model pauses
        // receiving for a second at every bond failover).
        a.push(format!(
            "{},netdev={id},mac=52:54:00:{:02x}:00:{i:02x}",
            wanflash_testbed::E1000E,
            if site == "office" { 1 } else { 2 }
        ));
    }
    a
}

/// QEMU, installed as the tests install it (or the install command
/// printed when this process cannot).
fn require_qemu() -> Result<()> {
    wanflash_image::hosttools::ensure(wanflash_image::hosttools::QEMU, &[], &mut |e| {
        if let wanflash_image::Event::Info(s) = e {
            println!("{s}");
        }
    })?;
    Ok(())
}

fn card_for(ws: &Path, image: &str) -> Result<(Description, PathBuf, PathBuf)> {
    let img = ws
        .join("target/images")
        .join(image)
        .join(format!("{image}.img"));
    if !img.exists() {
        crate::build_image::build_one(ws, image, None)?;
    }
    // Boot a copy grown to the card's size: the image file itself stays as built.
    let (desc, _) = wanflash_image::load_description(&ws.join("images"), image)?;
    let card = ws.join("target/images").join(image).join("card.run.img");
    wanflash_testbed::card_copy(&img, &card, desc.flash_size().0)?;
    Ok((desc, img, card))
}

fn print_plan(site: &str, plan: &[Nic], ssh_port: u16) {
    for nic in plan {
        let what = match &nic.attach {
            Attach::Lan { subnet, guest } => format!(
                "LAN {subnet} (QEMU user networking, restricted); ssh -p {ssh_port} root@127.0.0.1 reaches {guest}:22"
            ),
            Attach::Circuit(c) => format!("circuit {c}"),
            Attach::Unconnected => "not connected".to_owned(),
        };
        println!("  {site} {}: {what}", nic.name);
    }
}

pub fn run(args: &Args) -> Result<()> {
    if args.pair {
        return run_pair(args);
    }
    require_qemu()?;
    let ws = crate::workspace();
    let (desc, _, card) = card_for(&ws, &args.image)?;
    let file = format!("images/{}.toml", args.image);
    let plan = nic_plan(&desc, &file)?;
    let work = ws.join("target/run").join(&args.image);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    println!(
        "booting {} (serial console here; Ctrl-A X quits QEMU)",
        card.display()
    );
    print_plan(&args.image, &plan, args.ssh_port);
    let status = Command::new("qemu-system-x86_64")
        .args([
            "-m",
            &format!("{}M", args.memory),
            "-nographic",
            "-nic",
            "none",
        ])
        .args(["-accel", if args.kvm { "kvm" } else { "tcg" }])
        .args(["-device", "i6300esb"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=ide", card.display()))
        .args(nic_args(&plan, "office", args.ssh_port, &work, &|_| None))
        .status()
        .context("cannot start qemu-system-x86_64 (Debian package qemu-system-x86)")?;
    let _ = std::fs::remove_file(&card);
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// What the relay does to one circuit's frames, both directions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// Drop every frame: the far end goes silent, carrier stays up.
    pub silent: bool,
    /// Per cent of frames dropped at random.
    pub loss_percent: f64,
    /// Added one-way delay.
    pub delay_ms: u64,
}

/// One circuit between the two guests: frames from each side's NIC are
/// passed to the other, impaired as `state` says.
pub struct Relay {
    pub state: Arc<Mutex<Impairment>>,
    pub stop: Arc<AtomicBool>,
    pub forwarded: Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    /// Binds `a_side` and `b_side` (the paths the guests' NICs send to) and
    /// forwards between them and the guests' own sockets `a_guest`,
    /// `b_guest`.
    pub fn start(
        a_side: &Path,
        a_guest: &Path,
        b_side: &Path,
        b_guest: &Path,
        seed: u64,
    ) -> Result<Relay> {
        let bind = |p: &Path| {
            let _ = std::fs::remove_file(p);
            let s = UnixDatagram::bind(p).with_context(|| format!("bind {}", p.display()))?;
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .context("set a read timeout")?;
            Ok::<_, anyhow::Error>(s)
        };
        let a = bind(a_side)?;
        let b = bind(b_side)?;
        let relay = Relay {
            state: Arc::new(Mutex::new(Impairment::default())),
            stop: Arc::new(AtomicBool::new(false)),
            forwarded: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let a2 = a.try_clone().context("clone a relay socket")?;
        let b2 = b.try_clone().context("clone a relay socket")?;
        relay.direction(a, b2, b_guest.to_path_buf(), seed);
        relay.direction(b, a2, a_guest.to_path_buf(), seed ^ 0x9e37_79b9_7f4a_7c15);
        Ok(relay)
    }

    fn direction(&self, from: UnixDatagram, out: UnixDatagram, to: PathBuf, seed: u64) {
        let state = self.state.clone();
        let stop = self.stop.clone();
        let count = self.forwarded.clone();
        // Frames held for a delay go through a second thread, in order.
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let stop2 = stop.clone();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok((when, frame)) => {
                        let now = Instant::now();
                        if when > now {
                            thread::sleep(when - now);
                        }
                        if out.send_to(&frame, &to).is_ok() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        thread::spawn(move || {
            let mut rng = seed | 1;
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = from.recv(&mut buf) else {
                    continue;
                };
                let imp = state.lock().map(|s| *s).unwrap_or_default();
                if imp.silent {
                    continue;
                }
                // xorshift64: a drop decision per frame, no dependency.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let draw = (rng >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
                if draw < imp.loss_percent {
                    continue;
                }
                let when = Instant::now() + Duration::from_millis(imp.delay_ms);
                if tx.send((when, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One line typed at the pair's prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptCommand {
    /// Both ends lose carrier (QEMU `set_link off`).
    Cut(String),
    /// Frames are dropped, carrier stays: a silent far end.
    Silence(String),
    Impair {
        circuit: String,
        loss_percent: f64,
        delay_ms: u64,
    },
    /// Carrier back, no impairment.
    Restore(String),
    /// `wanctl ARGS` on a site over SSH.
    Wanctl {
        site: String,
        args: Vec<String>,
    },
    Circuits,
    Help,
    Quit,
}

pub const PROMPT_HELP: &str = "commands:
  cut CIRCUIT                 both ends lose carrier
  silence CIRCUIT             frames dropped, carrier stays (a silent far end)
  impair CIRCUIT [loss P] [delay MS]
                              drop P % of frames at random, add MS ms each way
  restore CIRCUIT             carrier back, no impairment
  office|backup wanctl ARGS   run `wanctl ARGS` on that site over SSH
  circuits                    the circuits and their state
  help, quit";

/// Parses a prompt line; `circuits` are the names the prompt accepts.
pub fn parse_command(line: &str, circuits: &[String]) -> Result<PromptCommand, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let circuit = |w: Option<&&str>| -> Result<String, String> {
        let Some(c) = w else {
            return Err(format!("name a circuit: {}", circuits.join(", ")));
        };
        if circuits.iter().any(|k| k == c) {
            Ok((*c).to_owned())
        } else {
            Err(format!(
                "no circuit `{c}`; the circuits are {}",
                circuits.join(", ")
            ))
        }
    };
    match words.first().copied() {
        None | Some("help") | Some("?") => Ok(PromptCommand::Help),
        Some("quit") | Some("exit") => Ok(PromptCommand::Quit),
        Some("circuits") => Ok(PromptCommand::Circuits),
        Some("cut") => Ok(PromptCommand::Cut(circuit(words.get(1))?)),
        Some("silence") => Ok(PromptCommand::Silence(circuit(words.get(1))?)),
        Some("restore") => Ok(PromptCommand::Restore(circuit(words.get(1))?)),
        Some("impair") => {
            let c = circuit(words.get(1))?;
            let mut loss = 0.0;
            let mut delay = 0;
            let mut rest = words[2..].iter();
            while let Some(k) = rest.next() {
                let v = rest.next().ok_or_else(|| format!("`{k}` needs a value"))?;
                match *k {
                    "loss" => {
                        loss = v
                            .trim_end_matches('%')
                            .parse::<f64>()
                            .ok()
                            .filter(|p| (0.0..=100.0).contains(p))
                            .ok_or_else(|| format!("loss `{v}`: give a per cent, 0 to 100"))?
                    }
                    "delay" => {
                        delay = v
                            .trim_end_matches("ms")
                            .parse::<u64>()
                            .ok()
                            .filter(|d| *d <= 10_000)
                            .ok_or_else(|| format!("delay `{v}`: give milliseconds, 0 to 10000"))?
                    }
                    _ => return Err(format!("impair takes `loss P` and `delay MS`, not `{k}`")),
                }
            }
            Ok(PromptCommand::Impair {
                circuit: c,
                loss_percent: loss,
                delay_ms: delay,
            })
        }
        Some(site @ ("office" | "backup")) => match words.get(1).copied() {
            Some("wanctl") => Ok(PromptCommand::Wanctl {
                site: site.to_owned(),
                args: words[2..].iter().map(|w| (*w).to_owned()).collect(),
            }),
            _ => Err(format!(
                "`{site} wanctl ARGS`, for example `{site} wanctl status`"
            )),
        },
        Some(w) => Err(format!("unknown command `{w}`\n{PROMPT_HELP}")),
    }
}

fn run_pair(args: &Args) -> Result<()> {
    require_qemu()?;
    let ws = crate::workspace();
    let work = ws.join("target/run/pair");
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let (office_desc, _, office_card) = card_for(&ws, &args.image)?;
    let (backup_desc, _, backup_card) = card_for(&ws, &args.peer)?;
    let office_plan = nic_plan(&office_desc, &format!("images/{}.toml", args.image))?;
    let backup_plan = nic_plan(&backup_desc, &format!("images/{}.toml", args.peer))?;
    let circuits: Vec<String> = office_plan
        .iter()
        .filter_map(|n| match &n.attach {
            Attach::Circuit(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    if circuits.is_empty() {
        bail!(
            "images/{}.toml names no circuits (`[[circuit]]`): --pair joins two sites by their circuits; boot it alone with `cargo xtask run --image {}`",
            args.image,
            args.image
        );
    }
    for c in &circuits {
        if !backup_plan
            .iter()
            .any(|n| n.attach == Attach::Circuit(c.clone()))
        {
            bail!(
                "circuit `{c}` of images/{}.toml is not in images/{}.toml: give --peer the image of the circuit's other end",
                args.image,
                args.peer
            );
        }
    }
    let sock = |site: &str, c: &str| work.join(format!("{site}-{c}.sock"));
    let relay_sock = |site: &str, c: &str| work.join(format!("relay-{site}-{c}.sock"));
    let mut relays = BTreeMap::new();
    for (i, c) in circuits.iter().enumerate() {
        let r = Relay::start(
            &relay_sock("office", c),
            &sock("office", c),
            &relay_sock("backup", c),
            &sock("backup", c),
            0x5eed + i as u64,
        )?;
        relays.insert(c.clone(), r);
    }
    let link = |site: &'static str| move |c: &str| Some((sock(site, c), relay_sock(site, c)));
    let office_link = link("office");
    let backup_link = link("backup");
    let vm = |name: &str,
              card: &Path,
              plan: &[Nic],
              port: u16,
              l: &dyn Fn(&str) -> Option<(PathBuf, PathBuf)>| {
        let mut c = VmConfig::new(card, &work, name);
        c.memory_mib = args.memory;
        c.kvm = args.kvm;
        c.extra = nic_args(plan, name, port, &work, l);
        Vm::start(c).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let backup_port = args
        .ssh_port
        .checked_add(1)
        .context("--ssh-port too high")?;
    println!(
        "booting the pair (consoles: {}/office.console.log, backup.console.log)",
        work.display()
    );
    print_plan("office", &office_plan, args.ssh_port);
    print_plan("backup", &backup_plan, backup_port);
    let mut office = vm(
        "office",
        &office_card,
        &office_plan,
        args.ssh_port,
        &office_link,
    )?;
    let mut backup = vm(
        "backup",
        &backup_card,
        &backup_plan,
        backup_port,
        &backup_link,
    )?;
    // The consoles' new lines, as they come, prefixed with the site.
    let stop = Arc::new(AtomicBool::new(false));
    for (site, path) in [
        ("office", office.config.console_path()),
        ("backup", backup.config.console_path()),
    ] {
        let stop = stop.clone();
        thread::spawn(move || follow_console(site, &path, &stop));
    }
    println!("{PROMPT_HELP}");
    let cut = |vm: &Vm, c: &str, up: bool| {
        let nic = |plan: &[Nic]| {
            plan.iter()
                .position(|n| n.attach == Attach::Circuit(c.to_owned()))
                .map(|i| format!("n{i}"))
        };
        let id = if vm.config.name == "office" {
            nic(&office_plan)
        } else {
            nic(&backup_plan)
        };
        match id {
            Some(id) => vm
                .monitor(&format!("set_link {id} {}", if up { "on" } else { "off" }))
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}")),
            None => Ok(()),
        }
    };
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        print!("pair> ");
        let _ = std::io::stdout().flush();
        line.clear();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let cmd = match parse_command(&line, &circuits) {
            Ok(c) => c,
            Err(e) => {
                println!("{e}");
                continue;
            }
        };
        let set = |c: &str, f: &dyn Fn(&mut Impairment)| {
            if let Some(r) = relays.get(c) {
                if let Ok(mut s) = r.state.lock() {
                    f(&mut s);
                }
            }
        };
        let done = match &cmd {
            PromptCommand::Help => {
                println!("{PROMPT_HELP}");
                Ok(())
            }
            PromptCommand::Quit => break,
            PromptCommand::Circuits => {
                for (c, r) in &relays {
                    let s = r.state.lock().map(|s| *s).unwrap_or_default();
                    println!(
                        "  {c}: {}loss {} %, delay {} ms, {} frames passed",
                        if s.silent { "silent, " } else { "" },
                        s.loss_percent,
                        s.delay_ms,
                        r.forwarded.load(Ordering::Relaxed)
                    );
                }
                Ok(())
            }
            PromptCommand::Cut(c) => cut(&office, c, false).and_then(|_| cut(&backup, c, false)),
            PromptCommand::Restore(c) => {
                set(c, &|s| *s = Impairment::default());
                cut(&office, c, true).and_then(|_| cut(&backup, c, true))
            }
            PromptCommand::Silence(c) => {
                set(c, &|s| s.silent = true);
                Ok(())
            }
            PromptCommand::Impair {
                circuit,
                loss_percent,
                delay_ms,
            } => {
                set(circuit, &|s| {
                    s.loss_percent = *loss_percent;
                    s.delay_ms = *delay_ms;
                });
                Ok(())
            }
            PromptCommand::Wanctl { site, args: a } => {
                let port = if site == "office" {
                    args.ssh_port
                } else {
                    backup_port
                };
                ssh_wanctl(port, a)
            }
        };
        if let Err(e) = done {
            println!("{e:#}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    office.kill();
    backup.kill();
    let _ = std::fs::remove_file(&office_card);
    let _ = std::fs::remove_file(&backup_card);
    Ok(())
}

fn ssh_wanctl(port: u16, args: &[String]) -> Result<()> {
    let status = Command::new("ssh")
        .args(["-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("root@127.0.0.1")
        .arg("wanctl")
        .args(args)
        .status()
        .context("cannot run ssh (Debian package openssh-client)")?;
    if !status.success() {
        bail!("ssh -p {port} root@127.0.0.1 wanctl ... exited with {status}: is your key in the image's [ssh] authorized_keys?");
    }
    Ok(())
}

fn follow_console(site: &str, path: &Path, stop: &AtomicBool) {
    let mut at = 0usize;
    let mut pending = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(bytes) = std::fs::read(path) {
            if bytes.len() > at {
                pending.push_str(&String::from_utf8_lossy(&bytes[at..]));
                at = bytes.len();
                while let Some(i) = pending.find('\n') {
                    let l: String = pending.drain(..=i).collect();
                    let l = l.trim_end();
                    if !l.is_empty() {
                        println!("\r[{site}] {l}");
                    }
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(image: &str) -> Vec<Nic> {
        let ws = crate::workspace();
        let (desc, _) = wanflash_image::load_description(&ws.join("images"), image).unwrap();
        nic_plan(&desc, image).unwrap()
    }

    #[test]
    fn the_wan_images_get_their_circuits_and_their_lan() {
        let office = plan("wan-router");
        let names: Vec<&str> = office.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1", "eth2", "eth3", "eth4"]);
        assert!(matches!(office[0].attach, Attach::Circuit(_)));
        assert!(matches!(office[3].attach, Attach::Circuit(_)));
        assert_eq!(
            office[4].attach,
            Attach::Lan {
                subnet: "203.0.113.0/25".into(),
                guest: "203.0.113.1".parse().unwrap()
            }
        );
        // The two ends name the same circuits on the same NICs.
        let backup = plan("wan-backup");
        for (o, b) in office.iter().zip(&backup).take(4) {
            assert_eq!(o.attach, b.attach);
        }
        assert!(
            matches!(&backup[4].attach, Attach::Lan { guest, .. } if guest.to_string() == "203.0.113.129")
        );
    }

    #[test]
    fn a_router_without_circuits_gets_one_lan_and_the_rest_unconnected() {
        let lan = plan("lan-router");
        assert_eq!(lan.len(), 2);
        assert!(matches!(lan[0].attach, Attach::Lan { .. }));
        assert_eq!(lan[1].attach, Attach::Unconnected);
    }

    #[test]
    fn the_lan_is_restricted_and_forwards_ssh_to_loopback_only() {
        let p = plan("wan-router");
        let a = nic_args(&p, "office", 2222, Path::new("/w"), &|_| None);
        let user: Vec<&String> = a.iter().filter(|s| s.starts_with("user,")).collect();
        assert_eq!(user.len(), 1);
        assert!(user[0].contains("restrict=on"), "{}", user[0]);
        assert!(
            user[0].contains("hostfwd=tcp:127.0.0.1:2222-203.0.113.1:22"),
            "{}",
            user[0]
        );
        assert_eq!(a.iter().filter(|s| s.starts_with("dgram,")).count(), 4);
    }

    #[test]
    fn prompt_commands_parse_and_bad_ones_say_what_to_type() {
        let cs = vec!["t3".to_owned(), "t1-eth0".to_owned()];
        assert_eq!(
            parse_command("cut t3", &cs),
            Ok(PromptCommand::Cut("t3".into()))
        );
        assert_eq!(
            parse_command("impair t1-eth0 loss 5% delay 40ms", &cs),
            Ok(PromptCommand::Impair {
                circuit: "t1-eth0".into(),
                loss_percent: 5.0,
                delay_ms: 40
            })
        );
        assert_eq!(
            parse_command("office wanctl status", &cs),
            Ok(PromptCommand::Wanctl {
                site: "office".into(),
                args: vec!["status".into()]
            })
        );
        assert!(parse_command("cut t9", &cs)
            .unwrap_err()
            .contains("t3, t1-eth0"));
        assert!(parse_command("impair t3 loss 150", &cs)
            .unwrap_err()
            .contains("0 to 100"));
        assert!(parse_command("impair t3 jitter 5", &cs)
            .unwrap_err()
            .contains("loss P"));
        assert!(parse_command("frobnicate", &cs)
            .unwrap_err()
            .contains("commands:"));
    }

    /// Real unix datagram sockets: what the relay passes, drops and
    /// delays.
    #[test]
    fn the_relay_passes_drops_and_delays_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let a = UnixDatagram::bind(p("a")).unwrap();
        let b = UnixDatagram::bind(p("b")).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let r = Relay::start(&p("ra"), &p("a"), &p("rb"), &p("b"), 1).unwrap();
        let mut buf = [0u8; 64];
        a.send_to(b"hello", p("ra")).unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        b.send_to(b"back", p("rb")).unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");

        r.state.lock().unwrap().silent = true;
        a.send_to(b"lost", p("ra")).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(b.recv(&mut buf).is_err(), "a silent circuit passed a frame");

        *r.state.lock().unwrap() = Impairment {
            silent: false,
            loss_percent: 50.0,
            delay_ms: 0,
        };
        for i in 0..400u16 {
            a.send_to(&i.to_be_bytes(), p("ra")).unwrap();
        }
        let mut got = 0;
        while b.recv(&mut buf).is_ok() {
            got += 1;
        }
        // 50 % of 400: far outside 120..280 only with odds below 1e-20.
        assert!(
            (120..=280).contains(&got),
            "{got} of 400 passed at 50 % loss"
        );

        *r.state.lock().unwrap() = Impairment {
            silent: false,
            loss_percent: 0.0,
            delay_ms: 200,
        };
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        a.send_to(b"late", p("ra")).unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }
}
