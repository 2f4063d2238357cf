//! Java attack markers hidden in base64 at any alignment.
//!
//! A gadget chain or a serialized object is sent base64-encoded inside a
//! larger encoded blob (a cookie, a ViewState, a JSON field), so the
//! encoded name of `InvokerTransformer` depends on where it sits: three
//! byte alignments, three spellings, and a fragment cut from the middle of
//! a blob starts with a partial character. `normalize::base64_text` only
//! decodes a whole value that is base64; this decodes every base64 run of
//! a value at each of the four character phases and looks in the bytes
//! for the markers, so no spelling of the alignment matters.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// Shortest base64 run decoded: six characters hold four bytes, the
/// serialized-object magic (`KztAAU` is `\xac\xed\x00\x05` one byte in).
const MIN_RUN: usize = 6;

/// Longest run decoded (a run past it is decoded up to here): what the
/// markers need is at most a few hundred characters into a blob, and a
/// 64 KiB base64 upload should not be decoded four times over.
const MAX_RUN: usize = 8 * 1024;

/// What a decoded Java payload carries: the classes gadget chains are
/// built from (as CRS's rule 944300 lists them) and the serialization
/// stream's magic and version.
const MARKERS: &[&[u8]] = &[
    b"runtime",
    b"processbuilder",
    b"clonetransformer",
    b"forclosure",
    b"instantiatefactory",
    b"instantiatetransformer",
    b"invokertransformer",
    b"prototypeclonefactory",
    b"prototypeserializationfactory",
    b"whileclosure",
    b"getproperty",
    b"filewriter",
    b"xmldecoder",
    b"\xac\xed\x00\x05",
];

static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(MARKERS)
        .expect("java markers compile")
});

/// Whether any base64 run in `raw` (the value as sent, case kept) decodes,
/// at some alignment, to bytes holding a Java gadget class name or the
/// serialization magic.
pub(crate) fn java_in_base64(raw: &[u8]) -> bool {
    let mut start = 0;
    while start < raw.len() {
        if !is_base64(raw[start]) {
            start += 1;
            continue;
        }
        let end = raw[start..]
            .iter()
            .position(|b| !is_base64(*b))
            .map_or(raw.len(), |n| start + n);
        let run = &raw[start..end.min(start + MAX_RUN)];
        if run.len() >= MIN_RUN && mixed_case(run) && (0..4).any(|phase| FINDER.is_match(&decode(run, phase))) {
            return true;
        }
        start = end;
    }
    false
}

/// Whether a `data:` picture in `raw` (the value as sent: base64 keeps its
/// case) carries code behind its signature, a polyglot: PHP, JSP/ASP or
/// HTML script tags, an event handler, a `javascript:` URL or a JNDI
/// lookup in its decoded bytes. PHP's `data:` wrapper runs a picture's
/// `<?php` or `<?=`, and a browser sniffing one as HTML runs its
/// `<script>`. The base64 is read as lenient decoders read it (PHP's,
/// Python's): line breaks and spaces skipped, and decoding both across
/// and after padding, so neither hides the code. The markers are long
/// enough that a picture's compressed bytes rarely spell one by chance
/// (the three-byte ones about once in 170 pictures of 100 KB; such a
/// picture is then read as text, as before pictures were recognised).
pub(crate) fn code_in_pictures(raw: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"<?php",
        b"<?=",
        b"<%=",
        b"<%@",
        b"<script",
        b"<svg",
        b"<iframe",
        b"<html",
        b"<body",
        b"<img",
        b"<object",
        b"<embed",
        b"onerror",
        b"onload",
        b"javascript:",
        b"vbscript:",
        b"${jndi",
        b"${${",
        b"${lower:",
        b"${env:",
        b"${sys:",
    ];
    let decoded;
    let raw = match raw
        .contains(&b'%')
        .then(|| crate::normalize::percent_decode(raw))
        .flatten()
    {
        Some(bytes) => {
            decoded = bytes;
            &decoded[..]
        }
        None => raw,
    };
    let mut from = 0;
    while let Some(at) = find_ignoring_case(&raw[from..], b"data:image/") {
        from += at + b"data:image/".len();
        let Some(comma) = find_ignoring_case(&raw[from..], b";base64,") else {
            return false;
        };
        let data = &raw[from + comma + b";base64,".len()..];
        // The run as a lenient decoder takes it: the alphabet, padding and
        // white space.
        let run: Vec<u8> = data
            .iter()
            .take_while(|b| is_base64(**b) || matches!(b, b'=' | b' ' | b'\t' | b'\r' | b'\n'))
            .filter(|b| !b.is_ascii_whitespace())
            .copied()
            .collect();
        // Padding read past (PHP), and each padded piece on its own.
        let joined: Vec<u8> = run.iter().filter(|b| **b != b'=').copied().collect();
        let pieces = run.split(|b| *b == b'=').filter(|p| !p.is_empty());
        let has_code = |bytes: Vec<u8>| {
            MARKERS
                .iter()
                .any(|m| bytes.windows(m.len()).any(|w| w.eq_ignore_ascii_case(m)))
        };
        if has_code(decode(&joined, 0)) || pieces.map(|p| decode(p, 0)).any(has_code) {
            return true;
        }
    }
    false
}

/// Code in an uploaded file that acts on the file's contents whatever
/// type the upload declares: PHP's `include` runs a "JPEG" holding
/// `<?php`, a browser sniffing an "application/pdf" SVG runs its
/// `onload`, and a logger reading a file's text expands `${jndi:`. The
/// rules read a file only when it declares a text type, so a file typed
/// `image/jpeg` or `application/octet-stream` is looked at for these
/// markers instead; a marker found gives the rule id and its family. The three-byte openers (`<?=`) are looked for only in a file
/// that is valid text (`text`): in compressed bytes they turn up by
/// chance (about once in 170 pictures of 100 KB), the longer markers
/// almost never. A bare `<svg` or `<html` is not code: an SVG or HTML
/// file is refused for what it runs (a script, a handler, a
/// `javascript:` URL), not for being one.
pub(crate) fn code_in_file(content: &[u8], text: bool) -> Option<(&'static str, crate::rules::Category)> {
    use crate::rules::Category;
    const PHP: &str = "php-code-in-upload";
    const XSS: &str = "xss-markup-in-upload";
    const JNDI: &str = "java-jndi-in-upload";
    const MARKERS: &[(&str, &str, Category, bool)] = &[
        ("<?php", PHP, Category::Php, false),
        ("<?=", PHP, Category::Php, true),
        ("<script", XSS, Category::Xss, false),
        ("<iframe", XSS, Category::Xss, false),
        ("<object", XSS, Category::Xss, false),
        ("<embed", XSS, Category::Xss, false),
        ("javascript:", XSS, Category::Xss, false),
        ("vbscript:", XSS, Category::Xss, false),
        ("${jndi", JNDI, Category::Java, false),
        ("${${", JNDI, Category::Java, false),
        ("${lower:", JNDI, Category::Java, false),
        ("${upper:", JNDI, Category::Java, false),
        ("${env:", JNDI, Category::Java, false),
        ("${sys:", JNDI, Category::Java, false),
    ];
    static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(MARKERS.iter().map(|m| m.0))
            .expect("upload markers compile")
    });
    // An event handler inside a tag (`<svg onload=`, `<animate onbegin =`).
    static HANDLER: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        regex::bytes::Regex::new(r#"(?i-u)<[a-z][^<>]{0,2000}?[\s/"']on[a-z]{3,}\s*="#).expect("handler compiles")
    });
    for m in FINDER.find_overlapping_iter(content) {
        let (_, rule, category, text_only) = MARKERS[m.pattern().as_usize()];
        if text || !text_only {
            return Some((rule, category));
        }
    }
    HANDLER.is_match(content).then_some((XSS, Category::Xss))
}

/// Where `needle` (lower case) first is in `hay`, in any case.
fn find_ignoring_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// Base64's alphabet, standard and URL-safe.
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Encoded bytes are upper and lower case letters alike; a run of one
/// case (a word, a hex digest) is not base64 worth decoding.
fn mixed_case(run: &[u8]) -> bool {
    run.iter().any(u8::is_ascii_uppercase) && run.iter().any(u8::is_ascii_lowercase)
}

/// `run` decoded as if `phase` characters came before it (so a fragment
/// cut from the middle of a blob lines up with its bytes); a partial
/// last group is decoded as far as it goes.
fn decode(run: &[u8], phase: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(run.len() * 3 / 4 + 3);
    let mut acc: u32 = 0;
    let mut bits = 6 * phase as u32 % 8;
    for &b in run {
        let v = crate::normalize::sextet(b);
        acc = (acc << 6 | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::java_in_base64;

    fn b64(text: &[u8]) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn gadget_names_are_found_at_every_alignment_and_cut() {
        for prefix in ["", "x", "xy", "xyz"] {
            let blob = b64(format!("{prefix}org.apache.commons.collections.functors.InvokerTransformer").as_bytes());
            assert!(java_in_base64(blob.as_bytes()), "{prefix:?}: {blob}");
            // A fragment cut at any character, inside a JSON string.
            for cut in 0..4 {
                let value = format!(r#"{{"state": "{}"}}"#, &blob[cut..]);
                assert!(java_in_base64(value.as_bytes()), "{value}");
            }
        }
        // The serialization magic one byte in (`KztAAU`) and whole.
        assert!(java_in_base64(b"KztAAU"));
        assert!(java_in_base64(
            b64(b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap").as_bytes()
        ));
        // URL-safe alphabet, in a cookie.
        assert!(java_in_base64(b64(b"java.lang.Runtime").replace('+', "-").as_bytes()));
    }

    #[test]
    fn ordinary_base64_and_words_pass() {
        for benign in [
            b64(b"{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"iat\":1516239022}"),
            b64(b"hello world, this is an ordinary upload of some text"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9".into(),
            "The runtime of this movie is two hours".into(),
            "RuntimeError in ProcessBuilder docs".into(),
            "d41d8cd98f00b204e9800998ecf8427e".into(),
            "query { user(id: 1) { name email } }".into(),
        ] {
            assert!(!java_in_base64(benign.as_bytes()), "{benign}");
        }
    }
}
