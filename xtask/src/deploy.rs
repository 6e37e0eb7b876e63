//! `cargo xtask deploy --image NAME --to HOST`: installs an image's update
//! bundle on a running box over SSH and reports what the box says
//! happened (issue 16).
//!
//! 1. The bundle: `target/images/NAME/NAME.update` (built first when it
//!    is missing, or with `--build`), or `--bundle FILE`. Its manifest
//!    (image, build id, `compatible`, `release`) is read from its head.
//! 2. `ssh HOST wanctl slots --format json`: the box's identity, its
//!    release floor and its slots ([`SlotsReport`]). The bundle is
//!    refused before one byte is sent when it is for another image, its
//!    release is not above the floor (unless `--allow-downgrade`, passed
//!    on to the box), or the box is in the middle of a trial.
//! 3. `ssh HOST wanctl update -` with the bundle on its stdin and a
//!    progress bar; the box verifies it whole, writes the other slot and
//!    reboots into it for a trial.
//! 4. `wanctl slots --format json` polled, with backoff, until the box
//!    says the trial was committed or rolled back, or the deadline passes.
//!    Success is printed only when the box reports the bundle's build
//!    committed in the slot it booted.
//!
//! Exit codes: [`EXIT_COMMITTED`], 1 (could not start: no bundle, ssh or
//! the box unreadable), 2 (usage), [`EXIT_REFUSED`], [`EXIT_BOX_REFUSED`],
//! [`EXIT_ROLLED_BACK`], [`EXIT_NOT_BACK`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use wanflash_bundle::Manifest;
use wanflash_schema::update::SlotsReport;

use crate::remote::{self, SshArgs};

/// The box committed the bundle and runs it.
pub const EXIT_COMMITTED: i32 = 0;
/// Refused on the workstation before anything was sent (another image,
/// not a newer release, a trial in progress): the box is unchanged.
pub const EXIT_REFUSED: i32 = 3;
/// Sent, and the box refused it or the transfer broke: nothing armed.
pub const EXIT_BOX_REFUSED: i32 = 4;
/// The trial boot failed its health check: the box runs the old slot.
pub const EXIT_ROLLED_BACK: i32 = 5;
/// The box did not report a commit or a rollback within the deadline.
pub const EXIT_NOT_BACK: i32 = 6;

#[derive(clap::Args)]
pub struct Args {
    /// Image whose bundle to install: target/images/NAME/NAME.update
    /// (built first when missing).
    #[arg(long, required_unless_present = "bundle")]
    pub image: Option<String>,
    /// A bundle file to install instead of --image's.
    #[arg(long, value_name = "FILE", conflicts_with = "image")]
    pub bundle: Option<PathBuf>,
    /// Build --image first even when its bundle exists.
    #[arg(long, requires = "image")]
    pub build: bool,
    /// The box, as ssh takes it: `root@ADDRESS` (its one account) or a
    /// Host of your ssh config.
    #[arg(long, value_name = "HOST")]
    pub to: String,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Install a release that is not newer than the box's (the box
    /// records it in its store).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Seconds to wait, once the bundle is sent, for the box to report the
    /// trial committed or rolled back.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub deadline: u64,
}

/// Longest `wanctl slots --format json` read (it is about 1 KiB).
const MAX_SLOTS: u64 = 1 << 20;
/// One `wanctl slots` call over SSH, connect included.
const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// After the last byte is sent: the box verifies, writes the slot and
/// reads it back before it answers.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// What the workstation decided before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The slot the box will write (the one it does not run).
    pub target: String,
    /// The release the bundle goes under, when it is a downgrade.
    pub downgrade_from: Option<u64>,
}

/// Whether `m` may be sent to the box that reported `b`: the box's own
/// rules (same `compatible`, a release above its floor unless
/// `allow_downgrade`), checked here so a refused bundle is never sent,
/// and no trial in progress.
pub fn preflight(b: &SlotsReport, m: &Manifest, allow_downgrade: bool) -> Result<Plan, String> {
    if let Some(why) = &b.store_damaged {
        return Err(format!(
            "the box's store is damaged ({why}): it cannot take an update; recover it with `ssh HOST wanctl store reset` (forgets the slots' history) and deploy again"
        ));
    }
    if let Some(t) = &b.trial {
        return Err(format!(
            "slot {t} is on trial and not yet committed (booted slot {}, default {}): wait for the box to commit or roll it back, then deploy again",
            b.booted, b.default
        ));
    }
    if b.booted != b.default {
        return Err(format!(
            "the box runs slot {} but syslinux's default is slot {}: it is not running its committed slot; reboot it (or `wanctl commit`) before deploying",
            b.booted, b.default
        ));
    }
    let (Some(mine), Some(floor)) = (&b.compatible, b.min_release) else {
        return Err("the box does not say which image it is or its release (no `compatible`/`release` in its `update.json`): it was built before releases existed; write a current image to its card".into());
    };
    let (Some(theirs), Some(release)) = (&m.compatible, m.release) else {
        return Err(format!(
            "the bundle (image `{}`, build {}) has no `release`/`compatible` in its manifest: rebuild it with a current `cargo xtask build-image`",
            m.image, m.build_id
        ));
    };
    if theirs != mine {
        return Err(format!(
            "the bundle is for `{theirs}` (image `{}`) and the box is `{mine}`: deploy an image built for that box",
            m.image
        ));
    }
    let target = if b.booted == "a" { "b" } else { "a" }.to_owned();
    if release > floor {
        return Ok(Plan {
            target,
            downgrade_from: None,
        });
    }
    if allow_downgrade {
        return Ok(Plan {
            target,
            downgrade_from: Some(floor),
        });
    }
    Err(format!(
        "the bundle's release {release} is not newer than the box's release {floor} (slot {}): raise `release` in the description and build again, or pass --allow-downgrade to go back on purpose",
        b.booted
    ))
}

/// Where an update stands, from one `wanctl slots` after the bundle was
/// sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not decided yet: what the box shows.
    Pending(String),
    /// The bundle's build is committed in `slot` and the box runs it.
    Committed { slot: String, release: Option<u64> },
    /// The trial of `slot` failed; the box runs the other slot.
    RolledBack { slot: String, why: String },
    /// Something else happened to the slot (another update, a store
    /// reset): no outcome for this bundle can be reported.
    Lost(String),
}

/// Classifies `now` for the bundle of `build_id` sent into `target` of
/// the box that reported `before` just before it was sent.
pub fn classify(before: &SlotsReport, target: &str, build_id: &str, now: &SlotsReport) -> Progress {
    if let Some(why) = &now.store_damaged {
        return Progress::Lost(format!(
            "the box's store is damaged ({why}): the box cannot tell whether the trial was committed; it boots its default slot {}",
            now.default
        ));
    }
    let ours = now
        .installed(target)
        .is_some_and(|r| r.build_id == build_id);
    let written = match (before.generation, now.generation) {
        (Some(b), Some(n)) => n > b,
        _ => false,
    };
    if !ours || !written {
        if now.generation == before.generation && now.trial.is_none() {
            return Progress::Pending(format!(
                "the box has not recorded the bundle (booted slot {}, store generation unchanged)",
                now.booted
            ));
        }
        return Progress::Lost(format!(
            "slot {target} no longer holds build {build_id} ({}): another update or a store reset happened meanwhile",
            now.installed(target)
                .map(|r| format!("it holds {} {} build {}", r.image, r.version, r.build_id))
                .unwrap_or_else(|| "no update recorded".into())
        ));
    }
    match (&now.trial, now.booted == target, now.default == target) {
        (Some(t), true, _) if t == target => Progress::Pending(format!(
            "trial boot of slot {target} running, health check pending (deadline {} s after boot)",
            now.health_deadline_s
                .map_or("?".to_owned(), |d| d.to_string())
        )),
        (Some(t), false, _) if t == target => Progress::Pending(format!(
            "slot {target} written, trial armed; the box has not rebooted into it yet (running slot {})",
            now.booted
        )),
        (None, true, true) => Progress::Committed {
            slot: target.to_owned(),
            release: now.installed(target).and_then(|r| r.release),
        },
        (None, false, false) => Progress::RolledBack {
            slot: target.to_owned(),
            why: rollback_reason(now, target),
        },
        _ => Progress::Pending(format!(
            "booted slot {}, default {}, trial {}",
            now.booted,
            now.default,
            now.trial.as_deref().unwrap_or("none")
        )),
    }
}

/// Why the box says the trial of `target` was rolled back: its last
/// result, and the reset log's last entry for the slot when that says
/// more (a watchdog reset, a kernel panic).
fn rollback_reason(now: &SlotsReport, target: &str) -> String {
    let prefix = format!("rolled back from slot {target}: ");
    let mut why = now
        .last_result
        .as_deref()
        .and_then(|r| r.strip_prefix(&prefix))
        .map(str::to_owned);
    if let Some(r) = now.resets.iter().rev().find(|r| r.slot == target) {
        let line = if r.detail.is_empty() {
            r.reason.clone()
        } else {
            format!("{}: {}", r.reason, r.detail)
        };
        match &why {
            Some(w) if w.contains(&r.detail) => {}
            Some(w) => why = Some(format!("{w} (reset log: {line})")),
            None => why = Some(format!("reset log: {line}")),
        }
    }
    why.unwrap_or_else(|| {
        format!(
            "the box records no reason (last result: {})",
            now.last_result.as_deref().unwrap_or("none")
        )
    })
}

/// What `ssh HOST wanctl update -` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The box wrote the slot and armed the trial (`installed ... in slot X`).
    Installed(String),
    /// The box refused it; nothing armed. The box's words.
    Refused(String),
    /// The session ended without either (the connection broke): the box
    /// is asked.
    Unknown(String),
}

/// Reads the session's outcome from its exit code and output.
pub fn sent_outcome(code: Option<i32>, stdout: &str, stderr: &str) -> Sent {
    if let Some(l) = stdout
        .lines()
        .find(|l| l.starts_with("installed ") && l.contains(" in slot "))
    {
        return Sent::Installed(l.trim().to_owned());
    }
    let box_said = stderr
        .lines()
        .filter(|l| l.starts_with("wanflash-update:") || l.starts_with("wanctl"))
        .collect::<Vec<_>>()
        .join("\n");
    match code {
        // 255: ssh's own failure (login, lost connection).
        Some(c) if c != 0 && c != 255 && !box_said.is_empty() => Sent::Refused(box_said),
        _ => Sent::Unknown(format!(
            "ssh exited with {}: {}",
            code.map_or("a signal".to_owned(), |c| c.to_string()),
            remote::last_line(stderr.as_bytes())
        )),
    }
}

/// The next wait between polls: 3 s, growing by half, at most 20 s.
pub fn backoff(prev: Duration) -> Duration {
    if prev.is_zero() {
        return Duration::from_secs(3);
    }
    (prev * 3 / 2).min(Duration::from_secs(20))
}

pub fn run(args: &Args) -> Result<i32> {
    remote::ensure_client()?;
    let bundle = bundle_path(args)?;
    let mut f = std::fs::File::open(&bundle)
        .with_context(|| format!("failed to open `{}`", bundle.display()))?;
    let (m, signed) = wanflash_bundle::peek_manifest(&mut f)
        .with_context(|| format!("`{}`", bundle.display()))?;
    let size = std::fs::metadata(&bundle)
        .with_context(|| format!("`{}`", bundle.display()))?
        .len();
    let host = args.to.as_str();
    println!(
        "bundle {}: {} {} release {} for `{}`, build {}, {}, {:.1} MiB",
        bundle.display(),
        m.image,
        m.version,
        m.release.map_or("?".to_owned(), |r| r.to_string()),
        m.compatible.as_deref().unwrap_or("?"),
        m.build_id,
        if signed { "signed" } else { "unsigned" },
        size as f64 / 1048576.0
    );

    let before = slots(host, &args.ssh)?;
    println!(
        "{host}: `{}` release {}, running slot {} (store generation {})",
        before.compatible.as_deref().unwrap_or("?"),
        before.min_release.map_or("?".to_owned(), |r| r.to_string()),
        before.booted,
        before.generation.map_or("?".to_owned(), |g| g.to_string())
    );
    let plan = match preflight(&before, &m, args.allow_downgrade) {
        Ok(p) => p,
        Err(why) => {
            println!("refused, nothing sent: {why}");
            return Ok(EXIT_REFUSED);
        }
    };
    if let Some(from) = plan.downgrade_from {
        println!(
            "downgrade allowed: release {} after {from} (the box records it)",
            m.release.unwrap_or(0)
        );
    }
    if let Some(d) = before.health_deadline_s {
        if args.deadline < d + 60 {
            println!(
                "note: --deadline {} s leaves little time past the box's trial health deadline of {d} s",
                args.deadline
            );
        }
    }

    let sent = send(host, &args.ssh, &bundle, size, args.allow_downgrade)?;
    match &sent {
        Sent::Installed(line) => println!("{host}: {line}; rebooting into it for its trial"),
        Sent::Refused(why) => {
            println!("the box refused the bundle, nothing armed:\n{why}");
            return Ok(EXIT_BOX_REFUSED);
        }
        Sent::Unknown(what) => println!(
            "the session ended without the box's answer ({what}); asking the box what it did"
        ),
    }

    let (code, text) = wait(
        host,
        &args.ssh,
        &before,
        &plan.target,
        &m,
        Duration::from_secs(args.deadline),
        matches!(sent, Sent::Installed(_)),
    );
    println!("{text}");
    Ok(code)
}

fn bundle_path(args: &Args) -> Result<PathBuf> {
    if let Some(b) = &args.bundle {
        return Ok(b.clone());
    }
    let Some(name) = &args.image else {
        bail!("name an image (--image NAME) or a bundle (--bundle FILE)");
    };
    let ws = crate::workspace();
    let path = ws
        .join("target/images")
        .join(name)
        .join(format!("{name}.update"));
    if args.build || !path.exists() {
        println!("building {name} (target/images/{name}/)");
        crate::build_image::build_one(&ws, name, None)?;
    }
    if !path.exists() {
        bail!(
            "`{}` was not written: the image has no signing key; set `update_sign_key` in its [vars] or `WANFLASH_SIGN_KEY` (make one with `cargo xtask keygen`) and build again",
            path.display()
        );
    }
    Ok(path)
}

/// `wanctl slots --format json` on the box.
fn slots(host: &str, ssh: &SshArgs) -> Result<SlotsReport> {
    let out = remote::wanctl(
        host,
        ssh,
        &["slots", "--format", "json"],
        POLL_TIMEOUT,
        MAX_SLOTS,
    )?;
    SlotsReport::from_json(host, &String::from_utf8_lossy(&out)).map_err(anyhow::Error::msg)
}

/// Streams the bundle into `ssh HOST wanctl update -`.
fn send(host: &str, ssh: &SshArgs, bundle: &Path, size: u64, allow: bool) -> Result<Sent> {
    let mut words = vec!["update"];
    if allow {
        words.push("--allow-downgrade");
    }
    words.push("-");
    let mut c = remote::command(host, ssh, &words);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().context("failed to run `ssh`")?;
    let mut stdin = child.stdin.take().context("ssh's stdin")?;
    let stdout = child.stdout.take().context("ssh's stdout")?;
    let stderr = child.stderr.take().context("ssh's stderr")?;
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = (&mut r).take(1 << 20).read_to_end(&mut b);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    use std::io::Read as _;
    let t_out = read(Box::new(stdout));
    let t_err = read(Box::new(stderr));

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("sending to {host}"));
    let started = Instant::now();
    let mut f = std::fs::File::open(bundle).with_context(|| format!("`{}`", bundle.display()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    let mut broke = None;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("failed to read `{}`", bundle.display()))?;
        if n == 0 {
            break;
        }
        if let Err(e) = stdin.write_all(&buf[..n]) {
            // The box stopped reading: it refused the bundle (its words
            // follow on stderr), or the connection broke.
            broke = Some(e);
            break;
        }
        sent += n as u64;
        bar.set_position(sent);
    }
    drop(stdin);
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    match &broke {
        None => println!(
            "sent {sent} bytes in {secs:.1} s ({:.1} MiB/s); the box verifies and writes it",
            sent as f64 / 1048576.0 / secs.max(0.001)
        ),
        Some(e) => println!("the box stopped reading after {sent} of {size} bytes ({e})"),
    }
    let end = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().context("waiting for `ssh`")? {
            break Some(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = t_out.join().unwrap_or_default();
    let err = t_err.join().unwrap_or_default();
    for l in out.lines().chain(err.lines()) {
        println!("  {host}: {l}");
    }
    Ok(match status {
        Some(s) => sent_outcome(s.code(), &out, &err),
        None => Sent::Unknown(format!(
            "no answer within {} s of the last byte",
            INSTALL_TIMEOUT.as_secs()
        )),
    })
}

/// Polls the box until it reports an outcome for the bundle or `deadline`
/// passes; the exit code and the report.
fn wait(
    host: &str,
    ssh: &SshArgs,
    before: &SlotsReport,
    target: &str,
    m: &Manifest,
    deadline: Duration,
    installed: bool,
) -> (i32, String) {
    let started = Instant::now();
    let mut pause = Duration::ZERO;
    let mut last_known: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut shown = String::new();
    loop {
        pause = backoff(pause);
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(pause.min(left));
        let t = started.elapsed().as_secs();
        let line = match slots(host, ssh) {
            Err(e) => {
                let e = format!("{e:#}");
                last_error = Some(e.clone());
                format!("not answering ({})", shorten(&e))
            }
            Ok(now) => {
                last_error = None;
                match classify(before, target, &m.build_id, &now) {
                    Progress::Committed { slot, release } => {
                        let r = release
                            .or(m.release)
                            .map_or("?".to_owned(), |r| r.to_string());
                        return (
                            EXIT_COMMITTED,
                            format!(
                                "committed: {} {} release {r} (build {}) in slot {slot}, which {host} runs and boots by default ({t} s after sending)",
                                m.image, m.version, m.build_id
                            ),
                        );
                    }
                    Progress::RolledBack { slot, why } => {
                        return (
                            EXIT_ROLLED_BACK,
                            format!(
                                "rolled back: the trial of slot {slot} failed: {why}; {host} runs slot {} again ({t} s after sending)",
                                now.booted
                            ),
                        );
                    }
                    Progress::Lost(what) => {
                        return (EXIT_NOT_BACK, format!("no outcome for this bundle: {what}"));
                    }
                    Progress::Pending(what) => {
                        if !installed
                            && now.generation == before.generation
                            && now.trial.is_none()
                            && started.elapsed() > Duration::from_secs(60)
                        {
                            return (
                                EXIT_BOX_REFUSED,
                                format!(
                                    "not installed: {host} answers and has recorded nothing since the bundle was sent (store generation {}); nothing armed",
                                    now.generation.map_or("?".to_owned(), |g| g.to_string())
                                ),
                            );
                        }
                        last_known = Some(what.clone());
                        what
                    }
                }
            }
        };
        if line != shown {
            println!("  [{t:>4} s] {host}: {line}");
            shown = line;
        }
    }
    let mut text = format!(
        "not back within the deadline of {} s: {host} has not reported the trial of slot {target} committed or rolled back",
        deadline.as_secs()
    );
    if let Some(k) = last_known {
        text.push_str(&format!("; last seen: {k}"));
    }
    if let Some(e) = last_error {
        text.push_str(&format!("; last attempt: {}", shorten(&e)));
    }
    text.push_str(&format!(
        "; ask it with `ssh {host} wanctl slots` (NOT a success)"
    ));
    (EXIT_NOT_BACK, text)
}

fn shorten(s: &str) -> String {
    let s = s.lines().last().unwrap_or(s);
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(160).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::update::{ResetEntry, SlotEntry, SlotRecord, SLOTS_FORMAT};

    fn record(build: &str, release: u64) -> SlotRecord {
        SlotRecord {
            image: "wan-router".into(),
            version: "0.1.0".into(),
            build_id: build.into(),
            release: Some(release),
            compatible: Some("wan-router".into()),
        }
    }

    /// A box running slot `a` as built, release 4, generation 7.
    fn boxed() -> SlotsReport {
        SlotsReport {
            format: SLOTS_FORMAT,
            booted: "a".into(),
            default: "a".into(),
            compatible: Some("wan-router".into()),
            release: Some(4),
            min_release: Some(4),
            health_deadline_s: Some(120),
            generation: Some(7),
            store_damaged: None,
            slots: vec![
                SlotEntry {
                    slot: "a".into(),
                    installed: None,
                },
                SlotEntry {
                    slot: "b".into(),
                    installed: Some(record("old", 3)),
                },
            ],
            trial: None,
            last_result: None,
            resets: vec![],
            downgrades: vec![],
        }
    }

    fn manifest(compatible: &str, release: u64) -> Manifest {
        let mut m = wanflash_bundle::manifest(
            &wanflash_bundle::Identity {
                image: "wan-router",
                version: "0.1.0",
                build_id: "new",
                release,
                compatible,
            },
            b"k",
            b"r",
        );
        m.build_id = "new".into();
        m
    }

    #[test]
    fn a_newer_bundle_of_the_same_image_is_sent_to_the_other_slot() {
        let p = preflight(&boxed(), &manifest("wan-router", 5), false).unwrap();
        assert_eq!(
            p,
            Plan {
                target: "b".into(),
                downgrade_from: None
            }
        );
        let mut b = boxed();
        b.booted = "b".into();
        b.default = "b".into();
        assert_eq!(
            preflight(&b, &manifest("wan-router", 5), false)
                .unwrap()
                .target,
            "a"
        );
    }

    #[test]
    fn another_image_an_old_release_or_a_trial_is_refused_before_sending() {
        let e = preflight(&boxed(), &manifest("lan-router", 9), true).unwrap_err();
        assert!(
            e.contains("is for `lan-router`") && e.contains("the box is `wan-router`"),
            "{e}"
        );
        for r in [3, 4] {
            let e = preflight(&boxed(), &manifest("wan-router", r), false).unwrap_err();
            assert!(
                e.contains(&format!(
                    "release {r} is not newer than the box's release 4"
                )) && e.contains("--allow-downgrade"),
                "{e}"
            );
        }
        // Allowed on purpose: sent, and said so.
        let p = preflight(&boxed(), &manifest("wan-router", 3), true).unwrap();
        assert_eq!(p.downgrade_from, Some(4));
        // The floor is the box's (the greater of image and store).
        let mut b = boxed();
        b.min_release = Some(6);
        assert!(preflight(&b, &manifest("wan-router", 5), false).is_err());
        let mut b = boxed();
        b.trial = Some("b".into());
        let e = preflight(&b, &manifest("wan-router", 5), false).unwrap_err();
        assert!(e.contains("slot b is on trial"), "{e}");
        let mut b = boxed();
        b.booted = "b".into();
        assert!(preflight(&b, &manifest("wan-router", 5), false)
            .unwrap_err()
            .contains("not running its committed slot"));
        let mut b = boxed();
        b.store_damaged = Some("both copies are bad".into());
        assert!(preflight(&b, &manifest("wan-router", 5), false)
            .unwrap_err()
            .contains("store reset"));
        let mut b = boxed();
        b.compatible = None;
        assert!(preflight(&b, &manifest("wan-router", 5), false)
            .unwrap_err()
            .contains("built before releases"));
        let mut m = manifest("wan-router", 5);
        m.release = None;
        assert!(preflight(&boxed(), &m, false)
            .unwrap_err()
            .contains("no `release`/`compatible`"));
    }

    /// The box after the update armed slot b with build `new`.
    fn armed() -> SlotsReport {
        let mut b = boxed();
        b.generation = Some(8);
        b.slots[1].installed = Some(record("new", 5));
        b.trial = Some("b".into());
        b
    }

    #[test]
    fn the_outcome_follows_the_box_through_the_trial() {
        let before = boxed();
        // Not yet written (the session's answer was lost).
        assert!(matches!(
            classify(&before, "b", "new", &boxed()),
            Progress::Pending(s) if s.contains("not recorded")
        ));
        // Armed, not yet rebooted; then the trial boot runs.
        let now = armed();
        assert!(matches!(
            classify(&before, "b", "new", &now),
            Progress::Pending(s) if s.contains("not rebooted")
        ));
        let mut now = armed();
        now.booted = "b".into();
        assert!(matches!(
            classify(&before, "b", "new", &now),
            Progress::Pending(s) if s.contains("health check pending (deadline 120 s")
        ));
        // Committed: booted, default, no trial, our build.
        now.trial = None;
        now.default = "b".into();
        now.generation = Some(9);
        now.last_result = Some("committed slot b wan-router 0.1.0 (build new)".into());
        assert_eq!(
            classify(&before, "b", "new", &now),
            Progress::Committed {
                slot: "b".into(),
                release: Some(5)
            }
        );
        // Trial over but the default not yet written: not a success.
        now.default = "a".into();
        assert!(matches!(
            classify(&before, "b", "new", &now),
            Progress::Pending(_)
        ));
    }

    #[test]
    fn a_rollback_is_reported_with_the_boxs_reason() {
        let before = boxed();
        let mut now = armed();
        now.trial = None;
        now.generation = Some(10);
        now.last_result = Some("rolled back from slot b: no WAN path up within 20 s of boot (failoverd reports no path up)".into());
        now.resets = vec![ResetEntry {
            reason: "rollback".into(),
            slot: "b".into(),
            detail: "no WAN path up within 20 s of boot (failoverd reports no path up)".into(),
        }];
        assert_eq!(
            classify(&before, "b", "new", &now),
            Progress::RolledBack {
                slot: "b".into(),
                why: "no WAN path up within 20 s of boot (failoverd reports no path up)".into()
            }
        );
        // A trial the watchdog reset: the reset log says more.
        now.last_result = Some("rolled back from slot b: the trial boot did not finish".into());
        now.resets[0] = ResetEntry {
            reason: "watchdog".into(),
            slot: "b".into(),
            detail: "the hardware watchdog reset it".into(),
        };
        let Progress::RolledBack { why, .. } = classify(&before, "b", "new", &now) else {
            panic!()
        };
        assert_eq!(
            why,
            "the trial boot did not finish (reset log: watchdog: the hardware watchdog reset it)"
        );
    }

    #[test]
    fn another_update_or_a_damaged_store_is_no_outcome() {
        let before = boxed();
        let mut now = armed();
        now.slots[1].installed = Some(record("someone-else", 6));
        assert!(matches!(
            classify(&before, "b", "new", &now),
            Progress::Lost(s) if s.contains("another update")
        ));
        let mut now = armed();
        now.store_damaged = Some("both copies are bad".into());
        now.generation = None;
        assert!(matches!(
            classify(&before, "b", "new", &now),
            Progress::Lost(s) if s.contains("store is damaged")
        ));
        // An old rollback of the same build is not this deploy's: the
        // generation did not move.
        let mut old = boxed();
        old.slots[1].installed = Some(record("new", 5));
        old.last_result = Some("rolled back from slot b: x".into());
        assert!(matches!(
            classify(&old, "b", "new", &old),
            Progress::Pending(_)
        ));
    }

    #[test]
    fn the_session_says_installed_refused_or_nothing() {
        let out = "verified ...\ninstalled wan-router 0.1.0 in slot b\nrebooting into slot b for its trial boot\n";
        assert_eq!(
            sent_outcome(Some(0), out, ""),
            Sent::Installed("installed wan-router 0.1.0 in slot b".into())
        );
        // The reboot may cut the session after the line.
        assert!(matches!(
            sent_outcome(Some(255), out, "Connection closed"),
            Sent::Installed(_)
        ));
        let err = "wanflash-update: update refused, nothing armed: the bundle's signature matches none of the 1 public key(s)\n";
        assert_eq!(
            sent_outcome(Some(1), "", err),
            Sent::Refused(err.trim().into())
        );
        assert!(matches!(
            sent_outcome(Some(255), "", "client_loop: send disconnect: Broken pipe\n"),
            Sent::Unknown(s) if s.contains("255") && s.contains("Broken pipe")
        ));
        assert!(matches!(sent_outcome(None, "", ""), Sent::Unknown(_)));
    }

    #[test]
    fn polls_back_off_to_twenty_seconds() {
        let mut d = Duration::ZERO;
        let mut seen = vec![];
        for _ in 0..8 {
            d = backoff(d);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [3000, 4500, 6750, 10125, 15187, 20000, 20000, 20000]);
    }
}
