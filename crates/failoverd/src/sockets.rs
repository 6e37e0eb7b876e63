//! The probe sockets, each bound to its interface: UDP (the wanflash echo
//! toward a wanflash router), raw ICMP (toward anything else) and packet
//! sockets on bond members. All non-blocking; the daemon polls them.
//!
//! Why packet sockets on members: an IP packet sent with `SO_BINDTODEVICE`
//! on a bond member is answered through the far end's bond, on whichever
//! member it picks, and its ARP replies land on our bond, not the member.
//! A frame of our own EtherType sent on the member and answered by the far
//! end's failoverd on the member it arrived on crosses exactly one
//! circuit, both ways. The kernel hands such frames to a packet socket
//! bound to the member even while the member is enslaved.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    bind, recvfrom, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag,
    SockProtocol, SockType, SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage,
};

use crate::probe::{Kind, ETHERTYPE, MAGIC, VERSION};

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn flags() -> SockFlag {
    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC
}

fn family_of(a: &IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn bind_to_device(fd: &OwnedFd, iface: &str) -> io::Result<()> {
    setsockopt(fd, sockopt::BindToDevice, &OsString::from(iface)).map_err(io_err)
}

/// A UDP socket on an ephemeral port, bound to `iface`, for probing
/// `target`.
pub fn udp_prober(iface: &str, target: IpAddr) -> io::Result<UdpSocket> {
    let fd = socket(family_of(&target), SockType::Datagram, flags(), None).map_err(io_err)?;
    bind_to_device(&fd, iface)?;
    match target {
        IpAddr::V4(_) => bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        ),
        IpAddr::V6(_) => bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)),
        ),
    }
    .map_err(io_err)?;
    Ok(UdpSocket::from(fd))
}

/// The echo responder: `port` on every address of one family. IPv6 is
/// IPv6-only so that the IPv4 socket can coexist.
pub fn udp_responder(v6: bool, port: u16) -> io::Result<UdpSocket> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(family, SockType::Datagram, flags(), None).map_err(io_err)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io_err)?;
        bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)),
        )
    } else {
        bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
        )
    }
    .map_err(io_err)?;
    Ok(UdpSocket::from(fd))
}

/// Sends without blocking; a full queue (the link is congested or down)
/// is reported like any error.
pub fn udp_send(s: &UdpSocket, buf: &[u8], to: SocketAddr) -> io::Result<()> {
    s.send_to(buf, to).map(|_| ())
}

/// A raw ICMP (or ICMPv6) socket bound to `iface`. Needs CAP_NET_RAW.
pub struct IcmpSocket {
    fd: OwnedFd,
    pub v6: bool,
}

impl IcmpSocket {
    pub fn open(iface: &str, v6: bool) -> io::Result<IcmpSocket> {
        let (family, proto) = if v6 {
            (AddressFamily::Inet6, SockProtocol::IcmpV6)
        } else {
            (AddressFamily::Inet, SockProtocol::Icmp)
        };
        let fd = socket(family, SockType::Raw, flags(), proto).map_err(io_err)?;
        bind_to_device(&fd, iface)?;
        Ok(IcmpSocket { fd, v6 })
    }

    pub fn send(&self, buf: &[u8], to: IpAddr) -> io::Result<()> {
        match to {
            IpAddr::V4(a) => sendto(
                self.fd.as_raw_fd(),
                buf,
                &SockaddrIn::from(SocketAddrV4::new(a, 0)),
                MsgFlags::empty(),
            ),
            IpAddr::V6(a) => sendto(
                self.fd.as_raw_fd(),
                buf,
                &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
                MsgFlags::empty(),
            ),
        }
        .map(|_| ())
        .map_err(io_err)
    }

    /// One packet and the address it came from, or `None` when nothing
    /// is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Option<IpAddr>)>> {
        match recvfrom::<SockaddrStorage>(self.fd.as_raw_fd(), buf) {
            Ok((n, from)) => {
                let ip = from.and_then(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                    }
                });
                Ok(Some((n, ip)))
            }
            Err(nix::Error::EAGAIN) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A packet socket (`AF_PACKET`, `SOCK_DGRAM`) on one interface for
/// frames of type [`ETHERTYPE`]: the kernel adds and strips the Ethernet
/// header.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

fn sockaddr_ll(ifindex: i32, mac: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = ETHERTYPE.to_be();
    sa.sll_ifindex = ifindex;
    if let Some(mac) = mac {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&mac);
    }
    sa
}

fn last_error<T>(rc: T) -> io::Result<T>
where
    T: PartialOrd + Default,
{
    if rc < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A classic BPF program that passes a member frame whose payload begins
/// as a wanflash request ([`MAGIC`], [`VERSION`], kind 1) and drops any
/// other frame, so that a socket of the answering thread wakes only for
/// what it answers. On a `SOCK_DGRAM` packet socket the offsets count
/// from the payload; a load past a short frame's end drops it.
fn requests_only() -> [libc::sock_filter; 8] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld_h = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
    let ld_b = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    // Jump offsets count from the next instruction; 7 is the drop.
    [
        op(ld_h, 0, 0, 0),
        op(jeq, 0, 5, u32::from(MAGIC)),
        op(ld_b, 0, 0, 2),
        op(jeq, 0, 3, u32::from(VERSION)),
        op(ld_b, 0, 0, 3),
        op(jeq, 0, 1, u32::from(Kind::Request.number())),
        op(ret, 0, 0, u32::MAX),
        op(ret, 0, 0, 0),
    ]
}

impl PacketSocket {
    /// A socket for every member frame on the interface `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        Self::open_filtered(ifindex, false)
    }

    /// A socket for the far end's requests only on the interface
    /// `ifindex` (what the answering thread reads).
    pub fn open_requests(ifindex: u32) -> io::Result<PacketSocket> {
        Self::open_filtered(ifindex, true)
    }

    fn open_filtered(ifindex: u32, requests: bool) -> io::Result<PacketSocket> {
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
        // SAFETY: socket(2) with constant arguments; it returns a new
        // descriptor or -1.
        // Protocol 0: no frame is queued until bind(2) names the type and
        // the interface together. A socket opened for the type receives
        // it from every interface until it is bound, and a frame of
        // another T1 queued in that window counted as this one's (its
        // far end's flags included: a member taken out for the far end's
        // state of another circuit).
        let raw = last_error(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: `raw` is a descriptor we just opened and own alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if requests {
            // Before bind(2): no frame is queued before the filter.
            let program = requests_only();
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: `prog` points at `program`, which outlives the call;
            // the kernel copies it.
            last_error(unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    (&prog as *const libc::sock_fprog).cast(),
                    mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            })?;
        }
        let sa = sockaddr_ll(ifindex, None);
        // SAFETY: `sa` is a valid sockaddr_ll and the length is its size.
        last_error(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    pub fn send(&self, buf: &[u8], to: [u8; 6]) -> io::Result<()> {
        let sa = sockaddr_ll(self.ifindex, Some(to));
        // SAFETY: `buf` is valid for `buf.len()` bytes and `sa` is a valid
        // sockaddr_ll of the length given.
        last_error(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    /// One frame's payload and its sender's MAC address, or `None` when
    /// nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, [u8; 6])>> {
        let mut sa = sockaddr_ll(0, None);
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes; `sa` and `len`
        // describe a writable sockaddr_ll.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sa as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        match last_error(rc) {
            Ok(n) => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&sa.sll_addr[..6]);
                Ok(Some((n as usize, mac)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The index of an interface, `None` if it does not exist.
/// An interface's carrier file, `/sys/class/net/NAME/carrier`, kept open
/// and read again from its start.
pub struct CarrierFile(std::fs::File);

impl CarrierFile {
    pub fn open(name: &str) -> io::Result<CarrierFile> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Self::at(Path::new(&format!("/sys/class/net/{name}/carrier")))
    }

    fn at(path: &Path) -> io::Result<CarrierFile> {
        std::fs::File::open(path).map(CarrierFile)
    }

    /// The driver's carrier bit as it is now (`netif_carrier_ok`; the
    /// images' 6.1 kernel reads it without the RTNL lock). The kernel's
    /// link events come later: its link-watch work sends them under the
    /// RTNL lock, so they wait for whatever holds it. An interface that is
    /// not up reads as an error (`EINVAL`). Newer kernels (this host's
    /// 6.18) take the RTNL lock in `carrier_show` too: a kernel upgrade
    /// would read `carrier_down_count` instead, which is an atomic read
    /// in both.
    pub fn up(&self) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 4];
        let n = self.0.read_at(&mut b, 0)?;
        match b.get(..n) {
            Some([b'1', ..]) => Ok(true),
            Some([b'0', ..]) => Ok(false),
            _ => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }
}

/// What one carrier read found.
#[derive(Debug, PartialEq, Eq)]
pub enum CarrierRead {
    Up,
    Down,
    /// Not known now: the file is gone (the interface was removed or
    /// re-created: opened again next read) or cannot be opened (tried
    /// again [`Carriers::RETRY_MS`] later).
    Unknown,
}

/// The watched interfaces' carrier files, opened once and kept, each
/// open that fails tried again only [`Carriers::RETRY_MS`] later: a file
/// that is not there (a sysfs that is not this network namespace's, an
/// interface that is gone) was opened on every read before, a path walk
/// through sysfs every millisecond that cost more than the reads.
pub struct Carriers {
    files: BTreeMap<String, CarrierFile>,
    unopened: BTreeMap<String, u64>,
    open: fn(&str) -> io::Result<CarrierFile>,
}

impl Default for Carriers {
    fn default() -> Self {
        Carriers::with_opener(CarrierFile::open)
    }
}

impl Carriers {
    pub const RETRY_MS: u64 = 1000;

    fn with_opener(open: fn(&str) -> io::Result<CarrierFile>) -> Carriers {
        Carriers {
            files: BTreeMap::new(),
            unopened: BTreeMap::new(),
            open,
        }
    }

    /// Reads `name`'s carrier at `now` (ms), opening its file if need be.
    /// The first failed open of a file says why in `said`.
    pub fn read(&mut self, name: &str, now: u64, said: &mut Vec<String>) -> CarrierRead {
        if !self.files.contains_key(name) {
            let retry = self.unopened.get(name).copied();
            if retry.is_some_and(|at| now < at) {
                return CarrierRead::Unknown;
            }
            match (self.open)(name) {
                Ok(f) => {
                    self.unopened.remove(name);
                    self.files.insert(name.to_string(), f);
                }
                Err(e) => {
                    if retry.is_none() {
                        said.push(format!(
                            "{name}: its carrier file cannot be read ({e}): a carrier loss is seen by the link event alone"
                        ));
                    }
                    self.unopened
                        .insert(name.to_string(), now + Carriers::RETRY_MS);
                    return CarrierRead::Unknown;
                }
            }
        }
        self.current(name)
    }

    /// Reads `name`'s carrier if its file is open; never opens it.
    pub fn current(&mut self, name: &str) -> CarrierRead {
        match self.files.get(name).map(CarrierFile::up) {
            Some(Ok(true)) => CarrierRead::Up,
            Some(Ok(false)) => CarrierRead::Down,
            Some(Err(_)) => {
                self.files.remove(name);
                CarrierRead::Unknown
            }
            None => CarrierRead::Unknown,
        }
    }
}

/// The carriers read gone, said only once the losses have settled (no
/// carrier gone for a while). A line written at the loss wakes init, PID
/// 1, which stamps it and writes it to the serial console: under QEMU's
/// emulation that took several ms of the guest's one CPU (every byte an
/// exit to the emulated UART), and the drivers' work that drops the
/// bundle's other members' carrier waited behind it. In the failover
/// bench of 2026-12-06 the trials whose first member was read (and said)
/// alone were the ones whose other members went 2-6 ms after it, those
/// read all at once within 1 ms; one cost in that window among others
/// (BENCHMARKS.md, twelfth session).
#[derive(Default)]
pub struct GoneLines(Vec<(String, u64)>);

impl GoneLines {
    /// `name`'s carrier was read gone at `at` (ms).
    pub fn note(&mut self, name: &str, at: u64) {
        self.0.push((name.to_owned(), at));
    }

    pub fn pending(&self) -> bool {
        !self.0.is_empty()
    }

    /// The lines to say at `now`: none before `settled_at` (when the
    /// losses are taken to have settled), all of them from then on, each
    /// saying how long ago its carrier was read gone.
    pub fn take(&mut self, now: u64, settled_at: u64) -> Vec<String> {
        if now < settled_at {
            return Vec::new();
        }
        self.0
            .drain(..)
            .map(|(name, at)| {
                format!(
                    "{name}: carrier gone (read from sysfs before the link event, {} ms before this line)",
                    now.saturating_sub(at)
                )
            })
            .collect()
    }
}

pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok().filter(|i| *i > 0)
}

fn set_int(fd: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a valid int for the duration of the call and the
    // length is its size.
    last_error(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Sends this socket's packets with a TTL (hop limit) of 255, as STAMP's
/// test packets go out, so that the far end's TTL tells the hops.
fn ttl_255(fd: &impl AsRawFd, v6: bool) -> io::Result<()> {
    if v6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, 255)
    }
}

/// A STAMP session-sender socket: [`udp_prober`] sending with TTL 255.
pub fn stamp_prober(iface: &str, target: IpAddr) -> io::Result<UdpSocket> {
    let s = udp_prober(iface, target)?;
    ttl_255(&s, target.is_ipv6())?;
    Ok(s)
}

/// The STAMP reflector: `port` on every address of one family (IPv6
/// only for IPv6), sending with TTL 255 and told each request's TTL or
/// hop limit, which the answer reports.
pub fn stamp_reflector(v6: bool, port: u16) -> io::Result<UdpSocket> {
    let s = udp_responder(v6, port)?;
    ttl_255(&s, v6)?;
    if v6 {
        set_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    } else {
        set_int(&s, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    Ok(s)
}

/// One datagram as [`recv_with_ttl`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    /// The IP TTL or hop limit it arrived with, when the kernel said.
    pub ttl: Option<u8>,
    /// It was longer than the buffer (the rest is lost).
    pub truncated: bool,
}

/// Reads one datagram and its TTL (a socket from [`stamp_reflector`]);
/// `None` when nothing is queued.
pub fn recv_with_ttl(s: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
    // SAFETY: all-zero sockaddr_storage, iovec and msghdr are valid
    // values; every pointer set below stays valid for the call.
    let mut addr: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one int-sized control message, aligned like cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // size_t on glibc, socklen_t on musl.
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes writable buffers of the lengths given.
    let rc = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    let len = match last_error(rc) {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: the kernel filled `addr` with `msg_namelen` bytes.
    let from = unsafe {
        SockaddrStorage::from_raw(
            (&addr as *const libc::sockaddr_storage).cast(),
            Some(msg.msg_namelen),
        )
    };
    let from = match from {
        Some(a) => match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
            (Some(v4), _) => SocketAddr::V4(SocketAddrV4::from(*v4)),
            (_, Some(v6)) => SocketAddr::V6(SocketAddrV6::from(*v6)),
            _ => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
        },
        None => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    };
    let mut ttl = None;
    // SAFETY: `msg` is the header recvmsg filled; the CMSG macros walk
    // its control buffer within `msg_controllen`, and each data pointer
    // is read only when the message is long enough for an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let is_ttl = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl && h.cmsg_len as usize >= libc::CMSG_LEN(4) as usize {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(Datagram {
        len: len.min(buf.len()),
        from,
        ttl,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static OPENS: AtomicUsize = AtomicUsize::new(0);

    fn missing(_: &str) -> io::Result<CarrierFile> {
        OPENS.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }

    /// A carrier file that cannot be opened is tried once a second, not
    /// on every read (every 5 ms, every millisecond after a loss): before
    /// the fix a second of reads opened it 1000 times.
    #[test]
    fn a_carrier_file_that_cannot_be_opened_is_tried_once_a_second() {
        let mut c = Carriers::with_opener(missing);
        let mut said = Vec::new();
        for now in 0..1000 {
            assert_eq!(c.read("t1a", now, &mut said), CarrierRead::Unknown);
        }
        assert_eq!(OPENS.load(Ordering::SeqCst), 1);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("t1a: its carrier file cannot be read"),
            "{said:?}"
        );
        for now in 1000..2000 {
            c.read("t1a", now, &mut said);
        }
        assert_eq!(OPENS.load(Ordering::SeqCst), 2);
        assert_eq!(said.len(), 1, "said once: {said:?}");
    }

    /// A carrier file standing in for sysfs's, reading "1", in a folder
    /// of this process named by `tag`: (the folder, the file).
    fn fake_carrier(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("wanflash-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("carrier");
        std::fs::write(&p, "1\n").unwrap();
        (dir, p)
    }

    #[test]
    fn a_carrier_read_says_up_down_and_reopens_a_file_that_went() {
        let (dir, p) = fake_carrier("carriers");
        fn here(_: &str) -> io::Result<CarrierFile> {
            let dir =
                std::env::temp_dir().join(format!("wanflash-carriers-{}", std::process::id()));
            CarrierFile::at(&dir.join("carrier"))
        }
        let mut c = Carriers::with_opener(here);
        let mut said = Vec::new();
        assert_eq!(c.read("t3", 0, &mut said), CarrierRead::Up);
        std::fs::write(&p, "0\n").unwrap();
        assert_eq!(c.read("t3", 1, &mut said), CarrierRead::Down);
        assert_eq!(c.current("t3"), CarrierRead::Down);
        // Unreadable contents (as a file of a re-created interface that
        // reads an error): dropped, and opened again on the next read.
        std::fs::write(&p, "x\n").unwrap();
        assert_eq!(c.read("t3", 2, &mut said), CarrierRead::Unknown);
        assert_eq!(c.current("t3"), CarrierRead::Unknown);
        std::fs::write(&p, "1\n").unwrap();
        assert_eq!(c.read("t3", 3, &mut said), CarrierRead::Up);
        assert!(said.is_empty(), "{said:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Nothing is said while carriers are still going; then every loss,
    /// with its age. Said at the loss, before the fix.
    #[test]
    fn carrier_losses_are_said_once_they_have_settled() {
        let mut g = GoneLines::default();
        assert!(!g.pending());
        g.note("eth0", 100);
        g.note("eth2", 103);
        assert!(g.pending());
        assert!(g.take(103, 303).is_empty());
        assert!(g.take(302, 303).is_empty());
        assert!(g.pending());
        let said = g.take(310, 303);
        assert_eq!(
            said,
            [
                "eth0: carrier gone (read from sysfs before the link event, 210 ms before this line)",
                "eth2: carrier gone (read from sysfs before the link event, 207 ms before this line)",
            ]
        );
        assert!(!g.pending());
        assert!(g.take(400, 303).is_empty());
    }

    #[test]
    fn a_carrier_file_is_read_again_from_its_start() {
        let (dir, p) = fake_carrier("carrier");
        let f = CarrierFile::at(&p).unwrap();
        assert!(f.up().unwrap());
        // Rewritten in place, as sysfs shows a new value: read anew.
        std::fs::write(&p, "0\n").unwrap();
        assert!(!f.up().unwrap());
        std::fs::write(&p, "").unwrap();
        assert!(f.up().is_err());
        assert!(CarrierFile::open("../etc").is_err());
        assert!(CarrierFile::open("").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
