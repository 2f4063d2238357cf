//! The `authn` plugin: who is calling. JWTs (HS/RS/PS/ES/EdDSA; keys from
//! the config, the environment, PEM files or a JWKS file or URL) and API
//! keys (stored hashed, with names and scopes); per-app rules (required or
//! optional, public paths, scopes per path); the caller forwarded to the
//! app in headers that clients can never set themselves.
//!
//! Runs in `on_request`, one concern per file:
//!
//! - `caller.rs`: client-sent caller headers are removed; a verified
//!   caller becomes the headers the app gets and the subject later
//!   plugins key on;
//! - `policy.rs`: what the path needs (public, optional, a caller, scopes);
//! - `credential.rs`: the request's one credential (several: 400);
//! - `api_keys.rs`, `jwt.rs` (with [`keys`], `jwks.rs` and
//!   `token_cache.rs`): who that credential names;
//! - `refusal.rs`: the 400, 401 and 403 answers.
//!
//! See `manifests/authn.yaml` and `docs/authn.md`.

mod api_keys;
mod caller;
pub mod config;
mod credential;
mod jwks;
mod jwt;
pub mod keys;
mod policy;
mod refusal;
mod token_cache;

use std::sync::Arc;
use std::time::Instant;

use bext_plugin_abi::{BuiltinPlugin, Ctx, Flow, Hook, Hooks, Host, Plugin, PluginError, Request, Setup};
use http::HeaderName;

use crate::api_keys::ApiKeys;
use crate::caller::{CallerHeaders, Principal};
use crate::config::Config;
use crate::credential::{Ambiguous, Credential, find_credential};
use crate::jwt::Jwt;
use crate::keys::Rejection;
use crate::policy::{Access, Policy};
use crate::refusal::{Challenges, Refusal};

/// The plugin instance.
pub struct AuthnPlugin {
    name: String,
    policy: Policy,
    jwt: Option<Jwt>,
    api_keys: Option<ApiKeys>,
    caller_headers: CallerHeaders,
    challenges: Challenges,
    /// Refusals by reason on `/__bext/metrics`
    /// (`bext_plugin_authn_failures_total{reason}`), from `on_init`.
    failures: std::sync::OnceLock<bext_plugin_abi::metrics::CounterFamily>,
}

impl BuiltinPlugin for AuthnPlugin {
    const NAME: &'static str = "authn";
    const PRIORITY: i32 = 300;
    const SUMMARY: &'static str = "JWT and API key authentication, per-app rules, caller headers for the app";
    // Reads neither `setup.apps` nor `host.apps()`: its instance, and its
    // in-memory state, outlive reloads that change the app table.
    const READS_APP_TABLE: bool = false;
    const DEFAULT_MANIFEST: &'static str = include_str!("../../../manifests/authn.yaml");
    type Config = Config;

    fn new(c: Config, setup: &Setup<'_>) -> Result<Self, PluginError> {
        let policy = Policy::new(c.required, &c.public, &c.scopes)?;
        let jwt = Jwt::new(&c, setup.data_dir)?;
        let api_keys = c.api_keys.as_ref().map(ApiKeys::new).transpose()?;
        if jwt.is_none() && api_keys.is_none() {
            return Err(PluginError::config(
                "",
                "configure `jwt`, `jwt_secret_env` or `api_keys`",
            ));
        }
        let caller_headers = CallerHeaders::new(&c.forward)?;
        // Last, after every field's own check: the secret of the machine
        // this runs on, which `bext check` must judge as serve does.
        jwt::check_secret_env(&c)?;
        Ok(AuthnPlugin {
            name: setup.plugin.to_owned(),
            policy,
            jwt,
            api_keys,
            caller_headers,
            challenges: Challenges::new(&c.realm),
            failures: std::sync::OnceLock::new(),
        })
    }
}

impl AuthnPlugin {
    /// The one credential the request carries, if any; several (two
    /// `Authorization` lines, an API key in the header and the query, a
    /// key and a token...) are refused rather than one picked: the app and
    /// anything between would see the others.
    fn credential<'r>(&self, req: &'r Request) -> Result<Option<Credential<'r>>, Ambiguous> {
        find_credential(
            self.api_keys.as_ref().map(|a| (&a.header, a.query.as_deref())),
            self.jwt.as_ref().map(|j| j.cookie.as_deref()),
            req.headers(),
            req.uri().query(),
        )
    }

    /// The verified caller of `credential`.
    fn caller(&self, credential: Credential<'_>, at: Instant) -> Result<Arc<Principal>, Rejection> {
        match credential {
            Credential::ApiKey(key) => self
                .api_keys
                .as_ref()
                .expect("API keys are only read when configured")
                .caller(key, &self.caller_headers),
            Credential::Token(token) => self
                .jwt
                .as_ref()
                .expect("tokens are only read when JWTs are configured")
                .caller(token, at, &self.caller_headers),
        }
    }

    fn refuse<'a>(&self, why: Refusal<'_>, cx: &Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        if let Some(f) = self.failures.get() {
            f.get_or_create(&vec![("reason", why.reason().to_owned())]).inc();
        }
        Hook::Ready(Ok(self.challenges.refuse(&why, &self.name, cx)))
    }
}

impl Plugin for AuthnPlugin {
    fn hooks(&self) -> Hooks {
        Hooks::INIT | Hooks::REQUEST
    }

    /// Its policy reads the path, never `x-base` or `x-vhost-tenant`.
    fn reads_kernel_headers(&self) -> bool {
        false
    }

    fn owned_request_headers(&self) -> &[HeaderName] {
        self.caller_headers.owned()
    }

    fn on_init<'a>(&'a self, host: &'a Host) -> Hook<'a, Result<(), PluginError>> {
        let failures = host
            .metrics(&self.name)
            .counter_family("failures", "Requests refused for their credentials, by reason.");
        match failures {
            Ok(f) => {
                let _ = self.failures.set(f);
            }
            Err(e) => return Hook::Ready(Err(PluginError::Init(e.into()))),
        }
        Hook::later(async move {
            match &self.jwt {
                Some(jwt) => jwt.load_keys(host, &self.name).await,
                None => Ok(()),
            }
        })
    }

    fn on_request<'a>(&'a self, req: &'a mut Request, cx: &'a mut Ctx) -> Hook<'a, Result<Flow, PluginError>> {
        // The kernel removed them on arrival; only a plugin since could
        // have set one.
        if !cx.headers_as_admitted() {
            self.caller_headers.remove_client_copies(req.headers_mut());
        }
        let access = self.policy.access(req.method(), req.uri().path());
        if access == Access::Public {
            return Hook::Ready(Ok(Flow::Continue));
        }
        let credential = match self.credential(req) {
            Ok(c) => c,
            Err(why) => return self.refuse(Refusal::Ambiguous(why), cx),
        };
        let caller = match credential.map(|c| self.caller(c, cx.received_at)) {
            None if access == Access::Required => return self.refuse(Refusal::NoCredentials, cx),
            None => return Hook::Ready(Ok(Flow::Continue)),
            Some(Err(why)) => return self.refuse(Refusal::Invalid(why), cx),
            Some(Ok(p)) => p,
        };
        let missing = self
            .policy
            .missing_scopes(req.method(), req.uri().path(), &caller.scopes);
        if !missing.is_empty() {
            return self.refuse(Refusal::MissingScopes(missing), cx);
        }
        caller.forward(req, cx);
        Hook::Ready(Ok(Flow::Continue))
    }
}

bext_plugin_abi::register!(AuthnPlugin);
