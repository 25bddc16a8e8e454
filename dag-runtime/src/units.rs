//! Durations and sizes as users write them in settings and environment variables.

use std::time::Duration;

/// `250ms`, `2s`, `1m`, `1h`, `1.5s`, or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// use dag::units::parse_duration;
///
/// assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
/// assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// A number of bytes with an optional unit: `B`, `KB`, `MB`, `GB` (powers of 1000) or `KiB`,
/// `MiB`, `GiB` (powers of 1024).
///
/// ```
/// use dag::units::parse_size;
///
/// assert_eq!(parse_size("4MiB"), Some(4 << 20));
/// assert_eq!(parse_size("512 KB"), Some(512_000));
/// assert_eq!(parse_size("1000"), Some(1000));
/// assert_eq!(parse_size("lots"), None);
/// ```
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let per_unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(per_unit)
}
