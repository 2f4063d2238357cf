//! The request's host, validated and normalised once by the kernel.
//!
//! hyper accepts a missing Host, several Host headers and arbitrary bytes in
//! one; bext answers all of those with 400. An absolute-form target's or
//! HTTP/2's `:authority` wins over the Host header (RFC 9112 §3.2.2).

use bext_plugin_abi::{HostError, normalise_host as normalise};
use http::{HeaderMap, Uri, Version, header};

/// The normalised host (lower case, no port, no trailing dot), or `None`
/// for an HTTP/1.0 request that sent none.
pub fn request_host(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<Option<Box<str>>, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    if let Some(authority) = uri.authority() {
        return normalise(authority.as_str().as_bytes()).map(Some);
    }
    match first {
        Some(v) => normalise(v.as_bytes()).map(Some),
        None if version == Version::HTTP_10 || version == Version::HTTP_09 => Ok(None),
        None if version >= Version::HTTP_2 => Ok(None),
        None => Err(HostError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn missing_duplicate_and_authority_rules() {
        let uri: Uri = "/".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(request_host(Version::HTTP_11, &uri, &h), Err(HostError::Missing));
        assert_eq!(request_host(Version::HTTP_10, &uri, &h), Ok(None));
        h.append(header::HOST, HeaderValue::from_static("a.com"));
        h.append(header::HOST, HeaderValue::from_static("b.com"));
        assert_eq!(request_host(Version::HTTP_11, &uri, &h), Err(HostError::Duplicate));
        h.remove(header::HOST);
        h.insert(header::HOST, HeaderValue::from_static("a.com"));
        let absolute: Uri = "http://B.com/x".parse().unwrap();
        assert_eq!(
            request_host(Version::HTTP_11, &absolute, &h).unwrap().as_deref(),
            Some("b.com")
        );
    }
}
