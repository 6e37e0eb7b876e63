"""The independent side of failoverd's STAMP test (tests/stamp.rs): scapy's
STAMP layers (scapy.contrib.stamp, RFC 8762 with RFC 8972's SSID), as
Debian's python3-scapy ships them, encode and decode every packet here.

    stamp_scapy.py probe TARGET PORT SOURCE OTHER_SOURCE
        Session-sender against failoverd's reflector; prints one JSON
        object with what it saw (the Rust test asserts on it).
    stamp_scapy.py reflect PORT LOG
        Session-reflector for failoverd's sender, until killed; every
        test packet's check is appended to LOG as one JSON line.
"""

import json
import socket
import struct
import sys
import time

from scapy.layers.inet import UDP
from scapy.contrib.stamp import (
    ErrorEstimate,
    STAMPSessionReflectorTestUnauthenticated as Reflected,
    STAMPSessionSenderTestUnauthenticated as Sender,
    STAMPTestTLV,
)

NTP_UNIX = 2208988800
# Linux's IP_RECVTTL, which Python's socket module does not name.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)


def dissect(data, sport, dport, cls):
    """Dissects a datagram's payload as scapy does a captured one: under
    its UDP header, whose STAMP port picks the layer. Returns the layer
    and its TLVs. The TLVs are dissected on their own with scapy's
    STAMPTestTLV: Debian's scapy 2.5 reads the TLV list's length from a
    `parent` it does not set on a UDP payload, and fails on any TLV."""
    base, rest = data[:44], data[44:]
    udp = UDP(struct.pack("!HHHH", sport, dport, 8 + len(base), 0) + base)
    p = udp.payload
    if not isinstance(p, cls):
        raise ValueError("not a %s: %r" % (cls.__name__, data))
    tlvs = []
    while len(rest) >= 4:
        t = STAMPTestTLV(rest)
        tlvs.append(t)
        rest = rest[4 + t.len:]
    return p, tlvs


def ntp_now():
    return time.time() + NTP_UNIX


def sender_socket(source, ttl):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    return s


def answers(s, wait):
    """Every datagram that arrives within `wait` seconds."""
    got = []
    end = time.time() + wait
    while True:
        left = end - time.time()
        if left <= 0:
            return got
        s.settimeout(left)
        try:
            data, frm = s.recvfrom(4096)
        except socket.timeout:
            return got
        got.append((data, frm, ntp_now()))


def probe(target, port, source, other):
    out = {"errors": []}
    err = out["errors"]
    s = sender_socket(source, 77)
    me = s.getsockname()[1]
    dest = (target, port)
    ssid = 0x5A5A
    sent = {}
    # 1. A session of 20 test packets, one every 20 ms.
    replies = []
    for seq in range(20):
        p = Sender(seq=seq, ts=ntp_now(),
                   err_estimate=ErrorEstimate(S=0, Z=0, scale=0, multiplier=1),
                   ssid=ssid)
        raw = bytes(p)
        sent[seq] = raw
        s.sendto(raw, dest)
        replies += answers(s, 0.02)
    replies += answers(s, 0.5)
    out["session_replies"] = len(replies)
    own_seqs = []
    for data, frm, t4 in replies:
        r, _ = dissect(data, port, me, Reflected)
        if frm != dest:
            err.append("reply from %r, not %r" % (frm, dest))
        if len(data) != 44:
            err.append("reply of %d bytes to a 44-byte request" % len(data))
        if r.ssid != ssid:
            err.append("SSID %#x, sent %#x" % (r.ssid, ssid))
        req = sent.get(r.seq_sender)
        if req is None:
            err.append("answer to sequence %d, never sent" % r.seq_sender)
            continue
        q, _ = dissect(req, me, port, Sender)
        if abs(float(r.ts_sender) - float(q.ts)) > 1e-6:
            err.append("sender timestamp %s, sent %s" % (r.ts_sender, q.ts))
        if bytes(r.err_estimate_sender) != bytes(q.err_estimate):
            err.append("sender error estimate not copied")
        if r.ttl_sender != 77:
            err.append("sender TTL %d, sent with 77" % r.ttl_sender)
        t1, t2, t3 = float(q.ts), float(r.ts_rx), float(r.ts)
        # One host, one clock: T1 <= T2 <= T3 <= T4, within a second.
        if not (t1 - 0.001 <= t2 <= t3 + 1e-6 and t3 <= t4 + 0.001 and t4 - t1 < 1.0):
            err.append("timestamps out of order: %r" % ((t1, t2, t3, t4),))
        if r.err_estimate.Z != 0 or r.err_estimate.multiplier == 0:
            err.append("reflector error estimate %r" % bytes(r.err_estimate))
        out["reflector_s"] = int(r.err_estimate.S)
        if r.mbz1 != 0 or r.mbz2 != 0:
            err.append("MBZ not zero")
        own_seqs.append(r.seq)
    out["own_seqs"] = own_seqs

    # 2. A request with an RFC 8972 TLV: answered at its size, the TLV
    # copied and flagged U (unrecognised).
    p = Sender(seq=100, ts=ntp_now(), ssid=ssid + 1,
               tlv_objects=[STAMPTestTLV(flags=0, type=200, len=8, value=b"wanflash")])
    raw = bytes(p)
    s.sendto(raw, dest)
    got = answers(s, 0.5)
    out["tlv_request_len"] = len(raw)
    out["tlv_reply_lens"] = [len(d) for d, _, _ in got]
    if got:
        _, tlvs = dissect(got[0][0], port, me, Reflected)
        out["tlv_reply"] = [{"flags": int(t.flags), "type": t.type, "value": t.value.decode()}
                            for t in tlvs]

    # 3. Not answered: too short, too long, from an address that is not a
    # far end of any path.
    s.sendto(bytes(Sender(seq=1, ssid=ssid))[:40], dest)
    s.sendto(bytes(Sender(seq=2, ssid=ssid)) + bytes(1500), dest)
    out["bad_size_replies"] = len(answers(s, 0.5))
    o = sender_socket(other, 64)
    o.sendto(bytes(Sender(seq=3, ts=ntp_now(), ssid=ssid)), dest)
    out["stranger_replies"] = len(answers(o, 0.5))

    # 4. A flood from a far end: the bucket refills (0.5 s), then 400
    # packets as fast as they go; at most the burst and the rate answer.
    time.sleep(0.5)
    t0 = time.time()
    for seq in range(400):
        s.sendto(bytes(Sender(seq=seq, ts=ntp_now(), ssid=ssid + 2)), dest)
    out["flood_send_s"] = time.time() - t0
    out["flood_replies"] = len(answers(s, 0.5))
    print(json.dumps(out))


def reflect(port, log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.bind(("0.0.0.0", port))
    own = {}
    out = open(log, "a", buffering=1)
    print("ready", flush=True)
    while True:
        data, anc, _flags, frm = s.recvmsg(4096, socket.CMSG_SPACE(4))
        t2 = ntp_now()
        ttl = 255
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                ttl = struct.unpack("i", value[:4])[0]
        problems = []
        try:
            q, _ = dissect(data, frm[1], port, Sender)
        except Exception as e:  # logged, and not answered
            out.write(json.dumps({"problems": [str(e)]}) + "\n")
            continue
        if len(data) != 44:
            problems.append("%d bytes, expected 44" % len(data))
        if q.ssid == 0:
            problems.append("SSID 0")
        if q.err_estimate.Z != 0 or q.err_estimate.multiplier == 0:
            problems.append("error estimate %s" % bytes(q.err_estimate).hex())
        if q.mbz != 0:
            problems.append("MBZ not zero")
        if abs(float(q.ts) - t2) > 1.0:
            problems.append("timestamp %s is %.3f s from now" % (q.ts, float(q.ts) - t2))
        key = (frm, q.ssid)
        seq = own.get(key, 0)
        own[key] = seq + 1
        r = Reflected(seq=seq, ts=ntp_now(),
                      err_estimate=ErrorEstimate(S=0, Z=0, scale=0, multiplier=1),
                      ssid=q.ssid, ts_rx=t2, seq_sender=q.seq, ts_sender=q.ts,
                      err_estimate_sender=q.err_estimate, ttl_sender=ttl)
        s.sendto(bytes(r), frm)
        out.write(json.dumps({"seq": q.seq, "ssid": q.ssid, "ttl": ttl,
                              "s": int(q.err_estimate.S), "problems": problems}) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif sys.argv[1] == "reflect":
        reflect(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: stamp_scapy.py probe TARGET PORT SOURCE OTHER | reflect PORT LOG")
