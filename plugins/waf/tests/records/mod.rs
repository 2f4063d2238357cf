//! The labelled records of `tests/waf-corpus` (and `tests/corpus`), read
//! and turned into what the WAF inspects; shared by the corpus tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bext_plugin_waf::inspect::Subject;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;

/// One labelled request.
#[derive(Deserialize)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) category: String,
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Option<String>,
    pub(crate) expect: String,
    /// `dev` or `test` in `extra.jsonl`; absent in the other files.
    #[serde(default)]
    pub(crate) split: Option<String>,
    /// The paranoia level of the CRS rule a `crs` record in `extra.jsonl`
    /// tests (the records of `corpus.jsonl` are all level 1).
    #[serde(default)]
    #[allow(dead_code)] // read by the crs test only
    pub(crate) paranoia: Option<u8>,
    /// What traffic a record of `benign-extra.jsonl` is (`api`,
    /// `markdown`, `richtext`...).
    #[serde(default)]
    #[allow(dead_code)] // read by the corpus test only
    pub(crate) kind: Option<String>,
}

/// The records of a file (relative to the crate), of one split or all.
pub(crate) fn corpus(rel: &str, split: Option<&str>) -> Vec<Record> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str::<Record>(l).expect("corpus record"))
        .filter(|r| split.is_none() || r.split.as_deref() == split)
        .collect()
}

/// A record's request, as the server hands it to the WAF (a
/// `Content-Length` as the sender sets it).
pub(crate) struct Built {
    method: Method,
    headers: HeaderMap,
    body: String,
}

impl Built {
    pub(crate) fn new(r: &Record) -> Built {
        let method = Method::from_bytes(r.method.as_bytes()).expect("method");
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        let body = r.body.clone().unwrap_or_default();
        if r.body.is_some() || matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Built { method, headers, body }
    }

    /// The request as the inspection engines take it.
    pub(crate) fn subject<'a>(&'a self, r: &'a Record) -> Subject<'a> {
        let (path, query) = match r.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (r.uri.as_str(), None),
        };
        Subject {
            method: &self.method,
            path,
            query,
            headers: &self.headers,
            body: self.body.as_bytes(),
        }
    }
}
