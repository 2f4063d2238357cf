//! The CRS tier: the OWASP Core Rule Set, loaded from its files and run
//! by bext's SecLang engine (`seclang/`), after the native rules found
//! nothing. By default (`scope: unclear`) it runs only on requests the
//! native pass cannot clear by their bytes alone: a request whose path,
//! query, body and cookies are plain words and separators is clean for
//! CRS as much as for the native rules, and skips its ~200 rules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use bext_plugin_abi::PluginError;

use crate::audit::{CrsEvent, CrsRule};
use crate::config::{CrsConfig, CrsScope, Mode, Uninspectable};
use crate::inspect::Subject;
use crate::seclang::{Exclusions, Options, RequestData, RuleSet, Verdict};

/// Rule sets already compiled, by directory and settings: per-app
/// instances and reloads share them (compiling CRS takes a while).
type Loaded = Mutex<HashMap<(PathBuf, u8, u32), Arc<RuleSet>>>;
static LOADED: LazyLock<Loaded> = LazyLock::new(Default::default);

/// The tier of one plugin instance.
pub(crate) struct CrsTier {
    set: Arc<RuleSet>,
    options: Options,
    pub(crate) mode: Mode,
    scope: CrsScope,
    limits: Limits,
}

/// How much of a request the tier inspects: every argument costs each
/// ARGS rule a run (an 800-value JSON body took ~0.1 s of CPU), so a
/// client must not choose how much work CRS does.
#[derive(Debug, Clone, Copy)]
struct Limits {
    args: usize,
    bytes: u64,
    over: Uninspectable,
}

impl Limits {
    /// Why `data` is over the limits, if it is.
    fn exceeded(&self, data: &RequestData) -> Option<String> {
        let (args, bytes) = data.args_size();
        if args > self.args {
            return Some(format!("{args} arguments, crs.max_args {}", self.args));
        }
        if bytes as u64 > self.bytes {
            return Some(format!("{bytes} bytes of arguments, crs.max_bytes {}", self.bytes));
        }
        None
    }
}

/// What the tier decided about a request.
pub(crate) struct CrsOutcome {
    /// The score reached the threshold (a CRS `deny` rule fired), or the
    /// request is over the limits with `over_limit: refuse`.
    pub(crate) refused: bool,
    /// The request was over `max_args`/`max_bytes` (CRS did not run).
    pub(crate) over_limit: bool,
    pub(crate) event: CrsEvent,
}

impl CrsTier {
    /// Loads (or reuses) the rule set `config` names.
    pub(crate) fn new(config: &CrsConfig) -> Result<CrsTier, PluginError> {
        if !(1..=4).contains(&config.paranoia) {
            return Err(PluginError::config("crs.paranoia", "must be 1, 2, 3 or 4"));
        }
        if config.inbound_threshold == 0 {
            return Err(PluginError::config("crs.inbound_threshold", "must be at least 1"));
        }
        if config.max_args == 0 {
            return Err(PluginError::config("crs.max_args", "must be at least 1"));
        }
        if config.max_bytes.0 == 0 {
            return Err(PluginError::config("crs.max_bytes", "must be at least 1 byte"));
        }
        let options = Options {
            paranoia: config.paranoia,
            inbound_threshold: config.inbound_threshold,
        };
        let key = (config.rules.clone(), config.paranoia, config.inbound_threshold);
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        let set = match loaded.get(&key) {
            Some(set) => set.clone(),
            None => {
                let set = RuleSet::load(&config.rules, &options)
                    .map_err(|e| PluginError::config("crs.rules", e.to_string()))?;
                let stats = set.stats();
                tracing::info!(
                    target: "bext::waf",
                    rules = stats.rules,
                    skipped = stats.skipped.len(),
                    dir = %config.rules.display(),
                    "CRS rules loaded"
                );
                let set = Arc::new(set);
                loaded.insert(key, set.clone());
                set
            }
        };
        Ok(CrsTier {
            set,
            options,
            mode: config.mode,
            scope: config.scope,
            limits: Limits {
                args: config.max_args,
                bytes: config.max_bytes.0,
                over: config.over_limit,
            },
        })
    }

    /// Runs CRS on `req` unless the scope lets the native pass clear it.
    pub(crate) fn judge(&self, req: &Subject<'_>, ip: &str, exclusions: &Exclusions) -> Option<CrsOutcome> {
        if self.scope == CrsScope::Unclear && !unclear(req) {
            return None;
        }
        let data = RequestData::new(req, ip);
        if let Some(why) = self.limits.exceeded(&data) {
            let mut event = self.event(Verdict::default());
            event.over_limit = Some(why);
            return Some(CrsOutcome {
                refused: self.limits.over == Uninspectable::Refuse,
                over_limit: true,
                event,
            });
        }
        let verdict = self.set.evaluate(&data, exclusions);
        if verdict.denied_by.is_none() && verdict.hits.is_empty() {
            return None;
        }
        Some(CrsOutcome {
            refused: verdict.denied_by.is_some(),
            over_limit: false,
            event: self.event(verdict),
        })
    }

    fn event(&self, v: Verdict) -> CrsEvent {
        CrsEvent {
            over_limit: None,
            score: v.score,
            threshold: self.options.inbound_threshold,
            paranoia: self.options.paranoia,
            rules: v
                .hits
                .into_iter()
                .map(|h| CrsRule {
                    id: h.id,
                    msg: h.msg,
                    var: h.var,
                    data: h.data,
                })
                .collect(),
        }
    }
}

/// Whether a request needs the CRS tier: some byte of its path, query,
/// body or cookies (percent-decoded twice) is not a letter, digit, space
/// or one of `-_.~/=&,:@`. Other headers are left to the native rules.
pub fn unclear(req: &Subject<'_>) -> bool {
    // Cookies one by one: `; ` separates them.
    let cookies = req
        .headers
        .get_all(http::header::COOKIE)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'));
    [req.path.as_bytes(), req.query.unwrap_or("").as_bytes(), req.body]
        .into_iter()
        .chain(cookies)
        .any(|v| !plain(v))
}

/// The bytes of a plain value, as a table (one load per byte).
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'-' | b'_' | b'.' | b'~' | b'/' | b'=' | b'&' | b',' | b':' | b'@' | b'+'
            );
        b += 1;
    }
    t
};

fn plain(v: &[u8]) -> bool {
    let ok = |b: &u8| PLAIN[usize::from(*b)];
    if !v.contains(&b'%') {
        return v.iter().all(ok);
    }
    let once = crate::seclang::percent_decode(v);
    let twice = crate::seclang::percent_decode(&once);
    twice.iter().all(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    fn subject<'a>(headers: &'a HeaderMap, path: &'a str, query: Option<&'a str>, body: &'a [u8]) -> Subject<'a> {
        Subject {
            method: &Method::GET,
            path,
            query,
            headers,
            body,
        }
    }

    #[test]
    fn plain_requests_are_cleared_and_anything_else_is_not() {
        let h = HeaderMap::new();
        assert!(!unclear(&subject(
            &h,
            "/shop/item-42.html",
            Some("q=red+shoes&page=2"),
            b""
        )));
        assert!(unclear(&subject(&h, "/", Some("q=caf%C3%A9"), b"")));
        assert!(unclear(&subject(&h, "/", Some("q=%27"), b"")));
        assert!(unclear(&subject(&h, "/", Some("q=%2527"), b"")));
        assert!(unclear(&subject(&h, "/a;b", None, b"")));
        assert!(unclear(&subject(&h, "/", None, b"{\"a\":1}")));
        let mut c = HeaderMap::new();
        c.insert("cookie", HeaderValue::from_static("theme=dark; sid=abc.DEF-1_2"));
        assert!(!unclear(&subject(&c, "/", None, b"")));
        c.insert("cookie", HeaderValue::from_static("theme=dark; s=<script>"));
        assert!(unclear(&subject(&c, "/", None, b"")));
    }
}
