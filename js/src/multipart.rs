//! Forms: `Blob`, `File` and `FormData` (web/forms.js, loaded on first
//! use), and `multipart/form-data` bodies (RFC 7578) for `formData()`: a small
//! parser of our own over `memchr`, since the body is already whole in
//! memory (multer, the maintained crate, is built for async streams and
//! would bring its own dependencies for what is a hundred lines here).

use memchr::memmem;
use rquickjs::{Array, Ctx, Function, Object, TypedArray, Value};

use crate::bytecode::Compiled;

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// A file's name (`filename`); `None` for a plain field.
    pub filename: Option<String>,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Why a body is not a form; the text a `TypeError` shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MultipartError {
    /// No boundary, or one the RFC does not allow.
    #[error("the content-type has no valid boundary")]
    Boundary,
    /// The body does not start with the boundary, or ends before its close.
    #[error("the body is not a complete multipart/form-data body")]
    Truncated,
    /// A part's headers are broken or it has no `form-data` disposition.
    #[error("a part has no `Content-Disposition: form-data; name=...` header")]
    Disposition,
    /// More parts than [`MAX_PARTS`].
    #[error("more than {MAX_PARTS} parts")]
    TooManyParts,
}

/// Fields a form may have: the body is bounded by the body limit, this
/// bounds the JavaScript objects made from it.
pub(crate) const MAX_PARTS: usize = 10_000;

/// `native => { Blob, File, FormData, encodeMultipart, decodeForm }`.
/// Compiled once per process ([`Compiled`]).
static FORMS: Compiled = Compiled::new("bext:forms", include_str!("web/forms.js"));

/// Adds `native.loadForms()` (evaluates web/forms.js; the prelude calls
/// it on the first use of `Blob`, `File`, `FormData` or `formData()`) and
/// `native.multipartParse(bytes, contentType)`: the form's parts as
/// `[name, filename | null, contentType | null, Uint8Array, ...]`, or a
/// `TypeError` saying why the body is not a form.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> rquickjs::Result<()> {
    // `native` comes as `this`, not in the closure: see `streams::install`.
    native.set(
        "loadForms",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, native: rquickjs::function::This<Object<'js>>| -> rquickjs::Result<Value<'js>> {
                let forms: Function<'js> = FORMS.function(&ctx)?;
                forms.call((native.0,))
            },
        )?,
    )?;
    native.set(
        "multipartParse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, body: TypedArray<'js, u8>, content_type: String| -> rquickjs::Result<Array<'js>> {
                let body = crate::natives::copy_bytes(&body);
                let parts = boundary(&content_type)
                    .and_then(|b| parse(&body, &b))
                    .map_err(|e| rquickjs::Exception::throw_type(&ctx, &format!("formData(): {e}")))?;
                let out = Array::new(ctx.clone())?;
                for (i, p) in parts.into_iter().enumerate() {
                    let opt = |s: Option<String>| -> rquickjs::Result<Value<'js>> {
                        match s {
                            Some(s) => Ok(rquickjs::String::from_str(ctx.clone(), &s)?.into_value()),
                            None => Ok(Value::new_null(ctx.clone())),
                        }
                    };
                    out.set(i * 4, p.name)?;
                    out.set(i * 4 + 1, opt(p.filename)?)?;
                    out.set(i * 4 + 2, opt(p.content_type)?)?;
                    out.set(i * 4 + 3, TypedArray::<u8>::new(ctx.clone(), p.data)?)?;
                }
                Ok(out)
            },
        )?,
    )?;
    Ok(())
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::Boundary);
    }
    let value = params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::Boundary)?;
    let ok = (1..=70).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
        && !value.ends_with(' ');
    if ok { Ok(value) } else { Err(MultipartError::Boundary) }
}

/// Splits `body` into its parts.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first boundary may open the body or follow a preamble line.
    let mut at = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        memmem::find(body, delimiter.as_bytes()).ok_or(MultipartError::Truncated)? + delimiter.len()
    };
    let finder = memmem::Finder::new(delimiter.as_bytes());
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts); // the close delimiter; an epilogue is ignored
        }
        // Transport padding, then the line break that ends the boundary line.
        let line = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        if !rest[line..].starts_with(b"\r\n") {
            return Err(MultipartError::Truncated);
        }
        at += line + 2;
        let head_end = memmem::find(&body[at..], b"\r\n\r\n");
        // A part with no headers at all starts with the blank line at once.
        let (head, data_start) = if body[at..].starts_with(b"\r\n") {
            (&body[at..at], at + 2)
        } else {
            let end = head_end.ok_or(MultipartError::Truncated)?;
            (&body[at..at + end], at + end + 4)
        };
        let data_end = data_start + finder.find(&body[data_start..]).ok_or(MultipartError::Truncated)?;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        parts.push(part(head, &body[data_start..data_end])?);
        at = data_end + delimiter.len();
    }
}

fn part(head: &[u8], data: &[u8]) -> Result<Part, MultipartError> {
    let head = String::from_utf8_lossy(head);
    let mut disposition = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or(MultipartError::Disposition)?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        }
    }
    let disposition = disposition.ok_or(MultipartError::Disposition)?;
    let (kind, params) = disposition.split_once(';').unwrap_or((&disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::Disposition);
    }
    let params = params_of(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    Ok(Part {
        name: get("name").ok_or(MultipartError::Disposition)?,
        filename: get("filename"),
        content_type,
        data: data.to_vec(),
    })
}

/// `; key=value; key="quoted \"value\""` as pairs, in order.
fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ';')).collect();
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ';')).collect();
                value = value.trim_end().to_owned();
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\nworld\r\n--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"\r\nContent-Type: text/plain\r\n\r\n--XyZ is not a boundary here\r\n--XyZ\r\nContent-Disposition: form-data; name=empty\r\n\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn fields_and_files_with_tricky_content() {
        let parts = parse(BODY, "XyZ").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            (parts[0].name.as_str(), &parts[0].data[..]),
            ("title", &b"hello\r\nworld"[..])
        );
        assert_eq!(parts[0].filename, None);
        assert_eq!(parts[1].filename.as_deref(), Some("a \"b\".txt"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[1].data, b"--XyZ is not a boundary here");
        assert_eq!((parts[2].name.as_str(), parts[2].data.len()), ("empty", 0));
    }

    #[test]
    fn broken_bodies_are_errors_not_panics() {
        for n in 0..BODY.len() {
            let _ = parse(&BODY[..n], "XyZ");
        }
        assert_eq!(parse(&BODY[..BODY.len() - 20], "XyZ"), Err(MultipartError::Truncated));
        assert_eq!(
            parse(b"--XyZ\r\nx\r\n\r\n\r\n--XyZ--", "XyZ"),
            Err(MultipartError::Disposition)
        );
        let no_name = b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--";
        assert_eq!(parse(no_name, "XyZ"), Err(MultipartError::Disposition));
        let mut many = Vec::new();
        for _ in 0..=MAX_PARTS {
            many.extend_from_slice(b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n");
        }
        many.extend_from_slice(b"--b--");
        assert_eq!(parse(&many, "b"), Err(MultipartError::TooManyParts));
    }

    #[test]
    fn boundaries_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=abc").unwrap(), "abc");
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"").unwrap(),
            "a b:c"
        );
        for bad in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/mixed; boundary=abc",
            "multipart/form-data; boundary=\"a\rb\"",
            &format!("multipart/form-data; boundary={}", "x".repeat(71)),
        ] {
            assert_eq!(boundary(bad), Err(MultipartError::Boundary), "{bad:?}");
        }
    }
}
