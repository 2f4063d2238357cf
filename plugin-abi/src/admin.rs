//! The one check every plugin's admin endpoint makes: an
//! `Authorization: Bearer` token equal to the operator's admin token.

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};

use crate::{Request, Response, text_response};

/// `None` when `req` carries `token`; otherwise the answer: 404 when no
/// token is configured (the endpoint does not exist then), 401 with a
/// `WWW-Authenticate` challenge when the token is missing or wrong. The
/// comparison takes the same time wherever the tokens differ.
pub fn refuse_unless_admin(req: &Request, token: Option<&str>) -> Option<Response> {
    let Some(token) = token else {
        return Some(text_response(StatusCode::NOT_FOUND, "not found\n"));
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if secrets_match(presented, token) {
        return None;
    }
    let mut res = text_response(StatusCode::UNAUTHORIZED, "admin token required\n");
    res.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"bext\""));
    Some(res)
}

/// Compares two secrets without leaking where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
