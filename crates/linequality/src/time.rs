//! Dates without a date library: Unix milliseconds to RFC 3339 (UTC) and
//! back to calendar months, and `24h`-style durations.

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a date (`days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25T22:46:11.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Unix ms of the first instant of the month holding `ms`, and of the
/// next month: `(start, end, "2026-11")`.
pub fn month_of(ms: i64) -> (i64, i64, String) {
    let (y, m, _) = civil_from_days(ms.div_euclid(86_400_000));
    let start = days_from_civil(y, m, 1) * 86_400_000;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm, 1) * 86_400_000;
    (start, end, format!("{y:04}-{m:02}"))
}

/// `12.500 s`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// `90s`, `15m`, `24h`, `30d` (or a plain number of seconds) to seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad =
        || format!("`{s}` is not a duration: use a number and a unit, like 90s, 15m, 24h or 30d");
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1795646771` = Wed Nov 25 22:46:11 UTC 2026.
        assert_eq!(rfc3339(1_795_646_771_123), "2026-11-25T22:46:11.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for d in [-1000, 0, 11_016, 20_000, 60_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        let (s, e, name) = month_of(1_795_646_771_123);
        assert_eq!(name, "2026-11");
        assert_eq!(rfc3339(s), "2026-11-01T00:00:00.000Z");
        assert_eq!(rfc3339(e), "2026-12-01T00:00:00.000Z");
        assert_eq!(month_of(rfc3339_ms(2026, 12, 31)).2, "2026-12");
    }

    fn rfc3339_ms(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * 86_400_000
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("90"), Ok(90));
        for bad in ["", "h", "24x", "-1h", "0h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds(12_500), "12.500 s");
    }
}
