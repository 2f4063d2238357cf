//! Apps with the same code share one load check (`shared_check.rs`), and
//! only when everything the check depended on is the same: a different
//! import, a link out of the app's directory or other limits are checked,
//! and refused, on their own.

use std::collections::BTreeMap;
use std::path::Path;

use bext_js::{Answer, Call, IsolatePool, JsError, Kind, Limits, Spec};
use bytes::Bytes;
use http::{HeaderMap, Method};

/// The entry every app here has, byte for byte: it imports `./lib.js`.
const ENTRY: &str = r#"import { word } from "./lib.js";
let calls = 0;
export default { fetch() { calls += 1; return new Response(`${word} ${calls}`); } };
"#;

const GOOD_LIB: &str = "export const word = 'hello';\n";

/// An app directory under `root` with `ENTRY` and this `lib.js`.
fn app_dir(root: &Path, name: &str, lib: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.js"), ENTRY).unwrap();
    std::fs::write(dir.join("lib.js"), lib).unwrap();
    dir
}

fn spec(dir: &Path, limits: Limits) -> Spec {
    Spec {
        name: format!("app {}", dir.display()),
        entry: dir.join("index.js"),
        kind: Kind::App,
        env: BTreeMap::new(),
        config: serde_json::Value::Null,
        limits,
        bindings: Default::default(),
    }
}

fn one_worker() -> Limits {
    Limits {
        workers: 1,
        ..Limits::default()
    }
}

async fn text(pool: &IsolatePool) -> String {
    let call = Call::App {
        method: Method::GET,
        url: "http://shared.test/".into(),
        headers: HeaderMap::new(),
        body: Bytes::new().into(),
    };
    match pool.call(call).await {
        Ok(Answer::Respond(r)) => String::from_utf8(r.body.to_vec()).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

fn refused(started: Result<IsolatePool, JsError>) -> String {
    match started {
        Ok(_) => panic!("the pool started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_with_the_same_code_each_run_their_own_module() {
    let tmp = tempfile::tempdir().unwrap();
    let pools: Vec<IsolatePool> = (0..3)
        .map(|i| IsolatePool::start(spec(&app_dir(tmp.path(), &format!("same{i}"), GOOD_LIB), one_worker())).unwrap())
        .collect();
    // Module state is per app: a shared check shares no isolate.
    assert_eq!(text(&pools[0]).await, "hello 1");
    assert_eq!(text(&pools[0]).await, "hello 2");
    assert_eq!(text(&pools[1]).await, "hello 1");
    assert_eq!(text(&pools[2]).await, "hello 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_entry_with_a_broken_import_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = IsolatePool::start(spec(&app_dir(tmp.path(), "good", GOOD_LIB), one_worker())).unwrap();
    assert_eq!(text(&good).await, "hello 1");
    let broken = app_dir(
        tmp.path(),
        "broken",
        "throw new Error('lib is broken');\nexport const word = 1;\n",
    );
    let m = refused(IsolatePool::start(spec(&broken, one_worker())));
    assert!(m.contains("lib is broken"), "{m}");
    // Named by its own path, not the good app's.
    assert!(
        m.contains(&broken.display().to_string()) || m.contains("broken/"),
        "{m}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_through_a_link_out_of_the_app_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = IsolatePool::start(spec(&app_dir(tmp.path(), "inside", GOOD_LIB), one_worker())).unwrap();
    assert_eq!(text(&good).await, "hello 1");
    // The same lib.js, byte for byte, but outside the app's directory.
    let outside = tmp.path().join("outside.js");
    std::fs::write(&outside, GOOD_LIB).unwrap();
    let linked = app_dir(tmp.path(), "linked", GOOD_LIB);
    std::fs::remove_file(linked.join("lib.js")).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("lib.js")).unwrap();
    let m = refused(IsolatePool::start(spec(&linked, one_worker())));
    assert!(m.contains("outside the app's directory"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_code_under_other_limits_is_checked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let big = "export const word = 'x'.repeat(4 * 1024 * 1024);\n";
    let roomy = IsolatePool::start(spec(&app_dir(tmp.path(), "roomy", big), one_worker())).unwrap();
    assert!(text(&roomy).await.ends_with(" 1"));
    let tight = Limits {
        memory_limit: 2 * 1024 * 1024,
        ..one_worker()
    };
    let m = refused(IsolatePool::start(spec(&app_dir(tmp.path(), "tight", big), tight)));
    assert!(m.to_lowercase().contains("memory"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_file_changed_to_broken_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), "changing", GOOD_LIB);
    let before = IsolatePool::start(spec(&dir, one_worker())).unwrap();
    assert_eq!(text(&before).await, "hello 1");
    // What a reload sees: the same app, its import now broken.
    std::fs::write(dir.join("lib.js"), "export const word = ;\n").unwrap();
    let m = refused(IsolatePool::start(spec(&dir, one_worker())));
    assert!(m.contains("SyntaxError") || m.contains("unexpected"), "{m}");
    // The pool started before keeps the code it checked.
    assert_eq!(text(&before).await, "hello 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_that_differ_only_in_env_values_each_see_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let code = "export default { fetch(request, env) { return new Response(env.TENANT); } };\n";
    let mut pools = Vec::new();
    for tenant in ["t1", "t2"] {
        let dir = tmp.path().join(tenant);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.js"), code).unwrap();
        let mut spec = spec(&dir, one_worker());
        spec.env.insert("TENANT".into(), tenant.into());
        pools.push(IsolatePool::start(spec).unwrap());
    }
    assert_eq!(text(&pools[0]).await, "t1");
    assert_eq!(text(&pools[1]).await, "t2");
}
