//! Stale-while-revalidate: a stale entry is answered at once while one
//! background request (at most one per key) asks the app again, with
//! the app's runtime and no plugin in between. A 5xx keeps the entry.

use std::sync::Arc;

use bext_plugin_abi::{AppTarget, ArrivedOverTls, Body, Ctx, Request};
use http::Uri;
use http::header::IF_NONE_MATCH;

use crate::IsrPlugin;
use crate::key::encode_path;
use crate::lookup::has_caller;
use crate::policy::RuleSay;
use crate::save::Pending;
use crate::store::AppCache;

impl IsrPlugin {
    /// Refreshes `primary` (full key `full`) in the background with the
    /// app's runtime, asking for `target`: the request's URI with the
    /// key's query, so the app sees nothing the key leaves out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refresh(
        &self,
        cache: &Arc<AppCache>,
        primary: String,
        full: &str,
        req: &Request,
        target: Uri,
        cx: &Ctx,
        rule: Option<RuleSay>,
    ) {
        let (Some(host), Some(app)) = (self.host.get(), cx.app()) else {
            return;
        };
        let Some(claim) = cache.start_refresh(full) else {
            return; // one refresh at a time
        };
        // Past the bypass, a caller means its key holds the caller.
        let caller_keyed = has_caller(&self.store.credentials, req, cx);
        let mut fetch = Request::new(Body::empty());
        *fetch.uri_mut() = target;
        *fetch.headers_mut() = req.headers().clone();
        fetch.headers_mut().remove(IF_NONE_MATCH);
        // Rendered again for the scheme it is kept for: an `https://`
        // page refreshed as `http://` would carry the wrong links.
        if cx.ext.get::<ArrivedOverTls>().is_some() {
            fetch.extensions_mut().insert(ArrivedOverTls);
        }
        let target = AppTarget {
            app: app.to_owned(),
            host: cx.host.as_deref().map(str::to_owned),
            tenant: cx.tenant().map(str::to_owned),
            base: cx.base.as_deref().map(str::to_owned),
        };
        let (cache, policy, request_headers, path, target_app) = (
            cache.clone(),
            self.store.clone(),
            req.headers().clone(),
            encode_path(req.uri().path()).into_owned(),
            app.to_owned(),
        );
        let answer = host.serve_app(target, fetch);
        host.spawn(async move {
            let _claim = claim;
            if let Some(mut res) = answer.await {
                if res.status().is_server_error() {
                    return; // keep serving what we have
                }
                let pending = Pending {
                    app: target_app,
                    cache,
                    primary,
                    request_headers,
                    path,
                    rule,
                    caller_keyed,
                    flight: None,
                    fallback: None,
                };
                policy.store(pending, &mut res).await;
            }
        });
    }
}
