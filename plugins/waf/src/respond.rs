//! What a refused client gets. Never which rule fired, nor anything else
//! that would help an attacker tune a payload: a status, the request id
//! to quote to the operator, and `Cache-Control: no-store` so no cache
//! keeps the refusal for the next client.

use bext_plugin_abi::{Body, RequestId, Response, text_response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

/// A refusal with `status`: a rule's finding, a listed address, a
/// blocked bot, a body that could not be inspected.
pub(crate) fn refusal(status: StatusCode, request_id: RequestId) -> Response {
    let reason = status.canonical_reason().unwrap_or("Refused");
    no_store(text_response(status, format!("{reason} (request id {request_id})\n")))
}

/// 429 for a client in the penalty box, with when to come back (at least
/// a second).
pub(crate) fn too_many(retry_after_secs: u64) -> Response {
    let mut res = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    no_store(res)
}

/// The bot challenge's page (`bots.rs`), as a 403: a client that runs its
/// script comes back with the cookie.
pub(crate) fn challenge(page: String) -> Response {
    let mut res = Response::new(Body::from(page));
    *res.status_mut() = StatusCode::FORBIDDEN;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    no_store(res)
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(res: &Response) -> &str {
        std::str::from_utf8(res.body().as_bytes().unwrap()).unwrap()
    }

    #[test]
    fn a_refusal_names_the_request_and_nothing_else() {
        let res = refusal(StatusCode::FORBIDDEN, RequestId(42));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(text(&res), format!("Forbidden (request id {})\n", RequestId(42)));
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        let odd = refusal(StatusCode::from_u16(499).unwrap(), RequestId(1));
        assert!(text(&odd).starts_with("Refused (request id "), "{}", text(&odd));
    }

    #[test]
    fn too_many_says_when_to_come_back() {
        let res = too_many(0);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        assert_eq!(too_many(30).headers()[RETRY_AFTER], "30");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    }

    #[test]
    fn the_challenge_is_an_html_page() {
        let res = challenge("<p>hi</p>".into());
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(text(&res), "<p>hi</p>");
    }
}
