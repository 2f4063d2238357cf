//! Walking a request: every value an app could read (path, arguments,
//! cookies, headers, the Referer's parts, upload names, and the body as
//! form, JSON, XML, multipart or text), each handed to the engine's
//! checks as it is found; the walk stops at the first finding.

use std::borrow::Cow;

use crate::clean::Local;
use crate::hidden::code_in_file;
use crate::inspect::{Engine, Finding, Subject, Switches, allowed_charset, body_charset, charset};
use crate::normalize::{canonical, unescape_entities};
use crate::rules::{Category, Part};

/// Headers whose values are not inspected as free text: checked
/// structurally above, or never carrying application input. Matched on
/// the name's text, which the compiler turns into a length switch and a
/// compare or two: a list of `HeaderName`s costs a compare per entry.
fn skipped_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "content-type"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "connection"
            | "cache-control"
            | "pragma"
            | "upgrade-insecure-requests"
            | "if-none-match"
            | "if-modified-since"
            | "te"
            | "dnt"
            | "keep-alive"
            | "proxy-connection"
            | "priority"
    ) || name.starts_with("sec-")
}

/// Whether a header's value is read as free text: every header but the
/// structured ones of [`skipped_header`], and those too when their value
/// holds a `$`, which no structured value has and `${jndi:...}` and
/// template lookups need: an app that logs every header (Log4Shell's
/// way in) reads `Cache-Control` as well as `User-Agent`.
fn inspected_header(name: &str, value: &[u8]) -> bool {
    !skipped_header(name) || memchr::memchr(b'$', value).is_some()
}

/// Walks a request's values, checking each; the walk stops at the first
/// finding (every method returns true then).
pub(crate) struct Visitor<'e> {
    pub(crate) engine: &'e Engine,
    pub(crate) cx: Context<'e>,
    pub(crate) budget: usize,
    /// A value was left unchecked because the budget ran out.
    pub(crate) skipped: bool,
    pub(crate) found: Option<Finding>,
    /// This thread's clean values.
    pub(crate) clean: Local<'e>,
}

/// What a value's checks know about the whole request.
pub(crate) struct Context<'e> {
    pub(crate) on: &'e Switches,
    /// The body is JSON: `\\uXXXX` escapes are normal there.
    pub(crate) json_request: bool,
    /// The values are the query string's: a `data:` picture there is a
    /// file to include, not one pasted into a form.
    pub(crate) in_query: bool,
}

impl Context<'_> {
    /// The same request's context with other switches (a quoted part's).
    pub(crate) fn with<'s>(&self, on: &'s Switches) -> Context<'s> {
        Context {
            on,
            json_request: self.json_request,
            in_query: self.in_query,
        }
    }
}

impl<'e> Visitor<'e> {
    /// A visitor of one request, with the full budget of values and
    /// nothing found yet.
    pub(crate) fn new(engine: &'e Engine, on: &'e Switches, json_request: bool, clean: Local<'e>) -> Self {
        Visitor {
            engine,
            cx: Context {
                on,
                json_request,
                in_query: false,
            },
            budget: crate::inspect::MAX_VALUES,
            skipped: false,
            found: None,
            clean,
        }
    }
}

impl Visitor<'_> {
    /// Checks one value as sent; `plus` says `+` means a space (forms).
    fn value(&mut self, part: Part, name: &str, raw: &[u8], plus: bool) -> bool {
        if self.budget == 0 {
            self.skipped = true;
            return false;
        }
        self.budget -= 1;
        self.found = self.engine.check(part, name, raw, plus, &self.cx);
        self.found.is_some()
    }

    /// Runs `walk` over a value unless the clean cache already vouches for
    /// it; a value walked to the end without a finding is then kept. True
    /// when the walk stopped at a finding.
    fn cached_clean(
        &mut self,
        cacheable: bool,
        name: &str,
        value: &[u8],
        walk: impl FnOnce(&mut Self) -> bool,
    ) -> bool {
        let cache = self.clean;
        let probe = cacheable
            .then(|| cache.probe(self.cx.json_request, name, value))
            .flatten();
        if let Some(p) = probe
            && cache.contains(p, name, value)
        {
            return false;
        }
        if walk(self) {
            return true;
        }
        if let Some(p) = probe
            && self.budget > 0
        {
            cache.insert(p, name, value);
        }
        false
    }

    /// Records a structural finding (not tied to a rule's regex).
    fn flag(&mut self, rule: &'static str, category: Category, part: Part, name: &str, sample: &str) -> bool {
        self.found = self.cx.on.finding(rule, category, part, name, sample);
        self.found.is_some()
    }
}

/// Visits every value of the request.
pub(crate) fn values(req: &Subject<'_>, v: &mut Visitor<'_>) {
    if target(req, v) {
        return;
    }
    // A verdict of "clean" is kept only with every rule on (a JSON body
    // relaxes one rule, so the cache key says whether there was one).
    let cacheable = v.cx.on.all_on();
    let json_request = v.cx.json_request;
    // The whole run of inspected headers, when it is the last clean one,
    // is one comparison; otherwise value by value, and a run found all
    // clean becomes the last clean one.
    let inspected = || {
        req.headers
            .iter()
            .map(|(h, value)| (h.as_str(), value.as_bytes()))
            .filter(|(name, value)| inspected_header(name, value))
    };
    if !(cacheable && v.clean.same_clean_headers(json_request, inspected())) {
        if headers(req, cacheable, v) {
            return;
        }
        if cacheable && !v.skipped {
            v.clean.keep_clean_headers(json_request, inspected());
        }
    }
    if req.body.is_empty() {
        return;
    }
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    body(ct, req.body, v);
}

/// Visits the path and the query (what is left of a request whose method
/// and headers were found clean before); true at a finding.
pub(crate) fn target(req: &Subject<'_>, v: &mut Visitor<'_>) -> bool {
    let cacheable = v.cx.on.all_on();
    let json_request = v.cx.json_request;
    // The path and query, when they are the last clean ones, are one
    // comparison; otherwise each goes through the table and the rules.
    let (path, query) = (req.path.as_bytes(), req.query.map(str::as_bytes));
    if cacheable && v.clean.same_clean_target(json_request, path, query) {
        return false;
    }
    if target_values(req, cacheable, v) {
        return true;
    }
    if cacheable && !v.skipped {
        v.clean.keep_clean_target(json_request, path, query);
    }
    false
}

/// Visits the path and the query value by value; true at a finding.
fn target_values(req: &Subject<'_>, cacheable: bool, v: &mut Visitor<'_>) -> bool {
    // Names no header can have (NUL), so the keys never meet a header's.
    if v.cached_clean(cacheable, "\0path", req.path.as_bytes(), |v| {
        v.found = v.engine.protocol_path(req.path, v.cx.on);
        v.found.is_some() || v.value(Part::Path, "", req.path.as_bytes(), false)
    }) {
        return true;
    }
    if let Some(q) = req.query
        && v.cached_clean(cacheable, "\0query", q.as_bytes(), |v| {
            v.found = v.engine.protocol_query(q, v.cx.on);
            if v.found.is_some() {
                return true;
            }
            v.cx.in_query = true;
            let found = form(q.as_bytes(), v);
            v.cx.in_query = false;
            found
        })
    {
        return true;
    }
    false
}

/// Visits the inspected headers' values; true at a finding.
fn headers(req: &Subject<'_>, cacheable: bool, v: &mut Visitor<'_>) -> bool {
    for (header, value) in req.headers {
        let name = header.as_str();
        let bytes = value.as_bytes();
        if !inspected_header(name, bytes) {
            continue;
        }
        let stop = v.cached_clean(cacheable, name, bytes, |v| {
            if header == http::header::COOKIE {
                cookies(bytes, v)
            } else if header == http::header::USER_AGENT {
                v.value(Part::UserAgent, name, bytes, false)
            } else if header == http::header::REFERER {
                referer(bytes, v)
            } else if matches!(name, "x-filename" | "x_filename" | "x.filename" | "x-file-name") {
                v.value(Part::Filename, name, bytes, false) || v.value(Part::Header, name, bytes, false)
            } else {
                v.value(Part::Header, name, bytes, false)
            }
        });
        if stop {
            return true;
        }
    }
    false
}

/// Visits a body by its content type.
fn body(ct: &str, body: &[u8], v: &mut Visitor<'_>) -> bool {
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let mime = mime.as_str();
    if mime == "application/x-www-form-urlencoded" {
        return form(body, v);
    }
    if mime == "application/json" || mime.ends_with("+json") {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(doc) => json(&doc, "", v),
            Err(_) => v.value(Part::Body, "", body, false),
        };
    }
    if mime == "multipart/form-data" {
        return multipart(ct, body, v);
    }
    if mime.ends_with("/xml") || mime.ends_with("+xml") {
        return xml(body, v);
    }
    // Text and unknown types: the whole body, and its fields when it
    // looks like a form (many clients mislabel forms).
    if v.value(Part::Body, "", body, false) {
        return true;
    }
    let looks_like_form =
        body.contains(&b'=') && !body.contains(&b'\n') && !body.starts_with(b"<") && !body.starts_with(b"{");
    looks_like_form && form(body, v)
}

/// A Referer is a URL: its path and query arguments are what an app
/// might reflect; scheme and host are not inspected as input.
fn referer(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let rest = raw
        .windows(3)
        .position(|w| w == b"://")
        .map(|i| &raw[i + 3..])
        .map(|r| &r[r.iter().position(|&b| b == b'/').unwrap_or(r.len())..]);
    let Some(rest) = rest else {
        return v.value(Part::Referer, "referer", raw, false);
    };
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if !path.is_empty() && v.value(Part::Referer, "referer", path, false) {
        return true;
    }
    let Some(query) = query else { return false };
    for pair in query.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if v.value(Part::Referer, "referer", name, true) || v.value(Part::Referer, "referer", value, true) {
            return true;
        }
    }
    false
}

/// `a=1&b=2`, as query strings and form bodies.
fn form(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    for pair in raw.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        // The name goes to the rules as sent (they decode it), so a
        // base64 name keeps its letters' case.
        let raw_name = name;
        let name = canonical(name, true);
        if v.value(Part::ArgName, "", raw_name, true) || v.value(Part::Arg, &name, value, true) {
            return true;
        }
    }
    false
}

fn cookies(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    for pair in raw.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = canonical(name, false);
        if v.value(Part::Cookie, &name, name.as_bytes(), false) || v.value(Part::Cookie, &name, value, false) {
            return true;
        }
    }
    false
}

fn json(node: &serde_json::Value, key: &str, v: &mut Visitor<'_>) -> bool {
    match node {
        serde_json::Value::String(s) => v.value(Part::Arg, key, s.as_bytes(), false),
        serde_json::Value::Array(items) => items.iter().any(|i| json(i, key, v)),
        serde_json::Value::Object(map) => map.iter().any(|(k, val)| {
            if constructor_prototype(k, val) {
                return v.flag(
                    "nodejs-proto-pollution",
                    Category::Nodejs,
                    Part::ArgName,
                    k,
                    "constructor.prototype",
                );
            }
            let name = canonical(k.as_bytes(), false);
            v.value(Part::ArgName, "", k.as_bytes(), false) || json(val, &name, v)
        }),
        _ => false,
    }
}

/// A `constructor` key holding an object with a `prototype` key: a deep
/// merge (lodash's `merge`, CVE-2019-10744) walks `obj.constructor` to the
/// object's class and writes into its prototype, every object's. The keys
/// are compared as parsed (`\u0063onstructor` is `constructor`), in any
/// case; `{"constructor": "Acme Ltd"}` or a lone `prototype` is data.
fn constructor_prototype(key: &str, value: &serde_json::Value) -> bool {
    key.trim().eq_ignore_ascii_case("constructor")
        && value
            .as_object()
            .is_some_and(|inner| inner.keys().any(|k| k.trim().eq_ignore_ascii_case("prototype")))
}

/// Text nodes and attribute values of an XML document, entities decoded;
/// not a validating parser, just enough to see what the app will see.
/// An element's text is one value, as a parser reports it: its text and
/// CDATA sections joined across comments and processing instructions
/// (`UNI<!---->ON`, `UNI<![CDATA[ON]]>` are `UNION` to the app).
fn xml(raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let text = String::from_utf8_lossy(raw);
    let mut rest: &str = &text;
    let mut joined = String::new();
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        joined.push_str(&unescape_entities(&rest[..lt]));
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        // Comments, CDATA and processing instructions end at their own
        // terminator (a `>` or a quote inside them ends nothing); one left
        // open is inspected to the end of the body.
        if let Some(inner) = rest.strip_prefix("<![CDATA[") {
            let end = inner.find("]]>");
            joined.push_str(&inner[..end.unwrap_or(inner.len())]);
            rest = end.map_or("", |e| &inner[e + 3..]);
            continue;
        }
        let skipped = [("<!--", "-->"), ("<?", "?>")]
            .into_iter()
            .find_map(|(open, close)| Some((rest.strip_prefix(open)?, close)));
        if let Some((inner, close)) = skipped {
            match inner.find(close) {
                Some(e) => rest = &inner[e + close.len()..],
                None => return text_value(&mut joined, v) || v.value(Part::Body, "", inner.as_bytes(), false),
            }
            continue;
        }
        // A tag: the element's text so far is complete.
        if text_value(&mut joined, v) {
            return true;
        }
        // A DOCTYPE, with its internal subset `[...]`, which holds `>`.
        if rest.len() >= 9 && rest.as_bytes()[..9].eq_ignore_ascii_case(b"<!doctype") {
            let end = doctype_end(rest);
            let decl = rest[..end.unwrap_or(rest.len())].to_ascii_lowercase();
            if let Some((rule, sample)) = doctype_threat(&decl) {
                return v.flag(rule, Category::Generic, Part::Body, "doctype", sample);
            }
            // Left open, as a tag left open: the rest is one value.
            let Some(end) = end else {
                return v.value(Part::Body, "", unescape_entities(rest).as_bytes(), false);
            };
            rest = &rest[end + 1..];
            continue;
        }
        let Some(gt) = find_tag_end(rest) else {
            return v.value(Part::Body, "", unescape_entities(rest).as_bytes(), false);
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('!') || tag.starts_with('/') {
            continue;
        }
        for (name, value) in attributes(tag) {
            let raw_name = name;
            let name = canonical(name.as_bytes(), false);
            if v.value(Part::ArgName, "", raw_name.as_bytes(), false)
                || v.value(Part::Arg, &name, unescape_entities(value).as_bytes(), false)
            {
                return true;
            }
        }
    }
    text_value(&mut joined, v)
}

/// Where the DOCTYPE or declaration at the start of `s` ends (its
/// closing `>`), skipping quoted literals, comments and the internal
/// subset `[...]`; `None` when it is left open.
fn doctype_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let (mut quote, mut depth, mut i) = (None, 0usize, 1);
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'<') if bytes[i..].starts_with(b"<!--") => {
                i += 4 + memchr::memmem::find(&bytes[i + 4..], b"-->")? + 2;
            }
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[') => depth += 1,
            (None, b']') => depth = depth.saturating_sub(1),
            (None, b'>') if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `decl` (a lower-cased DOCTYPE) without its quoted literals, so a
/// keyword is looked for only where the parser reads keywords.
fn unquoted(decl: &str) -> String {
    let mut out = String::with_capacity(decl.len());
    let mut quote = None;
    for c in decl.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                out.push(' ');
            }
            None => out.push(c),
        }
    }
    out
}

/// Whether the declaration `words` (unquoted) names an external
/// identifier (`SYSTEM` or `PUBLIC`) after its keyword and one name:
/// `<!doctype name system`, `<!entity name public`.
fn external_id(words: &str, keyword: &str) -> bool {
    let mut tokens = words.get(keyword.len()..).unwrap_or("").split_whitespace();
    tokens.next();
    tokens
        .next()
        .is_some_and(|t| t.starts_with("system") || t.starts_with("public"))
}

/// What makes a DOCTYPE of an XML body an attack (XXE), with its rule:
/// an external DTD or entity (`SYSTEM`/`PUBLIC` identifiers: the parser
/// fetches a file or URL and may put it in the document), a parameter
/// entity (`<!ENTITY % p ...>`, how out-of-band XXE loads its DTD), or an
/// entity whose value refers to another entity (the billion-laughs
/// expansion bomb). A DOCTYPE that only names the root (`<!DOCTYPE html>`)
/// and the W3C's own public DTDs are none of these.
fn doctype_threat(decl: &str) -> Option<(&'static str, &str)> {
    let (outer, subset) = match decl.find('[') {
        Some(i) => (&decl[..i], &decl[i..]),
        None => (decl, ""),
    };
    let w3c_public = (outer.contains("\"-//w3c//") || outer.contains("'-//w3c//"))
        && outer.match_indices("http").all(|(at, _)| {
            ["http://www.w3.org/", "https://www.w3.org/"]
                .iter()
                .any(|w| outer[at..].starts_with(w))
        });
    if external_id(&unquoted(outer), "<!doctype") && !w3c_public {
        return Some(("xxe-external-entity", decl));
    }
    for (at, _) in subset.match_indices("<!entity") {
        let entity = &subset[at..];
        let entity = &entity[..doctype_end(entity).unwrap_or(entity.len())];
        let words = unquoted(entity);
        if words
            .get("<!entity".len()..)
            .unwrap_or("")
            .trim_start()
            .starts_with('%')
            || external_id(&words, "<!entity")
        {
            return Some(("xxe-external-entity", entity));
        }
        // `&name;` in the value, but for the five predefined and
        // character references, which expand to one character.
        let refers = entity.match_indices('&').any(|(i, _)| {
            let name = &entity[i + 1..];
            let name = &name[..name.find(';').unwrap_or(name.len())];
            !name.is_empty() && !name.starts_with('#') && !matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
        });
        if refers {
            return Some(("xxe-entity-expansion", entity));
        }
    }
    None
}

/// Checks (and empties) the text gathered between two tags.
fn text_value(joined: &mut String, v: &mut Visitor<'_>) -> bool {
    let value = joined.trim();
    let stop = !value.is_empty() && v.value(Part::Arg, "", value.as_bytes(), false);
    joined.clear();
    stop
}

/// The `>` that closes a tag, skipping quoted attribute values.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name="value"` pairs of a tag.
fn attributes(tag: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = tag.split_once(char::is_whitespace).map_or("", |(_, r)| r);
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            out.push((name, &after[..end]));
            rest = &after[end..];
            continue;
        };
        let body = &after[1..];
        let end = body.find(q).unwrap_or(body.len());
        out.push((name, &body[..end]));
        rest = body.get(end + 1..).unwrap_or("");
    }
    out
}

/// Fields of a `multipart/form-data` body: names, file names, and the
/// content of each part by its own type. Malformed names (quotes,
/// semicolons: the classic parser-confusion bypass) are findings.
fn multipart(ct: &str, raw: &[u8], v: &mut Visitor<'_>) -> bool {
    let Some(boundary) = ct
        .split(';')
        .filter_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim().eq_ignore_ascii_case("boundary").then_some(value.trim())
        })
        .next()
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
    else {
        return v.value(Part::Body, "", raw, false);
    };
    let text = String::from_utf8_lossy(raw);
    let delimiter = format!("--{boundary}");
    for section in text.split(delimiter.as_str()).skip(1) {
        if section.starts_with("--") {
            break;
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .unwrap_or(section);
        let (head, content) = match section.find("\r\n\r\n") {
            Some(i) => (&section[..i], &section[i + 4..]),
            None => match section.find("\n\n") {
                Some(i) => (&section[..i], &section[i + 2..]),
                None => (section, ""),
            },
        };
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut part_type = String::new();
        let mut field = String::new();
        let mut is_file = false;
        for line in head.lines() {
            let (hname, hvalue) = line.split_once(':').unwrap_or((line, ""));
            let hname = hname.trim().to_ascii_lowercase();
            if hname == "content-type" {
                part_type = hvalue.trim().to_ascii_lowercase();
            } else if hname == "content-disposition" {
                for (key, value) in disposition_params(hvalue) {
                    if suspicious_multipart_name(&value) {
                        return v.flag(
                            "protocol-multipart-name",
                            Category::Protocol,
                            Part::Filename,
                            &key,
                            &value,
                        );
                    }
                    let canon = canonical(value.as_bytes(), false);
                    let stop = match key.as_str() {
                        "filename" | "filename*" => {
                            is_file = true;
                            v.value(Part::Filename, "filename", value.as_bytes(), false)
                        }
                        "name" => {
                            field = canon.to_string();
                            v.value(Part::ArgName, "", value.as_bytes(), false)
                        }
                        _ => false,
                    };
                    if stop {
                        return true;
                    }
                }
            } else if v.value(Part::Header, &hname, hvalue.as_bytes(), false) {
                return true;
            }
        }
        // A part in a charset the rules cannot read, declared on the part
        // or, for XML, in its own declaration.
        let declared = charset(&part_type).map(Cow::Borrowed).or_else(|| {
            part_type
                .contains("xml")
                .then(|| body_charset(&part_type, content.as_bytes()))
                .flatten()
        });
        if let Some(cs) = declared.filter(|cs| !allowed_charset(cs)) {
            return v.flag("protocol-bad-charset", Category::Protocol, Part::Body, &field, &cs);
        }
        let stop = if part_type.is_empty() || part_type.starts_with("text/plain") {
            v.value(Part::Arg, &field, content.as_bytes(), false)
        } else if part_type.starts_with("text/") || part_type.contains("json") || part_type.contains("xml") {
            body(&part_type, content.as_bytes(), v)
        } else if !is_file {
            // A part without a file name is a form field to PHP's `$_POST`,
            // Flask's `request.form` and `cgi`, whatever type it declares
            // (`image/jpeg`, `application/octet-stream`): its text is a
            // value like any other (bytes that are not UTF-8 read as the
            // rest of the body is).
            v.value(Part::Arg, &field, content.as_bytes(), false)
        } else if let Some((rule, category)) = code_in_file(content.as_bytes(), !content.contains('\u{fffd}')) {
            // A file in a type the rules do not read: the code that acts
            // on a file's contents whatever its type (see `code_in_file`).
            v.flag(rule, category, Part::Body, &field, rule)
        } else {
            false
        };
        if stop {
            return true;
        }
    }
    false
}

/// A field or file name that multipart parsers read differently: quotes,
/// `;`, `=` or backslashes once HTML entities (`&auml;`) are set aside.
fn suspicious_multipart_name(value: &str) -> bool {
    let mut rest = value;
    let mut plain = String::with_capacity(value.len());
    while let Some(amp) = rest.find('&') {
        plain.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity_len = rest[1..]
            .find(';')
            .filter(|&n| n > 0 && n <= 10 && rest[1..1 + n].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#'));
        match entity_len {
            Some(n) => rest = &rest[n + 2..],
            None => {
                plain.push('&');
                rest = &rest[1..];
            }
        }
    }
    plain.push_str(rest);
    plain.contains(['"', '\'', ';', '=', '\\'])
}

/// `name="x"; filename="y"` of a Content-Disposition, quotes removed.
fn disposition_params(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(eq) = rest.find('=') {
        // The name runs back from `=` to a `;` or any white space, so
        // `filename\t=` or `filename =` names no `filename`: Werkzeug and
        // cgi read such a part as a field, and so must the walk (a part
        // taken for a file gets only the file checks).
        let key = rest[..eq]
            .rsplit(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            // The value runs to the closing quote that ends the parameter.
            let end = q.find("\";").or_else(|| q.rfind('"')).unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value.to_owned()));
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::skipped_header;
    use http::header::*;

    #[test]
    fn only_structural_and_inert_headers_are_skipped() {
        let standard = [
            HOST,
            CONTENT_LENGTH,
            CONTENT_TYPE,
            ACCEPT,
            ACCEPT_ENCODING,
            ACCEPT_LANGUAGE,
            CONNECTION,
            CACHE_CONTROL,
            PRAGMA,
            UPGRADE_INSECURE_REQUESTS,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            TE,
            DNT,
            SEC_WEBSOCKET_KEY,
        ];
        for name in &standard {
            assert!(skipped_header(name.as_str()), "{name}");
        }
        for name in [
            "keep-alive",
            "proxy-connection",
            "priority",
            "sec-fetch-mode",
            "sec-ch-ua",
        ] {
            assert!(skipped_header(name), "{name}");
        }
        for name in [COOKIE, USER_AGENT, REFERER, AUTHORIZATION, ORIGIN, IF_MATCH] {
            assert!(!skipped_header(name.as_str()), "{name}");
        }
        for name in ["x-forwarded-for", "sec", "hosts", "x-filename"] {
            assert!(!skipped_header(name), "{name}");
        }
    }
}
