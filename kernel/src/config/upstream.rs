//! A proxy app's upstream URL, checked when the platform file is read so
//! that `bext check` reports a bad one at its line.

use http::Uri;
use http::uri::{Authority, Scheme};

/// A validated upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub(crate) authority: Authority,
    /// Path prefix of the upstream URL without trailing `/` (may be empty).
    pub(crate) base_path: String,
}

/// Parses an upstream URL (`http://host:port[/base]`).
pub fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let uri: Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(format!("`{url}`: only http:// upstreams are supported in this build"));
    }
    let authority = uri.authority().cloned().ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in upstream URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: an upstream URL cannot have a query"));
    }
    Ok(Upstream {
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = parse_upstream("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(u.base_path, "/api");
        assert!(parse_upstream("https://x").is_err());
        assert!(parse_upstream("http://u:p@x").is_err());
        assert!(parse_upstream("nope").is_err());
    }
}
