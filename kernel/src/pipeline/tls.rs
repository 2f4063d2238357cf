//! The pipeline's TLS part, compiled with the rest of the configuration:
//! the certificates by SNI (a reload swaps them; a handshake that already
//! picked one keeps it) and each app's `https_redirect` and `hsts`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bext_tls::{CertStore, CertifiedKey, TlsError};
use http::HeaderValue;
use rustc_hash::FxHashMap;

use crate::config::diag::{Diagnostic, Diagnostics};
use crate::config::platform::{AppConfig, AppTls, Platform};

/// Certificates and https policies of one pipeline.
#[derive(Default)]
pub struct Tls {
    /// Certificates by the names they serve.
    pub certs: CertStore,
    https: FxHashMap<Arc<str>, Https>,
    /// Some app has `https_redirect`, known once per pipeline.
    any_redirect: bool,
}

/// What an app asks of plain HTTP and HTTPS responses.
pub struct Https {
    /// Plain-HTTP requests get a 308 to https.
    pub redirect: bool,
    /// `Strict-Transport-Security` on HTTPS responses.
    pub hsts: Option<HeaderValue>,
    /// The same on a tenant's own domain, without `includeSubDomains`
    /// and `preload`: the customer's other subdomains are not the
    /// platform's to pin to https.
    pub hsts_own_domain: Option<HeaderValue>,
}

impl Tls {
    /// An app's policy; `None` for most apps, at the cost of one empty-map
    /// check.
    pub fn https(&self, app: &str) -> Option<&Https> {
        if self.https.is_empty() {
            return None;
        }
        self.https.get(app)
    }

    /// Whether any app redirects plain HTTP to https.
    pub fn redirects(&self) -> bool {
        self.any_redirect
    }
}

/// Whether compiling makes self-signed certificates (serving) or only
/// checks the files (`bext check`, which writes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Serve,
    Check,
}

/// The certificates of the apps the platform file declares (apps a deploy
/// adds share their app's domains, or are hidden). Every unusable file is
/// reported with the app's field, the file and the reason; the warnings
/// name what still works but surprises (see [`coverage_warnings`]).
pub(crate) fn certificates(platform: &Platform, purpose: Purpose) -> Result<(CertStore, Vec<Diagnostic>), Diagnostics> {
    let file = platform.file.clone().unwrap_or_else(|| PathBuf::from("<bext run>"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut store = CertStore::default();
    let mut errors = Diagnostics::default();
    // Apps without domains (a default app) are reached by their
    // certificates' own names, but only names no app claims as a domain:
    // inserted after every app's domains.
    let mut by_their_names = Vec::new();
    let mut warnings = Vec::new();
    for (id, app) in &platform.apps {
        let Some(tls) = &app.tls else { continue };
        let mut domains = domains(app);
        if !app.domains.is_empty() && domains.is_empty() {
            // Only `~regex` domains: SNI cannot be matched against them.
            tracing::warn!(app = %id, "an app with only ~regex domains gets no certificate");
            continue;
        }
        let field = |k: &str| format!("apps.{id}.{k}");
        let (key, names) = match tls {
            AppTls::Files { cert, key } => match loaded(platform, app, cert, key, now) {
                Ok((pair, info)) => {
                    if !domains.is_empty()
                        && let Err(e) = info.check_covers(cert, &domains)
                    {
                        // `[platform] tls_cert` is a default: an app it does
                        // not cover is served over plain HTTP only.
                        match app.tls_from_platform {
                            true => warnings.push(Diagnostic::new(
                                &file,
                                "platform.tls_cert",
                                format!("{e}: app `{id}` gets no certificate (give it its own `tls`)"),
                            )),
                            false => errors.push(Diagnostic::new(&file, field("tls.cert"), e.to_string())),
                        }
                        continue;
                    }
                    let uncovered: Vec<&str> = (domains.iter())
                        .filter(|d| !info.covers_any(std::slice::from_ref(d)))
                        .map(String::as_str)
                        .collect();
                    if !uncovered.is_empty() {
                        let reason = format!(
                            "{} serves {} but not {}: handshakes for those get no certificate from this app",
                            cert.display(),
                            info.names.join(", "),
                            uncovered.join(", ")
                        );
                        warnings.push(Diagnostic::new(&file, field("tls.cert"), reason));
                        // A certificate a client would reject is not served.
                        let uncovered: Vec<String> = uncovered.into_iter().map(Into::into).collect();
                        domains.retain(|d| !uncovered.contains(d));
                    }
                    (pair, info.names)
                }
                Err(e) => {
                    let which = match e {
                        TlsError::KeyMismatch { .. } | TlsError::Key { .. } => "tls.key",
                        TlsError::Read { ref path, .. } | TlsError::Pem { ref path, .. } if path == key => "tls.key",
                        _ => "tls.cert",
                    };
                    let field = match app.tls_from_platform {
                        true => format!("platform.{}", which.replace('.', "_")),
                        false => field(which),
                    };
                    if !errors.0.iter().any(|d| d.field == field) {
                        errors.push(Diagnostic::new(&file, field, e.to_string()));
                    }
                    continue;
                }
            },
            AppTls::SelfSigned if purpose == Purpose::Check => continue,
            AppTls::SelfSigned => {
                let names = if domains.is_empty() {
                    vec!["localhost".to_owned()]
                } else {
                    domains.clone()
                };
                match self_signed(&platform.data_dir, id, &names, now) {
                    Ok(key) => (key, names),
                    Err(e) => {
                        errors.push(Diagnostic::new(&file, field("tls"), e.to_string()));
                        continue;
                    }
                }
            }
            // Refused with the platform file's other problems.
            AppTls::Acme => continue,
        };
        if domains.is_empty() {
            by_their_names.push((id, names, key));
            continue;
        }
        for p in domains {
            if let Err(reason) = store.insert(&p, key.clone()) {
                tracing::debug!(app = %id, pattern = %p, reason, "name not served over TLS");
            }
        }
    }
    for (id, names, key) in by_their_names {
        for p in names {
            match store.insert(&p, key.clone()) {
                Ok(true) => {}
                Ok(false) => tracing::debug!(app = %id, name = %p, "name served by the app that claims it"),
                Err(reason) => tracing::debug!(app = %id, pattern = %p, reason, "name not served over TLS"),
            }
        }
    }
    warnings.extend(coverage_warnings(platform, &store, &file));
    errors.into_result((store, warnings))
}

/// An app's certificate and key: the platform's default as read once at
/// load when the app takes it, else read from the app's own files.
fn loaded(
    platform: &Platform,
    app: &AppConfig,
    cert: &Path,
    key: &Path,
    now: i64,
) -> Result<(Arc<CertifiedKey>, bext_tls::CertInfo), TlsError> {
    match (&platform.default_cert, app.tls_from_platform) {
        (Some(pair), true) => Ok((pair.0.clone(), pair.1.clone())),
        _ => bext_tls::load_pair(cert, key, now),
    }
}

/// What `listen_tls` serving no certificate means, said alike by `bext
/// check` and at serve: `None` when some app has one (`certs_empty` is
/// false) or ACME orders them. A default `[platform] tls_cert` no app
/// takes is named, not reported as "no app has `tls`".
pub(crate) fn no_certificate_warning(platform: &Platform, certs_empty: bool) -> Option<String> {
    let settings = &platform.settings;
    if settings.listen_tls.is_none() || !certs_empty || settings.acme.is_some() {
        return None;
    }
    Some(match &settings.tls_cert {
        Some(cert) => format!(
            "listen_tls serves `[platform] tls_cert` ({}) to apps without their own `tls`, but no app takes it ({}): every handshake will be refused",
            cert.display(),
            match platform.apps.is_empty() {
                true => "the file declares none",
                false => "its names cover none of their domains",
            }
        ),
        None => "listen_tls is set but no app has `tls`: every handshake will be refused (set `[platform] tls_cert`/`tls_key`, an app's `tls`, or `[platform.acme]`)".to_owned(),
    })
}

/// The names each app without domains (a default app) is reached by
/// through its certificate files, as [`certificates`] serves them: a
/// tenant's own domain must not take one, or the tenant's app would be
/// served under that app's certificate. Unreadable files name nothing
/// (they are reported by [`certificates`]).
pub(crate) fn names_by_their_certificates(platform: &Platform) -> Vec<(String, Vec<String>)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (platform.apps.iter())
        .filter(|(_, app)| app.domains.is_empty())
        .filter_map(|(id, app)| match &app.tls {
            Some(AppTls::Files { cert, key }) => {
                let (_, info) = loaded(platform, app, cert, key, now).ok()?;
                Some((id.clone(), info.names))
            }
            _ => None,
        })
        .collect()
}

/// Apps with `https_redirect` whose exact domains no certificate serves
/// (files in `store`, or an app's own self-signed or ACME certificate; an
/// on-demand ACME service may still order one): a redirected client would
/// meet a handshake alert.
fn coverage_warnings(platform: &Platform, store: &CertStore, file: &Path) -> Vec<Diagnostic> {
    let on_demand = platform
        .settings
        .acme
        .as_ref()
        .is_some_and(|a| a.on_demand_ask.is_some());
    // Patterns made certificates of at start (self-signed) or by ACME.
    let own: Vec<String> = (platform.apps.values())
        .filter(|a| matches!(a.tls, Some(AppTls::SelfSigned | AppTls::Acme)))
        .flat_map(|a| domains(a))
        .collect();
    let covered_by_own = |name: &str| own.iter().any(|p| bext_plugin_abi::pattern_reaches(p, name));
    let mut warnings = Vec::new();
    for (id, app) in platform.apps.iter().filter(|(_, a)| a.https_redirect) {
        let bare: Vec<String> = (domains(app).into_iter())
            .filter(|d| !d.starts_with("*."))
            .filter(|d| store.resolve(Some(d)).is_none() && !covered_by_own(d))
            .collect();
        if !bare.is_empty() && !on_demand {
            let reason = format!(
                "no certificate serves {}: plain-HTTP clients are redirected to https and then refused the handshake; give the app `tls`",
                bare.join(", ")
            );
            warnings.push(Diagnostic::new(file, format!("apps.{id}.https_redirect"), reason));
        }
    }
    warnings
}

/// An app's host patterns as certificates are chosen by them (regex
/// domains cannot be: SNI has no path and no pattern).
fn domains(app: &AppConfig) -> Vec<String> {
    app.domains
        .iter()
        .filter(|d| !d.starts_with('~'))
        .filter_map(|d| bext_plugin_abi::normalise_host_pattern(d).ok())
        .collect()
}

/// Seconds before a kept self-signed certificate expires that a start or
/// reload makes a new one.
const SELF_SIGNED_RENEW_BEFORE: i64 = 30 * 86_400;

/// The app's self-signed certificate, kept under `data_dir/tls/` so a
/// reload or a restart serves the same one (and a developer can trust it),
/// made anew when the names changed or it has less than a month left.
fn self_signed(data_dir: &Path, id: &str, names: &[String], now: i64) -> Result<Arc<CertifiedKey>, TlsError> {
    let dir = data_dir.join("tls").join("self-signed");
    let (cert, key) = (dir.join(format!("{id}.crt")), dir.join(format!("{id}.key")));
    let wanted: BTreeSet<&String> = names.iter().collect();
    if let Ok((pair, info)) = bext_tls::load_pair(&cert, &key, now)
        && info.names.iter().collect::<BTreeSet<_>>() == wanted
        && info.not_after - now > SELF_SIGNED_RENEW_BEFORE
    {
        return Ok(pair);
    }
    let made = bext_tls::self_signed(names)?;
    if let Err(e) = write_pair(&dir, &cert, &key, &made) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep the self-signed certificate; a restart makes a new one");
    } else {
        tracing::info!(app = id, cert = %cert.display(), "self-signed certificate made; trust this file to avoid browser warnings");
    }
    Ok(made.key)
}

fn write_pair(dir: &Path, cert: &Path, key: &Path, made: &bext_tls::SelfSigned) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(key)?.write_all(made.key_pem.as_bytes())?;
    std::fs::write(cert, &made.cert_pem)
}

/// Each app's `https_redirect` and `hsts`, for every app of the table
/// (a deploy's canary or preview behaves as its app).
pub(crate) fn policies(platform: &Platform) -> FxHashMap<Arc<str>, Https> {
    platform
        .apps
        .iter()
        .filter(|(_, a)| a.https_redirect || a.hsts.is_some())
        .map(|(id, a)| {
            let https = Https {
                redirect: a.https_redirect,
                hsts: a.hsts.as_deref().and_then(|h| HeaderValue::from_str(h).ok()),
                hsts_own_domain: a
                    .hsts
                    .as_deref()
                    .and_then(|h| HeaderValue::from_str(&for_one_host(h)).ok()),
            };
            (Arc::from(id.as_str()), https)
        })
        .collect()
}

/// An `hsts` value for one host only: its `includeSubDomains` and
/// `preload` directives (any case, any spacing) left out.
fn for_one_host(hsts: &str) -> String {
    hsts.split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| !d.eq_ignore_ascii_case("includesubdomains") && !d.eq_ignore_ascii_case("preload"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pipeline's TLS part.
pub(crate) fn build(certs: CertStore, platform: &Platform) -> Tls {
    let https = policies(platform);
    Tls {
        certs,
        any_redirect: https.values().any(|h| h.redirect),
        https,
    }
}

/// Certificate and key files, watched like the platform file.
pub(crate) fn watched_files(platform: &Platform) -> Vec<PathBuf> {
    platform
        .apps
        .values()
        .filter_map(|a| match &a.tls {
            Some(AppTls::Files { cert, key }) => Some([cert.clone(), key.clone()]),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_on_a_tenant_s_own_domain_pins_that_host_only() {
        for (hsts, own) in [
            ("max-age=63072000; includeSubDomains", "max-age=63072000"),
            ("max-age=1;INCLUDESUBDOMAINS ;  preload", "max-age=1"),
            ("includeSubDomains; max-age=5", "max-age=5"),
            ("max-age=5", "max-age=5"),
        ] {
            assert_eq!(for_one_host(hsts), own, "{hsts}");
        }
    }

    /// `[platform] tls_cert`/`tls_key` are read once, when the platform
    /// file is loaded: the pipeline serves that pair to every app taking
    /// it, with the files gone by then, and a missing file is still
    /// named at its key.
    #[test]
    fn the_default_certificate_is_read_once_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let made = bext_tls::self_signed(&["a.test".into(), "b.test".into()]).unwrap();
        std::fs::write(d.join("site.pem"), &made.cert_pem).unwrap();
        std::fs::write(d.join("site.key"), &made.key_pem).unwrap();
        std::fs::create_dir_all(d.join("www")).unwrap();
        let file = d.join("platform.toml");
        let apps =
            "[apps.a]\nsource = \"www\"\ndomains = [\"a.test\"]\n[apps.b]\nsource = \"www\"\ndomains = [\"b.test\"]\n";
        std::fs::write(
            &file,
            format!(
                "[platform]\nlisten_tls = \"127.0.0.1:0\"\ntls_cert = \"site.pem\"\ntls_key = \"site.key\"\n{apps}"
            ),
        )
        .unwrap();
        let platform = Platform::load(&file).unwrap();
        std::fs::remove_file(d.join("site.pem")).unwrap();
        std::fs::remove_file(d.join("site.key")).unwrap();
        let (store, _) = certificates(&platform, Purpose::Serve).unwrap();
        // A default app (no domains) is reached by the pair's own names.
        let mut without_domains = platform.clone();
        without_domains.apps.get_mut("b").unwrap().domains.clear();
        assert_eq!(
            names_by_their_certificates(&without_domains),
            [("b".to_owned(), vec!["a.test".to_owned(), "b.test".to_owned()])]
        );
        let served = |name: &str| store.resolve(Some(name)).map(|k| k.cert[0].clone());
        assert_eq!(served("a.test"), Some(made.key.cert[0].clone()));
        assert_eq!(served("b.test"), Some(made.key.cert[0].clone()));
        let e = Platform::load(&file).unwrap_err().to_string();
        assert!(e.contains("platform.tls_cert") && e.contains("site.pem"), "{e}");
    }
}
