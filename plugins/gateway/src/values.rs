//! Header values that cost a response no allocation and no reference
//! count: configured values kept once over `'static` strings, and small
//! counts from one table.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use http::HeaderValue;

/// Counts below this have a header value made once per process.
const SMALL_COUNTS: usize = 1024;

/// `0`, `1`... `1023` as header values over one static string: most
/// remaining counts and reset times are small, and cloning a static
/// value neither allocates nor touches a reference count.
static SMALL_COUNT_VALUES: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    let digits: String = (0..SMALL_COUNTS).map(|n| n.to_string()).collect();
    let digits: &'static str = Box::leak(digits.into_boxed_str());
    let mut at = 0;
    (0..SMALL_COUNTS)
        .map(|n| {
            let len = n.checked_ilog10().unwrap_or(0) as usize + 1;
            at += len;
            HeaderValue::from_static(&digits[at - len..at])
        })
        .collect()
});

/// A count as a header value, from the table when it is small.
pub(crate) fn count_value(n: impl Into<u64>) -> HeaderValue {
    let n: u64 = n.into();
    match SMALL_COUNT_VALUES.get(n as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

/// How many bytes of configured values [`lasting`] keeps for the
/// process's life: far more than any configuration holds, so only a
/// stream of ever-new values (a version string changed on every deploy,
/// for years) reaches it, and then values are simply counted.
const KEPT_BYTES: usize = 1 << 20;

/// A header value made from configuration, over a `'static` string so a
/// response's copy is a plain copy: a reference-counted value costs two
/// atomic operations per response. Each distinct string is kept once for
/// the process's life (a process-wide interner by design, not state that
/// must survive a reload), so reloads of the same configuration add
/// nothing; past [`KEPT_BYTES`], and for a value that is not visible ASCII
/// (obs-text), the value stays as it is.
pub(crate) fn lasting(value: HeaderValue) -> HeaderValue {
    static KEPT: LazyLock<Mutex<(HashSet<&'static str>, usize)>> = LazyLock::new(Default::default);
    let Ok(text) = value.to_str() else {
        return value;
    };
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let (strings, bytes) = &mut *kept;
    let text: &'static str = match strings.get(text) {
        Some(t) => t,
        None if *bytes + text.len() > KEPT_BYTES => return value,
        None => {
            let t: &'static str = Box::leak(text.into());
            strings.insert(t);
            *bytes += t.len();
            t
        }
    };
    HeaderValue::from_static(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_the_same_from_the_table_and_beyond_it() {
        for n in [0u64, 1, 9, 10, 99, 100, 999, 1000, 1023, 1024, 1_000_000] {
            assert_eq!(count_value(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn lasting_values_read_the_same_and_non_ascii_ones_stay_counted() {
        assert_eq!(lasting(HeaderValue::from_static("1000;w=60")), "1000;w=60");
        let first = lasting(HeaderValue::from(42u32));
        let again = lasting(HeaderValue::from(42u32));
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr(), "kept once");
        let obs = HeaderValue::from_str("Zoë").unwrap();
        assert_eq!(lasting(obs.clone()), obs);
    }

    #[test]
    fn past_the_bound_values_are_counted_not_kept() {
        let big = "x".repeat(KEPT_BYTES / 4);
        // Whether `lasting` kept value `i` (a kept value is a new copy).
        let kept = |i: usize| {
            let v = HeaderValue::from_str(&format!("{i}{big}")).unwrap();
            let given = v.as_bytes().as_ptr();
            let out = lasting(v);
            assert_eq!(out.to_str().unwrap(), format!("{i}{big}"), "reads the same");
            out.as_bytes().as_ptr() != given
        };
        let kept: Vec<bool> = (0..8).map(kept).collect();
        assert!(kept[0], "the first is kept");
        assert!(!kept[7], "past the bound, values stay as given");
    }
}
