//! Units for configuration values, shared by the kernel and plugins so a
//! duration or a size is written the same way in every file.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A byte size, written as a number or with a unit (`64MiB`, `512KiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        size(d).map(ByteSize)
    }
}

/// A memory limit (a JS isolate's heap), always written with a unit
/// (`64MiB`): a bare number would be a count of bytes, far too few for any
/// heap, so `128` is refused with the spelling meant rather than failing
/// with "Allocation failed" at the first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySize(pub u64);

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parsed = match Raw::deserialize(d)? {
            Raw::Number(n) => Err(unitless_size(&n.to_string())),
            Raw::Text(t) => parse_memory_size(&t),
        };
        parsed.map(MemorySize).map_err(serde::de::Error::custom)
    }
}

/// Parses `"64MiB"`, `"512KiB"`, `"1GiB"`; a number without a unit is an
/// error naming the spellings that would be accepted.
pub fn parse_memory_size(t: &str) -> Result<u64, String> {
    let digits = t.trim();
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(unitless_size(digits));
    }
    parse_size(t)
}

/// The error for a memory size without a unit, saying what to write.
fn unitless_size(n: &str) -> String {
    format!("`{n}` has no unit: a memory limit is written with one, e.g. \"{n}MiB\" (units: KiB, MiB, GiB)")
}

/// A duration, always written with a unit (`250ms`, `30s`, `2m`, `7d`).
///
/// A bare number is refused rather than read as seconds: the original bext
/// and other tools read some of the same keys in milliseconds or days, so
/// guessing would silently change what a file means. Keys that really are a
/// count of milliseconds end in `_ms` and are plain integers instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration(d).map(Span)
    }
}

/// A quantity as written: a bare number (refused, with the spelling meant)
/// or text with its unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(f64),
    Text(String),
}

/// Reads `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"7d"`; refuses a bare number.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let parsed = match Raw::deserialize(d)? {
        Raw::Number(n) => Err(unitless(&n.to_string())),
        Raw::Text(t) => parse_duration(&t),
    };
    parsed.map_err(serde::de::Error::custom)
}

/// The error for a duration without a unit, saying what to write instead.
fn unitless(n: &str) -> String {
    format!(
        "`{n}` has no unit: a duration is written with one, e.g. \"{n}s\", \"{n}m\", \"{n}h\" or \"{n}d\" \
         (units: ms, s, m, h, d)"
    )
}

/// Parses `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"7d"`; a number without a
/// unit is an error naming the spellings that would be accepted.
pub fn parse_duration(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a duration like \"10s\" or \"500ms\""))?;
    let secs = match unit.trim() {
        "" => return Err(unitless(num)),
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => return Err(format!("unknown unit `{u}` in `{t}` (use ms, s, m, h or d)")),
    };
    // A number too large for a `Duration` is an error, not a panic.
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{t}` is too long a duration"))
}

/// Reads `"10MiB"`, `"64kb"`, `"1g"` or a number of bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(b) => Ok(b),
        Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses `"10MiB"`, `"64kb"`, `"1g"` (binary multiples) or plain bytes.
pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a size like \"10MiB\""))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown unit `{u}` in `{t}` (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` is too large"))
}

/// The longest a deploy preview may live: ten years (the lifetime is
/// added to the current time as SQLite stores it). One range for the
/// platform file's `[platform] preview_ttl`, the deploy manifest's
/// `preview_ttl` and a deploy's `ttl=`, so a file is refused where it is
/// written rather than at every preview deploy.
pub const MAX_PREVIEW_TTL: u64 = 3650 * 86400;

/// Why a preview lifetime of `secs` seconds is out of range, if it is.
pub fn preview_ttl_problem(secs: u64) -> Option<String> {
    (!(1..=MAX_PREVIEW_TTL).contains(&secs)).then(|| {
        format!(
            "a preview lives {secs} s: write \"1s\" to \"{}d\" (the default is \"7d\")",
            MAX_PREVIEW_TTL / 86400
        )
    })
}

/// A `preview_ttl` key: a [`Span`] in [`preview_ttl_problem`]'s range.
pub fn preview_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
    let span = Span::deserialize(d)?;
    match preview_ttl_problem(span.0.as_secs()) {
        Some(reason) => Err(serde::de::Error::custom(reason)),
        None => Ok(span),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10 parsecs").is_err());
        // A number without a unit is refused, never read as seconds.
        let err = parse_duration("60").unwrap_err();
        assert!(err.contains("no unit") && err.contains("\"60s\""), "{err}");
        let err = serde_json::from_value::<Span>(serde_json::json!(7))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"7d\""), "{err}");
        assert_eq!(
            serde_json::from_value::<Span>(serde_json::json!("7d")).unwrap().0,
            Duration::from_secs(7 * 86400)
        );
        // Too large for a Duration: an error, never a panic.
        assert!(parse_duration("1e300s").is_err());
        assert!(parse_duration("99999999999999999999999d").is_err());
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10mb"), Ok(10 << 20));
        assert!(parse_size("lots").is_err());
        // A memory limit without a unit is refused, number or text.
        let err = serde_json::from_value::<MemorySize>(serde_json::json!(128))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no unit") && err.contains("\"128MiB\""), "{err}");
        let err = parse_memory_size("128").unwrap_err();
        assert!(err.contains("\"128MiB\""), "{err}");
        assert_eq!(parse_memory_size("128MiB"), Ok(128 << 20));
        assert_eq!(
            serde_json::from_value::<MemorySize>(serde_json::json!("16mb"))
                .unwrap()
                .0,
            16 << 20
        );
    }
}
