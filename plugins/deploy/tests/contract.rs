//! The deploy plugin through its public contract, as the kernel drives it
//! (`bext_plugin_abi::testing`), on a data directory of its own: the admin
//! API called as the kernel (or the CLI in-process) calls it, the app
//! table changes it reports, and the canary split of its request hooks.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bext_plugin_abi::admin::LocalUpload;
use bext_plugin_abi::testing::{Harness, request};
use bext_plugin_abi::{
    AppChange, BuiltinPlugin, Ctx, Domains, Plugin, Request, RequestId, Response, Setup, decode_config, text_response,
};
use bext_plugin_deploy::DeployPlugin;
use bext_plugin_deploy::config::Config;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

const BASE: &str = "/__bext/api/platform";

async fn deploy_plugin(data_dir: &Path) -> Harness<DeployPlugin> {
    Harness::<DeployPlugin>::builder(Value::Null)
        .data_dir(data_dir)
        .start()
        .await
        .unwrap()
}

/// Sends an admin request as the kernel does once its token checked out.
async fn admin(h: &Harness<DeployPlugin>, mut req: Request) -> (StatusCode, Value) {
    let cx = Ctx::new(RequestId(0), ([127, 0, 0, 1], 0).into());
    let res = h.plugin().admin(&mut req, &cx).resolve().await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

fn call(method: &str, path: &str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(format!("{BASE}{path}"))
        .header("x-bext-user", "contract")
        .body(bext_plugin_abi::Body::empty())
        .unwrap()
}

/// A deploy of `dir` handed over in-process, as `bext deploy` does with
/// no server running; the files stored are noted in `stored`.
fn local_deploy(path: &str, dir: &Path, stored: &Arc<Mutex<Vec<String>>>) -> Request {
    let mut req = call("POST", path);
    let stored = stored.clone();
    req.extensions_mut().insert(LocalUpload {
        dir: dir.to_owned(),
        progress: Arc::new(move |p: &Path, _| stored.lock().unwrap().push(p.display().to_string())),
    });
    req
}

fn bundle(index: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    dir
}

/// What the kernel would add to its app table from `data_dir`.
fn app_changes(data_dir: &Path) -> Vec<AppChange> {
    let config: Config = decode_config(Value::Null).unwrap();
    let setup = Setup {
        plugin: "deploy",
        base: Some(BASE),
        apps: &[],
        data_dir,
    };
    DeployPlugin::app_changes(&config, &setup).unwrap()
}

#[tokio::test]
async fn the_admin_api_is_mounted_at_the_platform_base() {
    let data = tempfile::tempdir().unwrap();
    let h = deploy_plugin(data.path()).await;
    let routes = h.plugin().admin_routes().expect("an admin API");
    assert_eq!(routes.base(), BASE);
    assert_eq!(routes.token_env_name(), Some("BEXT_ADMIN_TOKEN"));
}

#[tokio::test]
async fn an_empty_registry_lists_no_apps_and_knows_no_endpoint_beyond_its_own() {
    let data = tempfile::tempdir().unwrap();
    let h = deploy_plugin(data.path()).await;
    assert_eq!(admin(&h, call("GET", "/apps")).await, (StatusCode::OK, json!([])));
    assert_eq!(admin(&h, call("GET", "/previews")).await, (StatusCode::OK, json!([])));
    let (status, v) = admin(&h, call("GET", "/apps/shop")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        admin(&h, call("PUT", "/apps")).await,
        (StatusCode::NOT_FOUND, json!({ "error": "no such endpoint" }))
    );
    assert!(app_changes(data.path()).is_empty());
}

#[tokio::test]
async fn a_local_deploy_is_stored_and_served_from_the_next_table() {
    let data = tempfile::tempdir().unwrap();
    let h = deploy_plugin(data.path()).await;
    let site = bundle("<h1>v1</h1>");
    let stored = Arc::default();
    let (status, deployed) = admin(&h, local_deploy("/apps/shop/deploy?version=v1", site.path(), &stored)).await;
    assert_eq!(status, StatusCode::CREATED, "{deployed}");
    assert_eq!(deployed["version"]["version"], "v1");
    assert_eq!(deployed["version"]["deployed_by"], "contract");
    assert_eq!(*stored.lock().unwrap(), ["index.html"]);

    let changes = app_changes(data.path());
    assert_eq!(changes.len(), 1, "{changes:?}");
    let shop = &changes[0];
    assert_eq!((shop.id.as_str(), shop.like.as_str()), ("shop", "shop"));
    assert_eq!(shop.domains, Domains::Same);
    assert_eq!(
        std::fs::read_to_string(shop.source.as_ref().unwrap().join("index.html")).unwrap(),
        "<h1>v1</h1>"
    );

    let (status, apps) = admin(&h, call("GET", "/apps")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    let (status, versions) = admin(&h, call("GET", "/apps/shop/versions")).await;
    assert_eq!((status, versions[0]["version"].clone()), (StatusCode::OK, json!("v1")));
}

#[tokio::test]
async fn a_bad_app_id_is_refused_before_anything_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let h = deploy_plugin(data.path()).await;
    let site = bundle("x");
    let stored = Arc::default();
    for path in [
        "/apps/..%2Fetc/deploy",
        "/apps/Shop%20Two/deploy",
        "/apps/shop@v2/deploy",
    ] {
        let (status, v) = admin(&h, local_deploy(path, site.path(), &stored)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert!(stored.lock().unwrap().is_empty());
    assert!(!data.path().join("deploy").exists(), "the registry was created");
    assert!(app_changes(data.path()).is_empty());
}

#[tokio::test]
async fn a_canary_is_a_hidden_app_and_its_stable_visitors_are_counted() {
    let data = tempfile::tempdir().unwrap();
    let h = deploy_plugin(data.path()).await;
    let stored = Arc::default();
    let v1 = bundle("v1");
    let (status, v) = admin(&h, local_deploy("/apps/shop/deploy?version=v1", v1.path(), &stored)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let v2 = bundle("v2");
    let (status, v) = admin(
        &h,
        local_deploy("/apps/shop/deploy?version=v2&canary=10", v2.path(), &stored),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    let ids: Vec<_> = app_changes(data.path())
        .into_iter()
        .map(|c| (c.id, c.domains))
        .collect();
    assert_eq!(
        ids,
        [
            ("shop".to_owned(), Domains::Same),
            ("shop@v2".to_owned(), Domains::Hidden)
        ]
    );

    // A visitor its cookie keeps on the current version reaches the app.
    let ex = h
        .send(
            request("GET", "/")
                .app("shop")
                .header("cookie", "bext_canary_shop=stable"),
            |_req: Request, _cx: &Ctx| -> Response { text_response(StatusCode::OK, "v1") },
        )
        .await;
    assert_eq!((ex.status(), ex.text().as_str()), (StatusCode::OK, "v1"));
    assert_eq!(ex.header("set-cookie"), None, "a known visitor gets no new cookie");

    let (status, app) = admin(&h, call("GET", "/apps/shop")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["canary_stats"]["stable"]["requests"], 1, "{app}");
    assert_eq!(app["canary_stats"]["canary"]["requests"], 0, "{app}");

    let (status, v) = admin(&h, call("POST", "/apps/shop/rollback")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let ids: Vec<_> = app_changes(data.path()).into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["shop"]);
}

fn json_call(method: &str, path: &str, body: &str) -> Request {
    let mut req = call(method, path);
    *req.body_mut() = bext_plugin_abi::Body::from(body.to_owned());
    req
}

/// Tenants' own domains through the admin API: added once (201), listed,
/// refused with the reason and its status, removed, and handed to the
/// kernel as the app's tenant domains.
#[tokio::test]
async fn tenant_domains_are_added_listed_refused_and_removed_over_the_api() {
    let data = tempfile::tempdir().unwrap();
    let apps: Vec<bext_plugin_abi::AppInfo> = [("saas", "*.saas.test"), ("site", "www.customer.test")]
        .into_iter()
        .map(|(id, domain)| bext_plugin_abi::AppInfo {
            id: id.into(),
            domains: vec![domain.into()],
            tenant_domains: Default::default(),
        })
        .collect();
    // What the kernel passes on: hosts routed outside the app table.
    let config = json!({ "reserved_hosts": [
        { "pattern": "*.mapped.test", "by": "the vhosts hosts map (app other)" },
        { "pattern": "admin.lab.test", "by": "admin_hosts" },
    ] });
    let h = Harness::<DeployPlugin>::builder(config)
        .data_dir(data.path())
        .apps(apps)
        .start()
        .await
        .unwrap();
    let add = |body: &str| json_call("POST", "/domains", body);
    let (status, added) = admin(
        &h,
        add(r#"{"domain": "Shop.Customer.TEST.", "app": "saas", "tenant": "customer"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        (&added["domain"], &added["app"], &added["tenant"], &added["added_by"]),
        (
            &json!("shop.customer.test"),
            &json!("saas"),
            &json!("customer"),
            &json!("contract")
        )
    );
    for (body, status, why) in [
        (
            r#"{"domain": "shop.customer.test", "app": "saas", "tenant": "other"}"#,
            StatusCode::CONFLICT,
            "already the domain of tenant customer",
        ),
        (
            r#"{"domain": "acme.saas.test", "app": "saas", "tenant": "x"}"#,
            StatusCode::CONFLICT,
            "already reaches app saas's domain (*.saas.test)",
        ),
        (
            r#"{"domain": "WWW.customer.test", "app": "saas", "tenant": "x"}"#,
            StatusCode::CONFLICT,
            "already reaches app site",
        ),
        (
            r#"{"domain": "x.Mapped.test.", "app": "saas", "tenant": "x"}"#,
            StatusCode::CONFLICT,
            "already reaches the vhosts hosts map (app other)",
        ),
        (
            r#"{"domain": "admin.lab.test", "app": "site", "tenant": "x"}"#,
            StatusCode::CONFLICT,
            "already reaches admin_hosts",
        ),
        (r#"["j3.test", "saas", "t"]"#, StatusCode::BAD_REQUEST, "in JSON"),
        (
            r#"{"domain": "new.customer.test", "app": "nope", "tenant": "x"}"#,
            StatusCode::NOT_FOUND,
            "no app nope",
        ),
        (
            r#"{"domain": "new.customer.test:443", "app": "saas", "tenant": "x"}"#,
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            r#"{"domain": "new.customer.test", "app": "saas"}"#,
            StatusCode::BAD_REQUEST,
            "missing field `tenant`",
        ),
        (
            r#"{"domain": "new.customer.test", "app": "saas", "tenant": "x", "admin": true}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        ("not json", StatusCode::BAD_REQUEST, "in JSON"),
    ] {
        let (got, v) = admin(&h, add(body)).await;
        assert_eq!(got, status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    let huge = format!(
        r#"{{"domain": "{}", "app": "saas", "tenant": "x"}}"#,
        "a".repeat(20_000)
    );
    assert_eq!(admin(&h, add(&huge)).await.0, StatusCode::BAD_REQUEST);

    let (status, list) = admin(&h, call("GET", "/domains")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["domain"], "shop.customer.test");

    let expected: std::collections::BTreeMap<String, String> =
        [("shop.customer.test".to_owned(), "customer".to_owned())].into();
    assert!(app_changes(data.path()).is_empty(), "an app the table lacks gets none");
    let table = [bext_plugin_abi::AppInfo {
        id: "saas".into(),
        domains: vec![],
        tenant_domains: Default::default(),
    }];
    let setup = Setup {
        plugin: "deploy",
        base: Some(BASE),
        apps: &table,
        data_dir: data.path(),
    };
    let config: Config = decode_config(Value::Null).unwrap();
    let changes = DeployPlugin::app_changes(&config, &setup).unwrap();
    assert_eq!(
        changes,
        [AppChange {
            id: "saas".into(),
            like: "saas".into(),
            source: None,
            domains: Domains::Tenants(expected),
            env: bext_plugin_abi::Env::Same,
        }]
    );

    let (status, v) = admin(&h, call("DELETE", "/domains/SHOP.customer.test.")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["tenant"], "customer");
    let (status, v) = admin(&h, call("DELETE", "/domains/shop.customer.test")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(admin(&h, call("GET", "/domains")).await, (StatusCode::OK, json!([])));
}
