//! Choosing a content coding from `Accept-Encoding` (RFC 9110 §12.5.3):
//! the highest quality wins, ties go to the configured preference, `q=0`
//! refuses a coding, `*` stands for the codings not named.

use serde::Deserialize;

/// A content coding bext can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// brotli.
    Br,
    /// zstd.
    Zstd,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// Its token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }
}

/// The coding to use for a request that sent `accept` (`None`: identity).
pub fn choose(accept: &str, offered: &[Encoding]) -> Option<Encoding> {
    let mut wildcard: Option<u16> = None;
    let mut rated: Vec<(Encoding, u16)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(quality)
            .unwrap_or(1000);
        match name.as_str() {
            "*" => wildcard = Some(q),
            "x-gzip" => rated.push((Encoding::Gzip, q)),
            other => {
                if let Some(e) = offered.iter().find(|e| e.token() == other) {
                    rated.push((*e, q));
                }
            }
        }
    }
    offered
        .iter()
        .enumerate()
        .filter_map(|(rank, e)| {
            let q = rated.iter().find(|(r, _)| r == e).map(|(_, q)| *q).or(wildcard)?;
            (q > 0).then_some((q, std::cmp::Reverse(rank), *e))
        })
        .max_by_key(|(q, rank, _)| (*q, *rank))
        .map(|(_, _, e)| e)
}

/// A quality value in thousandths (`0.8` → 800); `None` when malformed.
fn quality(text: &str) -> Option<u16> {
    let v: f32 = text.trim().parse().ok()?;
    (0.0..=1.0).contains(&v).then(|| (v * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    const ALL: [Encoding; 3] = [Br, Zstd, Gzip];

    #[test]
    fn quality_then_preference() {
        assert_eq!(choose("gzip, deflate, br, zstd", &ALL), Some(Br));
        assert_eq!(choose("gzip, deflate, br, zstd", &[Zstd, Gzip, Br]), Some(Zstd));
        assert_eq!(choose("gzip;q=1.0, br;q=0.5", &ALL), Some(Gzip));
        assert_eq!(choose("br;q=0, gzip", &ALL), Some(Gzip));
        assert_eq!(choose("deflate", &ALL), None);
        assert_eq!(choose("", &ALL), None);
        assert_eq!(choose("identity", &ALL), None);
        assert_eq!(choose("*", &ALL), Some(Br));
        assert_eq!(choose("*;q=0, gzip;q=0.1", &ALL), Some(Gzip));
        assert_eq!(choose("x-gzip", &ALL), Some(Gzip));
        assert_eq!(choose("GZIP;Q=0.5", &ALL), Some(Gzip));
        assert_eq!(choose("br;q=abc", &ALL), Some(Br), "a malformed q counts as 1");
        assert_eq!(choose("gzip", &[Br]), None, "only what is offered");
    }
}
