//! What the limits say to the client: the 429 of a refusal, and the
//! `RateLimit-*` headers of the tightest limit on every response.

use bext_plugin_abi::{EncodedHeaders, Flow, RateLimitState, text_response};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::gcra::Decision;
use crate::headers::is_rate_limit;
use crate::limits::Limit;
use crate::values::count_value;

pub(crate) static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The answer to a refused request: 429 with `Retry-After` in whole
/// seconds, rounded up and at least 1 (0 would invite an instant retry).
pub(crate) fn too_many(decision: &Decision) -> Flow {
    let mut res = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
    let secs = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    Flow::Respond(res)
}

/// `RateLimit-Limit`, `-Remaining`, `-Reset` (whole seconds, rounded up)
/// and `-Policy` of `limit` in the state `info`: next to the map (the
/// limit's block and two numbers) when the response has no `RateLimit-*`
/// header yet, so that adding cannot double one; else replacing the
/// map's.
pub(crate) fn rate_limit_headers(
    headers: &mut HeaderMap,
    encoded: &mut EncodedHeaders,
    info: RateLimitState,
    limit: &Limit,
) {
    if !headers.keys().any(is_rate_limit)
        && !encoded.contains(&RATELIMIT_REMAINING)
        && encoded.push_block(&limit.headers.block).is_ok()
    {
        push_counts(headers, encoded, info);
        return;
    }
    map_headers(headers, info, limit, reset_secs(info));
}

/// `RateLimit-Remaining` and `-Reset` of `info` next to the map, for a
/// response whose `RateLimit-Limit` and `-Policy` went there in a block
/// (into the map when the response has no room left).
pub(crate) fn push_counts(headers: &mut HeaderMap, encoded: &mut EncodedHeaders, info: RateLimitState) {
    for (name, n) in [
        (&RATELIMIT_REMAINING, u64::from(info.remaining)),
        (&RATELIMIT_RESET, reset_secs(info)),
    ] {
        if encoded.push_number(name, n).is_err() {
            headers.insert(name, count_value(n));
        }
    }
}

/// `RateLimit-Reset`: whole seconds, rounded up.
fn reset_secs(info: RateLimitState) -> u64 {
    info.reset.as_secs_f64().ceil() as u64
}

/// [`rate_limit_headers`] in the map.
fn map_headers(headers: &mut HeaderMap, info: RateLimitState, limit: &Limit, reset: u64) {
    headers.insert(&RATELIMIT_LIMIT, limit.headers.limit.clone());
    let remaining = info.remaining;
    headers.insert(
        &RATELIMIT_REMAINING,
        if remaining + 1 == limit.quota.burst {
            limit.headers.steady_remaining.clone()
        } else {
            count_value(remaining)
        },
    );
    headers.insert(&RATELIMIT_RESET, count_value(reset));
    headers.insert(&RATELIMIT_POLICY, limit.headers.policy.clone());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn refused(retry_after: Duration) -> Decision {
        Decision {
            allowed: false,
            remaining: 0,
            reset: retry_after,
            retry_after,
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        for (wait, secs) in [(0, "1"), (1, "1"), (999, "1"), (1000, "1"), (1001, "2"), (59_500, "60")] {
            let Flow::Respond(res) = too_many(&refused(Duration::from_millis(wait))) else {
                panic!("a refusal answers");
            };
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(res.headers()[RETRY_AFTER], secs, "{wait} ms");
        }
    }

    #[test]
    fn the_headers_of_a_state() {
        const RATE_LIMIT_HEADERS: usize = 4;
        let limit = Limit::compile(
            0,
            &serde_json::from_value(serde_json::json!({ "rpm": 60, "burst": 5 })).unwrap(),
        )
        .unwrap();
        let state = |remaining, reset_ms| RateLimitState {
            limit: 5,
            remaining,
            reset: Duration::from_millis(reset_ms),
            decided_by: (0, 0),
        };
        // As the kernel sees them: what went next to the map, in it.
        let add = |h: &mut HeaderMap, s| {
            let mut encoded = EncodedHeaders::default();
            rate_limit_headers(h, &mut encoded, s, &limit);
            let next_to_the_map = !encoded.is_empty();
            encoded.move_into(h);
            next_to_the_map
        };
        let mut h = HeaderMap::new();
        assert!(add(&mut h, state(4, 1000)), "none in the map yet");
        assert_eq!(h.len(), RATE_LIMIT_HEADERS);
        assert_eq!(
            [
                &h["ratelimit-limit"],
                &h["ratelimit-remaining"],
                &h["ratelimit-reset"],
                &h["ratelimit-policy"]
            ],
            ["5", "4", "1", "5;w=5"]
        );
        assert!(!add(&mut h, state(0, 4001)), "the map has them: replaced there");
        assert_eq!(
            (&h["ratelimit-remaining"], &h["ratelimit-reset"]),
            (&"0".parse().unwrap(), &"5".parse().unwrap())
        );
        assert_eq!(h.len(), RATE_LIMIT_HEADERS, "replaced, not added");
    }
}
