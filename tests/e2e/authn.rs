//! The authn plugin in the real server: valid tokens of every algorithm
//! family reach the app with the caller in headers; tokens with every
//! listed flaw are refused; spoofed caller headers never reach the app;
//! API keys, scopes, per-app secrets from the environment and JWKS.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use crate::support::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("plugins/authn/tests/keys").join(name)).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: serde_json::Value) -> String {
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
fn raw_token(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
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
