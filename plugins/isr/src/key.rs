//! Cache keys: `a:{app}:t:{tenant}:l:{locale}:b:{is_bot}:p:{path}?{query}`
//! then `@{scheme}://{host}` (with the port the client wrote, if any), so
//! two hosts, ports or tenants never share an entry. The query is normalised: parameters in `ignore_params` (tracking
//! tags) dropped, the rest sorted stably by name, so `?b=1&a=2` and
//! `?a=2&b=1&utm_x=y` are one entry; a request that goes through the cache
//! reaches the app with that very query, so nothing left out of the key
//! (a tracking tag reflected in the page) can change what is stored. The values of the headers a response `Vary`s on are
//! appended per entry (see `store`).
//!
//! A request from a caller (only under a rule with `authorized: true`)
//! has `:u:{caller}` after the bot part: a SHA-256 digest of the verified
//! subject, or of the credentials sent when no subject was verified. A
//! digest has a fixed length and no separators, so no subject can spell
//! another caller's key, and no subject (an e-mail, a name) ends up in
//! Redis keys in edge mode.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// What a request's key is made of.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// The app's id.
    pub app: &'a str,
    /// The tenant of a wildcard host; the `t:` part only when present.
    pub tenant: Option<&'a str>,
    /// The locale another plugin resolved (`locale` in the context vars).
    pub locale: &'a str,
    /// The client is a crawler (bots may be served different markup).
    pub bot: bool,
    /// The caller's digest ([`caller_digest`]) when the request is cached
    /// per caller; `None` for a page shared by everyone.
    pub caller: Option<&'a str>,
    /// The request's path.
    pub path: &'a str,
    /// The query as [`normalise_query`] left it, if any.
    pub query: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The request's host.
    pub host: &'a str,
}

/// Query parameters left out of keys: exact names, or prefixes (`utm_*`).
#[derive(Debug, Clone, Default)]
pub struct IgnoredParams {
    exact: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
}

impl IgnoredParams {
    /// From the configured list.
    pub fn new(list: &[String]) -> Self {
        let mut me = IgnoredParams::default();
        for p in list {
            match p.strip_suffix('*') {
                Some(prefix) => me.prefixes.push(prefix.as_bytes().to_vec()),
                None => me.exact.push(p.as_bytes().to_vec()),
            }
        }
        me
    }

    /// Whether a (decoded) parameter name is left out.
    fn ignores(&self, name: &[u8]) -> bool {
        self.exact.iter().any(|e| e == name) || self.prefixes.iter().any(|p| name.starts_with(p))
    }
}

/// Why a query cannot be keyed (the request then passes the cache by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// A `;`: a pair separator to some frameworks (Rails before 7, Go
    /// before 1.17, Python's `cgi`), data to others, so no one key can say
    /// what every app will read.
    Semicolon,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Semicolon => f.write_str("`;` in the query (a separator to some apps, data to others)"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A parameter's name as an app reads it: percent-decoded, `+` a space.
/// Deciding what is ignored and the sort order on this form means
/// `utm%5Fx` is ignored like `utm_x` and `%61=1&a=2` keeps its order.
fn decoded_name(pair: &str) -> Cow<'_, [u8]> {
    let name = pair.split('=').next().unwrap_or("").as_bytes();
    if !name.iter().any(|b| matches!(b, b'%' | b'+')) {
        return Cow::Borrowed(name);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < name.len() => match (hex(name[i + 1]), hex(name[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// The query as it goes into a key, and as it is forwarded to the app
/// when the request goes through the cache: ignored parameters and empty
/// pairs dropped, the rest sorted stably by (decoded) name, so the values
/// of a repeated name keep their order (`a=1&a=2` is not `a=2&a=1` to an
/// app that reads the first or the last). A `;` refuses the query.
pub fn normalise_query(query: &str, ignored: &IgnoredParams) -> Result<String, QueryError> {
    if query.contains(';') {
        return Err(QueryError::Semicolon);
    }
    let mut pairs: Vec<(Cow<'_, [u8]>, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| (decoded_name(p), p))
        .filter(|(name, _)| !ignored.ignores(name))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(query.len());
    for (i, (_, pair)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(pair);
    }
    Ok(out)
}

/// A path as entries record it and admin orders name it: bytes a request
/// target cannot carry raw (non-ASCII, controls, space) percent-encoded
/// with upper-case hex, so `/café` is `/caf%C3%A9`, as clients send it.
pub fn encode_path(path: &str) -> Cow<'_, str> {
    let raw = |b: u8| b.is_ascii_graphic();
    if path.bytes().all(raw) {
        return Cow::Borrowed(path);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if raw(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    Cow::Owned(out)
}

/// The primary key of a request; `k.query` is already normalised
/// ([`normalise_query`]).
pub fn primary_key(k: &KeyParts<'_>) -> String {
    let query = k.query.unwrap_or_default();
    let mut key = String::with_capacity(k.app.len() + k.path.len() + query.len() + k.host.len() + 40);
    key.push_str("a:");
    key.push_str(k.app);
    if let Some(t) = k.tenant {
        key.push_str(":t:");
        key.push_str(t);
    }
    key.push_str(":l:");
    key.push_str(k.locale);
    key.push_str(if k.bot { ":b:1" } else { ":b:0" });
    if let Some(caller) = k.caller {
        key.push_str(":u:");
        key.push_str(caller);
    }
    key.push_str(":p:");
    key.push_str(k.path);
    key.push('?');
    key.push_str(query);
    key.push('@');
    key.push_str(k.scheme);
    key.push_str("://");
    key.push_str(k.host);
    key
}

/// Who is asking, as it goes into a key: the hex SHA-256 of the subject
/// authn verified, else of the credential headers sent (name and every
/// value, in order). The two are told apart by a prefix, so a subject can
/// never share a key with a credential that hashes alike.
pub fn caller_digest<'h>(subject: Option<&str>, credentials: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> String {
    let mut h = Sha256::new();
    match subject {
        Some(s) => {
            h.update(b"subject\0");
            h.update(s.as_bytes());
        }
        None => {
            h.update(b"credentials\0");
            for (name, value) in credentials {
                h.update((name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
                h.update((value.len() as u64).to_le_bytes());
                h.update(value);
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a user agent is a crawler's.
pub fn is_bot(agent: &[u8]) -> bool {
    const WORDS: [&[u8]; 7] = [
        b"bot",
        b"crawl",
        b"spider",
        b"slurp",
        b"facebookexternalhit",
        b"preview",
        b"lighthouse",
    ];
    let lower = agent.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.windows(w.len()).any(|x| x == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(path: &'a str, query: Option<&'a str>, host: &'a str, tenant: Option<&'a str>) -> KeyParts<'a> {
        KeyParts {
            app: "shop",
            tenant,
            locale: "en",
            bot: false,
            caller: None,
            path,
            query,
            scheme: "http",
            host,
        }
    }

    fn norm(q: &str, ignored: &IgnoredParams) -> String {
        normalise_query(q, ignored).unwrap()
    }

    #[test]
    fn queries_are_sorted_and_tracking_tags_dropped() {
        let ignored = IgnoredParams::new(&["utm_*".into(), "fbclid".into()]);
        assert_eq!(norm("b=1&a=2&utm_source=x&fbclid=9&&a=1", &ignored), "a=2&a=1&b=1");
        assert_eq!(norm("utm_medium=x", &ignored), "");
        assert_eq!(norm("fbclidx=1", &ignored), "fbclidx=1", "exact names are exact");
        assert_eq!(
            norm("utm%5Fsource=x&fbcl%69d=1&a=1", &ignored),
            "a=1",
            "names are matched as the app decodes them"
        );
    }

    /// M2: an app that reads the first (or the last) value of a name gets
    /// another page for `a=1&a=2` than for `a=2&a=1`: two keys.
    #[test]
    fn repeated_names_keep_their_order() {
        let ig = IgnoredParams::default();
        assert_eq!(norm("a=1&a=2", &ig), "a=1&a=2");
        assert_eq!(norm("a=2&a=1", &ig), "a=2&a=1");
        assert_ne!(norm("a=1&a=2", &ig), norm("a=2&a=1", &ig));
        assert_eq!(norm("b=1&a=2&b=0&a=1", &ig), "a=2&a=1&b=1&b=0");
        // One name spelled two ways is one name to the app: order kept.
        assert_eq!(norm("a=1&%61=2", &ig), "a=1&%61=2");
        assert_eq!(norm("%61=2&a=1", &ig), "%61=2&a=1");
        assert_eq!(norm("x+y=1&x%20y=2", &ig), "x+y=1&x%20y=2");
    }

    /// M2: `;` splits pairs for some apps only; such a query is never keyed.
    #[test]
    fn semicolons_refuse_the_query() {
        let ig = IgnoredParams::new(&["utm_*".into()]);
        assert_eq!(normalise_query("utm_x=1;lang=fr", &ig), Err(QueryError::Semicolon));
        assert_eq!(normalise_query("a=1&b=x;y", &ig), Err(QueryError::Semicolon));
        assert_eq!(norm("a=%3B", &ig), "a=%3B", "an encoded `;` is data to every app");
    }

    #[test]
    fn paths_are_encoded_like_clients_send_them() {
        assert_eq!(encode_path("/caf\u{e9}"), "/caf%C3%A9");
        assert_eq!(encode_path("/a b\t"), "/a%20b%09");
        assert!(matches!(encode_path("/caf%C3%A9/x|y"), Cow::Borrowed(_)));
    }

    fn key(path: &str, query: &str, host: &str, tenant: Option<&str>, ig: &IgnoredParams) -> String {
        let q = norm(query, ig);
        primary_key(&parts(path, Some(&q), host, tenant))
    }

    #[test]
    fn keys_separate_hosts_tenants_and_queries() {
        let ig = IgnoredParams::new(&["utm_*".into()]);
        let a = key("/p", "x=1&utm_a=2", "a.example", None, &ig);
        assert_eq!(a, "a:shop:l:en:b:0:p:/p?x=1@http://a.example");
        assert_eq!(a, key("/p", "x=1", "a.example", None, &ig));
        assert_ne!(a, key("/p", "x=1", "b.example", None, &ig));
        let t = primary_key(&parts("/p", None, "acme.example", Some("acme")));
        assert_eq!(t, "a:shop:t:acme:l:en:b:0:p:/p?@http://acme.example");
        assert_ne!(t, primary_key(&parts("/p", None, "acme.example", Some("other"))));
    }

    #[test]
    fn callers_get_keys_of_their_own() {
        let alice = caller_digest(Some("alice"), []);
        let bob = caller_digest(Some("bob"), []);
        assert_eq!(alice.len(), 64);
        assert_ne!(alice, bob);
        assert_eq!(alice, caller_digest(Some("alice"), [("cookie", &b"sid=other"[..])]));
        let key = |caller: Option<&str>| {
            primary_key(&KeyParts {
                caller,
                ..parts("/me", None, "a.example", None)
            })
        };
        assert_eq!(
            key(Some(&alice)),
            format!("a:shop:l:en:b:0:u:{alice}:p:/me?@http://a.example")
        );
        assert_ne!(key(Some(&alice)), key(Some(&bob)));
        assert_ne!(key(Some(&alice)), key(None), "a caller never reads the shared entry");
        // Credentials: every header and value counts, and the pairs cannot
        // be re-split into others.
        let c = |pairs: &[(&'static str, &'static [u8])]| caller_digest(None, pairs.iter().copied());
        assert_ne!(c(&[("cookie", b"sid=a")]), c(&[("cookie", b"sid=b")]));
        assert_ne!(c(&[("x-api-key", b"k")]), c(&[("authorization", b"k")]));
        assert_ne!(c(&[("cookie", b"ab")]), c(&[("cookiea", b"b")]));
        assert_ne!(c(&[("cookie", b"sid=a")]), caller_digest(Some("cookie"), []));
    }

    #[test]
    fn crawlers_are_told_apart() {
        assert!(is_bot(
            b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        ));
        assert!(is_bot(b"facebookexternalhit/1.1"));
        assert!(!is_bot(b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"));
    }
}
