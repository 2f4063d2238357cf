//! The admin API: routing a request to the registry operation it asks
//! for, and reading what it asks (path segments, the query, the caller,
//! a deploy's upload). The endpoints are listed in
//! `manifests/deploy.yaml`.

use bext_plugin_abi::admin::{LocalUpload, json};
use bext_plugin_abi::{Request, Response};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::answer;
use crate::error::DeployError;
use crate::registry::{self, CanaryPlan, DeployOptions};
use crate::shared::Shared;
use crate::unix_now;

/// The header an admin API caller names itself in, for the registry's
/// records (`deployed_by`, the history of current versions, events): the
/// CLI sends `cli`, or `<user> (cli)`.
pub const USER_HEADER: &str = "x-bext-user";

/// Answers the admin request `req`, whose path below the API's base is
/// `rest`: JSON always, an error as `{"error": ...}` with its status.
pub(crate) async fn handle(shared: &Shared, req: &mut Request, rest: &str) -> Response {
    // Segments arrive escaped (an app id the CLI was given is sent as
    // is, `%2F` and all, for the registry to judge).
    let parts: Vec<String> = rest.trim_matches('/').split('/').map(decoded).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let query = Query(req.uri().query().unwrap_or("").to_owned());
    let result = match (&method, parts.as_slice()) {
        (&Method::GET, ["apps"]) => shared
            .with_registry(|r| r.apps())
            .await
            .map(|a| json(StatusCode::OK, &a)),
        (&Method::GET, ["apps", id]) => {
            let id = (*id).to_owned();
            let stats = shared.canaries.load().get(&id).map(|c| answer::canary_stats(c));
            shared
                .with_registry(move |r| {
                    let app = r.app(&id)?;
                    let versions = r.versions(&id)?;
                    Ok(answer::app(&app, &versions, stats))
                })
                .await
        }
        (&Method::GET, ["apps", id, "versions"]) => {
            let id = (*id).to_owned();
            shared
                .with_registry(move |r| r.versions(&id))
                .await
                .map(|v| json(StatusCode::OK, &v))
        }
        (&Method::POST, ["apps", id, "deploy"]) => deploy(shared, req, id, &query).await,
        (&Method::GET, ["previews"]) => shared
            .with_registry(|r| r.previews(None))
            .await
            .map(|p| json(StatusCode::OK, &p)),
        (&Method::POST, ["previews", "prune"]) => {
            let now = unix_now();
            shared.change(move |r| r.prune_previews(now)).await
        }
        (&Method::POST, ["apps", id, "promote"]) => match (query.percent("to"), caller(req)) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(to), Ok(by)) => {
                let id = (*id).to_owned();
                shared.change(move |r| r.promote(&id, to, &by)).await
            }
        },
        (&Method::POST, ["apps", id, "rollback"]) => match caller(req) {
            Err(e) => Err(e),
            Ok(by) => {
                let id = (*id).to_owned();
                shared.change(move |r| r.rollback(&id, &by)).await
            }
        },
        (&Method::GET, ["domains"]) => shared
            .with_registry(|r| r.domains())
            .await
            .map(|d| json(StatusCode::OK, &d)),
        (&Method::POST, ["domains"]) => add_domain(shared, req).await,
        (&Method::DELETE, ["domains", domain]) => match caller(req) {
            Err(e) => Err(e),
            Ok(by) => {
                let domain = (*domain).to_owned();
                shared.change(move |r| r.remove_domain(&domain, &by)).await
            }
        },
        (&Method::DELETE, ["apps", id]) => {
            let id = (*id).to_owned();
            shared
                .change(move |r| r.remove(&id).map(|()| serde_json::json!({ "removed": true })))
                .await
        }
        _ => return answer::no_such_endpoint(),
    };
    result.unwrap_or_else(|e| answer::error(&e))
}

/// A deploy: everything it asks for is checked before its upload is
/// read.
async fn deploy(shared: &Shared, req: &mut Request, id: &str, query: &Query) -> Result<Response, DeployError> {
    let DeployAsk {
        version,
        preview,
        ttl,
        canary,
    } = DeployAsk::parse(query, shared.config.preview_ttl.0.as_secs())?;
    let by = caller(req)?;
    registry::check_deploy(
        id,
        &DeployOptions {
            version: version.as_deref(),
            by: &by,
            canary,
            preview: preview.as_deref().map(|name| (name, ttl)),
            hooks: None,
        },
    )?;
    // The operator's own command with no server running hands over its
    // directory; anything else uploads a tar archive.
    let local = req.extensions_mut().remove::<LocalUpload>();
    let body = match local {
        Some(_) => bytes::Bytes::new(),
        None => std::mem::take(req.body_mut())
            .collect()
            .await
            .map_err(|e| DeployError::Bundle(format!("the upload could not be read: {e}")))?
            .to_bytes(),
    };
    let id = id.to_owned();
    let hooks = shared.config.app_hooks.get(&id).cloned().unwrap_or_default();
    let plain = canary.is_none() && preview.is_none();
    let (app, hooks_after) = (id.clone(), hooks.clone());
    let mut deployed = shared
        .with_registry(move |r| {
            let options = DeployOptions {
                version: version.as_deref(),
                by: &by,
                canary,
                preview: preview.as_deref().map(|name| (name, ttl)),
                hooks: Some(&hooks),
            };
            match local {
                Some(LocalUpload { dir, progress }) => r.deploy(&id, &dir, &options, &mut |p, n| progress(p, n)),
                None => r.deploy_tar(&id, &body, &options),
            }
        })
        .await?;
    if let Err(refused) = shared.changed().await {
        // The new version is not served (a process app's instances never
        // got ready, say): the registry goes back to what still serves, so
        // the next reload does not try it again.
        if plain {
            let app = app.clone();
            let undone = shared
                .with_registry(move |r| r.rollback(&app, "bext (the new version could not be served)"))
                .await;
            if undone.is_ok() {
                let _ = shared.changed().await;
                return Err(DeployError::RolledBack {
                    version: deployed.version.version,
                    reason: match refused {
                        DeployError::Refused(reason) => reason,
                        other => other.to_string(),
                    },
                });
            }
        }
        return Err(refused);
    }
    if plain {
        // The new version serves: its post_deploy hook may run.
        let version = deployed.version.clone();
        deployed.post_deploy = shared
            .with_registry(move |r| r.post_deploy(&app, &version, &hooks_after))
            .await?;
    }
    Ok(json(StatusCode::CREATED, &deployed))
}

/// The largest body `POST {base}/domains` reads.
const MAX_DOMAIN_BODY: usize = 16 * 1024;

/// What `POST {base}/domains` carries.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainAsk {
    domain: String,
    app: String,
    tenant: String,
}

/// The body of `POST {base}/domains`: one JSON object with exactly its
/// three fields. serde would take an array of three strings for the
/// struct too; only an object is accepted, so a body means one thing.
fn domain_ask(body: &[u8]) -> Result<DomainAsk, DeployError> {
    let bad = |e: &dyn std::fmt::Display| {
        DeployError::Bundle(format!(
            "the body is {{\"domain\": NAME, \"app\": ID, \"tenant\": NAME}} in JSON: {e}"
        ))
    };
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|e| bad(&e))?;
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| bad(&e))
}

/// `POST {base}/domains`: records a tenant's own domain, then serves it
/// (201 with the record once the new pipeline routes it).
async fn add_domain(shared: &Shared, req: &mut Request) -> Result<Response, DeployError> {
    let by = caller(req)?;
    let body = http_body_util::Limited::new(std::mem::take(req.body_mut()), MAX_DOMAIN_BODY)
        .collect()
        .await
        .map_err(|e| {
            DeployError::Bundle(format!(
                "the body could not be read (at most {MAX_DOMAIN_BODY} bytes): {e}"
            ))
        })?
        .to_bytes();
    let ask = domain_ask(&body)?;
    let claims = shared.claims.clone();
    let added = shared
        .with_registry(move |r| r.add_domain(&ask.domain, &ask.app, &ask.tenant, &by, &claims))
        .await?;
    shared.changed().await?;
    Ok(json(StatusCode::CREATED, &added))
}

/// What a deploy's query asks for, read before anything else of it.
#[derive(Debug, PartialEq)]
struct DeployAsk {
    /// `version=`: the new version's name (else one is made up).
    version: Option<String>,
    /// `preview=`: deploy as this preview instead.
    preview: Option<String>,
    /// `ttl=`: the preview's lifetime in seconds (the config's without).
    ttl: u64,
    /// `canary=` and its automatic decisions.
    canary: Option<CanaryPlan>,
}

impl DeployAsk {
    /// Reads `query`; `default_ttl` is the config's `preview_ttl`.
    fn parse(query: &Query, default_ttl: u64) -> Result<DeployAsk, DeployError> {
        // Names arrive escaped as the CLI sends them, for the registry to judge.
        let version = query.get("version").map(decoded);
        let preview = query.get("preview").map(decoded);
        let ttl = match (query.get("ttl"), &preview) {
            (None, _) => default_ttl,
            (Some(s), Some(_)) => s
                .parse()
                .map_err(|_| DeployError::Bundle(format!("ttl={s}: the preview's lifetime in seconds")))?,
            (Some(_), None) => {
                return Err(DeployError::Bundle(
                    "ttl is a preview's lifetime: give preview=NAME with it".into(),
                ));
            }
        };
        let canary = match query.percent("canary")? {
            Some(share) => Some(CanaryPlan {
                share,
                auto_promote_after: query
                    .get("auto_promote_after")
                    .map(|s| {
                        s.parse()
                            .map_err(|_| DeployError::Bundle(format!("auto_promote_after={s}: seconds")))
                    })
                    .transpose()?,
                max_error_rate: query
                    .get("max_error_rate")
                    .map(|s| match s.parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                        _ => Err(DeployError::Bundle(format!(
                            "max_error_rate={s}: a fraction from 0 to 1"
                        ))),
                    })
                    .transpose()?,
            }),
            None => None,
        };
        Ok(DeployAsk {
            version,
            preview,
            ttl,
            canary,
        })
    }
}

/// A percent-escaped path segment or query value, decoded.
fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The query string of an API call.
struct Query(String);

impl Query {
    /// The raw value of `key`, the first if given twice.
    fn get(&self, key: &str) -> Option<&str> {
        self.0.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// `key=20` or `key=20%`, 0 to 100.
    fn percent(&self, key: &str) -> Result<Option<u8>, DeployError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v.trim_end_matches("%25").trim_end_matches('%').parse::<u8>() {
            Ok(p) if p <= 100 => Ok(Some(p)),
            _ => Err(DeployError::Bundle(format!("{key}={v}: a percentage from 0 to 100"))),
        }
    }
}

/// Who makes an API call: what it says in [`USER_HEADER`], `api` when it
/// says nothing.
fn caller(req: &Request) -> Result<String, DeployError> {
    let Some(value) = req.headers().get(USER_HEADER) else {
        return Ok("api".into());
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| (1..=64).contains(&s.len()) && !s.contains(|c: char| c.is_control()))
        .map(str::to_owned)
        .ok_or_else(|| DeployError::Bundle(format!("{USER_HEADER}: 1 to 64 printable ASCII characters")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_is_asked_for_by_one_object_only() {
        let ask = domain_ask(br#"{"domain":"a.test","app":"saas","tenant":"t"}"#).unwrap();
        assert_eq!(
            (ask.domain.as_str(), ask.app.as_str(), ask.tenant.as_str()),
            ("a.test", "saas", "t")
        );
        for bad in [
            &br#"["j3.test","saas","t"]"#[..],
            br#"{"domain":"a.test","app":"saas"}"#,
            br#"{"domain":"a.test","app":"saas","tenant":"t","x":1}"#,
            br#""a.test""#,
            b"",
        ] {
            let err = domain_ask(bad).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn with_user(value: Option<&[u8]>) -> Request {
        let mut req = Request::new(bext_plugin_abi::Body::empty());
        if let Some(v) = value {
            req.headers_mut()
                .insert(USER_HEADER, http::HeaderValue::from_bytes(v).unwrap());
        }
        req
    }

    #[test]
    fn the_caller_is_who_the_request_says_or_api() {
        assert_eq!(caller(&with_user(None)).unwrap(), "api");
        assert_eq!(caller(&with_user(Some(b"ci-bot"))).unwrap(), "ci-bot");
        assert_eq!(caller(&with_user(Some(b" alice (cli) "))).unwrap(), "alice (cli)");
        for bad in [&b""[..], b"  ", b"a\tb", "é".as_bytes(), &[b'x'; 65]] {
            let err = caller(&with_user(Some(bad))).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    fn query(s: &str) -> Query {
        Query(s.to_owned())
    }

    #[test]
    fn query_values_are_found_by_their_whole_key() {
        let q = query("canary=20&to=5&canary=30&ttl");
        assert_eq!(q.get("canary"), Some("20"));
        assert_eq!(q.get("to"), Some("5"));
        assert_eq!(q.get("t"), None);
        assert_eq!(q.get("ttl"), None);
        assert_eq!(query("").get("to"), None);
    }

    #[test]
    fn percentages_are_0_to_100_with_or_without_a_sign() {
        assert_eq!(query("to=20").percent("to").unwrap(), Some(20));
        assert_eq!(query("to=20%").percent("to").unwrap(), Some(20));
        assert_eq!(query("to=100%25").percent("to").unwrap(), Some(100));
        assert_eq!(query("x=1").percent("to").unwrap(), None);
        for bad in ["to=101", "to=-1", "to=", "to=half"] {
            let err = query(bad).percent("to").unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn a_deploy_query_is_read_whole_or_refused() {
        assert_eq!(
            DeployAsk::parse(&query(""), 600).unwrap(),
            DeployAsk {
                version: None,
                preview: None,
                ttl: 600,
                canary: None
            }
        );
        let ask = DeployAsk::parse(&query("version=v%201&preview=pr%2F1&ttl=60"), 600).unwrap();
        assert_eq!(
            (ask.version.as_deref(), ask.preview.as_deref(), ask.ttl),
            (Some("v 1"), Some("pr/1"), 60)
        );
        let ask = DeployAsk::parse(&query("canary=10%25&auto_promote_after=300&max_error_rate=0.05"), 600).unwrap();
        assert_eq!(
            ask.canary,
            Some(CanaryPlan {
                share: 10,
                auto_promote_after: Some(300),
                max_error_rate: Some(0.05)
            })
        );
        for bad in [
            "ttl=60",
            "preview=p&ttl=soon",
            "canary=200",
            "canary=10&auto_promote_after=-1",
            "canary=10&max_error_rate=1.5",
        ] {
            let err = DeployAsk::parse(&query(bad), 600).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
