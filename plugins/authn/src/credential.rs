//! Which credential a request carries. Pure logic: headers and a query
//! string in, at most one credential out.
//!
//! authn reads an API key from its header and, if configured, a query
//! parameter; a JWT from `Authorization: Bearer` and, if configured, a
//! cookie. A request with more than one of these is refused (400) before
//! any is verified: whichever one authn picked, the app and anything in
//! between could read another.

use http::HeaderName;

/// Where a request carries a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Authorization,
    ApiKeyHeader,
    ApiKeyQuery,
    Cookie,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Authorization => "Authorization header",
            Source::ApiKeyHeader => "API key header",
            Source::ApiKeyQuery => "API key query parameter",
            Source::Cookie => "token cookie",
        })
    }
}

/// A request with more than one credential: refused (400) before any is
/// verified, because whichever one authn picked, the app and anything in
/// between could read another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than one credential: {0} and {1}")]
pub(crate) struct Ambiguous(pub(crate) Source, pub(crate) Source);

/// The one credential of a request, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'r> {
    ApiKey(&'r [u8]),
    Token(&'r [u8]),
}

/// The request's one credential among the sources authn reads: the API
/// key header and query parameter (`api`, when keys are on) and, when JWTs
/// are on (`jwt`, holding the cookie's name if any), `Authorization:
/// Bearer` and the cookie. Every field and list element counts, so HTTP/1
/// lines, HTTP/2 fields and `;`-joined cookies are all seen; a value with
/// commas in one line is one value (and fails verification).
pub(crate) fn find_credential<'r>(
    api: Option<(&HeaderName, Option<&str>)>,
    jwt: Option<Option<&str>>,
    headers: &'r http::HeaderMap,
    query: Option<&'r str>,
) -> Result<Option<Credential<'r>>, Ambiguous> {
    let mut found: Option<(Credential<'r>, Source)> = None;
    let mut add = |credential, source| match found {
        Some((_, first)) => Err(Ambiguous(first, source)),
        None => {
            found = Some((credential, source));
            Ok(())
        }
    };
    if let Some((header, param)) = api {
        for v in headers.get_all(header) {
            add(Credential::ApiKey(v.as_bytes()), Source::ApiKeyHeader)?;
        }
        if let (Some(param), Some(query)) = (param, query) {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if form_name_is(name, param) {
                    add(Credential::ApiKey(value.as_bytes()), Source::ApiKeyQuery)?;
                }
            }
        }
    }
    if let Some(cookie) = jwt {
        let mut lines = headers.get_all(http::header::AUTHORIZATION).iter();
        if let Some(first) = lines.next() {
            // Not a list header: two lines are malformed, whatever the scheme.
            if lines.next().is_some() {
                return Err(Ambiguous(Source::Authorization, Source::Authorization));
            }
            if let Some(token) = bearer_token(first.as_bytes()) {
                add(Credential::Token(token), Source::Authorization)?;
            }
        }
        if let Some(cookie) = cookie {
            for line in headers.get_all(http::header::COOKIE) {
                for pair in line.as_bytes().split(|b| *b == b';') {
                    let Some(at) = pair.iter().position(|b| *b == b'=') else {
                        continue;
                    };
                    if pair[..at].trim_ascii() == cookie.as_bytes() {
                        add(Credential::Token(pair[at + 1..].trim_ascii()), Source::Cookie)?;
                    }
                }
            }
        }
    }
    Ok(found.map(|(c, _)| c))
}

/// The token of an `Authorization: Bearer` value (the scheme in any case).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    value[..space]
        .eq_ignore_ascii_case(b"bearer")
        .then(|| value[space..].trim_ascii())
}

/// Whether a query parameter's name, as sent, is `want` once decoded
/// (`api%5Fkey` is `api_key` to the app, so it is to authn too).
fn form_name_is(raw: &str, want: &str) -> bool {
    if raw == want {
        return true;
    }
    if !raw.contains(['%', '+']) {
        return false;
    }
    let raw = raw.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match raw[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    decoded.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b => decoded.push(b),
        }
        i += 1;
    }
    decoded == want.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The request's credential with API keys (header `x-api-key`, query
    /// `api_key`) and JWTs (cookie `session`) on.
    fn credential_of(lines: &[(&str, &str)], query: Option<&str>) -> Result<Option<Credential<'static>>, Ambiguous> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in lines {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let headers: &'static http::HeaderMap = Box::leak(Box::new(headers));
        let query = query.map(|q| &*Box::leak(q.to_owned().into_boxed_str()));
        let api = HeaderName::from_static("x-api-key");
        find_credential(Some((&api, Some("api_key"))), Some(Some("session")), headers, query)
    }

    #[test]
    fn one_credential_is_read_and_several_are_refused() {
        use Credential::*;
        use Source::*;
        /// Header lines, a query string and what authn makes of them.
        type Case<'a, T> = (&'a [(&'a str, &'a str)], Option<&'a str>, T);
        let one: &[Case<'_, Credential<'_>>] = &[
            (&[("x-api-key", "k")], None, ApiKey(b"k")),
            (&[], Some("a=1&api_key=k&b=2"), ApiKey(b"k")),
            (&[], Some("api%5Fkey=k"), ApiKey(b"k")),
            (&[("authorization", "Bearer t")], None, Token(b"t")),
            (&[("authorization", "BEARER  t ")], None, Token(b"t")),
            (&[("cookie", "theme=dark; session=t")], None, Token(b"t")),
            (&[("cookie", "a=1"), ("cookie", " session = t ")], None, Token(b"t")),
            // One line with commas is one value, which then fails to verify.
            (&[("x-api-key", "good, other")], None, ApiKey(b"good, other")),
            (&[("authorization", "Bearer a, Bearer b")], None, Token(b"a, Bearer b")),
            // Not authn's credentials: forwarded as they are.
            (
                &[("authorization", "Basic dTpw"), ("x-api-key", "k")],
                None,
                ApiKey(b"k"),
            ),
            (
                &[("x-api-key", "k"), ("cookie", "sessions=t; xsession=u")],
                Some("api_keyx=1"),
                ApiKey(b"k"),
            ),
        ];
        for (lines, query, want) in one {
            assert_eq!(credential_of(lines, *query), Ok(Some(*want)), "{lines:?} {query:?}");
        }
        assert_eq!(credential_of(&[("authorization", "Basic dTpw")], None), Ok(None));
        assert_eq!(credential_of(&[], Some("x=1")), Ok(None));

        let several: &[Case<'_, Ambiguous>] = &[
            (
                &[("authorization", "Bearer a"), ("Authorization", "Bearer b")],
                None,
                Ambiguous(Authorization, Authorization),
            ),
            (
                &[("authorization", "Basic dTpw"), ("authorization", "Bearer b")],
                None,
                Ambiguous(Authorization, Authorization),
            ),
            (
                &[("x-api-key", "a"), ("X-Api-Key", "b")],
                None,
                Ambiguous(ApiKeyHeader, ApiKeyHeader),
            ),
            (
                &[("x-api-key", "a")],
                Some("api_key=b"),
                Ambiguous(ApiKeyHeader, ApiKeyQuery),
            ),
            (&[], Some("api_key=a&api_key=b"), Ambiguous(ApiKeyQuery, ApiKeyQuery)),
            (&[], Some("api_key=a&api%5fkey=b"), Ambiguous(ApiKeyQuery, ApiKeyQuery)),
            (&[("cookie", "session=a; session=b")], None, Ambiguous(Cookie, Cookie)),
            (
                &[("cookie", "session=a"), ("cookie", "session=b")],
                None,
                Ambiguous(Cookie, Cookie),
            ),
            (
                &[("authorization", "Bearer a"), ("cookie", "session=b")],
                None,
                Ambiguous(Authorization, Cookie),
            ),
            (
                &[("x-api-key", "a"), ("authorization", "bearer b")],
                None,
                Ambiguous(ApiKeyHeader, Authorization),
            ),
        ];
        for (lines, query, want) in several {
            assert_eq!(credential_of(lines, *query), Err(*want), "{lines:?} {query:?}");
        }
    }

    #[test]
    fn only_the_configured_sources_are_read() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("cookie", HeaderValue::from_static("session=c"));
        let api = HeaderName::from_static("x-api-key");
        let query = Some("api_key=q");
        // JWTs off: the Authorization header and any cookie are the app's.
        assert_eq!(
            find_credential(Some((&api, None)), None, &headers, query),
            Ok(Some(Credential::ApiKey(b"k")))
        );
        // API keys off: the key header and parameter are the app's; no
        // cookie configured, so the cookie is too.
        assert_eq!(
            find_credential(None, Some(None), &headers, query),
            Ok(Some(Credential::Token(b"t")))
        );
        // The query parameter is read only when named.
        headers.remove("x-api-key");
        assert_eq!(find_credential(Some((&api, None)), None, &headers, query), Ok(None));
        assert_eq!(
            find_credential(Some((&api, Some("api_key"))), None, &headers, query),
            Ok(Some(Credential::ApiKey(b"q")))
        );
        assert_eq!(find_credential(None, None, &headers, query), Ok(None));
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"  bEaReR   abc  "), Some(&b"abc"[..]));
        assert_eq!(
            bearer_token(b"Bearer a b"),
            Some(&b"a b"[..]),
            "one value, verified as sent"
        );
        assert_eq!(bearer_token(b"Bearer "), None, "no token after the scheme");
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Basic dTpw"), None);
        assert_eq!(bearer_token(b""), None);
    }

    #[test]
    fn query_names_are_compared_decoded() {
        assert!(form_name_is("api_key", "api_key"));
        assert!(form_name_is("api%5Fkey", "api_key") && form_name_is("%61pi_key", "api_key"));
        assert!(form_name_is("a+b", "a b"));
        assert!(!form_name_is("api_key%", "api_key") && !form_name_is("api%5", "api_key"));
        assert!(!form_name_is("api_keys", "api_key"));
    }
}
