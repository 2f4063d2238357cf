//! The authn plugin in the real server: valid tokens of every algorithm
//! family reach the app with the caller in headers; tokens with every
//! listed flaw are refused; spoofed caller headers never reach the app;
//! API keys, scopes, per-app secrets from the environment and JWKS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use crate::support::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("plugins/authn/tests/keys").join(name)).unwrap()
}

pub(crate) fn sign(alg: Algorithm, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key_file("ec.key")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&key_file("ed.key")).unwrap(),
        other => panic!("{other:?}"),
    };
    encode(&header, &claims, &key).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token assembled by hand (for headers the library will not write).
pub(crate) fn raw_token(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

pub(crate) fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "sub": "user-42", "iss": "https://idp.test", "aud": "shop", "exp": now() + 600,
        "email": "ana@example.com", "scope": "read write",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn authn_platform(s: &Site, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    for f in ["rsa.pub", "ec.pub", "ed.pub"] {
        s.write(&format!("data/keys/{f}"), key_file(f));
    }
    s.write(
        "manifests/authn.yaml",
        r#"name: authn
enabled: true
config:
  public: [/health]
  scopes: [{ path: /admin/*, require: [admin] }]
  jwt:
    keys:
      - { alg: HS256, secret_env: TEST_JWT_SECRET }
      - { kid: rsa1, alg: RS256, pem_file: keys/rsa.pub }
      - { kid: ec1, alg: ES256, pem_file: keys/ec.pub }
      - { kid: ed1, alg: EdDSA, pem_file: keys/ed.pub }
    issuers: [https://idp.test]
    audiences: [shop]
    leeway: 5s
    cookie: session
  api_keys:
    query: api_key
    keys:
      - { name: billing-job, hash: "sha256:3b09f674e7b604c2fabeb5bc4527a4f2312db150ad58fd1472ac01943e91cabb", scopes: [admin] }
  forward:
    claim_headers: { x-auth-email: email }
"#,
    );
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"echo\"\ndata_dir = \"data\"\n\n[apps.echo]\nruntime = \"proxy\"\nupstream = \"http://{upstream}\"\n"
    ))
}

/// The kernel removes client copies of authn's headers on arrival, and
/// authn looks for them again only when a plugin before it may have set
/// one: the WAF and the gateway say they add none, a JavaScript plugin
/// may. Whatever sets them before authn, the app never gets them.
#[tokio::test]
async fn caller_headers_set_before_authn_never_reach_the_app() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = authn_platform(&s, echo.addr);
    s.write("manifests/waf.yaml", "name: waf\nenabled: true\n");
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits: [{ rpm: 60000, burst: 1000 }]\n",
    );
    s.write(
        "spoof.js",
        "export function onRequest(req) {\n\
           if (req.headers.get('x-spoof')) { req.headers.set('x-auth-sub', 'admin'); req.headers.set('x-auth-email', 'spoof@evil.test'); }\n\
         }\n",
    );
    s.write(
        "manifests/spoof.yaml",
        "name: spoof\nentry: ../spoof.js\npriority: 200\n",
    );
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let token = format!("Bearer {}", sign(Algorithm::HS256, None, claims(serde_json::json!({}))));
    for spoof in [false, true] {
        let mut headers = vec![
            ("host", "shop.test"),
            ("x-auth-sub", "root"),
            ("x-auth-email", "a@evil.test"),
        ];
        if spoof {
            headers.push(("x-spoof", "1"));
        }
        // A public path: authn lets it through without a caller.
        let r = send(b.addr, request("GET", "/health", &headers, "")).await;
        assert_eq!(r.status, 200, "{}", b.log());
        let seen = &r.json()["headers"];
        assert!(seen.get("x-auth-sub").is_none(), "spoof {spoof}: {seen}");
        assert!(seen.get("x-auth-email").is_none(), "spoof {spoof}: {seen}");
        // A verified caller: authn's values, never the plugin's.
        headers.push(("authorization", token.as_str()));
        let r = send(b.addr, request("GET", "/orders", &headers, "")).await;
        assert_eq!(r.status, 200, "{}", b.log());
        let seen = &r.json()["headers"];
        assert_eq!(
            (&seen["x-auth-sub"], &seen["x-auth-email"]),
            (&"user-42".into(), &"ana@example.com".into()),
            "spoof {spoof}"
        );
    }
}

#[tokio::test]
async fn tokens_with_any_listed_flaw_are_refused() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = authn_platform(&s, echo.addr);
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let call = |path: &'static str, token: Option<String>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        async move {
            let mut headers = vec![
                ("host", "shop.test"),
                ("x-auth-sub", "admin"),
                ("x-auth-email", "spoof@evil.test"),
            ];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            send(b.addr, request("GET", path, &headers, "")).await
        }
    };

    // Every algorithm family, each pinned to its key.
    for (alg, kid) in [
        (Algorithm::HS256, None),
        (Algorithm::RS256, Some("rsa1")),
        (Algorithm::ES256, Some("ec1")),
        (Algorithm::EdDSA, Some("ed1")),
    ] {
        let r = call("/orders", Some(sign(alg, kid, claims(serde_json::json!({}))))).await;
        assert_eq!(r.status, 200, "{alg:?}: {}", r.text());
        let seen = &r.json()["headers"];
        assert_eq!(seen["x-auth-sub"], "user-42", "{alg:?}");
        assert_eq!(
            seen["x-auth-email"], "ana@example.com",
            "the client's copy was replaced"
        );
        let claims: serde_json::Value = serde_json::from_str(seen["x-auth-claims"].as_str().unwrap()).unwrap();
        assert_eq!(claims["scope"], "read write");
    }

    let flawed: Vec<(&str, String)> = vec![
        (
            "alg none",
            raw_token(serde_json::json!({"alg": "none"}), claims(serde_json::json!({})), ""),
        ),
        ("HS/RS confusion: the RSA public key as an HMAC secret", {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("rsa1".into());
            encode(
                &h,
                &claims(serde_json::json!({})),
                &EncodingKey::from_secret(&key_file("rsa.pub")),
            )
            .unwrap()
        }),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("other"), claims(serde_json::json!({}))),
        ),
        ("wrong algorithm for the kid", {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some("ec1".into());
            encode(
                &h,
                &claims(serde_json::json!({})),
                &EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap(),
            )
            .unwrap()
        }),
        (
            "expired",
            sign(Algorithm::HS256, None, claims(serde_json::json!({"exp": now() - 120}))),
        ),
        (
            "not yet valid",
            sign(Algorithm::HS256, None, claims(serde_json::json!({"nbf": now() + 120}))),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                None,
                claims(serde_json::json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "wrong audience",
            sign(Algorithm::HS256, None, claims(serde_json::json!({"aud": "other-api"}))),
        ),
        (
            "no exp",
            sign(Algorithm::HS256, None, claims(serde_json::json!({"exp": null}))),
        ),
        (
            "exp as a string",
            sign(
                Algorithm::HS256,
                None,
                claims(serde_json::json!({"exp": "99999999999"})),
            ),
        ),
        ("unknown crit", {
            let mut h = Header::new(Algorithm::HS256);
            h.crit = Some(vec!["exp-v2".into()]);
            encode(
                &h,
                &claims(serde_json::json!({})),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        }),
        ("jku pointing at the attacker's keys", {
            let mut h = Header::new(Algorithm::RS256);
            h.jku = Some("http://127.0.0.1:9/evil-jwks.json".into());
            h.kid = Some("evil".into());
            encode(
                &h,
                &claims(serde_json::json!({})),
                &EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap(),
            )
            .unwrap()
        }),
        ("tampered claims", {
            let t = sign(Algorithm::HS256, None, claims(serde_json::json!({})));
            let parts: Vec<&str> = t.split('.').collect();
            let forged = b64(claims(serde_json::json!({"sub": "admin"})).to_string().as_bytes());
            format!("{}.{}.{}", parts[0], forged, parts[2])
        }),
        ("wrong secret", {
            encode(
                &Header::new(Algorithm::HS256),
                &claims(serde_json::json!({})),
                &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
            )
            .unwrap()
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (flaw, token) in flawed {
        let r = call("/orders", Some(token)).await;
        assert_eq!(r.status, 401, "{flaw}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"bext\", error=\"invalid_token\""),
            "{flaw}"
        );
        assert_eq!(r.text(), "Unauthorized\n", "no detail for the client ({flaw})");
    }
    let leeway = sign(Algorithm::HS256, None, claims(serde_json::json!({"exp": now() - 2})));
    assert_eq!(
        call("/orders", Some(leeway)).await.status,
        200,
        "expired within the leeway"
    );

    // No credentials: 401 with a challenge; public paths pass, spoofing removed.
    let r = call("/orders", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"bext\""));
    let r = call("/health", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["headers"].get("x-auth-sub").is_none(),
        "a client cannot claim to be someone"
    );
    assert!(r.json()["headers"].get("x-auth-email").is_none());
    // The log is written by another thread: wait for the lines.
    let logged = |b: &Bext| {
        let log = b.log();
        log.contains("request not authenticated") && log.contains("unknown kid") && log.contains("expired")
    };
    eventually(Duration::from_secs(5), || async { logged(&b).then_some(()) }).await;
    assert!(b.log().contains("request not authenticated"));
    assert!(
        b.log().contains("unknown kid") && b.log().contains("expired"),
        "the operator sees why"
    );

    // Scopes: 403 without them.
    let r = call(
        "/admin/users",
        Some(sign(Algorithm::HS256, None, claims(serde_json::json!({})))),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"bext\", error=\"insufficient_scope\"")
    );
    let admin = sign(
        Algorithm::HS256,
        None,
        claims(serde_json::json!({"scope": "read admin"})),
    );
    assert_eq!(call("/admin/users", Some(admin)).await.status, 200);

    // The token in a cookie.
    let cookie = format!(
        "session={}",
        sign(Algorithm::ES256, Some("ec1"), claims(serde_json::json!({})))
    );
    let r = send(
        b.addr,
        request("GET", "/orders", &[("host", "shop.test"), ("cookie", &cookie)], ""),
    )
    .await;
    assert_eq!(r.status, 200);

    // API keys: stored hashed; by header or query; with scopes.
    let key = |path: &'static str, header: Option<&'static str>| {
        let mut headers = vec![("host", "shop.test")];
        if let Some(k) = header {
            headers.push(("x-api-key", k));
        }
        send(b.addr, request("GET", path, &headers, ""))
    };
    let r = key("/admin/jobs", Some("billing-secret-key")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-auth-sub"], "billing-job");
    assert_eq!(key("/admin/jobs", Some("guess")).await.status, 401);
    assert_eq!(key("/admin/jobs?api_key=billing-secret-key", None).await.status, 200);
}

#[tokio::test]
async fn an_app_secret_from_the_environment_and_jwks() {
    let echo = Echo::start().await;
    let s = Site::new();
    // A JWKS with the public half of tests/keys/rsa.key, kid "rotated-1".
    let signing = EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("rotated-1".into());
    let jwks = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
    s.write("data/jwks.json", serde_json::to_string(&jwks).unwrap());
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
data_dir = "data"

[apps.shop]
runtime = "proxy"
upstream = "http://{0}"
domains = ["shop.test"]
auth = {{ jwt_secret_env = "SHOP_JWT_SECRET", public = ["/"] }}

[apps.api]
runtime = "proxy"
upstream = "http://{0}"
domains = ["api.test"]
auth = {{ jwt = {{ jwks = "jwks.json" }} }}
"#,
        echo.addr
    ));
    let b = Bext::serve_env(&cfg, &[("SHOP_JWT_SECRET", SECRET)]);
    let with = |host: &'static str, token: String| {
        let auth = format!("Bearer {token}");
        async move {
            send(
                b.addr,
                request("GET", "/x", &[("host", host), ("authorization", &auth)], ""),
            )
            .await
        }
    };
    let plain = serde_json::json!({"sub": "u1", "exp": now() + 60});
    assert_eq!(
        with("shop.test", sign(Algorithm::HS256, None, plain.clone()))
            .await
            .status,
        200
    );
    assert_eq!(
        with("api.test", sign(Algorithm::HS256, None, plain.clone()))
            .await
            .status,
        401,
        "each app its own keys"
    );
    assert_eq!(
        with("api.test", sign(Algorithm::RS256, Some("rotated-1"), plain.clone()))
            .await
            .status,
        200
    );
    assert_eq!(
        with("shop.test", sign(Algorithm::RS256, Some("rotated-1"), plain))
            .await
            .status,
        401
    );
}

/// The JWKS URL of an identity provider over https.
fn jwks_url(idp: &HttpsServer) -> String {
    format!("https://localhost:{}/.well-known/jwks.json", idp.addr.port())
}

/// The public half of tests/keys/rsa.key under each of these `kid`s.
fn rsa_jwks(kids: &[&str]) -> String {
    let signing = EncodingKey::from_rsa_pem(&key_file("rsa.key")).unwrap();
    let keys = kids
        .iter()
        .map(|kid| {
            let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys }).unwrap()
}

// Several threads: the identity provider must answer while this test
// waits for bext in blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_over_https_is_verified_fetched_and_fetched_again_for_a_new_kid() {
    let echo = Echo::start().await;
    let idp = HttpsServer::start(rsa_jwks(&["k1"])).await;
    let s = Site::new();
    s.write("data/idp-ca.pem", &idp.ca_pem);
    let platform = |jwt: &str| {
        format!(
            "[platform]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\ndefault_app = \"api\"\n\n\
             [apps.api]\nruntime = \"proxy\"\nupstream = \"http://{}\"\nauth = {{ jwt = {{ {jwt} }} }}\n",
            echo.addr
        )
    };

    // Not trusted without the CA: the server refuses to start, and says why.
    let untrusted = s.platform(&platform(&format!("jwks = \"{}\"", jwks_url(&idp))));
    let out = bext_output(&["serve", "--config", untrusted.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("jwt.jwks") && err.contains("certificate"), "{err}");
    let missing = s.platform(&platform(&format!(
        "jwks = \"{}\", jwks_ca = \"nope.pem\"",
        jwks_url(&idp)
    )));
    let out = bext_output(&["check", "--config", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("jwks_ca") && err.contains("nope.pem"),
        "{err}"
    );

    let cfg = s.platform(&platform(&format!(
        "jwks = \"{}\", jwks_ca = \"idp-ca.pem\"",
        jwks_url(&idp)
    )));
    let b = Bext::serve(&cfg);
    let call = |kid: &'static str| {
        let token = sign(
            Algorithm::RS256,
            Some(kid),
            serde_json::json!({"sub": "u1", "exp": now() + 60}),
        );
        async move {
            let auth = format!("Bearer {token}");
            send(
                b.addr,
                request("GET", "/x", &[("host", "api.test"), ("authorization", &auth)], ""),
            )
            .await
        }
    };
    let r = call("k1").await;
    assert_eq!(r.status, 200, "{}", b.log());
    assert_eq!(r.json()["headers"]["x-auth-sub"], "u1");
    let fetched = idp.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(fetched, 1, "fetched once at start");

    // The provider rotates to a new key: the first token naming it is
    // refused (unknown kid) and makes bext fetch again, at once rather
    // than at the next refresh (5 minutes away).
    *idp.document.lock().unwrap() = rsa_jwks(&["k1", "k2"]);
    assert_eq!(call("k2").await.status, 401);
    eventually(std::time::Duration::from_secs(10), || async {
        (call("k2").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(idp.fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(call("k1").await.status, 200, "the old key still works");
}

/// The H1 platform: scope rules and `public` in the manifest, and the app
/// (`cached`) turning `required` off in the platform file, as an operator
/// who wants anonymous pages next to an admin area would.
fn optional_platform(s: &Site, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    s.write(
        "manifests/authn.yaml",
        r#"name: authn
enabled: true
config:
  public: [/health, /api/*]
  scopes:
    - { path: /admin/*, require: [admin] }
    - { path: /api/admin/*, require: [admin] }
    - { path: /orders, methods: [POST], require: [orders:write] }
    - { path: /reports/*, methods: [get], require: [reports] }
    - { path: /me/*, require: [] }
  jwt:
    keys:
      - { alg: HS256, secret_env: TEST_JWT_SECRET }
    issuers: [https://idp.test]
    audiences: [shop]
"#,
    );
    s.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\ndefault_app = \"cached\"\n\n\
         [apps.cached]\nruntime = \"proxy\"\nupstream = \"http://{upstream}\"\n\
         [apps.cached.plugins.authn]\nconfig = {{ required = false }}\n"
    ))
}

#[tokio::test]
async fn scope_rules_bind_anonymous_callers_and_win_over_public_paths() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve_env(&optional_platform(&s, echo.addr), &[("TEST_JWT_SECRET", SECRET)]);
    let reader = sign(Algorithm::HS256, None, claims(serde_json::json!({})));
    let admin = sign(
        Algorithm::HS256,
        None,
        claims(serde_json::json!({"scope": "read admin"})),
    );
    let call = |method: &'static str, path: &'static str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        async move {
            let mut headers = vec![("host", "shop.test"), ("x-auth-sub", "admin")];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            send(b.addr, request(method, path, &headers, "")).await
        }
    };

    // The pentest's repro: a reader gets 403, so nobody may get 200.
    for path in [
        "/admin/secret",
        "/admin",
        "/admin/",
        "//admin/secret",
        "/x/../admin/secret",
        "/%61dmin/secret",
    ] {
        let r = call("GET", path, None).await;
        assert_eq!(r.status, 401, "{path} without a credential: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"bext\""), "{path}");
        assert_eq!(r.text(), "Unauthorized\n");
    }
    assert_eq!(call("GET", "/admin/secret", Some(&reader)).await.status, 403);
    assert_eq!(call("GET", "/admin/secret", Some(&admin)).await.status, 200);

    // A scope rule under a public prefix still holds.
    assert_eq!(call("GET", "/api/admin/users", None).await.status, 401);
    assert_eq!(call("GET", "/api/admin/users", Some(&reader)).await.status, 403);
    assert_eq!(call("GET", "/api/admin/users", Some(&admin)).await.status, 200);
    let r = call("GET", "/api/items", None).await;
    assert_eq!(r.status, 200, "the rest of the public prefix stays public");
    assert!(r.json()["headers"].get("x-auth-sub").is_none());

    // A rule for some methods guards only those.
    assert_eq!(call("POST", "/orders", None).await.status, 401);
    assert_eq!(call("POST", "/orders", Some(&reader)).await.status, 403);
    assert_eq!(call("GET", "/orders", None).await.status, 200);
    // A rule for GET guards HEAD (the same handler, without the body).
    for method in ["GET", "HEAD"] {
        assert_eq!(call(method, "/reports/q3", None).await.status, 401, "{method}");
        assert_eq!(call(method, "/reports/q3", Some(&reader)).await.status, 403, "{method}");
    }
    assert_eq!(call("POST", "/reports/q3", None).await.status, 200);

    // `require: []`: any verified caller, never an anonymous one.
    assert_eq!(call("GET", "/me/profile", None).await.status, 401);
    let r = call("GET", "/me/profile", Some(&reader)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-auth-sub"], "user-42");

    // Paths without a rule stay optional; a credential sent is checked.
    let r = call("GET", "/pages/home", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["headers"].get("x-auth-sub").is_none(),
        "spoofed header removed"
    );
    let r = call("GET", "/pages/home", Some(&reader)).await;
    assert_eq!(r.json()["headers"]["x-auth-sub"], "user-42");
    assert_eq!(call("GET", "/pages/home", Some("not.a.token")).await.status, 401);
    assert_eq!(call("GET", "/health", None).await.status, 200);
}

/// A raw HTTP/1.1 request to `b` with these header lines; the status.
async fn raw_status(b: &Bext, target: &str, lines: &str) -> u16 {
    let text = format!("GET {target} HTTP/1.1\r\nHost: shop.test\r\n{lines}Connection: close\r\n\r\n");
    status_of(&raw_async(b.addr, text.as_bytes(), std::time::Duration::from_secs(10)).await)
}

#[tokio::test]
async fn a_request_with_more_than_one_credential_is_refused_in_every_spelling() {
    let echo = Echo::start().await;
    let s = Site::new();
    let cfg = authn_platform(&s, echo.addr);
    let b = Bext::serve_env(&cfg, &[("TEST_JWT_SECRET", SECRET)]);
    let good = sign(Algorithm::HS256, None, claims(serde_json::json!({})));
    let none = raw_token(
        serde_json::json!({"alg": "none"}),
        claims(serde_json::json!({"sub": "admin", "scope": "admin"})),
        "",
    );
    let (good_bearer, none_bearer) = (format!("Bearer {good}"), format!("Bearer {none}"));
    let key = "billing-secret-key";

    // Each credential alone still works (the scheme in any case).
    for (name, value) in [
        ("authorization", good_bearer.clone()),
        ("authorization", format!("BEARER {good}")),
        ("cookie", format!("theme=dark; session={good}")),
        ("x-api-key", key.to_owned()),
    ] {
        let r = send(
            b.addr,
            request("GET", "/orders", &[("host", "shop.test"), (name, &value)], ""),
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {value}");
    }

    /// Header fields: name and value.
    type Fields = Vec<(&'static str, String)>;
    let two = |lines: Fields, target: &'static str| {
        let mut headers: Vec<(&str, String)> = vec![("host", "shop.test".to_owned())];
        headers.extend(lines);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request("GET", target, &pairs, "")
    };
    let cases: Vec<(&str, Fields, &str)> = vec![
        (
            "two Authorization fields, valid first",
            vec![
                ("authorization", good_bearer.clone()),
                ("authorization", none_bearer.clone()),
            ],
            "/orders",
        ),
        (
            "two Authorization fields, valid last",
            vec![
                ("authorization", none_bearer.clone()),
                ("authorization", good_bearer.clone()),
            ],
            "/orders",
        ),
        (
            "two API key fields",
            vec![("x-api-key", key.to_owned()), ("x-api-key", "other".to_owned())],
            "/orders",
        ),
        (
            "an API key in the header and the query",
            vec![("x-api-key", key.to_owned())],
            "/orders?api_key=other",
        ),
        (
            "two api_key parameters",
            vec![],
            "/orders?api_key=billing-secret-key&api_key=other",
        ),
        (
            "two api_key parameters, one name escaped",
            vec![],
            "/orders?api_key=billing-secret-key&api%5Fkey=other",
        ),
        (
            "the token cookie twice in one Cookie",
            vec![("cookie", format!("session={good}; session={none}"))],
            "/orders",
        ),
        (
            "the token cookie in two Cookie fields",
            vec![
                ("cookie", format!("session={good}")),
                ("cookie", format!("session={none}")),
            ],
            "/orders",
        ),
        (
            "a bearer token and the token cookie",
            vec![
                ("authorization", good_bearer.clone()),
                ("cookie", format!("session={none}")),
            ],
            "/orders",
        ),
        (
            "an API key and a bearer token",
            vec![("x-api-key", key.to_owned()), ("authorization", none_bearer.clone())],
            "/admin/jobs",
        ),
    ];
    for (what, lines, target) in cases {
        for h2 in [false, true] {
            let req = two(lines.clone(), target);
            let r = if h2 {
                send_h2(b.addr, req).await
            } else {
                send(b.addr, req).await
            };
            assert_eq!(r.status, 400, "{what} (h2: {h2}): {}", r.text());
            assert!(!r.text().contains("headers"), "{what}: the app never saw it");
            // The kernel refuses a second Authorization before any plugin.
            if !what.starts_with("two Authorization") {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Bearer realm=\"bext\", error=\"invalid_request\""),
                    "{what}"
                );
                assert_eq!(r.text(), "Bad Request\n", "{what}");
            }
        }
    }
    assert!(b.log().contains("more than one credential"), "the operator sees why");

    // Header names in any case are one header.
    let lines = [
        format!("Authorization: {good_bearer}\r\nAUTHORIZATION: {none_bearer}\r\n"),
        format!("authorization: {good_bearer}\r\naUTHORIZATION: Basic dTpw\r\n"),
        format!("X-Api-Key: {key}\r\nx-API-key: other\r\n"),
        format!("Cookie: session={good}\r\nCOOKIE: session={none}\r\n"),
    ];
    for l in &lines {
        assert_eq!(raw_status(&b, "/orders", l).await, 400, "{l}");
    }
    assert_eq!(raw_status(&b, "/orders", &format!("X-API-KEY: {key}\r\n")).await, 200);

    // Values joined with commas in one line are one value: not a valid one.
    for l in [
        format!("Authorization: {good_bearer}, {none_bearer}\r\n"),
        format!("x-api-key: {key}, other\r\n"),
        format!("x-api-key: {key},{key}\r\n"),
    ] {
        assert_eq!(raw_status(&b, "/orders", &l).await, 401, "{l}");
    }
}

/// isr keeps `/acct/*` per caller, and authn knows an API key named
/// `reader-key` and tokens from two issuers.
fn per_caller_platform(s: &Site, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    s.write(
        "manifests/authn.yaml",
        r#"name: authn
enabled: true
config:
  required: false
  jwt:
    keys:
      - { alg: HS256, secret_env: TEST_JWT_SECRET }
    issuers: [https://a.test, https://b.test]
  api_keys:
    keys:
      - { name: reader-key, hash: "sha256:f03319dee240faa729e0cfa7ab5ffd80a1d64a127e3643f239009abff6382914" }
"#,
    );
    s.write(
        "manifests/isr.yaml",
        "name: isr\nenabled: true\nconfig:\n  rules:\n    - { path: /acct/*, authorized: true }\n",
    );
    shop_platform(s, upstream)
}

#[tokio::test]
async fn an_api_key_and_tokens_of_two_issuers_with_one_name_are_three_callers() {
    let up = crate::isr::Counting::start().await;
    let s = Site::new();
    let b = Bext::serve_env(&per_caller_platform(&s, up.addr), &[("TEST_JWT_SECRET", SECRET)]);
    let token = |iss: &str| {
        format!(
            "Bearer {}",
            sign(
                Algorithm::HS256,
                None,
                serde_json::json!({"sub": "reader-key", "iss": iss, "exp": now() + 600}),
            )
        )
    };
    let fetch = |name: &'static str, value: String| async move {
        send(
            b.addr,
            request("GET", "/acct/me", &[("host", "shop.test"), (name, &value)], ""),
        )
        .await
    };
    let callers = [
        ("x-api-key", "reader-secret".to_owned()),
        ("authorization", token("https://a.test")),
        ("authorization", token("https://b.test")),
    ];
    let mut pages = Vec::new();
    for (name, value) in &callers {
        let r = fetch(name, value.clone()).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("x-cache"), Some("MISS"), "{name}: not another caller's page");
        assert!(
            r.text().contains("sub=reader-key "),
            "the app's x-auth-sub is the plain name: {}",
            r.text()
        );
        pages.push(r.text());
    }
    for ((name, value), page) in callers.iter().zip(&pages) {
        let r = fetch(name, value.clone()).await;
        assert_eq!(r.header("x-cache"), Some("HIT"), "{name}: its own page");
        assert_eq!(&r.text(), page, "{name}");
    }
    assert_eq!(up.count("/acct/me"), 3, "one page per caller");
}
