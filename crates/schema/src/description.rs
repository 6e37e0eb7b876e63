//! Image descriptions: `images/<name>.toml`.
//!
//! A description may name a base with `inherit = "common.toml"`; the base is
//! read first and the image's own keys override it (tables merge key by key,
//! arrays and plain values replace). Every file is checked on its own first,
//! so an unknown key or a wrong type is reported with the file, the line and
//! the key, then the merged result is checked as a whole.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::failover::Failover;
use crate::network::{Bond, Cidr, Interface, Network};
use crate::recording::{Contract, Sla};
use crate::size::{ByteSize, MIB};
use crate::ssh::{self, Ssh};
use crate::system::{Capability, RestartMode, RestartPolicy, Service};
use crate::time::{TimeConfig, TimeSection};

#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("`{file}`: {message}")]
    Parse { file: String, message: String },
    #[error("`{file}`: key `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
    #[error("`{file}` inherits from itself through `{chain}`: remove the cycle")]
    InheritCycle { file: String, chain: String },
}

/// Host `n` (1-based) of an IPv4 or IPv6 subnet, with the subnet's prefix:
/// `host_address("192.0.2.0/30", 2)` is `192.0.2.2/30`.
pub fn host_address(subnet: &str, n: u32) -> Option<Cidr> {
    let (addr, len) = subnet.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    if let Ok(v4) = addr.parse::<std::net::Ipv4Addr>() {
        if len > 30 {
            return None;
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let base = u32::from(v4) & mask;
        let host = base.checked_add(n)?;
        // The broadcast address is not a host.
        if host >= base | !mask {
            return None;
        }
        return Some(Cidr {
            addr: std::net::Ipv4Addr::from(host).into(),
            prefix_len: u8::try_from(len).ok()?,
        });
    }
    let v6 = addr.parse::<std::net::Ipv6Addr>().ok()?;
    if len > 126 {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    let host = (u128::from(v6) & mask).checked_add(u128::from(n))?;
    Some(Cidr {
        addr: std::net::Ipv6Addr::from(host).into(),
        prefix_len: u8::try_from(len).ok()?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    #[default]
    X86_64,
    /// Older 32-bit boxes. Described, not built yet.
    I686,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I686 => "i686",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Libc {
    /// Static musl binaries (smallest; needs the musl Rust target).
    #[default]
    Musl,
    /// Static glibc binaries with `crt-static`.
    Gnu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Xz,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// One image description, after inheritance and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// Base description, relative to this file's folder.
    #[serde(default, skip_serializing)]
    pub inherit: Option<String>,
    /// Host name of the box; also the default for template variables.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Monotonic release number, signed into the update bundle: a box
    /// takes only a bundle with a higher one (unless the operator allows
    /// a downgrade). Set once in `images/common.toml`, raised for every
    /// release; never derived from time.
    #[serde(default)]
    pub release: Option<u64>,
    /// Which images may replace each other by an update (default: the
    /// image's name): a box refuses a bundle whose `compatible` differs.
    #[serde(default)]
    pub compatible: Option<String>,
    #[serde(default)]
    pub arch: Arch,
    #[serde(default)]
    pub libc: Libc,
    /// Size of the smallest CompactFlash card the image must fit, with both
    /// root slots.
    #[serde(default)]
    pub flash_size: Option<ByteSize>,
    #[serde(default)]
    pub console: Console,
    #[serde(default)]
    pub kernel: Kernel,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub rootfs: Rootfs,
    /// Template variables for `.tera` overlay files.
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
    /// Services started by init, in order.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceDecl>,
    #[serde(default)]
    pub init: Init,
    #[serde(default)]
    pub boot: Boot,
    /// This box's own network: interfaces, bonds, VLANs, routes, rules.
    #[serde(default)]
    pub network: Option<Network>,
    /// Circuits between two sites, described once (in a base both sites'
    /// images inherit) so the two ends cannot disagree.
    #[serde(default, rename = "circuit")]
    pub circuits: Vec<Circuit>,
    /// Which end of the circuits this box is: `a` takes the first host
    /// address of each circuit's subnet, `b` the second.
    #[serde(default)]
    pub circuit_end: Option<CircuitEnd>,
    /// Paths to the other site, probed and switched by failoverd.
    #[serde(default)]
    pub failover: Option<Failover>,
    /// The clock: the site's NTP servers for `timesync`. Present: the
    /// builder writes `/etc/wanflash/time.json` ([`Description::box_time`]).
    #[serde(default)]
    pub time: Option<TimeSection>,
    /// The SSH server (issue 16): where it listens, the keys that may log
    /// in and what each may run. The builder adds its two services
    /// (`ssh-host-key`, `ssh`); see [`crate::ssh`].
    #[serde(default)]
    pub ssh: Option<Ssh>,
}

/// The boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// Lets a person at the serial console reach syslinux's `boot:` prompt
    /// and change the kernel command line (`init=/bin/sh`). Off by default:
    /// syslinux.cfg then says `NOESCAPE 1`, `ALLOWOPTIONS 0`, `IMPLICIT 0`.
    /// Turn it on for lab boxes only.
    #[serde(default)]
    pub console_edit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CircuitEnd {
    A,
    B,
}

/// A point-to-point circuit (or a bundle of them, bonded) between two
/// sites. Both ends use the same interface names, bond settings and subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circuit {
    pub name: String,
    /// A single circuit: the interface it arrives on.
    #[serde(default)]
    pub interface: Option<String>,
    /// A bundle: the bond (its members are declared as interfaces here).
    #[serde(default)]
    pub bond: Option<Bond>,
    /// IPv4 subnet of the circuit: end `a` gets the first host address,
    /// end `b` the second (`192.0.2.0/30` gives .1 and .2).
    pub subnet: String,
    /// Optional IPv6 subnet, same rule (`2001:db8:0:1::/64` gives ::1, ::2).
    #[serde(default)]
    pub subnet6: Option<String>,
    /// The carrier that provides it: `Example Telecom`.
    #[serde(default)]
    pub carrier: Option<String>,
    /// The carrier's reference of the circuit (of the bundle, for a bond:
    /// its members share it and the SLA).
    #[serde(default)]
    pub circuit_id: Option<String>,
    /// What the carrier promises per calendar month; the line report
    /// compares every month with it.
    #[serde(default)]
    pub sla: Option<Sla>,
}

impl Circuit {
    /// `carrier`, `circuit_id` and `sla`; `None` when none is given.
    pub fn contract(&self) -> Option<Contract> {
        let c = Contract {
            carrier: self.carrier.clone(),
            circuit_id: self.circuit_id.clone(),
            sla: self.sla,
        };
        (!c.is_empty()).then_some(c)
    }

    /// The device its traffic leaves through: the interface, or the bond.
    pub fn device(&self) -> Option<&str> {
        self.interface
            .as_deref()
            .or(self.bond.as_ref().map(|b| b.name.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Serial device for the kernel and init console.
    #[serde(default = "default_serial")]
    pub serial: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            serial: default_serial(),
            baud: default_baud(),
        }
    }
}

fn default_serial() -> String {
    "ttyS0".into()
}
fn default_baud() -> u32 {
    115_200
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// A kernel source tarball (`.tar.xz`, `.tar.gz`) or an unpacked tree.
    #[serde(default = "default_kernel_source")]
    pub source: String,
    /// Config fragments merged over `tinyconfig`, by name:
    /// `images/kernel/<name>.config`.
    #[serde(default)]
    pub fragments: Vec<String>,
    /// Extra kernel command line, appended after the console and root.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            source: default_kernel_source(),
            fragments: Vec::new(),
            cmdline: Vec::new(),
        }
    }
}

/// Debian's `linux-source-6.1` package.
pub const DEBIAN_KERNEL_SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

fn default_kernel_source() -> String {
    DEBIAN_KERNEL_SOURCE.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// FAT boot partition: syslinux, and the kernel of each root slot.
    #[serde(default = "default_boot_size")]
    pub boot_size: ByteSize,
    /// Each of the two root slots (A and B) gets this much of the card.
    #[serde(default = "default_root_slot_size")]
    pub root_slot_size: ByteSize,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            boot_size: default_boot_size(),
            root_slot_size: default_root_slot_size(),
        }
    }
}

fn default_boot_size() -> ByteSize {
    ByteSize(6 * MIB)
}
fn default_root_slot_size() -> ByteSize {
    ByteSize(16 * MIB)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    #[serde(default)]
    pub compression: Compression,
    /// Overlay trees copied in order from `overlays/<name>/`; a later one
    /// overrides an earlier one.
    #[serde(default)]
    pub overlays: Vec<String>,
    /// Workspace binaries built static and installed.
    #[serde(default, rename = "binary")]
    pub binaries: Vec<Binary>,
    /// tmpfs mounts made by init.
    #[serde(default)]
    pub tmpfs: Vec<Tmpfs>,
    /// Extra files taken from the build host (for example busybox from
    /// Debian's `busybox-static`), with the Debian package that provides them.
    #[serde(default, rename = "host_file")]
    pub host_files: Vec<HostFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// Cargo package in this workspace.
    pub package: String,
    /// Binary target name; defaults to the package name.
    #[serde(default)]
    pub bin: Option<String>,
    /// Absolute path in the image.
    #[serde(deserialize_with = "de_binary_path")]
    pub path: String,
}

impl Binary {
    pub fn bin_name(&self) -> &str {
        self.bin.as_deref().unwrap_or(&self.package)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    #[serde(deserialize_with = "de_tmpfs_path")]
    pub path: String,
    pub size: ByteSize,
    #[serde(default)]
    pub copy_from_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Absolute path on the build host.
    #[serde(deserialize_with = "de_host_file_source")]
    pub source: String,
    /// Absolute path in the image.
    #[serde(deserialize_with = "de_host_file_path")]
    pub path: String,
    /// Debian package that provides `source`, installed when missing.
    pub package: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Init {
    /// `wanflash.*` options baked in; the kernel command line overrides them.
    #[serde(default)]
    pub options: Vec<String>,
    /// Absolute path of a shell for `wanflash.rescue`.
    #[serde(default, deserialize_with = "de_rescue_shell")]
    pub rescue_shell: Option<String>,
    /// crypt(3) hash of the root password. No default password exists.
    #[serde(default)]
    pub root_password_hash: Option<String>,
    #[serde(default = "default_true")]
    pub watchdog: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    pub name: String,
    #[serde(deserialize_with = "de_service_exec")]
    pub exec: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub oneshot: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The user the service runs as. Required: an unprivileged name (the
    /// builder gives it a uid, see [`Description::accounts`]) or, written
    /// out, `root`, so that no service runs as root by omission.
    #[serde(default)]
    pub user: Option<String>,
    /// Primary group; defaults to the user's own group of the same name.
    #[serde(default)]
    pub group: Option<String>,
    /// Capabilities an unprivileged service keeps, like `["CAP_NET_ADMIN"]`;
    /// every other one is dropped. Not allowed with `user = "root"`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Directories below a tmpfs that init creates for the service's user
    /// before starting it (its sockets, its state).
    #[serde(default)]
    pub runtime_dirs: Vec<String>,
    /// Device nodes directly in `/dev` that init gives to the service's
    /// user before starting it (devtmpfs makes them root's, mode 0600),
    /// like `/dev/rtc0` for `timesync`. A missing one is skipped.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Real-time scheduling: the service runs under `SCHED_FIFO` at this
    /// priority (1-99), ahead of every ordinary process and kernel worker.
    /// Init sets it before dropping privileges, so the service needs no
    /// `CAP_SYS_NICE`; its threads inherit it. The kernel's real-time
    /// throttling (`kernel.sched_rt_runtime_us`, 95 % of each second)
    /// leaves the rest of the box the remaining 5 % should the service
    /// spin. For a daemon whose reaction time is the product (failoverd);
    /// unset: the ordinary scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_priority: Option<u8>,
}

/// The highest `realtime_priority` a service may have: `SCHED_FIFO`'s
/// range (1-99).
pub const MAX_REALTIME_PRIORITY: u8 = 99;

/// The first uid (and gid) given to the services' users.
pub const FIRST_SERVICE_ID: u32 = 100;
/// `nobody`'s id: what a service without an account would run as (never
/// root). `validate` refuses such a description before it gets here.
pub const NOBODY_ID: u32 = 65534;

/// One user of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The users and groups of an image: `root` (0) first, then every user
/// and group the services name, in order of first mention, each given the
/// next id from [`FIRST_SERVICE_ID`] (a user's own group shares its id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accounts {
    pub users: Vec<Account>,
    /// Groups by name and gid, `root` first.
    pub groups: Vec<(String, u32)>,
}

impl Accounts {
    pub fn user(&self, name: &str) -> Option<&Account> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|g| g.0 == name).map(|g| g.1)
    }
}

fn is_account_name(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A file of the description chain: its display path and its text.
pub struct Layer<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

/// Checks one file on its own: syntax, unknown keys, types. Returns the
/// parsed table and the `inherit` value, if any.
pub fn parse_layer(layer: &Layer<'_>) -> Result<(toml::Table, Option<String>), DescriptionError> {
    let parsed: Description = toml::from_str(layer.text).map_err(|e| DescriptionError::Parse {
        file: layer.file.to_owned(),
        message: one_line_toml_error(&e),
    })?;
    let table: toml::Table = toml::from_str(layer.text).map_err(|e| DescriptionError::Parse {
        file: layer.file.to_owned(),
        message: one_line_toml_error(&e),
    })?;
    Ok((table, parsed.inherit))
}

/// Merges the chain, base first, and checks the result.
/// `layers[0]` is the most basic file, the last one is the image itself.
pub fn from_layers(layers: &[Layer<'_>]) -> Result<Description, DescriptionError> {
    let image_file = layers.last().map(|l| l.file).unwrap_or("<none>").to_owned();
    let mut merged = toml::Table::new();
    for layer in layers {
        let (table, _) = parse_layer(layer)?;
        merge(&mut merged, table);
    }
    merged.remove("inherit");
    let desc: Description =
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| DescriptionError::Parse {
                file: image_file.clone(),
                message: one_line_toml_error(&e),
            })?;
    let mut desc = desc;
    desc.add_ssh_services(&image_file)?;
    desc.validate(&image_file)?;
    Ok(desc)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (Some(toml::Value::Array(a)), toml::Value::Array(b))
                if keyed(a).is_some() && keyed(&b) == keyed(a) =>
            {
                let key = keyed(a).unwrap_or("name");
                for item in b {
                    let id = item.get(key).cloned();
                    match a.iter_mut().find(|x| x.get(key).cloned() == id) {
                        Some(slot) => *slot = item,
                        None => a.push(item),
                    }
                }
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Arrays of tables that all have a `name` (services, circuits,
/// interfaces) or a `path` (binaries, tmpfs, host files) merge by it: an
/// image adds entries and replaces those of the same name, keeping the
/// base's others. Other arrays replace.
fn keyed(a: &[toml::Value]) -> Option<&'static str> {
    ["name", "path"].into_iter().find(|k| {
        !a.is_empty()
            && a.iter()
                .all(|x| x.as_table().is_some_and(|t| t.contains_key(*k)))
    })
}

/// toml's messages span several lines with a source excerpt; keep them, but
/// lead with the position so the first line says where.
fn one_line_toml_error(e: &toml::de::Error) -> String {
    e.to_string().trim_end().to_owned()
}

fn invalid(file: &str, key: &str, message: impl Into<String>) -> DescriptionError {
    DescriptionError::Invalid {
        file: file.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Why `path` is not a clean absolute path, or `None` when it is one: it
/// must start with `/` and have no empty, `.` or `..` component (so it
/// names the same file in the image as on the box, and cannot climb out of
/// the staging folder). `/` alone is clean.
pub fn path_problem(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("is not absolute: start it with `/`");
    };
    if rest.is_empty() {
        return None;
    }
    for c in rest.split('/') {
        match c {
            "" => return Some("has an empty component (`//` or a trailing `/`): remove it"),
            "." => return Some("has a `.` component: remove it"),
            ".." => return Some("has a `..` component, which could climb out of the image: write the path without it"),
            _ => {}
        }
    }
    None
}

/// Checks one path-like key, with the key's name in the message.
fn check_path(file: &str, key: &str, path: &str) -> Result<(), DescriptionError> {
    match path_problem(path) {
        Some(why) => Err(invalid(file, key, format!("`{path}` {why}"))),
        None => Ok(()),
    }
}

/// Refuses a bad path while the file is parsed, so toml's error gives the
/// file's line and column, and the message names the key.
fn de_path<'de, D: serde::Deserializer<'de>>(d: D, key: &str) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    match path_problem(&path) {
        Some(why) => Err(serde::de::Error::custom(format!(
            "key `{key}`: `{path}` {why}"
        ))),
        None => Ok(path),
    }
}

fn de_binary_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_path(d, "rootfs.binary.path")
}

fn de_tmpfs_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_path(d, "rootfs.tmpfs.path")
}

fn de_host_file_source<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_path(d, "rootfs.host_file.source")
}

fn de_host_file_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_path(d, "rootfs.host_file.path")
}

fn de_service_exec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_path(d, "service.exec")
}

fn de_rescue_shell<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_path(d, "init.rescue_shell").map(Some)
}

fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !s.starts_with('.')
}

impl Description {
    /// This box's network: `network` plus its end of every circuit.
    /// `None` when the image configures no network.
    pub fn box_network(&self, file: &str) -> Result<Option<Network>, DescriptionError> {
        if self.network.is_none() && self.circuits.is_empty() {
            return Ok(None);
        }
        let mut net = self.network.clone().unwrap_or_default();
        if self.circuits.is_empty() {
            return Ok(Some(net));
        }
        let Some(end) = self.circuit_end else {
            return Err(invalid(file, "circuit_end", "missing: the image has circuits, so say which end this box is: `circuit_end = \"a\"` or `\"b\"`"));
        };
        let n = match end {
            CircuitEnd::A => 1,
            CircuitEnd::B => 2,
        };
        for c in &self.circuits {
            let key = format!("circuit[{}]", c.name);
            let mut addresses = vec![host_address(&c.subnet, n).ok_or_else(|| {
                invalid(
                    file,
                    &format!("{key}.subnet"),
                    format!(
                        "`{}` is not an IPv4 subnet with room for two hosts, like `192.0.2.0/30`",
                        c.subnet
                    ),
                )
            })?];
            if let Some(s6) = &c.subnet6 {
                addresses.push(host_address(s6, n).ok_or_else(|| {
                    invalid(
                        file,
                        &format!("{key}.subnet6"),
                        format!("`{s6}` is not an IPv6 subnet, like `2001:db8:0:1::/64`"),
                    )
                })?);
            }
            match (&c.interface, &c.bond) {
                (Some(i), None) => net.interfaces.push(Interface {
                    addresses,
                    ..Interface::named(i)
                }),
                (None, Some(b)) => {
                    for m in &b.members {
                        if !net.interfaces.iter().any(|i| &i.name == m) {
                            net.interfaces.push(Interface::named(m));
                        }
                    }
                    let mut bond = b.clone();
                    bond.addresses.extend(addresses);
                    net.bonds.push(bond);
                }
                _ => {
                    return Err(invalid(file, &key, "give either `interface` (one circuit) or `bond` (a bundle), not both or neither"));
                }
            }
        }
        Ok(Some(net))
    }

    /// `failover` as the box reads it: the recording settings get each
    /// path's carrier contract from the circuit on the path's interface
    /// (a bundle's path from its bond; the recorder gives the bundle's
    /// members their path's). A circuit with a contract that no recorded
    /// path uses is an error: its contract would never reach the report.
    pub fn box_failover(&self, file: &str) -> Result<Option<Failover>, DescriptionError> {
        let Some(mut f) = self.failover.clone() else {
            return Ok(None);
        };
        // The STAMP reflector on a port below 1024 (862, its own) binds
        // only with CAP_NET_BIND_SERVICE: say so now, not on the box.
        if f.stamp_reflector && f.stamp_port < 1024 {
            let lacking = self.services.iter().find(|s| {
                s.exec.rsplit('/').next() == Some("failoverd")
                    && s.user.as_deref() != Some("root")
                    && !s.capabilities.iter().any(|c| c == "CAP_NET_BIND_SERVICE")
            });
            if let Some(s) = lacking {
                return Err(invalid(
                    file,
                    "failover.stamp_port",
                    format!(
                        "the STAMP reflector listens on port {}, below 1024, which service `{}` cannot bind: add \"CAP_NET_BIND_SERVICE\" to its capabilities, or set stamp_port above 1023",
                        f.stamp_port, s.name
                    ),
                ));
            }
        }
        let Some(rec) = f.recording.as_mut() else {
            return Ok(Some(f));
        };
        for c in &self.circuits {
            let Some(contract) = c.contract() else {
                continue;
            };
            let paths: Vec<&str> = f
                .paths
                .iter()
                .filter(|p| Some(p.interface.as_str()) == c.device())
                .map(|p| p.name.as_str())
                .collect();
            if paths.is_empty() {
                return Err(invalid(
                    file,
                    &format!("circuit[{}]", c.name),
                    format!(
                        "has a carrier contract but no `[failover]` path leaves through `{}`: add the path, or remove `carrier`, `circuit_id` and `sla`",
                        c.device().unwrap_or("?")
                    ),
                ));
            }
            for p in paths {
                rec.circuits.insert(p.to_owned(), contract.clone());
            }
        }
        Ok(Some(f))
    }

    /// The host name; `validate` guarantees it is set.
    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or("wanflash")
    }

    pub fn flash_size(&self) -> ByteSize {
        self.flash_size.unwrap_or(ByteSize(0))
    }

    /// The users and groups the services run as; `validate` has checked
    /// their names.
    pub fn accounts(&self) -> Accounts {
        let mut a = Accounts {
            users: vec![Account {
                name: "root".to_owned(),
                uid: 0,
                gid: 0,
            }],
            groups: vec![("root".to_owned(), 0)],
        };
        let mut next = FIRST_SERVICE_ID;
        for s in &self.services {
            if let Some(u) = &s.user {
                // Every user gets an account of its own, even when its name
                // was first used as another service's group (then it shares
                // that group's id): a user without an account would be
                // resolved to nothing, never to root.
                if a.user(u).is_none() {
                    let gid = match a.gid(u) {
                        Some(g) => g,
                        None => {
                            a.groups.push((u.clone(), next));
                            next
                        }
                    };
                    a.users.push(Account {
                        name: u.clone(),
                        uid: next,
                        gid,
                    });
                    next += 1;
                }
            }
            if let Some(g) = &s.group {
                if a.gid(g).is_none() {
                    a.groups.push((g.clone(), next));
                    next += 1;
                }
            }
        }
        for s in &self.services {
            if let (Some(u), Some(g)) = (&s.user, &s.group) {
                let gid = a.gid(g).unwrap_or(0);
                if let Some(acc) = a.users.iter_mut().find(|x| &x.name == u) {
                    if acc.uid != 0 {
                        acc.gid = gid;
                    }
                }
            }
        }
        a
    }

    /// The services as init runs them, with numeric ids and capabilities.
    pub fn system_services(&self) -> Vec<Service> {
        let accounts = self.accounts();
        self.services
            .iter()
            .map(|d| {
                // Fail closed: a service that names no user (which
                // `validate` refuses) or one without an account runs as
                // `nobody`, never as root.
                let user = d.user.clone().unwrap_or_else(|| "nobody".to_owned());
                let (uid, gid) = accounts
                    .user(&user)
                    .map_or((NOBODY_ID, NOBODY_ID), |a| (a.uid, a.gid));
                Service {
                    name: d.name.clone(),
                    exec: d.exec.clone(),
                    args: d.args.clone(),
                    env: d.env.clone(),
                    after: d.after.clone(),
                    oneshot: d.oneshot,
                    restart: d.restart,
                    user,
                    uid,
                    gid,
                    groups: Vec::new(),
                    capabilities: d
                        .capabilities
                        .iter()
                        .filter_map(|c| Capability::from_name(c))
                        .collect(),
                    runtime_dirs: d.runtime_dirs.clone(),
                    devices: d.devices.clone(),
                    realtime_priority: d.realtime_priority,
                }
            })
            .collect()
    }

    /// `[ssh]` as two services: `ssh-host-key`, a oneshot that puts the
    /// host key on the tmpfs (from the store, made there at first boot, or
    /// pinned at build time) and prints its fingerprint, then `ssh`,
    /// Dropbear, after the network is configured. Both run as root: the
    /// key step reads and writes the card's store, and the server must
    /// switch to the session user after authentication (SECURITY.md).
    fn add_ssh_services(&mut self, file: &str) -> Result<(), DescriptionError> {
        let Some(cfg) = &self.ssh else {
            return Ok(());
        };
        for name in [ssh::KEY_SERVICE, ssh::SERVER_SERVICE] {
            if self.services.iter().any(|s| s.name == name) {
                return Err(invalid(file, "service.name", format!("service `{name}` is the one the builder adds for `[ssh]`: give yours another name")));
            }
        }
        let mut after: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.name == "netcfg")
            .map(|s| s.name.clone())
            .collect();
        let base = |name: &str, exec: &str| ServiceDecl {
            name: name.to_owned(),
            exec: exec.to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            after: Vec::new(),
            oneshot: false,
            restart: RestartPolicy::default(),
            user: Some(ssh::SESSION_USER.to_owned()),
            group: None,
            capabilities: Vec::new(),
            runtime_dirs: Vec::new(),
            devices: Vec::new(),
            realtime_priority: None,
        };
        let key = ServiceDecl {
            args: vec!["ssh-host-key".into()],
            oneshot: true,
            restart: RestartPolicy {
                mode: RestartMode::OnFailure,
                max_failures: 3,
                ..RestartPolicy::default()
            },
            runtime_dirs: vec![ssh::RUN_DIR.to_owned()],
            ..base(ssh::KEY_SERVICE, "/usr/sbin/wanflash-update")
        };
        after.push(ssh::KEY_SERVICE.to_owned());
        let server = ServiceDecl {
            args: ssh::server_args(cfg),
            after,
            ..base(ssh::SERVER_SERVICE, ssh::DROPBEAR)
        };
        self.services.push(key);
        self.services.push(server);
        Ok(())
    }

    /// `[ssh]`: addresses of this box (not a circuit's unless
    /// `on_circuits`), keys the server takes, a shell only where the
    /// image can have one.
    fn validate_ssh(&self, file: &str, cfg: &Ssh) -> Result<(), DescriptionError> {
        if cfg.listen.is_empty() {
            return Err(invalid(file, "ssh.listen", "empty: name the LAN or management address to listen on, like `[\"203.0.113.1:22\"]`"));
        }
        let mut own: Vec<std::net::IpAddr> = Vec::new();
        if let Some(n) = &self.network {
            own.extend(
                n.interfaces
                    .iter()
                    .flat_map(|i| i.addresses.iter().map(|c| c.addr)),
            );
            own.extend(
                n.vlans
                    .iter()
                    .flat_map(|v| v.addresses.iter().map(|c| c.addr)),
            );
            own.extend(
                n.bonds
                    .iter()
                    .flat_map(|b| b.addresses.iter().map(|c| c.addr)),
            );
        }
        let end = match self.circuit_end {
            Some(CircuitEnd::B) => 2,
            _ => 1,
        };
        let circuit_addr = |ip: &std::net::IpAddr| -> Option<&str> {
            self.circuits
                .iter()
                .find(|c| {
                    std::iter::once(&c.subnet)
                        .chain(c.subnet6.as_ref())
                        .filter_map(|s| host_address(s, end))
                        .any(|h| &h.addr == ip)
                })
                .map(|c| c.name.as_str())
        };
        for l in &cfg.listen {
            let ip = l.ip();
            if l.port() == 0 {
                return Err(invalid(
                    file,
                    "ssh.listen",
                    format!("`{l}` has port 0: name the port, like `:22`"),
                ));
            }
            if ip.is_unspecified() {
                if !cfg.on_circuits {
                    return Err(invalid(file, "ssh.listen", format!("`{l}` is every address of the box, the circuits' included: name the LAN or management address (or set `ssh.on_circuits = true` to mean it)")));
                }
                continue;
            }
            if let Some(c) = circuit_addr(&ip) {
                if !cfg.on_circuits {
                    return Err(invalid(file, "ssh.listen", format!("`{l}` is this box's address on circuit `{c}`: the SSH server listens on the LAN or management address only, unless `ssh.on_circuits = true`")));
                }
                continue;
            }
            if !own.contains(&ip) {
                return Err(invalid(file, "ssh.listen", format!("`{ip}` is not an address of this box (`network.interfaces`, `vlans`, `bonds`): name one of them")));
            }
        }
        for (i, k) in cfg.authorized_keys.iter().enumerate() {
            if let Some(why) = ssh::key_problem(&k.key) {
                return Err(invalid(
                    file,
                    &format!("ssh.authorized_keys[{i}].key"),
                    format!("the key {why}"),
                ));
            }
        }
        if let Some(p) = &cfg.host_key {
            if p.is_empty() {
                return Err(invalid(file, "ssh.host_key", "empty: name a Dropbear key file made with `dropbearkey -t ed25519 -f FILE`, or remove the key to let each box make its own"));
            }
        }
        if !self.rootfs.binaries.iter().any(|b| b.path == ssh::WANCTL) {
            return Err(invalid(file, "ssh", format!("the SSH keys run `wanctl`, which the image does not install: add `{{ package = \"wanflash-wanctl\", bin = \"wanctl\", path = \"{}\" }}` to `rootfs.binary`", ssh::WANCTL)));
        }
        if !self
            .rootfs
            .binaries
            .iter()
            .any(|b| b.path == "/usr/sbin/wanflash-update")
        {
            return Err(invalid(file, "ssh", "the host key is kept in the store by `wanflash-update`, which the image does not install: add `{ package = \"wanflash-update\", path = \"/usr/sbin/wanflash-update\" }` to `rootfs.binary`"));
        }
        Ok(())
    }

    fn validate_service_user(&self, file: &str, s: &ServiceDecl) -> Result<(), DescriptionError> {
        let name = &s.name;
        if let Some(p) = s.realtime_priority {
            if !(1..=MAX_REALTIME_PRIORITY).contains(&p) {
                return Err(invalid(file, "service.realtime_priority", format!("service `{name}`: {p} is not a real-time priority: 1 to {MAX_REALTIME_PRIORITY} (`SCHED_FIFO`, higher runs first), or remove the key for the ordinary scheduler")));
            }
        }
        let Some(user) = &s.user else {
            return Err(invalid(file, "service.user", format!("service `{name}` does not say which user it runs as: set `user = \"{name}\"` (an unprivileged user of its own, with the `capabilities` it needs) or, to keep full privileges, `user = \"root\"`")));
        };
        for (key, n) in [
            ("service.user", Some(user)),
            ("service.group", s.group.as_ref()),
        ] {
            if let Some(n) = n {
                if !is_account_name(n) {
                    return Err(invalid(file, key, format!("service `{name}`: `{n}` is not a user or group name: lowercase letters, digits, `_` and `-`, at most 32 characters")));
                }
            }
        }
        if user == "root" {
            if !s.capabilities.is_empty() {
                return Err(invalid(file, "service.capabilities", format!("service `{name}` runs as root, which has every capability: remove `capabilities`, or give it an unprivileged `user`")));
            }
            if s.group.as_deref().is_some_and(|g| g != "root") {
                return Err(invalid(
                    file,
                    "service.group",
                    format!(
                        "service `{name}` runs as root: a group other than `root` is not supported"
                    ),
                ));
            }
        }
        if let Some(other) = self
            .services
            .iter()
            .find(|o| o.user == s.user && o.group != s.group)
        {
            return Err(invalid(file, "service.group", format!("services `{name}` and `{}` run as `{user}` with different groups: give the user one `group` in every service", other.name)));
        }
        let mut seen = BTreeSet::new();
        for c in &s.capabilities {
            if Capability::from_name(c).is_none() {
                return Err(invalid(file, "service.capabilities", format!("service `{name}`: `{c}` is not a Linux capability: use names like `CAP_NET_ADMIN`")));
            }
            if !seen.insert(c) {
                return Err(invalid(
                    file,
                    "service.capabilities",
                    format!("service `{name}`: `{c}` is listed twice"),
                ));
            }
        }
        // A runtime folder is a direct child of the `/run` tmpfs: only root
        // can make entries there, so no other service can plant a link or
        // a folder of its own where init will hand one to this user (in
        // `/tmp`, mode 1777, or in another service's folder, it could).
        let run_is_tmpfs = self.rootfs.tmpfs.iter().any(|t| t.path == "/run");
        for d in &s.runtime_dirs {
            let child = d
                .strip_prefix("/run/")
                .is_some_and(|c| !c.is_empty() && !c.contains('/') && c != "." && c != "..");
            if !child || !run_is_tmpfs {
                return Err(invalid(file, "service.runtime_dirs", format!("service `{name}`: `{d}` must be a folder directly in the `/run` tmpfs, like `/run/{name}`")));
            }
            if let Some(other) = self
                .services
                .iter()
                .find(|o| o.name != s.name && o.runtime_dirs.contains(d))
            {
                return Err(invalid(file, "service.runtime_dirs", format!("services `{name}` and `{}` both name `{d}`: give each service its own folder", other.name)));
            }
        }
        // A device is handed to one unprivileged service only; root needs
        // none. Only names directly in `/dev` (devtmpfs, root's).
        for dev in &s.devices {
            let ok = dev.strip_prefix("/dev/").is_some_and(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
            if !ok {
                return Err(invalid(file, "service.devices", format!("service `{name}`: `{dev}` must be a device node directly in `/dev`, like `/dev/rtc0`")));
            }
            if user == "root" {
                return Err(invalid(file, "service.devices", format!("service `{name}` runs as root, which can open `{dev}` already: remove `devices`")));
            }
            if let Some(other) = self
                .services
                .iter()
                .find(|o| o.name != s.name && o.devices.contains(dev))
            {
                return Err(invalid(file, "service.devices", format!("services `{name}` and `{}` both name `{dev}`: a device belongs to one service", other.name)));
            }
        }
        Ok(())
    }

    /// `[time]` as the box reads it (`/etc/wanflash/time.json`), the floor
    /// at `floor_unix_s` (the build's `SOURCE_DATE_EPOCH`), and what the
    /// builder warns about, naming `file`. `None` without `[time]`.
    pub fn box_time(&self, file: &str, floor_unix_s: u64) -> Option<(TimeConfig, Vec<String>)> {
        let t = self.time.as_ref()?;
        let cfg = t.box_config(floor_unix_s);
        let warnings = if cfg.servers.is_empty() {
            vec![format!("`{file}`: no NTP servers: the box's clock will not be synchronised and its records are timed by the RTC and the build date only; add the site's NTP server under `[time]`, like `servers = [\"203.0.113.123\"]` (addresses: the box has no resolver)")]
        } else {
            Vec::new()
        };
        Some((cfg, warnings))
    }

    /// Checks what serde cannot: required keys, names, paths, sizes,
    /// references between services.
    pub fn validate(&self, file: &str) -> Result<(), DescriptionError> {
        match &self.hostname {
            None => {
                return Err(invalid(
                    file,
                    "hostname",
                    "missing: set `hostname = \"...\"` in the image or its base",
                ))
            }
            Some(h) => {
                let ok = !h.is_empty()
                    && h.len() <= 63
                    && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !h.starts_with('-')
                    && !h.ends_with('-');
                if !ok {
                    return Err(invalid(file, "hostname", format!("`{h}` is not a valid host name: use letters, digits and `-`, at most 63 characters")));
                }
            }
        }
        if self.flash_size.is_none() {
            return Err(invalid(file, "flash_size", "missing: set the size of the card the image must fit, like `flash_size = \"64MiB\"`"));
        }
        if self.arch == Arch::I686 {
            return Err(invalid(
                file,
                "arch",
                "i686 images are described but not built yet: use `x86_64`",
            ));
        }
        if !matches!(self.console.baud, 9600 | 19200 | 38400 | 57600 | 115200) {
            return Err(invalid(file, "console.baud", format!("{} is not a serial speed syslinux and the kernel share: use 9600, 19200, 38400, 57600 or 115200", self.console.baud)));
        }
        if !self.console.serial.starts_with("ttyS")
            || self.console.serial[4..].parse::<u8>().is_err()
        {
            return Err(invalid(
                file,
                "console.serial",
                format!(
                    "`{}` is not a serial port: use `ttyS0` to `ttyS3`",
                    self.console.serial
                ),
            ));
        }
        for (key, size) in [
            ("layout.boot_size", self.layout.boot_size),
            ("layout.root_slot_size", self.layout.root_slot_size),
        ] {
            if size.0 == 0 || size.0 % MIB != 0 {
                return Err(invalid(file, key, format!("{size} is not a whole number of MiB: partitions are aligned to 1 MiB erase blocks")));
            }
        }
        if self.layout.boot_size.0 < 4 * MIB {
            return Err(invalid(
                file,
                "layout.boot_size",
                "at least 4MiB: two kernels and syslinux must fit",
            ));
        }
        if self.kernel.fragments.is_empty() {
            return Err(invalid(
                file,
                "kernel.fragments",
                "empty: list the config fragments of `images/kernel/`",
            ));
        }
        for f in &self.kernel.fragments {
            if !is_simple_name(f) {
                return Err(invalid(file, "kernel.fragments", format!("`{f}` is not a fragment name: write the file name of `images/kernel/` without `.config`")));
            }
        }
        for o in &self.rootfs.overlays {
            if !is_simple_name(o) {
                return Err(invalid(
                    file,
                    "rootfs.overlays",
                    format!("`{o}` is not an overlay name: write a folder name of `overlays/`"),
                ));
            }
        }
        let mut paths = BTreeSet::new();
        for b in &self.rootfs.binaries {
            check_path(file, "rootfs.binary.path", &b.path)?;
            if b.path == "/" {
                return Err(invalid(
                    file,
                    "rootfs.binary.path",
                    format!("`{}` must be an absolute file path", b.path),
                ));
            }
            if !paths.insert(b.path.as_str()) {
                return Err(invalid(
                    file,
                    "rootfs.binary.path",
                    format!("`{}` is installed twice", b.path),
                ));
            }
        }
        if !self.rootfs.binaries.iter().any(|b| b.path == "/sbin/init") {
            return Err(invalid(file, "rootfs.binary", "no binary is installed as `/sbin/init`: add `{ package = \"wanflash-init\", path = \"/sbin/init\" }`"));
        }
        let mut mounts = BTreeSet::new();
        for t in &self.rootfs.tmpfs {
            check_path(file, "rootfs.tmpfs.path", &t.path)?;
            if t.path == "/" {
                return Err(invalid(
                    file,
                    "rootfs.tmpfs.path",
                    format!("`{}` must be an absolute path below `/`", t.path),
                ));
            }
            if !mounts.insert(t.path.as_str()) {
                return Err(invalid(
                    file,
                    "rootfs.tmpfs.path",
                    format!("`{}` is mounted twice", t.path),
                ));
            }
            if t.size.0 < 64 * 1024 {
                return Err(invalid(
                    file,
                    "rootfs.tmpfs.size",
                    format!("{} for `{}` is too small: at least 64KiB", t.size, t.path),
                ));
            }
        }
        for h in &self.rootfs.host_files {
            check_path(file, "rootfs.host_file.source", &h.source)?;
            check_path(file, "rootfs.host_file.path", &h.path)?;
            if h.path == "/" {
                return Err(invalid(
                    file,
                    "rootfs.host_file.path",
                    "`/` is the image root: name a file below it",
                ));
            }
        }
        for c in &self.circuits {
            if let Some(contract) = c.contract() {
                if let Some(p) = contract.problems(&format!("circuit[{}]", c.name)).first() {
                    let (key, message) = p.split_once(": ").unwrap_or(("circuit", p.as_str()));
                    return Err(invalid(file, key, message));
                }
            }
        }
        let names: BTreeSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        if names.len() != self.services.len() {
            return Err(invalid(
                file,
                "service.name",
                "two services share a name: names must be unique",
            ));
        }
        for s in &self.services {
            if !is_simple_name(&s.name) {
                return Err(invalid(
                    file,
                    "service.name",
                    format!("`{}` is not a valid service name", s.name),
                ));
            }
            if let Some(why) = path_problem(&s.exec) {
                return Err(invalid(
                    file,
                    "service.exec",
                    format!("service `{}`: `{}` {why}", s.name, s.exec),
                ));
            }
            for a in &s.after {
                if !names.contains(a.as_str()) {
                    return Err(invalid(
                        file,
                        "service.after",
                        format!(
                            "service `{}` comes after `{a}`, which is not declared",
                            s.name
                        ),
                    ));
                }
            }
            self.validate_service_user(file, s)?;
            let r = &s.restart;
            if r.backoff_initial_ms == 0 || r.backoff_max_ms < r.backoff_initial_ms {
                return Err(invalid(file, "service.restart", format!("service `{}`: back-off must start above 0 ms and its cap must not be below its start", s.name)));
            }
        }
        for o in &self.init.options {
            if !o.starts_with("wanflash.") {
                return Err(invalid(
                    file,
                    "init.options",
                    format!("`{o}` is not a `wanflash.*` option"),
                ));
            }
        }
        if let Some(sh) = &self.init.rescue_shell {
            check_path(file, "init.rescue_shell", sh)?;
        }
        if let Some(cfg) = &self.ssh {
            self.validate_ssh(file, cfg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
arch = "x86_64"
flash_size = "64MiB"
[kernel]
fragments = ["base"]
[rootfs]
overlays = ["base"]
binary = [{ package = "wanflash-init", path = "/sbin/init" }]
[vars]
motd = "base"
site = "office"
"#;

    fn chain(image: &str) -> Result<Description, DescriptionError> {
        from_layers(&[
            Layer {
                file: "images/common.toml",
                text: BASE,
            },
            Layer {
                file: "images/x.toml",
                text: image,
            },
        ])
    }

    #[test]
    fn image_overrides_base_and_tables_merge() {
        let d = chain("inherit = \"common.toml\"\nhostname = \"r1\"\n[vars]\nmotd = \"lan\"\n")
            .unwrap();
        assert_eq!(d.hostname(), "r1");
        assert_eq!(d.vars["motd"].as_str(), Some("lan"));
        assert_eq!(d.vars["site"].as_str(), Some("office"));
        assert_eq!(d.flash_size(), ByteSize(64 * MIB));
        assert_eq!(d.layout, Layout::default());
    }

    #[test]
    fn named_arrays_merge_by_name_and_others_replace() {
        let d = chain("hostname = \"r\"\n[rootfs]\noverlays = [\"lan\"]\nbinary = [{ package = \"t\", path = \"/usr/bin/t\" }, { package = \"init2\", path = \"/sbin/init\" }]\n").unwrap();
        assert_eq!(d.rootfs.overlays, ["lan"]);
        let b: Vec<(&str, &str)> = d
            .rootfs
            .binaries
            .iter()
            .map(|b| (b.package.as_str(), b.path.as_str()))
            .collect();
        assert_eq!(b, [("init2", "/sbin/init"), ("t", "/usr/bin/t")]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = chain("hostname = \"r1\"\n\n[kernel]\nfragmets = [\"x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("images/x.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("fragmets"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported_with_the_line() {
        let err = chain("hostname = 7\n").unwrap_err().to_string();
        assert!(
            err.contains("images/x.toml") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn missing_hostname_and_bad_hostname() {
        let err = chain("").unwrap_err().to_string();
        assert!(err.contains("key `hostname`: missing"), "{err}");
        let err = chain("hostname = \"bad_name\"").unwrap_err().to_string();
        assert!(err.contains("not a valid host name"), "{err}");
    }

    #[test]
    fn sizes_must_be_whole_mib() {
        let err = chain("hostname = \"r\"\n[layout]\nboot_size = \"5000KiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layout.boot_size"), "{err}");
    }

    #[test]
    fn service_after_must_name_a_service() {
        let err = chain(
            "hostname = \"r\"\n[[service]]\nname = \"a\"\nexec = \"/bin/a\"\nafter = [\"b\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("comes after `b`"), "{err}");
    }

    #[test]
    fn host_addresses_of_subnets() {
        assert_eq!(
            host_address("192.0.2.0/30", 1)
                .map(|c| c.to_string())
                .as_deref(),
            Some("192.0.2.1/30")
        );
        assert_eq!(
            host_address("192.0.2.4/30", 2)
                .map(|c| c.to_string())
                .as_deref(),
            Some("192.0.2.6/30")
        );
        assert_eq!(host_address("192.0.2.0/30", 3), None, "broadcast");
        assert_eq!(host_address("192.0.2.0/31", 1), None);
        assert_eq!(
            host_address("2001:db8:0:1::/64", 2)
                .map(|c| c.to_string())
                .as_deref(),
            Some("2001:db8:0:1::2/64")
        );
        assert_eq!(host_address("nonsense", 1), None);
    }

    fn texts(addresses: &[Cidr]) -> Vec<String> {
        addresses.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn circuits_give_each_end_its_address() {
        let shared = "hostname = \"r\"\n[[circuit]]\nname = \"t1\"\nsubnet = \"192.0.2.0/30\"\nbond = { name = \"bond0\", members = [\"eth0\", \"eth1\"], mode = \"balance-rr\", miimon = 50 }\n[[circuit]]\nname = \"t3\"\ninterface = \"eth3\"\nsubnet = \"198.51.100.0/30\"\nsubnet6 = \"2001:db8:3::/64\"\n";
        let a = chain(&format!("circuit_end = \"a\"\n{shared}")).unwrap();
        let b = chain(&format!("circuit_end = \"b\"\n{shared}")).unwrap();
        let na = a.box_network("x").unwrap().unwrap();
        let nb = b.box_network("x").unwrap().unwrap();
        assert_eq!(texts(&na.bonds[0].addresses), ["192.0.2.1/30"]);
        assert_eq!(texts(&nb.bonds[0].addresses), ["192.0.2.2/30"]);
        assert_eq!(na.bonds[0].members, nb.bonds[0].members);
        let t3 = nb.interfaces.iter().find(|i| i.name == "eth3").unwrap();
        assert_eq!(
            texts(&t3.addresses),
            ["198.51.100.2/30", "2001:db8:3::2/64"]
        );
        assert!(na
            .interfaces
            .iter()
            .any(|i| i.name == "eth1" && i.addresses.is_empty()));
        let err = chain(shared)
            .unwrap()
            .box_network("images/x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("circuit_end"), "{err}");
    }

    #[test]
    fn a_circuits_contract_reaches_its_paths_recording_and_is_checked() {
        let shared = "hostname = \"r\"\ncircuit_end = \"a\"\n[[circuit]]\nname = \"t1-bundle\"\nsubnet = \"192.0.2.0/30\"\nbond = { name = \"bond0\", members = [\"eth0\", \"eth1\"], mode = \"balance-rr\", miimon = 50 }\ncarrier = \"Example Telecom\"\ncircuit_id = \"EX-T1-0001\"\nsla = { availability_percent = 99.9, monthly_loss_percent = 0.1, rtt_ms = 30, time_to_repair_h = 4 }\n[[circuit]]\nname = \"t3\"\ninterface = \"eth3\"\nsubnet = \"198.51.100.0/30\"\n";
        let failover = "[failover]\npaths = [{ name = \"t1\", interface = \"bond0\", gateway = \"192.0.2.2\", priority = 10, routes = [\"203.0.113.128/25\"], members = [\"eth0\", \"eth1\"] }, { name = \"t3\", interface = \"eth3\", gateway = \"198.51.100.2\", priority = 20, routes = [\"203.0.113.128/25\"] }]\n[failover.recording]\n";
        let d = chain(&format!("{shared}{failover}")).unwrap();
        let f = d.box_failover("x").unwrap().unwrap();
        let rec = f.recording.unwrap();
        let t1 = rec.contract("t1").unwrap();
        assert_eq!(t1.carrier.as_deref(), Some("Example Telecom"));
        assert_eq!(t1.circuit_id.as_deref(), Some("EX-T1-0001"));
        assert_eq!(t1.sla.and_then(|s| s.rtt_ms), Some(30.0));
        assert_eq!(t1.sla.and_then(|s| s.availability_percent), Some(99.9));
        assert_eq!(rec.contract("t3"), None, "t3 has no contract");
        assert_eq!(rec.validate(), Ok(()));

        // No recording: nothing to carry.
        let d = chain(&format!(
            "{shared}{}",
            failover.replace("[failover.recording]\n", "")
        ))
        .unwrap();
        assert_eq!(d.box_failover("x").unwrap().unwrap().recording, None);

        // The STAMP reflector on 862 needs CAP_NET_BIND_SERVICE in the
        // service that runs failoverd.
        let service = "[[service]]\nname = \"failoverd\"\nexec = \"/sbin/failoverd\"\nuser = \"failoverd\"\ncapabilities = [\"CAP_NET_ADMIN\", \"CAP_NET_RAW\"]\n";
        let reflecting = failover.replace("[failover]\n", "[failover]\nstamp_reflector = true\n");
        let err = chain(&format!("{shared}{service}{reflecting}"))
            .unwrap()
            .box_failover("images/x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("images/x.toml")
                && err.contains("failover.stamp_port")
                && err.contains("CAP_NET_BIND_SERVICE")
                && err.contains("`failoverd`"),
            "{err}"
        );
        let allowed = service.replace(
            "\"CAP_NET_RAW\"]",
            "\"CAP_NET_RAW\", \"CAP_NET_BIND_SERVICE\"]",
        );
        let f = chain(&format!("{shared}{allowed}{reflecting}"))
            .unwrap()
            .box_failover("x")
            .unwrap()
            .unwrap();
        assert!(f.stamp_reflector && f.stamp_port == 862);
        let high = reflecting.replace(
            "stamp_reflector = true\n",
            "stamp_reflector = true\nstamp_port = 8620\n",
        );
        assert!(chain(&format!("{shared}{service}{high}"))
            .unwrap()
            .box_failover("x")
            .is_ok());

        // A contract no path uses.
        let lonely = failover.replace("interface = \"bond0\"", "interface = \"eth9\"");
        let err = chain(&format!("{shared}{lonely}"))
            .unwrap()
            .box_failover("images/x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("circuit[t1-bundle]") && err.contains("bond0"),
            "{err}"
        );

        // Ranges are the validator's, types serde's: both name the key.
        let bad = shared.replace("99.9", "100.5");
        let err = chain(&bad).unwrap_err().to_string();
        assert!(
            err.contains("circuit[t1-bundle].sla.availability_percent"),
            "{err}"
        );
        assert!(err.contains("0 to 100"), "{err}");
        let err = chain(&shared.replace("rtt_ms = 30", "rtt_ms = \"30 ms\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rtt_ms") && err.contains("images/x.toml"),
            "{err}"
        );
        let err = chain(&shared.replace("rtt_ms = 30", "rtt = 30"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtt"), "{err}");
    }

    #[test]
    fn path_problem_refuses_climbing_empty_and_dot_components() {
        for ok in ["/", "/sbin/init", "/usr/bin/x..y", "/a/.hidden", "/a/...b"] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("sbin/init", "not absolute"),
            ("", "not absolute"),
            ("/../../tmp/x", "`..`"),
            ("/usr/../../x", "`..`"),
            ("/usr/..", "`..`"),
            ("/usr/./bin", "`.`"),
            ("/usr//bin", "empty"),
            ("/usr/bin/", "empty"),
        ] {
            let got = path_problem(bad).unwrap_or_else(|| panic!("`{bad}` passed"));
            assert!(got.contains(why), "`{bad}`: {got}");
        }
    }

    #[test]
    fn escaping_paths_are_refused_with_file_line_and_key() {
        let cases = [
            (
                "[rootfs]\nbinary = [{ package = \"t\", path = \"/../../tmp/x\" }]\n",
                "rootfs.binary.path",
            ),
            (
                "[rootfs]\ntmpfs = [{ path = \"/run/../..\", size = \"1MiB\" }]\n",
                "rootfs.tmpfs.path",
            ),
            (
                "[[rootfs.host_file]]\nsource = \"/bin/busybox\"\npath = \"/bin/../../x\"\npackage = \"busybox-static\"\n",
                "rootfs.host_file.path",
            ),
            (
                "[[rootfs.host_file]]\nsource = \"/usr/../etc/shadow\"\npath = \"/bin/x\"\npackage = \"p\"\n",
                "rootfs.host_file.source",
            ),
            (
                "[[service]]\nname = \"a\"\nexec = \"/sbin/./a\"\n",
                "service.exec",
            ),
            ("[init]\nrescue_shell = \"/bin//sh\"\n", "init.rescue_shell"),
        ];
        for (text, key) in cases {
            // Line 1 is the host name; the bad value is on line 3 or 4.
            let image = format!("hostname = \"r\"\n\n{text}");
            let err = chain(&image).unwrap_err().to_string();
            assert!(err.contains("`images/x.toml`"), "{key}: {err}");
            assert!(
                err.contains("line 3") || err.contains("line 4") || err.contains("line 5"),
                "{key}: {err}"
            );
            assert!(err.contains(&format!("key `{key}`")), "{key}: {err}");
        }
    }

    #[test]
    fn validate_refuses_escaping_paths_even_without_the_parser() {
        let mut d = chain("hostname = \"r\"").unwrap();
        d.rootfs.binaries.push(Binary {
            package: "t".into(),
            bin: None,
            path: "/../../tmp/x".into(),
        });
        let err = d.validate("images/x.toml").unwrap_err().to_string();
        assert!(
            err.contains("key `rootfs.binary.path`") && err.contains("`..`"),
            "{err}"
        );
    }

    #[test]
    fn boot_console_edit_is_off_unless_asked() {
        assert!(!chain("hostname = \"r\"").unwrap().boot.console_edit);
        let d = chain("hostname = \"r\"\n[boot]\nconsole_edit = true\n").unwrap();
        assert!(d.boot.console_edit);
    }

    #[test]
    fn i686_is_refused_with_a_reason() {
        let err = chain("hostname = \"r\"\narch = \"i686\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("i686 images are described but not built yet"),
            "{err}"
        );
    }
    const SERVICES: &str =
        "hostname = \"r\"\n[rootfs]\ntmpfs = [{ path = \"/run\", size = \"1MiB\" }]\n";

    #[test]
    fn a_service_must_say_its_user() {
        let err = chain(&format!(
            "{SERVICES}[[service]]\nname = \"a\"\nexec = \"/bin/a\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`images/x.toml`: key `service.user`"), "{err}");
        assert!(err.contains("user = \"root\""), "{err}");
    }

    #[test]
    fn devices_go_to_one_unprivileged_service_directly_in_dev() {
        let svc = |extra: &str| {
            chain(&format!(
                "{SERVICES}[[service]]\nname = \"a\"\nexec = \"/bin/a\"\n{extra}\n"
            ))
        };
        let d = svc("user = \"a\"\ndevices = [\"/dev/rtc0\"]").unwrap();
        assert_eq!(d.system_services()[0].devices, ["/dev/rtc0"]);
        for bad in [
            "/dev/../etc/shadow",
            "/dev/input/event0",
            "/etc/rtc0",
            "/dev/",
        ] {
            let err = svc(&format!("user = \"a\"\ndevices = [\"{bad}\"]"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("key `service.devices`"), "{bad}: {err}");
        }
        let err = svc("user = \"root\"\ndevices = [\"/dev/rtc0\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("runs as root"), "{err}");
        let err = chain(&format!(
            "{SERVICES}[[service]]\nname = \"a\"\nexec = \"/bin/a\"\nuser = \"a\"\ndevices = [\"/dev/rtc0\"]\n\
             [[service]]\nname = \"b\"\nexec = \"/bin/b\"\nuser = \"b\"\ndevices = [\"/dev/rtc0\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("both name `/dev/rtc0`"), "{err}");
    }

    #[test]
    fn the_time_section_is_typed_and_a_site_without_servers_is_warned() {
        let d = chain("hostname = \"r\"\n[time]\nservers = [\"203.0.113.123\"]\npoll_s = 128\n")
            .unwrap();
        let (cfg, warnings) = d.box_time("images/x.toml", 1_790_000_000).unwrap();
        assert_eq!(cfg.servers, ["203.0.113.123"]);
        assert_eq!(cfg.poll_s, 128);
        assert_eq!(cfg.floor_unix_s, 1_790_000_000);
        assert!(warnings.is_empty());
        let d = chain("hostname = \"r\"\n[time]\nrtc = true\n").unwrap();
        let (_, warnings) = d.box_time("images/x.toml", 1).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("`images/x.toml`: no NTP servers")
                && warnings[0].contains("servers = [\"203.0.113.123\"]"),
            "{warnings:?}"
        );
        assert!(chain("hostname = \"r\"\n")
            .unwrap()
            .box_time("x", 1)
            .is_none());
        let err = chain("hostname = \"r\"\n[time]\nservers = [\"pool.ntp.example\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("images/x.toml") && err.contains("no name resolver"),
            "{err}"
        );
    }

    #[test]
    fn capabilities_are_checked() {
        let svc = |extra: &str| {
            chain(&format!(
                "{SERVICES}[[service]]\nname = \"a\"\nexec = \"/bin/a\"\n{extra}\n"
            ))
        };
        let err = svc("user = \"a\"\ncapabilities = [\"CAP_NET_ADMN\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `service.capabilities`"), "{err}");
        assert!(
            err.contains("`CAP_NET_ADMN` is not a Linux capability"),
            "{err}"
        );
        let err = svc("user = \"root\"\ncapabilities = [\"CAP_NET_ADMIN\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runs as root, which has every capability"),
            "{err}"
        );
        let err = svc("user = \"Bad User\"").unwrap_err().to_string();
        assert!(err.contains("is not a user or group name"), "{err}");
        let err = svc("user = \"a\"\nruntime_dirs = [\"/etc/a\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `service.runtime_dirs`"), "{err}");
        assert!(svc("user = \"a\"\nruntime_dirs = [\"/run/a\"]").is_ok());
        // Below a world-writable tmpfs or nested: another service could
        // plant a link there for init to hand over.
        for bad in ["/tmp/a", "/run/a/b", "/run/.."] {
            let err = svc(&format!("user = \"a\"\nruntime_dirs = [\"{bad}\"]"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("directly in the `/run` tmpfs"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_realtime_priority_is_checked_and_reaches_init() {
        let svc = |extra: &str| {
            chain(&format!(
                "{SERVICES}[[service]]\nname = \"a\"\nexec = \"/bin/a\"\nuser = \"a\"\n{extra}\n"
            ))
        };
        for bad in [0, 100, 255] {
            let err = svc(&format!("realtime_priority = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("images/x.toml")
                    && err.contains("key `service.realtime_priority`")
                    && err.contains(&format!("{bad} is not a real-time priority: 1 to 99")),
                "{bad}: {err}"
            );
        }
        let priority = |extra: &str| {
            svc(extra)
                .unwrap()
                .system_services()
                .into_iter()
                .find(|s| s.name == "a")
                .unwrap()
                .realtime_priority
        };
        assert_eq!(priority("realtime_priority = 10"), Some(10));
        assert_eq!(priority(""), None);
    }

    #[test]
    fn users_get_fixed_ids_in_order_of_first_use() {
        let d = chain(&format!(
            "{SERVICES}[[service]]\nname = \"netcfg\"\nexec = \"/sbin/netcfg\"\nuser = \"netcfg\"\ncapabilities = [\"CAP_NET_ADMIN\"]\n\
             [[service]]\nname = \"agent\"\nexec = \"/bin/agent\"\nuser = \"root\"\n\
             [[service]]\nname = \"f\"\nexec = \"/sbin/f\"\nuser = \"failoverd\"\ngroup = \"wan\"\ncapabilities = [\"CAP_NET_RAW\", \"CAP_NET_ADMIN\"]\nruntime_dirs = [\"/run/f\"]\n"
        ))
        .unwrap();
        let a = d.accounts();
        let users: Vec<(&str, u32, u32)> = a
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.uid, u.gid))
            .collect();
        assert_eq!(
            users,
            [
                ("root", 0, 0),
                ("netcfg", 100, 100),
                ("failoverd", 101, 102)
            ]
        );
        assert_eq!(a.gid("wan"), Some(102));
        let s = d.system_services();
        assert_eq!((s[0].uid, s[0].gid), (100, 100));
        assert_eq!(s[0].capabilities, [Capability::NET_ADMIN]);
        assert!(s[1].is_root() && s[1].user == "root");
        assert_eq!((s[2].uid, s[2].gid), (101, 102));
        assert_eq!(
            s[2].capabilities,
            [Capability::NET_RAW, Capability::NET_ADMIN]
        );
        assert_eq!(s[2].runtime_dirs, ["/run/f"]);
    }

    #[test]
    fn a_user_first_named_as_a_group_still_gets_its_own_uid_never_root() {
        // Before: `wan` existed as a group, so no account was made for the
        // user `wan`, which then resolved to uid 0 with every capability.
        let d = chain(&format!(
            "{SERVICES}[[service]]\nname = \"f\"\nexec = \"/sbin/f\"\nuser = \"failoverd\"\ngroup = \"wan\"\n\
             [[service]]\nname = \"w\"\nexec = \"/sbin/w\"\nuser = \"wan\"\n"
        ))
        .unwrap();
        let s = d.system_services();
        assert_eq!(s[1].user, "wan");
        assert!(!s[1].is_root(), "{:?}", s[1]);
        let a = d.accounts();
        let wan = a.user("wan").expect("an account for `wan`");
        assert_eq!((wan.uid, wan.gid), (s[1].uid, a.gid("wan").unwrap()));
        assert_ne!(wan.uid, a.user("failoverd").unwrap().uid);
    }

    const SSH_IMAGE: &str = r#"
hostname = "r"
circuit_end = "a"
[rootfs]
binary = [
    { package = "wanflash-init", path = "/sbin/init" },
    { package = "wanflash-update", path = "/usr/sbin/wanflash-update" },
    { package = "wanflash-wanctl", bin = "wanctl", path = "/usr/bin/wanctl" },
]
tmpfs = [{ path = "/run", size = "4MiB" }]
[network]
interfaces = [{ name = "eth4", addresses = ["203.0.113.1/25"] }]
[[circuit]]
name = "t3"
interface = "eth3"
subnet = "198.51.100.0/30"
[[service]]
name = "netcfg"
exec = "/sbin/netcfg"
oneshot = true
user = "netcfg"
"#;

    fn ssh_image(ssh: &str) -> Result<Description, DescriptionError> {
        chain(&format!("{SSH_IMAGE}\n[ssh]\n{ssh}"))
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7KWjxpFJlLJp7D3XpZC8ToE34sd9jTY8QrLFDZse8u ops";

    #[test]
    fn ssh_on_the_lan_address_adds_the_key_step_and_the_server_as_root_after_netcfg() {
        let d = ssh_image(&format!(
            "listen = [\"203.0.113.1:22\"]\nauthorized_keys = [{{ key = \"{KEY}\" }}]"
        ))
        .unwrap();
        let names: Vec<&str> = d.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["netcfg", "ssh-host-key", "ssh"]);
        let key = &d.services[1];
        assert!(key.oneshot);
        assert_eq!(key.args, ["ssh-host-key"]);
        assert_eq!(key.runtime_dirs, ["/run/ssh"]);
        let server = &d.services[2];
        assert_eq!(server.exec, "/usr/sbin/dropbear");
        assert_eq!(server.after, ["netcfg", "ssh-host-key"]);
        assert_eq!(server.user.as_deref(), Some("root"));
        assert!(server
            .args
            .windows(2)
            .any(|w| w == ["-p", "203.0.113.1:22"]));
        let sys = d.system_services();
        assert_eq!((sys[2].uid, sys[2].gid), (0, 0));
    }

    #[test]
    fn ssh_refuses_a_circuit_or_every_address_unless_asked_and_names_the_key() {
        let e = ssh_image("listen = [\"198.51.100.1:22\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`images/x.toml`: key `ssh.listen`"), "{e}");
        assert!(e.contains("circuit `t3`"), "{e}");
        ssh_image("listen = [\"198.51.100.1:22\"]\non_circuits = true").unwrap();
        let e = ssh_image("listen = [\"0.0.0.0:22\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("every address"), "{e}");
        let e = ssh_image("listen = [\"192.0.2.77:22\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an address of this box"), "{e}");
        let e = ssh_image("listen = []").unwrap_err().to_string();
        assert!(e.contains("key `ssh.listen`: empty"), "{e}");
    }

    #[test]
    fn ssh_refuses_an_rsa_key_and_unknown_keys_naming_the_entry() {
        let e = ssh_image(&format!(
            "listen = [\"203.0.113.1:22\"]\nauthorized_keys = [{{ key = \"{KEY}\" }}, {{ key = \"ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB x\" }}]"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `ssh.authorized_keys[1].key`"), "{e}");
        assert!(e.contains("ed25519 or ECDSA"), "{e}");
        let e = ssh_image("listen = [\"203.0.113.1:22\"]\npassword = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("password"), "{e}");
    }

    #[test]
    fn ssh_needs_wanctl_and_its_service_names_are_reserved() {
        let no_wanctl = SSH_IMAGE.replace(
            "    { package = \"wanflash-wanctl\", bin = \"wanctl\", path = \"/usr/bin/wanctl\" },\n",
            "",
        );
        let e = chain(&format!(
            "{no_wanctl}\n[ssh]\nlisten = [\"203.0.113.1:22\"]"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key `ssh`") && e.contains("wanflash-wanctl"),
            "{e}"
        );
        let e = chain(&format!(
            "{SSH_IMAGE}\n[[service]]\nname = \"ssh\"\nexec = \"/x\"\nuser = \"root\"\n[ssh]\nlisten = [\"203.0.113.1:22\"]"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("service `ssh` is the one the builder adds"),
            "{e}"
        );
    }
}
