//! What a configured app's pool holds before its first request: no
//! isolate, no thread, no preallocated queue, and no second copy of code
//! another app already has (issue 25: 10,000 apps in < 100 MB). Alone in
//! its test binary so that nothing else allocates while it measures.

use std::collections::BTreeMap;

use bext_js::{IsolatePool, Kind, Limits, Spec};

/// Bytes in use in every glibc malloc arena: Rust's allocations (the
/// test binary keeps the system allocator) and QuickJS's alike.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap_in_use() -> usize {
    #[repr(C)]
    struct Mallinfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    unsafe extern "C" {
        fn mallinfo2() -> Mallinfo2;
    }
    // SAFETY: `mallinfo2` (glibc 2.33+) only reads the arenas' counters
    // under their locks and returns a plain struct.
    let m = unsafe { mallinfo2() };
    m.uordblks + m.hblkhd
}

const APPS: usize = 200;

/// A bundle of some size, as real apps have: each byte counted once.
fn bundle() -> String {
    let mut s =
        String::from("export default { fetch() { return new Response(table.length + ''); } };\nconst table = [\n");
    for i in 0..2000 {
        s.push_str(&format!(
            "  'entry number {i} of a table every copy of this app has',\n"
        ));
    }
    s.push_str("];\n");
    s
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn idle_pools_hold_a_few_kilobytes_each() {
    let tmp = tempfile::tempdir().unwrap();
    let code = bundle();
    assert!(code.len() > 100_000);
    let start = |i: usize, code: &str| {
        let dir = tmp.path().join(format!("a{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.js"), code).unwrap();
        IsolatePool::start(Spec {
            name: format!("app a{i}"),
            entry: dir.join("index.js"),
            kind: Kind::App,
            env: BTreeMap::new(),
            config: serde_json::Value::Null,
            limits: Limits::default(),
            bindings: Default::default(),
        })
        .unwrap()
    };
    // The first app is checked in an isolate; the loader thread and the
    // crate's statics are set up then.
    let first = start(0, &code);
    let before = heap_in_use();
    let pools: Vec<IsolatePool> = (1..=APPS).map(|i| start(i, &code)).collect();
    let per_app = heap_in_use().saturating_sub(before) / APPS;
    assert_eq!(pools.iter().filter(|p| p.stats().unwrap().isolates == 0).count(), APPS);
    // Measured: ~1.1 KiB (the pool's spec, module cache and counters).
    // The call queue made before the first call was ~0.5 KiB more (1.7),
    // a bounded queue of 256 calls ~79 KiB, each app's own check ~47 KiB
    // (the leak below), a copy of the bundle 150 KiB.
    assert!(per_app < 1536, "{per_app} bytes per idle app of one bundle");

    // Apps of code of their own, each checked in an isolate that is then
    // dropped: the isolate gives all its heap back (a closure holding a JS
    // object kept the whole context alive: ~53 KiB an app).
    let before = heap_in_use();
    let distinct: Vec<IsolatePool> = (0..DISTINCT)
        .map(|i| {
            start(
                APPS + 1 + i,
                &format!("// app {i}\nexport default {{ fetch() {{ return new Response('{i}'); }} }};\n"),
            )
        })
        .collect();
    let per_app = heap_in_use().saturating_sub(before) / DISTINCT;
    assert!(per_app < 8 * 1024, "{per_app} bytes per idle app of its own code");
    drop((first, pools, distinct));
}

const DISTINCT: usize = 50;
