//! Timestamps (µs since the Unix epoch) as RFC 3339 text, without a date-time dependency.

/// `us` (µs since the Unix epoch) as RFC 3339 in UTC, to the millisecond.
///
/// ```
/// use dag::metrics::rfc3339;
///
/// assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(rfc3339(1_764_636_085_123_456), "2025-12-02T00:41:25.123Z");
/// ```
pub fn rfc3339(us: u64) -> String {
    let secs = us / 1_000_000;
    let millis = (us / 1_000) % 1_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact for every day a `u64` of µs can reach).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn leap_days_and_century_boundaries_are_dated_right() {
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_399_999_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(1_709_164_800_000_000), "2024-02-29T00:00:00.000Z");
    }
}
