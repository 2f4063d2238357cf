//! Who is calling, and the headers that tell the app.
//!
//! A verified credential becomes a [`Principal`]: the namespaced subject
//! other plugins key on (`apikey:<name>`, `jwt:<iss>|<sub>`), the scopes
//! the policy checks, and the headers the app receives (the plain `sub` or
//! key name, the claims as JSON, single claims). Only authn may set those
//! headers: every client-sent copy is removed first, and the kernel is
//! told they are owned, so it drops them for every app.

use std::sync::Arc;

use bext_plugin_abi::{Ctx, HeaderSet, PluginError, Request};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::{ForwardConfig, header_name};

/// Headers removed from every request, whatever the configuration: only
/// this plugin may tell the app who is calling.
const ALWAYS_STRIPPED: &[&str] = &["x-auth-sub", "x-auth-claims", "x-auth-scopes", "x-auth-key"];

/// Who the request is from, with the headers that tell the app, built
/// once per credential (a cached token reuses them).
pub(crate) struct Principal {
    /// The subject for [`Ctx::set_subject`], namespaced by credential kind
    /// and issuer (see [`api_key_subject`], [`jwt_subject`]) so that caches
    /// and rate limits keyed by it never merge two callers; shared per
    /// request without a copy.
    pub(crate) subject: Option<Arc<str>>,
    pub(crate) scopes: Vec<String>,
    /// The headers that tell the app, set with
    /// [`Ctx::set_request_headers`]: inserted into the request's map only
    /// when something reads it (a static site never does).
    pub(crate) forwarded: HeaderSet,
}

impl Principal {
    /// Tells the app (headers) and later plugins (the subject) who calls.
    pub(crate) fn forward(&self, req: &mut Request, cx: &mut Ctx) {
        if !self.forwarded.is_empty() {
            cx.set_request_headers(req.headers_mut(), self.forwarded.clone());
        }
        // With two authn plugins in a chain (platform and app), the first
        // one's verified subject stands.
        if let Some(sub) = &self.subject
            && cx.subject().is_none()
        {
            let _ = cx.set_subject(sub.clone());
        }
    }
}

/// The `forward` headers, and every header name authn owns.
pub(crate) struct CallerHeaders {
    subject: HeaderName,
    claims: Option<HeaderName>,
    claim_headers: Vec<(HeaderName, String)>,
    /// [`ALWAYS_STRIPPED`] and the configured names, sorted, once each.
    owned: Vec<HeaderName>,
    /// The owned names' lengths as bits (all set if one is 64 or longer):
    /// most request headers are ruled out by length alone.
    owned_lengths: u64,
}

impl CallerHeaders {
    /// Checks the `forward` header names.
    pub(crate) fn new(c: &ForwardConfig) -> Result<Self, PluginError> {
        let subject = header_name("forward.subject", &c.subject)?;
        let claims = (!c.claims.is_empty())
            .then(|| header_name("forward.claims", &c.claims))
            .transpose()?;
        let mut claim_headers = Vec::new();
        for (h, claim) in &c.claim_headers {
            claim_headers.push((header_name(&format!("forward.claim_headers.{h}"), h)?, claim.clone()));
        }
        let mut owned: Vec<HeaderName> = ALWAYS_STRIPPED.iter().map(|h| HeaderName::from_static(h)).collect();
        owned.push(subject.clone());
        owned.extend(claims.clone());
        owned.extend(claim_headers.iter().map(|(h, _)| h.clone()));
        owned.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        owned.dedup();
        let owned_lengths = owned
            .iter()
            .map(|h| 1u64.checked_shl(h.as_str().len() as u32).unwrap_or(u64::MAX))
            .fold(0, |bits, b| bits | b);
        Ok(CallerHeaders {
            subject,
            claims,
            claim_headers,
            owned,
            owned_lengths,
        })
    }

    /// The request headers only authn may set.
    pub(crate) fn owned(&self) -> &[HeaderName] {
        &self.owned
    }

    /// Removes client-sent copies of the owned headers.
    pub(crate) fn remove_client_copies(&self, headers: &mut HeaderMap) {
        // Spoofed identity headers are rare: one look over the names is
        // cheaper than a removal per name on every request.
        let may_be_owned = |k: &HeaderName| {
            let len = k.as_str().len();
            (len >= 64 || self.owned_lengths >> len & 1 == 1) && self.owned.contains(k)
        };
        if headers.keys().any(may_be_owned) {
            for h in &self.owned {
                headers.remove(h);
            }
        }
    }

    /// The caller an API key named `name` is.
    pub(crate) fn api_key_caller(&self, name: &str, scopes: &[String]) -> Principal {
        self.principal_of(
            serde_json::json!({ "sub": name, "scope": scopes.join(" "), "auth": "api_key" })
                .as_object()
                .expect("an object"),
            Some(api_key_subject(name)),
        )
    }

    /// The caller a verified JWT's claims name.
    pub(crate) fn jwt_caller(&self, claims: &Map<String, Value>) -> Principal {
        let subject = claims.get("sub").and_then(|s| s.as_str()).map(|sub| {
            let iss = claims.get("iss").and_then(|i| i.as_str());
            jwt_subject(iss, sub)
        });
        self.principal_of(claims, subject)
    }

    /// The caller named by verified claims, with the headers the app gets:
    /// `subject` is the namespaced one for [`Ctx::set_subject`], while the
    /// app's subject header keeps the plain `sub` (or API key name).
    fn principal_of(&self, claims: &Map<String, Value>, subject: Option<String>) -> Principal {
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
            (_, Some(Value::Array(a))) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            (_, Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let subject: Option<Arc<str>> = subject.map(Arc::from);
        let mut forwarded = Vec::new();
        if let Some(v) = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            forwarded.push((self.subject.clone(), v));
        }
        if let Some(h) = &self.claims
            && let Ok(v) = HeaderValue::from_str(&ascii_json(&Value::Object(claims.clone())))
        {
            forwarded.push((h.clone(), v));
        }
        for (h, claim) in &self.claim_headers {
            let value = match claims.get(claim) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => ascii_json(other),
                None => continue,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                forwarded.push((h.clone(), v));
            }
        }
        Principal {
            subject,
            scopes,
            forwarded: forwarded.into(),
        }
    }
}

/// The subject an API key sets: `apikey:<name>`, never equal to a JWT's.
fn api_key_subject(name: &str) -> String {
    format!("apikey:{name}")
}

/// The subject a JWT sets: `jwt:<iss>|<sub>` (`jwt:|<sub>` without `iss`),
/// since a `sub` is only unique within its issuer. `%` and `|` in the
/// issuer are escaped (`%25`, `%7C`), so the first `|` ends it and two
/// different (issuer, sub) pairs never give one subject.
fn jwt_subject(iss: Option<&str>, sub: &str) -> String {
    let iss = iss.unwrap_or("");
    let mut out = String::with_capacity(5 + iss.len() + sub.len());
    out.push_str("jwt:");
    for c in iss.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
    out.push('|');
    out.push_str(sub);
    out
}

/// JSON with every non-ASCII character escaped, so it fits in a header.
fn ascii_json(v: &Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bext_plugin_abi::{Body, RequestId};

    use super::*;

    fn headers(claims: &str, claim_headers: &[(&str, &str)]) -> CallerHeaders {
        CallerHeaders::new(&ForwardConfig {
            subject: "x-auth-sub".into(),
            claims: claims.into(),
            claim_headers: claim_headers
                .iter()
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect::<BTreeMap<_, _>>(),
        })
        .unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn forwarded(p: &Principal) -> Vec<(&str, &str)> {
        p.forwarded
            .iter()
            .map(|(h, v)| (h.as_str(), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn subjects_differ_by_credential_kind_and_issuer() {
        let all = [
            api_key_subject("reader-key"),
            jwt_subject(None, "reader-key"),
            jwt_subject(Some("https://a.test"), "reader-key"),
            jwt_subject(Some("https://b.test"), "reader-key"),
            // A separator inside the issuer or the subject moves nothing.
            jwt_subject(Some("https://a.test|reader"), "key"),
            jwt_subject(Some("https://a.test"), "reader|key"),
            jwt_subject(Some("x%7C"), "y"),
            jwt_subject(Some("x|"), "y"),
            jwt_subject(None, "apikey:reader-key"),
        ];
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        assert_eq!(api_key_subject("billing-job"), "apikey:billing-job");
        assert_eq!(
            jwt_subject(Some("https://idp.test"), "user-42"),
            "jwt:https://idp.test|user-42"
        );
        assert_eq!(jwt_subject(None, "u1"), "jwt:|u1");
    }

    #[test]
    fn json_for_headers() {
        assert_eq!(ascii_json(&serde_json::json!({"n": "Zoë\n"})), r#"{"n":"Zo\u00eb\n"}"#);
        assert_eq!(
            ascii_json(&serde_json::json!("😀")),
            r#""\ud83d\ude00""#,
            "UTF-16 pairs"
        );
        assert!(HeaderValue::from_str(&ascii_json(&serde_json::json!({"tab": "a\tb\u{7f}"}))).is_ok());
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let h = headers("", &[]);
        let scopes = |v: Value| h.jwt_caller(&claims(v)).scopes;
        assert_eq!(scopes(serde_json::json!({"scope": " read  write "})), ["read", "write"]);
        assert_eq!(
            scopes(serde_json::json!({"scp": ["read", 3, "write"]})),
            ["read", "write"]
        );
        assert_eq!(scopes(serde_json::json!({"scp": "read write"})), ["read", "write"]);
        assert_eq!(
            scopes(serde_json::json!({"scope": "a", "scp": ["b"]})),
            ["a"],
            "scope first"
        );
        assert_eq!(
            scopes(serde_json::json!({"scope": ["a"], "scp": "b"})),
            ["b"],
            "a non-text scope is not read"
        );
        assert!(scopes(serde_json::json!({"scope": 1})).is_empty());
        assert!(scopes(serde_json::json!({})).is_empty());
    }

    #[test]
    fn jwt_callers_forward_sub_claims_and_claim_headers() {
        let h = headers(
            "x-auth-claims",
            &[
                ("x-auth-email", "email"),
                ("x-auth-roles", "roles"),
                ("x-auth-org", "org"),
            ],
        );
        let p = h.jwt_caller(&claims(serde_json::json!({
            "iss": "https://idp.test", "sub": "user-42", "email": "ada@example.com", "roles": ["admin"], "name": "Zoë",
        })));
        assert_eq!(p.subject.as_deref(), Some("jwt:https://idp.test|user-42"));
        let f = forwarded(&p);
        assert_eq!(
            f[0],
            ("x-auth-sub", "user-42"),
            "the plain sub, not the namespaced subject"
        );
        assert_eq!(f[1].0, "x-auth-claims");
        let json: Value = serde_json::from_str(f[1].1).unwrap();
        assert_eq!(json["name"], "Zoë");
        assert_eq!(f[2], ("x-auth-email", "ada@example.com"), "text claims as they are");
        assert_eq!(f[3], ("x-auth-roles", r#"["admin"]"#), "others as JSON");
        assert_eq!(f.len(), 4, "a missing claim sends no header: {f:?}");

        // No sub: no subject and no subject header; a sub that cannot be
        // a header value is not forwarded, but is still the subject.
        let p = h.jwt_caller(&claims(serde_json::json!({"email": "e"})));
        assert_eq!(p.subject, None);
        assert!(forwarded(&p).iter().all(|(h, _)| *h != "x-auth-sub"));
        let p = h.jwt_caller(&claims(serde_json::json!({"sub": "a\nb"})));
        assert_eq!(p.subject.as_deref(), Some("jwt:|a\nb"));
        assert!(forwarded(&p).iter().all(|(h, _)| *h != "x-auth-sub"));
        let p = h.jwt_caller(&claims(serde_json::json!({"sub": 42})));
        assert_eq!(p.subject, None, "a sub that is not text names nobody");
    }

    #[test]
    fn api_key_callers() {
        let p = headers("x-auth-claims", &[]).api_key_caller("billing-job", &["billing".into(), "read".into()]);
        assert_eq!(p.subject.as_deref(), Some("apikey:billing-job"));
        assert_eq!(p.scopes, ["billing", "read"]);
        let f = forwarded(&p);
        assert_eq!(f[0], ("x-auth-sub", "billing-job"));
        let json: Value = serde_json::from_str(f[1].1).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sub": "billing-job", "scope": "billing read", "auth": "api_key"})
        );
        assert_eq!(
            forwarded(&headers("", &[]).api_key_caller("k", &[])).len(),
            1,
            "claims: \"\""
        );
    }

    #[test]
    fn owned_headers_are_the_fixed_ones_and_the_configured_ones() {
        let h = headers("x-claims", &[("x-auth-email", "email"), ("x-auth-sub", "sub")]);
        let names: Vec<&str> = h.owned().iter().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "x-auth-claims",
                "x-auth-email",
                "x-auth-key",
                "x-auth-scopes",
                "x-auth-sub",
                "x-claims"
            ]
        );
        let long = "x-".repeat(40);
        let h = CallerHeaders::new(&ForwardConfig {
            subject: long.clone(),
            claims: String::new(),
            claim_headers: BTreeMap::new(),
        })
        .unwrap();
        assert!(h.owned().iter().any(|n| n.as_str() == long));
        assert_eq!(h.owned_lengths, u64::MAX, "a name of 64+ bytes sets every bit");
        let mut m = HeaderMap::new();
        m.insert(
            HeaderName::from_bytes(long.as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
        m.insert("x-auth-scopes", HeaderValue::from_static("admin"));
        m.insert("accept", HeaderValue::from_static("*/*"));
        h.remove_client_copies(&mut m);
        assert_eq!(m.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn client_copies_are_removed_every_one() {
        let h = headers("x-auth-claims", &[("x-auth-email", "email")]);
        let mut m = HeaderMap::new();
        m.append("x-auth-email", HeaderValue::from_static("a@evil.test"));
        m.append("x-auth-email", HeaderValue::from_static("b@evil.test"));
        m.append("x-auth-sub", HeaderValue::from_static("admin"));
        m.append("x-auth-key", HeaderValue::from_static("k"));
        m.append("x-auth", HeaderValue::from_static("kept"));
        m.append("x-auth-subject", HeaderValue::from_static("kept"));
        h.remove_client_copies(&mut m);
        let mut left: Vec<&str> = m.keys().map(HeaderName::as_str).collect();
        left.sort();
        assert_eq!(left, ["x-auth", "x-auth-subject"]);
        // Nothing owned: nothing touched.
        let mut m = HeaderMap::new();
        m.append("x-auth-subjec", HeaderValue::from_static("kept"));
        h.remove_client_copies(&mut m);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn forwarding_sets_headers_and_the_first_subject_stands() {
        let h = headers("", &[]);
        let mut req = Request::new(Body::empty());
        req.headers_mut().insert("x-auth-sub", HeaderValue::from_static("old"));
        let mut cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        h.jwt_caller(&claims(serde_json::json!({"sub": "first"})))
            .forward(&mut req, &mut cx);
        assert_eq!(req.headers()["x-auth-sub"], "old", "set next to the map");
        // What the kernel does before anything reads the map.
        cx.insert_request_headers(req.headers_mut());
        assert_eq!(req.headers()["x-auth-sub"], "first", "replaced, not appended");
        assert_eq!(req.headers().get_all("x-auth-sub").iter().count(), 1);
        assert_eq!(cx.subject(), Some("jwt:|first"));
        h.api_key_caller("second", &[]).forward(&mut req, &mut cx);
        assert_eq!(
            cx.subject(),
            Some("jwt:|first"),
            "a second authn keeps the first subject"
        );
        cx.insert_request_headers(req.headers_mut());
        assert_eq!(req.headers()["x-auth-sub"], "second");
    }
}
