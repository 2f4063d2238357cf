//! The configured response headers: a security preset, then `headers:`
//! (which replace the preset's of the same name), added to every answer;
//! an app's own value wins unless `override_headers`.

use std::collections::BTreeMap;

use http::header::{HeaderMap, HeaderName, HeaderValue, VARY};

use bext_plugin_abi::{EncodedHeaders, HeaderBlock, PluginError};

use crate::config::SecurityPreset;
use crate::values::lasting;

/// The compiled `security_headers`, `headers` and `override_headers`.
pub(crate) struct ResponseHeaders {
    /// Added in this order; one entry a name.
    list: Vec<(HeaderName, HeaderValue)>,
    /// The list written out once, for a response that has none of its
    /// names: `None` for an empty list, or one that holds a name the
    /// server writes itself or a `RateLimit-*` name (the limits' own
    /// headers travel apart and must not be doubled).
    block: Option<HeaderBlock>,
    /// Replace an app's own value rather than keep it.
    override_app: bool,
    /// The names' lengths as bits (all set if one is 64 or longer): most
    /// of a response's header names are ruled out by length alone, before
    /// any comparison with the list's.
    lengths: u64,
}

impl ResponseHeaders {
    /// Compiles the preset and the configured headers; an error names the
    /// `headers.<name>` entry that is no header name or value.
    pub(crate) fn new(
        preset: Option<SecurityPreset>,
        configured: &BTreeMap<String, String>,
        override_app: bool,
    ) -> Result<Self, PluginError> {
        let mut list = Vec::new();
        if let Some(preset) = preset {
            list.extend(security_headers(preset));
        }
        for (name, value) in configured {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PluginError::config(format!("headers.{name}"), "not a header name"))?;
            let v = lasting(
                HeaderValue::from_str(value)
                    .map_err(|_| PluginError::config(format!("headers.{name}"), "not a header value"))?,
            );
            list.retain(|(h, _)| *h != n);
            list.push((n, v));
        }
        let lengths = list.iter().fold(0u64, |bits, (name, _)| match name.as_str().len() {
            len @ 0..64 => bits | 1 << len,
            _ => u64::MAX,
        });
        let block = (!list.is_empty() && !list.iter().any(|(n, _)| is_rate_limit(n)))
            .then(|| HeaderBlock::new(&list).ok())
            .flatten();
        Ok(ResponseHeaders {
            list,
            block,
            override_app,
            lengths,
        })
    }

    /// One block of `first` (a limit's `RateLimit-Limit` and `-Policy`,
    /// or nothing), the list and, with `vary`, `Vary: Origin`: everything
    /// the plugin adds to a response that has none of those names, written
    /// out once. `None` when there is nothing to add, or when the list
    /// holds a name the server writes, a `RateLimit-*` name or one of
    /// `first`'s: such responses take the separate paths.
    pub(crate) fn combined(&self, first: &[(HeaderName, HeaderValue)], vary: bool) -> Option<HeaderBlock> {
        if self.list.iter().any(|(n, _)| is_rate_limit(n)) {
            return None;
        }
        let mut pairs = first.to_vec();
        pairs.extend(self.list.iter().cloned());
        if vary {
            pairs.push((VARY, HeaderValue::from_static("Origin")));
        }
        (!pairs.is_empty()).then(|| HeaderBlock::new(&pairs).ok()).flatten()
    }

    /// Whether a response's header `name` is one a [`combined`](Self::combined)
    /// block must not be added to: a `RateLimit-*` name, one of the
    /// list's, or with `vary` a `Vary`. One test for all three.
    pub(crate) fn takes(&self, name: &HeaderName, vary: bool) -> bool {
        if vary && name == VARY {
            return true;
        }
        let spelt = name.as_str();
        let len = spelt.len();
        spelt.starts_with("ratelimit-")
            || ((len >= 64 || self.lengths >> len & 1 == 1) && self.list.iter().any(|(listed, _)| listed == name))
    }

    /// How many headers [`apply`](Self::apply) may add.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Adds the headers to a response's: as one block next to the map
    /// when the response has none of their names (then adding and
    /// replacing are the same), else into the map.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, encoded: &mut EncodedHeaders) {
        // Names by reference: an owned name costs http's map more per
        // insert. Without `override_headers`, an app's own value stands;
        // apps rarely set these, so one look over the names decides for
        // all, and appending is cheaper than an entry each.
        let may_be_listed = |k: &HeaderName| {
            let len = k.as_str().len();
            (len >= 64 || self.lengths >> len & 1 == 1) && self.list.iter().any(|(name, _)| name == k)
        };
        let app_set_one = headers.keys().any(may_be_listed);
        if !app_set_one
            && let Some(block) = &self.block
            && encoded.push_block(block).is_ok()
        {
            return;
        }
        let app_set_one = app_set_one && !self.override_app;
        for (name, value) in &self.list {
            if self.override_app {
                headers.insert(name, value.clone());
            } else if app_set_one {
                headers.entry(name).or_insert_with(|| value.clone());
            } else {
                headers.append(name, value.clone());
            }
        }
    }
}

/// Whether `name` is a `RateLimit-*` header: the limits' own, never
/// doubled.
pub(crate) fn is_rate_limit(name: &HeaderName) -> bool {
    name.as_str().starts_with("ratelimit-")
}

/// The headers of a preset, as documented on [`SecurityPreset`].
fn security_headers(preset: SecurityPreset) -> Vec<(HeaderName, HeaderValue)> {
    let pairs: &[(&str, &str)] = match preset {
        SecurityPreset::Basic => &[
            ("strict-transport-security", "max-age=31536000"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "SAMEORIGIN"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
        ],
        SecurityPreset::Strict => &[
            (
                "strict-transport-security",
                "max-age=63072000; includeSubDomains; preload",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cross-origin-opener-policy", "same-origin"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
        ],
    };
    pairs
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `h` as the kernel sees it: what went next to the map, in it.
    fn apply(h: &ResponseHeaders, map: &mut HeaderMap) -> bool {
        let mut encoded = EncodedHeaders::default();
        h.apply(map, &mut encoded);
        let as_block = !encoded.is_empty();
        encoded.move_into(map);
        as_block
    }

    fn configured(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_configured_header_replaces_the_presets_of_its_name() {
        let h = ResponseHeaders::new(
            Some(SecurityPreset::Basic),
            &configured(&[("X-Frame-Options", "DENY"), ("x-app", "shop")]),
            false,
        )
        .unwrap();
        assert_eq!(h.len(), 5);
        let mut out = HeaderMap::new();
        apply(&h, &mut out);
        assert_eq!(out.get_all("x-frame-options").iter().collect::<Vec<_>>(), ["DENY"]);
        assert_eq!(out["x-app"], "shop");
        assert_eq!(out["strict-transport-security"], "max-age=31536000");
    }

    #[test]
    fn the_apps_value_stands_unless_overridden() {
        let list = configured(&[("x-app", "shop"), ("x-b", "1")]);
        let mut app = HeaderMap::new();
        app.insert("x-app", HeaderValue::from_static("own"));
        let mut kept = app.clone();
        ResponseHeaders::new(None, &list, false)
            .unwrap()
            .apply(&mut kept, &mut EncodedHeaders::default());
        assert_eq!(kept.get_all("x-app").iter().collect::<Vec<_>>(), ["own"]);
        assert_eq!(kept["x-b"], "1");
        let mut replaced = app;
        ResponseHeaders::new(None, &list, true)
            .unwrap()
            .apply(&mut replaced, &mut EncodedHeaders::default());
        assert_eq!(replaced.get_all("x-app").iter().collect::<Vec<_>>(), ["shop"]);
    }

    #[test]
    fn the_apps_value_stands_whatever_its_names_length() {
        // Listed names of several lengths, one past 63 bytes; the app sets
        // each in turn, next to a name of the same length not listed.
        let long = format!("x-{}", "l".repeat(70));
        let list = configured(&[("x-a", "1"), ("x-frame-options", "DENY"), (&long, "2")]);
        let h = ResponseHeaders::new(None, &list, false).unwrap();
        for own in ["x-a", "X-Frame-Options", long.as_str()] {
            let mut res = HeaderMap::new();
            res.insert("x-b", HeaderValue::from_static("app"));
            res.insert("referrer-policy", HeaderValue::from_static("app"));
            res.insert(
                HeaderName::from_bytes(own.as_bytes()).unwrap(),
                HeaderValue::from_static("own"),
            );
            apply(&h, &mut res);
            assert_eq!(res.get_all(own).iter().collect::<Vec<_>>(), ["own"], "{own}");
            assert_eq!(res.len(), 5, "{own}: every other listed header added once");
        }
        let mut res = HeaderMap::new();
        res.insert("referrer-policy", HeaderValue::from_static("app"));
        apply(&h, &mut res);
        assert_eq!(res["x-frame-options"], "DENY", "same length, other name");
    }

    #[test]
    fn a_block_only_for_a_response_without_the_names() {
        let list = configured(&[("x-app", "shop"), ("x-b", "1")]);
        for override_app in [false, true] {
            let h = ResponseHeaders::new(Some(SecurityPreset::Basic), &list, override_app).unwrap();
            let mut plain = HeaderMap::new();
            plain.insert("content-type", HeaderValue::from_static("text/html"));
            let mut encoded = EncodedHeaders::default();
            h.apply(&mut plain, &mut encoded);
            assert_eq!(plain.len(), 1, "nothing in the map");
            assert_eq!(encoded.blocks().count(), 1);
            let mut own = HeaderMap::new();
            own.insert("x-b", HeaderValue::from_static("own"));
            let mut encoded = EncodedHeaders::default();
            h.apply(&mut own, &mut encoded);
            assert!(encoded.is_empty(), "an app's header of a listed name: the map decides");
            let want = if override_app { "1" } else { "own" };
            assert_eq!(own.get_all("x-b").iter().collect::<Vec<_>>(), [want]);
            assert_eq!(own.len(), 6);
        }
        // Names the server writes, or the limits' own: never a block.
        for odd in ["date", "ratelimit-limit"] {
            let h = ResponseHeaders::new(None, &configured(&[(odd, "1")]), false).unwrap();
            assert!(!apply(&h, &mut HeaderMap::new()), "{odd}");
        }
    }

    #[test]
    fn a_bad_name_or_value_names_its_entry() {
        for (name, value) in [("bad name", "v"), ("x-ok", "line\nbreak")] {
            match ResponseHeaders::new(None, &configured(&[(name, value)]), false) {
                Err(PluginError::Config { path, .. }) => assert_eq!(path, format!("headers.{name}")),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{name}: {value:?} accepted"),
            }
        }
    }

    #[test]
    fn strict_is_stricter_than_basic() {
        let basic = security_headers(SecurityPreset::Basic);
        let strict = security_headers(SecurityPreset::Strict);
        let get =
            |list: &[(HeaderName, HeaderValue)], n: &str| list.iter().find(|(h, _)| h == n).map(|(_, v)| v.clone());
        assert_eq!(get(&basic, "x-frame-options").unwrap(), "SAMEORIGIN");
        assert_eq!(get(&strict, "x-frame-options").unwrap(), "DENY");
        assert!(
            basic.iter().all(|(n, _)| get(&strict, n.as_str()).is_some()),
            "strict sets every basic header"
        );
    }
}
