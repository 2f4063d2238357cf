//! Cache keys: `a:{app}:t:{tenant}:l:{locale}:b:{is_bot}:p:{path}?{query}`
//! then `@{scheme}://{host}`, so two hosts or two tenants never share an
//! entry. The query is normalised: parameters in `ignore_params` (tracking
//! tags) dropped, the rest sorted, so `?b=1&a=2` and `?a=2&b=1&utm_x=y`
//! are one entry. The values of the headers a response `Vary`s on are
//! appended per entry (see `store`).
//!
//! A request from a caller (only under a rule with `authorized: true`)
//! has `:u:{caller}` after the bot part: a SHA-256 digest of the verified
//! subject, or of the credentials sent when no subject was verified. A
//! digest has a fixed length and no separators, so no subject can spell
//! another caller's key, and no subject (an e-mail, a name) ends up in
//! Redis keys in edge mode.

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
    /// The raw query, if any.
    pub query: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The request's host.
    pub host: &'a str,
}

/// Query parameters left out of keys: exact names, or prefixes (`utm_*`).
#[derive(Debug, Clone, Default)]
pub struct IgnoredParams {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl IgnoredParams {
    /// From the configured list.
    pub fn new(list: &[String]) -> Self {
        let mut me = IgnoredParams::default();
        for p in list {
            match p.strip_suffix('*') {
                Some(prefix) => me.prefixes.push(prefix.to_owned()),
                None => me.exact.push(p.clone()),
            }
        }
        me
    }

    fn ignores(&self, name: &str) -> bool {
        self.exact.iter().any(|e| e == name) || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// The query as it goes into a key: ignored parameters and empty pairs
/// dropped, the rest sorted (by name, then value; their raw text kept).
pub fn normalise_query(query: &str, ignored: &IgnoredParams) -> String {
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !ignored.ignores(p.split('=').next().unwrap_or("")))
        .collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// The primary key of a request.
pub fn primary_key(k: &KeyParts<'_>, ignored: &IgnoredParams) -> String {
    let query = k.query.map(|q| normalise_query(q, ignored)).unwrap_or_default();
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
    key.push_str(&query);
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

    #[test]
    fn queries_are_sorted_and_tracking_tags_dropped() {
        let ignored = IgnoredParams::new(&["utm_*".into(), "fbclid".into()]);
        assert_eq!(
            normalise_query("b=1&a=2&utm_source=x&fbclid=9&&a=1", &ignored),
            "a=1&a=2&b=1"
        );
        assert_eq!(normalise_query("utm_medium=x", &ignored), "");
        assert_eq!(
            normalise_query("fbclidx=1", &ignored),
            "fbclidx=1",
            "exact names are exact"
        );
    }

    #[test]
    fn keys_separate_hosts_tenants_and_queries() {
        let ig = IgnoredParams::new(&["utm_*".into()]);
        let a = primary_key(&parts("/p", Some("x=1&utm_a=2"), "a.example", None), &ig);
        assert_eq!(a, "a:shop:l:en:b:0:p:/p?x=1@http://a.example");
        assert_eq!(a, primary_key(&parts("/p", Some("x=1"), "a.example", None), &ig));
        assert_ne!(a, primary_key(&parts("/p", Some("x=1"), "b.example", None), &ig));
        let t = primary_key(&parts("/p", None, "acme.example", Some("acme")), &ig);
        assert_eq!(t, "a:shop:t:acme:l:en:b:0:p:/p?@http://acme.example");
        assert_ne!(t, primary_key(&parts("/p", None, "acme.example", Some("other")), &ig));
    }

    #[test]
    fn callers_get_keys_of_their_own() {
        let ig = IgnoredParams::default();
        let alice = caller_digest(Some("alice"), []);
        let bob = caller_digest(Some("bob"), []);
        assert_eq!(alice.len(), 64);
        assert_ne!(alice, bob);
        assert_eq!(alice, caller_digest(Some("alice"), [("cookie", &b"sid=other"[..])]));
        let key = |caller: Option<&str>| {
            primary_key(
                &KeyParts {
                    caller,
                    ..parts("/me", None, "a.example", None)
                },
                &ig,
            )
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
