//! What a certificate says about itself: the names it is for and when it
//! is valid, read from its DER with x509-parser.

use std::path::Path;

use x509_parser::extensions::GeneralName;

use crate::TlsError;

/// A leaf certificate's names and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names from subjectAltName (the subject's CN when there is
    /// none), lower case, no trailing dot; wildcards as `*.suffix`.
    pub names: Vec<String>,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    not_before_text: String,
    not_after_text: String,
}

impl CertInfo {
    /// Reads the leaf certificate `der` that came from `path`.
    pub fn parse(path: &Path, der: &[u8]) -> Result<CertInfo, TlsError> {
        let bad = |reason: String| TlsError::Certificate {
            path: path.to_owned(),
            reason,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(e.to_string()))?;
        let mut names = Vec::new();
        if let Some(san) = cert.subject_alternative_name().map_err(|e| bad(e.to_string()))? {
            for n in &san.value.general_names {
                if let GeneralName::DNSName(d) = n {
                    names.push(normal_name(d));
                }
            }
        }
        if names.is_empty() {
            names.extend(
                cert.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(normal_name),
            );
        }
        let validity = cert.validity();
        Ok(CertInfo {
            names,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            not_before_text: validity.not_before.to_string(),
            not_after_text: validity.not_after.to_string(),
        })
    }

    /// Refuses a certificate outside its validity at `now` (Unix seconds):
    /// clients would refuse it anyway, after the reload that installed it.
    pub fn check_dates(&self, path: &Path, now: i64) -> Result<(), TlsError> {
        if now > self.not_after {
            return Err(TlsError::Expired {
                path: path.to_owned(),
                not_after: self.not_after_text.clone(),
            });
        }
        if now < self.not_before {
            return Err(TlsError::NotYetValid {
                path: path.to_owned(),
                not_before: self.not_before_text.clone(),
            });
        }
        Ok(())
    }

    /// Whether some name covers some of `domains` (normalised host
    /// patterns: `example.com`, `*.example.com`).
    pub fn covers_any(&self, domains: &[String]) -> bool {
        self.names.iter().any(|n| domains.iter().any(|d| covers(n, d)))
    }

    /// Refuses a certificate none of whose names serves any of `domains`.
    pub fn check_covers(&self, path: &Path, domains: &[String]) -> Result<(), TlsError> {
        if self.covers_any(domains) {
            return Ok(());
        }
        Err(TlsError::NamesCoverNone {
            path: path.to_owned(),
            names: self.names.clone(),
            domains: domains.to_vec(),
        })
    }
}

/// A certificate name as hosts are compared: lower case, no trailing dot.
fn normal_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    lower.strip_suffix('.').unwrap_or(&lower).to_owned()
}

/// Whether certificate name `name` serves at least some hosts of the
/// domain pattern `domain`. A certificate wildcard covers one label
/// (RFC 6125); a domain wildcard stands for any subdomain.
fn covers(name: &str, domain: &str) -> bool {
    if name == domain {
        return true;
    }
    let one_label_under = |host: &str, suffix: &str| {
        host.strip_suffix(suffix)
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    };
    let under = |host: &str, suffix: &str| {
        host.strip_suffix(suffix)
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty())
    };
    match (name.strip_prefix("*."), domain.strip_prefix("*.")) {
        // `*.example.com` serves `shop.example.com`.
        (Some(suffix), None) => one_label_under(domain, suffix),
        // `a.example.com` or `*.a.example.com` serves some of `*.example.com`.
        (None, Some(suffix)) => under(name, suffix),
        (Some(name_suffix), Some(suffix)) => under(name_suffix, suffix),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names_cover_one_label_and_domain_wildcards_any_subdomain() {
        assert!(covers("example.com", "example.com"));
        assert!(covers("*.example.com", "shop.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(covers("a.example.com", "*.example.com"));
        assert!(covers("*.a.example.com", "*.example.com"));
        assert!(!covers("example.com", "*.example.com"));
        assert!(!covers("badexample.com", "*.example.com"));
        assert!(!covers("*.other.com", "shop.example.com"));
        assert!(!covers("shop.example.com", "shop.example.com.evil"));
    }

    #[test]
    fn names_are_read_lower_case_without_trailing_dot() {
        let made = crate::self_signed(&["Shop.Example.COM.".into(), "*.example.org".into()]).unwrap();
        let info = CertInfo::parse(Path::new("x.pem"), &made.key.cert[0]).unwrap();
        assert_eq!(info.names, ["shop.example.com", "*.example.org"]);
        assert!(info.covers_any(&["shop.example.com".into()]));
        assert!(info.covers_any(&["a.example.org".into()]));
        assert!(!info.covers_any(&["example.org".into(), "other.test".into()]));
    }
}
