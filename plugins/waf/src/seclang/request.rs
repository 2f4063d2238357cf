//! A request as SecLang rules see it: the collections (ARGS, headers,
//! cookies, files...) built once per request from what the server has,
//! with the body parsed the way ModSecurity's body processors parse it.

use crate::inspect::Subject;

use super::transform::{form_decode, percent_decode};

/// Named values of one collection, in request order.
pub(crate) type Pairs = Vec<(String, Vec<u8>)>;

/// Everything a rule can read about a request.
#[derive(Debug, Default)]
pub struct RequestData {
    pub(crate) method: String,
    /// The request-target as sent.
    pub(crate) uri: String,
    /// The path, percent-decoded.
    pub(crate) filename: Vec<u8>,
    pub(crate) query: String,
    pub(crate) protocol: String,
    pub(crate) headers: Pairs,
    pub(crate) cookies: Pairs,
    pub(crate) args_get: Pairs,
    pub(crate) args_post: Pairs,
    /// Multipart uploads: field name and file name.
    pub(crate) files: Pairs,
    pub(crate) part_headers: Pairs,
    pub(crate) body: Vec<u8>,
    pub(crate) processor: &'static str,
    pub(crate) body_error: bool,
    pub(crate) remote_addr: String,
}

impl RequestData {
    /// The collections of `req` (HTTP/1.1 is assumed for the protocol).
    pub fn new(req: &Subject<'_>, remote_addr: &str) -> RequestData {
        let query = req.query.unwrap_or("").to_owned();
        let uri = match req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.to_owned(),
        };
        let mut headers = Pairs::new();
        let mut cookies = Pairs::new();
        for (name, value) in req.headers {
            let value = value.as_bytes();
            if name == http::header::COOKIE {
                cookies.extend(parse_cookies(value));
            }
            headers.push((canonical_header(name.as_str()), value.to_vec()));
        }
        let content_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut data = RequestData {
            method: req.method.as_str().to_owned(),
            filename: percent_decode(req.path.as_bytes()),
            args_get: parse_form(query.as_bytes()),
            query,
            uri,
            protocol: "HTTP/1.1".into(),
            headers,
            cookies,
            body: req.body.to_vec(),
            remote_addr: remote_addr.to_owned(),
            ..RequestData::default()
        };
        if !req.body.is_empty() {
            data.parse_body(content_type);
        }
        data
    }

    /// How many arguments (query and body) there are, and their names'
    /// and values' bytes (`ARGS_COMBINED_SIZE`): what each ARGS rule reads.
    pub fn args_size(&self) -> (usize, usize) {
        let all = self.args_get.iter().chain(&self.args_post);
        (
            self.args_get.len() + self.args_post.len(),
            all.map(|(n, v)| n.len() + v.len()).sum(),
        )
    }

    fn parse_body(&mut self, content_type_as_sent: &str) {
        let content_type = &content_type_as_sent.to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") || content_type.is_empty() {
            self.processor = "URLENCODED";
            self.args_post = parse_form(&self.body);
        } else if content_type.starts_with("multipart/form-data") {
            self.processor = "MULTIPART";
            match boundary(content_type_as_sent) {
                Some(b) => self.parse_multipart(&b),
                None => self.body_error = true,
            }
        } else if content_type.contains("json") {
            self.processor = "JSON";
            match serde_json::from_slice::<serde_json::Value>(&self.body) {
                Ok(v) => flatten_json("json", &v, &mut self.args_post),
                Err(_) => self.body_error = true,
            }
        } else if content_type.contains("xml") {
            self.processor = "XML";
        }
    }

    fn parse_multipart(&mut self, boundary: &str) {
        let delimiter = format!("--{boundary}");
        let body = std::mem::take(&mut self.body);
        let mut parts = memchr::memmem::find_iter(&body, delimiter.as_bytes()).peekable();
        let mut ended = false;
        while let Some(start) = parts.next() {
            let from = start + delimiter.len();
            if body[from..].starts_with(b"--") {
                ended = true;
                break;
            }
            let Some(to) = parts.peek().copied() else { break };
            let part = body[from..to].strip_prefix(b"\r\n").unwrap_or(&body[from..to]);
            let part = part.strip_suffix(b"\r\n").unwrap_or(part);
            let Some(split) = memchr::memmem::find(part, b"\r\n\r\n") else {
                self.body_error = true;
                continue;
            };
            let (head, value) = (&part[..split], &part[split + 4..]);
            let (mut name, mut filename) = (None, None);
            for line in head.split(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(line).trim().to_owned();
                self.part_headers.push((String::new(), line.clone().into_bytes()));
                if line.to_ascii_lowercase().starts_with("content-disposition") {
                    name = disposition_param(&line, "name");
                    filename = disposition_param(&line, "filename");
                }
            }
            let name = name.unwrap_or_default();
            match filename {
                Some(f) => self.files.push((name, f.into_bytes())),
                None => self.args_post.push((name, value.to_vec())),
            }
        }
        if !ended {
            self.body_error = true;
        }
        self.body = body;
    }
}

/// Header names as a browser writes them (`User-Agent`), for
/// `MATCHED_VAR_NAME`; selectors compare without case anyway.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `a=1&b=2`, decoded (`+` is a space); a name without `=` has an empty
/// value.
pub(crate) fn parse_form(s: &[u8]) -> Pairs {
    s.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            (String::from_utf8_lossy(&form_decode(k)).into_owned(), form_decode(v))
        })
        .collect()
}

fn parse_cookies(v: &[u8]) -> Pairs {
    v.split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .map(|c| match c.iter().position(|&b| b == b'=') {
            Some(i) => (String::from_utf8_lossy(&c[..i]).into_owned(), c[i + 1..].to_vec()),
            None => (String::from_utf8_lossy(c).into_owned(), Vec::new()),
        })
        .collect()
}

fn boundary(content_type: &str) -> Option<String> {
    let b = content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then_some(v.trim())
    })?;
    let b = b.trim_matches('"');
    (!b.is_empty()).then(|| b.to_owned())
}

fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// JSON as ModSecurity's JSON processor names it: `json.a.b`, array items
/// `json.list.array_0`.
fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut Pairs) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_json(&format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(&format!("{prefix}.array_{i}"), v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone().into_bytes())),
        Value::Null => out.push((prefix.to_owned(), Vec::new())),
        other => out.push((prefix.to_owned(), other.to_string().into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    fn data(query: Option<&str>, ct: &str, body: &str) -> RequestData {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("a=1; b=x%20y"));
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
        let subject = Subject {
            method: &Method::POST,
            path: "/p%61th/x.php",
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        RequestData::new(&subject, "127.0.0.1")
    }

    #[test]
    fn collections() {
        let d = data(Some("q=a+b%27&flag"), "application/x-www-form-urlencoded", "x=1%3D1");
        assert_eq!(
            d.args_get,
            vec![("q".into(), b"a b'".to_vec()), ("flag".into(), vec![])]
        );
        assert_eq!(d.args_post, vec![("x".into(), b"1=1".to_vec())]);
        assert_eq!(d.cookies[1], ("b".into(), b"x%20y".to_vec()));
        assert_eq!(d.filename, b"/path/x.php");
        assert_eq!(d.headers[0].0, "Cookie");
        let j = data(None, "application/json", r#"{"a":{"b":[1,"x"]}}"#);
        assert_eq!(j.args_post[1], ("json.a.b.array_1".into(), b"x".to_vec()));
        assert!(data(None, "application/json", "{").body_error);
        let m = data(
            None,
            "multipart/form-data; boundary=XX",
            "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\n\r\n<?php\r\n--XX\r\n\
             Content-Disposition: form-data; name=\"t\"\r\n\r\nhello\r\n--XX--\r\n",
        );
        assert_eq!(m.files, vec![("f".into(), b"a.php".to_vec())]);
        assert_eq!(m.args_post, vec![("t".into(), b"hello".to_vec())]);
        assert!(!m.body_error);
    }
}
