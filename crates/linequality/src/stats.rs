//! One bucket's statistics: the accumulator of the bucket in progress and
//! the compact record a tier keeps once the bucket is closed.
//!
//! RTT median and p95 come from a fixed-size histogram with logarithmic
//! buckets ([`Histogram`]): exact below 32 us, then 32 sub-buckets per
//! power of two. A quantile is reported as the middle of the bucket that
//! holds the nearest-rank sample, clamped to the observed min and max, so
//! it is within 1/64 (1.6 %) of the exact nearest-rank value. Min, max,
//! mean and standard deviation are exact (Welford's method, population
//! standard deviation).

use std::mem::size_of;

/// Sub-buckets per power of two: 2^5.
const SUB_BITS: u32 = 5;
const SUB: u32 = 1 << SUB_BITS;
/// Buckets for values up to `u32::MAX` microseconds (71 minutes).
pub const HIST_BUCKETS: usize = (SUB + (32 - SUB_BITS) * SUB) as usize;

/// "No value" in a closed bucket (no reply, no consecutive pair).
const NONE: u32 = u32::MAX;

/// Relative error bound of a reported quantile.
pub const QUANTILE_ERROR: f64 = 1.0 / 64.0;

/// Fixed-size histogram of microsecond values, logarithmic buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// [`HIST_BUCKETS`] counts (none in [`Histogram::UNALLOCATED`]).
    counts: Vec<u32>,
    n: u64,
    /// The used index range, so that clearing and walking are cheap.
    lo: usize,
    hi: usize,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; HIST_BUCKETS],
            n: 0,
            lo: HIST_BUCKETS,
            hi: 0,
        }
    }
}

impl Histogram {
    /// A stand-in that holds no memory, for the moment an accumulator's
    /// histogram is moved out of it ([`Acc::reset`]); never counted into.
    const UNALLOCATED: Histogram = Histogram {
        counts: Vec::new(),
        n: 0,
        lo: HIST_BUCKETS,
        hi: 0,
    };
}

/// The bucket index of a value.
pub fn hist_index(v: u64) -> usize {
    let v = v.min(u64::from(u32::MAX)) as u32;
    if v < SUB {
        return v as usize;
    }
    let e = 31 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + (e - SUB_BITS) * SUB + sub) as usize
}

/// The values a bucket holds: `[lo, hi]`, inclusive.
pub fn hist_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return (i, i);
    }
    let e = (i - sub) / sub;
    let s = (i - sub) % sub;
    let lo = (sub + s) << e;
    (lo, lo + (1 << e) - 1)
}

impl Histogram {
    pub fn add(&mut self, v: u64) {
        let i = hist_index(v);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.n += 1;
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn clear(&mut self) {
        if self.n > 0 {
            self.counts[self.lo..=self.hi].fill(0);
        }
        self.n = 0;
        self.lo = HIST_BUCKETS;
        self.hi = 0;
    }

    /// The nearest-rank `q` quantile (rank `ceil(q * n)`), as the middle
    /// of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for i in self.lo..=self.hi {
            seen += u64::from(self.counts[i]);
            if seen >= rank {
                let (lo, hi) = hist_bounds(i);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }
}

/// Sum and count of absolute delay variations (RFC 3393 IPDV).
#[derive(Debug, Clone, Copy, Default)]
struct Ipdv {
    sum_us: u64,
    n: u64,
}

impl Ipdv {
    fn add(&mut self, d: u64) {
        self.sum_us = self.sum_us.saturating_add(d);
        self.n += 1;
    }
    fn mean(&self) -> u32 {
        match self.sum_us.checked_div(self.n) {
            Some(m) => clamp32(m),
            None => NONE,
        }
    }
}

fn clamp32(v: u64) -> u32 {
    v.min(u64::from(NONE - 1)) as u32
}

/// Interface counters as read from the kernel (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
}

impl Counters {
    fn as_array(&self) -> [u64; 8] {
        [
            self.rx_bytes,
            self.tx_bytes,
            self.rx_packets,
            self.tx_packets,
            self.rx_errors,
            self.tx_errors,
            self.rx_drops,
            self.tx_drops,
        ]
    }

    /// What was counted since `prev`; a counter that went backwards (the
    /// interface was recreated) counts from zero.
    pub fn delta(&self, prev: &Counters) -> [u64; 8] {
        let (a, b) = (self.as_array(), prev.as_array());
        let mut d = [0u64; 8];
        for i in 0..8 {
            d[i] = if a[i] >= b[i] { a[i] - b[i] } else { a[i] };
        }
        d
    }
}

/// The bucket in progress.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acc {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub loss_run: u64,
    hist: Histogram,
    rtt_min: u64,
    rtt_max: u64,
    mean: f64,
    m2: f64,
    ipdv_rtt: Ipdv,
    ipdv_fwd: Ipdv,
    ipdv_rev: Ipdv,
    pub carrier_changes: u64,
    pub link_failures: u64,
    pub counters: [u64; 8],
    /// Carrier terms (ITU-T G.826): seconds booked into this bucket.
    pub seconds: Seconds,
    /// Something was recorded in it.
    pub touched: bool,
}

/// Seconds of a bucket in carrier terms (ITU-T G.826, see
/// [`crate::g826`]): observed, unavailable, and, among the available
/// ones, errored (ES) and severely errored (SES, also counted as ES).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seconds {
    pub observed: u64,
    pub unavailable: u64,
    pub errored: u64,
    pub severely_errored: u64,
}

impl Seconds {
    pub fn add(&mut self, o: &Seconds) {
        self.observed = self.observed.saturating_add(o.observed);
        self.unavailable = self.unavailable.saturating_add(o.unavailable);
        self.errored = self.errored.saturating_add(o.errored);
        self.severely_errored = self.severely_errored.saturating_add(o.severely_errored);
    }

    /// In 16 bits each, saturating: an hour is 3600 s.
    fn pack(&self) -> [u16; 4] {
        [
            self.observed,
            self.unavailable,
            self.errored,
            self.severely_errored,
        ]
        .map(|v| v.min(u64::from(u16::MAX)) as u16)
    }

    fn unpack(p: [u16; 4]) -> Seconds {
        Seconds {
            observed: u64::from(p[0]),
            unavailable: u64::from(p[1]),
            errored: u64::from(p[2]),
            severely_errored: u64::from(p[3]),
        }
    }
}

impl Acc {
    pub fn rtt(&mut self, rtt_us: u64) {
        let n = self.hist.count();
        if n == 0 {
            self.rtt_min = rtt_us;
            self.rtt_max = rtt_us;
        } else {
            self.rtt_min = self.rtt_min.min(rtt_us);
            self.rtt_max = self.rtt_max.max(rtt_us);
        }
        self.hist.add(rtt_us);
        let x = rtt_us as f64;
        let delta = x - self.mean;
        self.mean += delta / (n + 1) as f64;
        self.m2 += delta * (x - self.mean);
        self.touched = true;
    }

    /// IPDV of consecutive packets: of the round trip, and per direction
    /// when the one-way delays are known.
    pub fn ipdv(&mut self, rtt: u64, fwd: Option<u64>, rev: Option<u64>) {
        self.ipdv_rtt.add(rtt);
        if let Some(f) = fwd {
            self.ipdv_fwd.add(f);
        }
        if let Some(r) = rev {
            self.ipdv_rev.add(r);
        }
    }

    pub fn loss_run(&mut self, run: u64) {
        self.loss_run = self.loss_run.max(run);
    }

    pub fn close(&mut self) -> Bucket {
        let n = self.hist.count();
        let q = |v: Option<u64>, min: u64, max: u64| v.map_or(NONE, |v| clamp32(v.clamp(min, max)));
        let rtt = [
            if n > 0 { clamp32(self.rtt_min) } else { NONE },
            q(self.hist.quantile(0.5), self.rtt_min, self.rtt_max),
            if n > 0 {
                clamp32(self.mean.round() as u64)
            } else {
                NONE
            },
            q(self.hist.quantile(0.95), self.rtt_min, self.rtt_max),
            if n > 0 { clamp32(self.rtt_max) } else { NONE },
            if n > 0 {
                clamp32((self.m2 / n as f64).sqrt().round() as u64)
            } else {
                NONE
            },
            self.ipdv_rtt.mean(),
            self.ipdv_fwd.mean(),
            self.ipdv_rev.mean(),
        ];
        let (scale, rtt) = scaled(rtt);
        let c = &self.counters;
        let b = Bucket {
            rtt,
            seconds: self.seconds.pack(),
            counts: [
                self.loss_run,
                self.duplicates,
                self.reordered,
                self.carrier_changes,
                self.link_failures,
                c[4],
                c[5],
                c[6],
                c[7],
            ]
            .map(count16),
            traffic: [c[0], c[1], c[2], c[3]].map(count16),
            probes: [self.sent, self.received, self.lost].map(count24),
            flags: flags(scale, self.touched),
        };
        self.reset();
        b
    }

    /// Empties the accumulator for the next bucket, keeping the
    /// histogram's memory: a bucket is closed for every tier of every
    /// circuit, and for each bucket a clock step skips (see
    /// [`Bucket::default`]), so it must not allocate.
    fn reset(&mut self) {
        let mut hist = std::mem::replace(&mut self.hist, Histogram::UNALLOCATED);
        hist.clear();
        *self = Acc { hist, ..Acc::EMPTY };
    }

    /// Every field as a new accumulator has it, but the histogram's memory.
    const EMPTY: Acc = Acc {
        sent: 0,
        received: 0,
        lost: 0,
        duplicates: 0,
        reordered: 0,
        loss_run: 0,
        hist: Histogram::UNALLOCATED,
        rtt_min: 0,
        rtt_max: 0,
        mean: 0.0,
        m2: 0.0,
        ipdv_rtt: Ipdv { sum_us: 0, n: 0 },
        ipdv_fwd: Ipdv { sum_us: 0, n: 0 },
        ipdv_rev: Ipdv { sum_us: 0, n: 0 },
        carrier_changes: 0,
        link_failures: 0,
        counters: [0; 8],
        seconds: Seconds {
            observed: 0,
            unavailable: 0,
            errored: 0,
            severely_errored: 0,
        },
        touched: false,
    };
}

/// A closed bucket as a tier keeps it, 62 bytes (84 before issue 17's
/// memory bound; the export, in 64-bit integers, is unchanged and each
/// column converts back as follows):
///
/// - probes sent, received and lost in 24 bits ([`count24`]): exact up
///   to 8,388,607 per bucket, which a bucket of 23 h at the fastest probe
///   interval (10 ms) does not reach; above, within 2^-18, never wrapping;
/// - the nine RTT and delay-variation values (min, median, mean, p95, max,
///   standard deviation, IPDV of the round trip, forward, reverse) in 16
///   bits each, shifted right by a per-bucket `scale` chosen so that the
///   largest fits: exact to the microsecond while the largest is under
///   65.5 ms, else within 2^(scale-1) us (under 1/32768 of the max; the
///   largest, `u32::MAX` us, saturates there);
/// - the carrier-term seconds ([`Seconds`]: observed, unavailable, ES,
///   SES) in 16 bits each: exact up to 65,535, saturating there (a 1 h
///   bucket holds 3600 s, so exact for tiers up to 18 h wide);
/// - the longest loss run, duplicates, reordering, carrier changes, bond
///   link failures and the interface errors and drops in 16 bits
///   ([`count16`]): exact up to 32,767 per bucket, then within 1/1024
///   (rounded down), saturating only past 2^41;
/// - the interface bytes and packets received and sent in 16 bits
///   ([`count16`]): within 1/1024 (0.1 %, rounded down, so a total is
///   never overstated), exact under 32,768; up to 2^41 (2 TiB) a bucket;
/// - the scale (5 bits) and whether anything was recorded (bit 7) in one
///   byte.
///
/// The 16-bit fields come first so that nothing is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    rtt: [u16; 9],
    /// Observed, unavailable, errored, severely errored seconds.
    seconds: [u16; 4],
    /// [`count16`] of: loss run, duplicates, reordered, carrier changes,
    /// link failures, rx errors, tx errors, rx drops, tx drops.
    counts: [u16; 9],
    /// [`count16`] of: rx bytes, tx bytes, rx packets, tx packets.
    traffic: [u16; 4],
    /// [`count24`] of: sent, received, lost.
    probes: [[u8; 3]; 3],
    /// The RTT scale (low 5 bits) and "touched" (bit 7).
    flags: u8,
}

const TOUCHED: u8 = 0x80;

fn flags(scale: u8, touched: bool) -> u8 {
    (scale & 0x1f) | if touched { TOUCHED } else { 0 }
}

/// "No value" among the scaled RTT values.
const NONE16: u16 = u16::MAX;

/// The smallest shift that makes every present value fit under
/// [`NONE16`], and the values shifted (rounded to nearest).
fn scaled(v: [u32; 9]) -> (u8, [u16; 9]) {
    let max = v.iter().filter(|x| **x != NONE).max().copied().unwrap_or(0);
    let mut scale = 0u8;
    while (u64::from(max) + ((1u64 << scale) >> 1)) >> scale >= u64::from(NONE16) {
        scale += 1;
    }
    let half = (1u64 << scale) >> 1;
    (
        scale,
        v.map(|x| {
            if x == NONE {
                NONE16
            } else {
                ((u64::from(x) + half) >> scale) as u16
            }
        }),
    )
}

/// A count in `bits` bits (16 or 24): exact below 2^(bits-1); above, a
/// flag bit, a 5-bit exponent and a (bits-6)-bit mantissa under an
/// implicit leading one, rounded down (so within 2^-(bits-6) of the
/// value, never above it), saturating at the largest code.
fn pack_count(v: u64, bits: u32) -> u32 {
    let flag = 1u64 << (bits - 1);
    if v < flag {
        return v as u32;
    }
    let mbits = bits - 6;
    let e = (63 - v.leading_zeros()).saturating_sub(mbits).min(31);
    let one = 1u64 << mbits;
    let m = (v >> e).min(2 * one - 1) - one;
    (flag | (u64::from(e) << mbits) | m) as u32
}

/// The inverse of [`pack_count`].
fn unpack_count(c: u32, bits: u32) -> u64 {
    let flag = 1u32 << (bits - 1);
    if c & flag == 0 {
        return u64::from(c);
    }
    let mbits = bits - 6;
    let e = (c >> mbits) & 31;
    let m = u64::from(c & ((1 << mbits) - 1));
    ((1u64 << mbits) + m) << e
}

/// A count in 16 bits: exact below 32,768; above, a 5-bit exponent and a
/// 10-bit mantissa (within 1/1024), saturating at 2^41.
pub fn count16(v: u64) -> u16 {
    pack_count(v, 16) as u16
}

/// The inverse of [`count16`].
pub fn uncount16(c: u16) -> u64 {
    unpack_count(u32::from(c), 16)
}

/// A count in 24 bits (little-endian): exact below 8,388,608; above, a
/// 5-bit exponent and an 18-bit mantissa (within 2^-18), saturating near
/// 2^50.
pub fn count24(v: u64) -> [u8; 3] {
    let c = pack_count(v, 24).to_le_bytes();
    [c[0], c[1], c[2]]
}

/// The inverse of [`count24`].
pub fn uncount24(c: [u8; 3]) -> u64 {
    unpack_count(u32::from_le_bytes([c[0], c[1], c[2], 0]), 24)
}

/// Bytes one bucket takes in a tier.
pub const BUCKET_BYTES: usize = size_of::<Bucket>();
// The base's figure, which the builder's memory estimate uses, is this one.
const _: () = assert!(BUCKET_BYTES == wanflash_schema::recording::BUCKET_BYTES);

/// The empty bucket, as an accumulator that saw nothing closes it.
static EMPTY: std::sync::OnceLock<Bucket> = std::sync::OnceLock::new();

impl Default for Bucket {
    /// The empty bucket: what a tier stores for every bucket nobody
    /// recorded in, up to a whole ring's worth after a clock step. It was
    /// an accumulator made and closed each time, its RTT histograms
    /// allocated, zeroed and freed per bucket (99,485 allocations for
    /// one step in `tests/memory.rs`): for the two steps of a box
    /// booted on a wrong RTC (a ring of every tier of every circuit each),
    /// failoverd's loop stood still for 20 s under QEMU.
    fn default() -> Self {
        *EMPTY.get_or_init(|| Acc::default().close())
    }
}

impl Bucket {
    /// The bucket a row of an export describes (the inverse of `row`,
    /// exact for what `row` gives).
    pub(crate) fn from_row(r: &crate::export::Row) -> Bucket {
        let o = |v: Option<u64>| v.map_or(NONE, clamp32);
        let (scale, rtt) = scaled([
            o(r.rtt_min_us),
            o(r.rtt_median_us),
            o(r.rtt_mean_us),
            o(r.rtt_p95_us),
            o(r.rtt_max_us),
            o(r.rtt_stddev_us),
            o(r.ipdv_us),
            o(r.ipdv_forward_us),
            o(r.ipdv_reverse_us),
        ]);
        Bucket {
            rtt,
            seconds: Seconds {
                observed: r.observed_s.unwrap_or(0),
                unavailable: r.unavailable_s.unwrap_or(0),
                errored: r.errored_s.unwrap_or(0),
                severely_errored: r.severely_errored_s.unwrap_or(0),
            }
            .pack(),
            counts: [
                r.loss_run,
                r.duplicates,
                r.reordered,
                r.carrier_changes,
                r.link_failures,
                r.rx_errors,
                r.tx_errors,
                r.rx_drops,
                r.tx_drops,
            ]
            .map(count16),
            traffic: [r.rx_bytes, r.tx_bytes, r.rx_packets, r.tx_packets].map(count16),
            probes: [r.sent, r.received, r.lost].map(count24),
            flags: flags(scale, true),
        }
    }

    /// Seconds decided after the bucket closed (G.826's look-back): added
    /// to it, saturating.
    pub(crate) fn add_seconds(&mut self, s: &Seconds) {
        let mut mine = Seconds::unpack(self.seconds);
        mine.add(s);
        self.seconds = mine.pack();
        self.flags |= TOUCHED;
    }

    /// Nothing was recorded in this bucket (the daemon was not running,
    /// or the clock jumped).
    pub fn is_empty(&self) -> bool {
        self.flags & TOUCHED == 0
    }

    fn scale(&self) -> u8 {
        self.flags & 0x1f
    }

    pub(crate) fn row(&self, start_ms: i64) -> crate::export::Row {
        let scale = self.scale();
        let r = |i: usize| (self.rtt[i] != NONE16).then(|| u64::from(self.rtt[i]) << scale);
        let n = |i: usize| uncount16(self.counts[i]);
        let t = |i: usize| uncount16(self.traffic[i]);
        let p = |i: usize| uncount24(self.probes[i]);
        crate::export::Row {
            start_ms,
            sent: p(0),
            received: p(1),
            lost: p(2),
            loss_run: n(0),
            duplicates: n(1),
            reordered: n(2),
            rtt_min_us: r(0),
            rtt_median_us: r(1),
            rtt_mean_us: r(2),
            rtt_p95_us: r(3),
            rtt_max_us: r(4),
            rtt_stddev_us: r(5),
            ipdv_us: r(6),
            ipdv_forward_us: r(7),
            ipdv_reverse_us: r(8),
            carrier_changes: n(3),
            link_failures: n(4),
            rx_bytes: t(0),
            tx_bytes: t(1),
            rx_packets: t(2),
            tx_packets: t(3),
            rx_errors: n(5),
            tx_errors: n(6),
            rx_drops: n(7),
            tx_drops: n(8),
            observed_s: Some(u64::from(self.seconds[0])),
            unavailable_s: Some(u64::from(self.seconds[1])),
            errored_s: Some(u64::from(self.seconds[2])),
            severely_errored_s: Some(u64::from(self.seconds[3])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_bucket_takes_62_bytes() {
        // 76 before the carrier terms' four 16-bit counts (issue 17), 84
        // with them, 62 since the denser encoding (issue 17, item 7).
        assert_eq!(BUCKET_BYTES, 62);
    }

    #[test]
    fn counts_in_16_bits_are_exact_then_within_a_thousandth() {
        for v in [0u64, 1, 4095, 32_767] {
            assert_eq!(uncount16(count16(v)), v);
        }
        for v in [32_768u64, 100_000, 1_234_567, 987_654_321_012] {
            let back = uncount16(count16(v));
            assert!(
                back <= v && (v - back) as f64 <= v as f64 / 1024.0,
                "{v} -> {back}"
            );
        }
        assert_eq!(uncount16(count16(u64::MAX)), 2047 << 31);
    }

    #[test]
    fn counts_in_24_bits_are_exact_to_8_million_then_within_2_to_the_minus_18() {
        // A 1 h bucket at the fastest interval (10 ms): 360,000 probes.
        for v in [0u64, 1, 360_000, 8_388_607] {
            assert_eq!(uncount24(count24(v)), v);
        }
        for v in [8_388_608u64, 8_388_609, 123_456_789_012, 1 << 49] {
            let back = uncount24(count24(v));
            assert!(back <= v && (v - back) << 18 <= v, "{v} -> {back}");
        }
        // Saturates at the largest code, never wraps to a small number.
        let top = uncount24(count24(u64::MAX));
        assert_eq!(top, ((1 << 19) - 1) << 31);
        assert_eq!(uncount24(count24(top)), top);
        // Every decoded value encodes to itself (export -> restore).
        for v in [40_000u64, 33_333, 9_999_999_999] {
            let c = count16(v);
            assert_eq!(count16(uncount16(c)), c);
            let c = count24(v);
            assert_eq!(count24(uncount24(c)), c);
        }
    }

    #[test]
    fn an_accumulator_closed_is_empty_again_and_the_empty_bucket_is_what_it_closes_to() {
        let mut a = Acc::default();
        assert_eq!(Bucket::default(), Acc::default().close());
        assert_eq!(a.clone().close(), Bucket::default());
        // Filled in every field, closed: the next bucket starts from
        // nothing, with the histogram's memory kept.
        a.sent = 5;
        a.received = 4;
        a.lost = 1;
        a.duplicates = 1;
        a.reordered = 1;
        a.loss_run(3);
        for rtt in [20_000, 25_000, 900_000] {
            a.rtt(rtt);
        }
        a.ipdv(500, Some(200), Some(300));
        a.carrier_changes = 1;
        a.link_failures = 1;
        a.counters = [7; 8];
        a.seconds = Seconds {
            observed: 10,
            unavailable: 1,
            errored: 2,
            severely_errored: 1,
        };
        a.touched = true;
        let hist = a.hist.counts.as_ptr();
        assert_ne!(a.close(), Bucket::default());
        assert_eq!(a.close(), Bucket::default(), "a field outlived its bucket");
        assert_eq!(a.hist.counts.as_ptr(), hist, "the histogram was made again");
        assert_eq!(a.hist.quantile(0.5), None);
    }

    #[test]
    fn a_bucket_gives_back_what_it_was_given_within_the_stated_precision() {
        let mut a = Acc {
            sent: 360_000,
            received: 359_993,
            lost: 7,
            loss_run: 40_000,
            duplicates: 65_535,
            carrier_changes: 3,
            counters: [
                20_250_000_000,
                1 << 45,
                30_000,
                40_000,
                0,
                1,
                32_767,
                32_768,
            ],
            seconds: Seconds {
                observed: 3600,
                unavailable: 70_000,
                errored: 12,
                severely_errored: 11,
            },
            touched: true,
            ..Acc::default()
        };
        let r = a.close().row(0);
        assert_eq!((r.sent, r.received, r.lost), (360_000, 359_993, 7));
        let within = |got: u64, v: u64| got <= v && (v - got) * 1024 <= v;
        assert!(within(r.loss_run, 40_000), "{}", r.loss_run);
        assert!(within(r.duplicates, 65_535), "{}", r.duplicates);
        assert_eq!(r.carrier_changes, 3);
        assert!(within(r.rx_bytes, 20_250_000_000), "{}", r.rx_bytes);
        assert!(within(r.tx_bytes, 1 << 45) || r.tx_bytes == uncount16(u16::MAX));
        assert_eq!(r.rx_packets, 30_000);
        assert!(within(r.tx_packets, 40_000));
        assert_eq!((r.rx_errors, r.tx_errors, r.rx_drops), (0, 1, 32_767));
        assert!(within(r.tx_drops, 32_768));
        // Seconds: exact, saturating at 65,535 (an 18 h bucket).
        assert_eq!(
            (
                r.observed_s,
                r.unavailable_s,
                r.errored_s,
                r.severely_errored_s
            ),
            (Some(3600), Some(65_535), Some(12), Some(11))
        );
        // And back: the row makes the same bucket.
        assert_eq!(Bucket::from_row(&r).row(0), r);
    }

    #[test]
    fn rtt_values_are_exact_under_65_ms_and_within_the_scale_above() {
        let mut a = Acc::default();
        for v in [12_345u64, 65_000] {
            a.rtt(v);
        }
        let r = a.close().row(0);
        assert_eq!((r.rtt_min_us, r.rtt_max_us), (Some(12_345), Some(65_000)));
        let mut a = Acc::default();
        for v in [20_001u64, 1_000_003] {
            a.rtt(v);
        }
        let r = a.close().row(0);
        // Largest 1 s: scale 4 (steps of 16 us), within 8 us.
        assert_eq!(r.rtt_min_us, Some(20_000));
        assert_eq!(r.rtt_max_us, Some(1_000_000));
        assert_eq!(r.rtt_mean_us, Some(510_000));
    }

    #[test]
    fn histogram_index_and_bounds_agree_everywhere() {
        assert_eq!(HIST_BUCKETS, 896);
        let mut prev_hi = None;
        for i in 0..HIST_BUCKETS {
            let (lo, hi) = hist_bounds(i);
            assert!(lo <= hi);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i} follows bucket {}", i - 1);
            }
            assert_eq!(hist_index(lo), i);
            assert_eq!(hist_index(hi), i);
            // Width at most 1/32 of the lower bound: half of it is 1/64.
            assert!((hi - lo + 1) * 32 <= lo.max(32), "bucket {i}: {lo}..{hi}");
            prev_hi = Some(hi);
        }
        assert_eq!(prev_hi, Some(u64::from(u32::MAX)));
        assert_eq!(hist_index(u64::MAX), HIST_BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_documented_bound_of_nearest_rank() {
        let mut h = Histogram::default();
        // 10, 20, ..., 100 ms: nearest-rank median is the 5th (50 ms), p95
        // the 10th (100 ms).
        for ms in 1..=10u64 {
            h.add(ms * 10_000);
        }
        let m = h.quantile(0.5).unwrap() as f64;
        let p = h.quantile(0.95).unwrap() as f64;
        assert!((m - 50_000.0).abs() <= 50_000.0 * QUANTILE_ERROR, "{m}");
        assert!((p - 100_000.0).abs() <= 100_000.0 * QUANTILE_ERROR, "{p}");
        // Small values are exact.
        h.clear();
        for v in [3, 1, 2, 9, 7] {
            h.add(v);
        }
        assert_eq!(h.quantile(0.5), Some(3));
        assert_eq!(h.quantile(0.95), Some(9));
        h.clear();
        assert_eq!(h.quantile(0.5), None);
    }

    #[test]
    fn accumulator_gives_exact_min_mean_max_stddev() {
        let mut a = Acc::default();
        for v in [2_000u64, 4_000, 4_000, 4_000, 5_000, 5_000, 7_000, 9_000] {
            a.rtt(v);
        }
        a.received = 8;
        let b = a.close();
        let r = b.row(0);
        assert_eq!(r.rtt_min_us, Some(2_000));
        assert_eq!(r.rtt_max_us, Some(9_000));
        assert_eq!(r.rtt_mean_us, Some(5_000));
        // The textbook example: population standard deviation 2.
        assert_eq!(r.rtt_stddev_us, Some(2_000));
        assert_eq!(r.ipdv_us, None);
        // The accumulator starts afresh.
        let empty = a.close();
        assert!(empty.is_empty());
        assert_eq!(empty.row(0).rtt_median_us, None);
    }
}
