//! A framework app of the original bext (`ssr`, `hybrid`, `nextjs`): its
//! runtime (isolates or a process) behind what bext serves itself, the
//! framework's static folders (Next.js's `/_next/static/*` and `public/`
//! with immutable caching) and, for `hybrid`, an API prefix proxied to
//! the app's upstream.

use std::path::PathBuf;
use std::sync::Arc;

use bext_plugin_abi::{Ctx, Request, Response};
use http::header::{CACHE_CONTROL, HeaderValue};
use http::{Method, Uri};

use super::static_files::{FileCache, StaticSite};
use super::{Runtime, proxy};
use crate::config::framework::{IMMUTABLE, Layers};
use crate::config::platform::AppConfig;

/// A static folder served at a URL prefix before the app.
struct Folder {
    prefix: String,
    site: StaticSite,
    immutable: bool,
}

/// The app's runtime with bext's own answers in front.
pub struct Layered {
    named: &'static str,
    folders: Vec<Folder>,
    api: Option<(String, proxy::ProxyApp)>,
    /// The framework's own runtime.
    pub inner: Runtime,
}

impl Layered {
    /// Wraps `inner` in the folders and API prefix `layers` name, under
    /// the app's `source` (a folder the version does not have is left out).
    pub fn new(
        id: &str,
        cfg: &AppConfig,
        layers: &Layers,
        inner: Runtime,
        files: &Arc<FileCache>,
    ) -> Result<Self, String> {
        let source = cfg.source.as_deref().ok_or("a framework app needs `source`")?;
        let folders = (layers.statics.iter())
            .map(|(prefix, rel, immutable): &(String, PathBuf, bool)| (prefix, source.join(rel), *immutable))
            .filter(|(_, dir, _)| dir.is_dir())
            .map(|(prefix, dir, immutable)| {
                let site =
                    StaticSite::new(&dir, false, files.clone()).map_err(|e| format!("{}: {e}", dir.display()))?;
                Ok(Folder {
                    prefix: prefix.trim_end_matches('/').to_owned(),
                    site,
                    immutable,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let api = match &layers.api_prefix {
            Some(prefix) => Some((prefix.clone(), proxy::ProxyApp::from_config(id, cfg)?)),
            None => None,
        };
        Ok(Layered {
            named: layers.named,
            folders,
            api,
            inner,
        })
    }

    /// The original's runtime name, for health and logs.
    pub fn kind(&self) -> &'static str {
        self.named
    }

    /// The API upstream for `/api/*`, a file of a folder, or the app.
    pub(crate) async fn serve(&self, mut req: Request, cx: &Ctx, kept: &mut super::KeptFields) -> Response {
        let path = req.uri().path().to_owned();
        if let Some((prefix, proxy)) = &self.api
            && under(&path, prefix).is_some()
        {
            return proxy.serve(req, cx, kept).await;
        }
        if req.method() == Method::GET || req.method() == Method::HEAD {
            for folder in &self.folders {
                let Some(rest) = under(&path, &folder.prefix) else {
                    continue;
                };
                if rest == "/" || !folder.site.has_file(rest, cx) {
                    continue;
                }
                let Ok(uri) = Uri::builder().path_and_query(rest).build() else {
                    continue;
                };
                *req.uri_mut() = uri;
                let mut res = folder.site.serve(req, cx).await;
                if folder.immutable && res.status().is_success() {
                    res.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
                }
                return res;
            }
        }
        Box::pin(self.inner.serve(req, cx, kept)).await
    }
}

/// The rest of `path` under `prefix` (`/_next/static`), starting with `/`;
/// `None` when `path` is not under it. The prefix `""` holds every path.
fn under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    match rest {
        "" => Some("/"),
        r if r.starts_with('/') => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_hold_their_own_paths_only() {
        assert_eq!(super::under("/_next/static/a.js", "/_next/static"), Some("/a.js"));
        assert_eq!(super::under("/_next/staticx/a.js", "/_next/static"), None);
        assert_eq!(super::under("/api", "/api"), Some("/"));
        assert_eq!(super::under("/apix", "/api"), None);
        assert_eq!(super::under("/logo.png", ""), Some("/logo.png"));
    }
}
