//! The isolate pool against real QuickJS, in every mode: every case in
//! `pool/cases.rs` runs once with isolates on their own threads, once
//! inline on the calling thread and once on the shared pool (all the
//! cases' apps on the same pool threads, as many apps are in production);
//! `inline` has the cases only that mode has.

mod threads {
    const MODE: bext_js::Mode = bext_js::Mode::Threads;
    include!("pool/cases.rs");
}

mod shared {
    const MODE: bext_js::Mode = bext_js::Mode::Shared;
    include!("pool/cases.rs");
}

mod inline {
    const MODE: bext_js::Mode = bext_js::Mode::Inline;
    include!("pool/cases.rs");

    /// One inline isolate serves many requests at once: a call waiting on
    /// a promise does not hold the isolate, so another request can settle
    /// it (with one isolate on a thread of its own this would deadlock).
    #[tokio::test]
    async fn one_isolate_serves_overlapping_requests() {
        let f = app(r#"
            let release;
            const gate = new Promise((r) => { release = r; });
            export default { async fetch(req) {
              if (req.url.endsWith('/wait')) { const v = await gate; return new Response('released by ' + v); }
              release('the second request');
              return new Response('released');
            } }"#);
        let (waiting, releasing) = tokio::join!(
            f.pool.call(get("http://a.test/wait")),
            f.pool.call(get("http://a.test/release"))
        );
        assert_eq!(text_of(releasing), "released");
        assert_eq!(text_of(waiting), "released by the second request");
    }

    /// A loop is cut off at `cpu_limit`, well before the call's timeout,
    /// and the next request gets a fresh isolate.
    #[tokio::test]
    async fn loops_are_cut_off_at_the_cpu_limit() {
        let limits = Limits {
            timeout: Duration::from_secs(30),
            cpu_limit: Duration::from_millis(50),
            ..Limits::default()
        };
        let f = start(
            Kind::App,
            "let n = 0; export default { fetch(req) { n++; if (req.url.endsWith('/spin')) for (;;) {} return new Response(String(n)); } }",
            limits,
        )
        .unwrap();
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "1");
        let err = f.pool.call(get("http://a.test/spin")).await.unwrap_err();
        assert_eq!(err, JsError::Timeout(Duration::from_millis(50)));
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "1");
    }

    /// Many calls whose timers come due together, each timer callback and
    /// the continuation it resolves busy for a tenth of `cpu_limit` (the
    /// batch well over it): the limit is each callback's, not the batch's, so every
    /// call answers (inline, the batch used to share one `cpu_limit`, and the
    /// isolate was replaced with every call in it). tests/e2e/js_budget.rs
    /// runs it in every mode (here, the shared pool is every test's).
    #[tokio::test]
    async fn many_busy_timer_callbacks_each_get_the_cpu_limit() {
        let limits = Limits {
            timeout: Duration::from_secs(30),
            cpu_limit: Duration::from_millis(100),
            ..Limits::default()
        };
        let f = start(
            Kind::App,
            r#"const busy = (ms) => { const end = performance.now() + ms; while (performance.now() < end) {} };
            export default { async fetch() {
              await new Promise((r) => setTimeout(() => { busy(10); r(); }, 5));
              busy(10);
              return new Response('done');
            } }"#,
            limits,
        )
        .unwrap();
        let calls = (0..16).map(|_| f.pool.call(get("http://a.test/")));
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(text_of(answer), "done");
        }
    }

    /// A timer callback that loops is still cut off at `cpu_limit` (the
    /// limit is per callback now, not gone), its call fails and the next
    /// request gets a fresh isolate.
    #[tokio::test]
    async fn a_looping_timer_callback_is_cut_off_and_the_isolate_replaced() {
        let limits = Limits {
            timeout: Duration::from_secs(30),
            cpu_limit: Duration::from_millis(50),
            ..Limits::default()
        };
        let f = start(
            Kind::App,
            r#"let n = 0;
            export default { async fetch(req) {
              n++;
              if (req.url.endsWith('/spin')) await new Promise(() => setTimeout(() => { for (;;) {} }, 1));
              return new Response(String(n));
            } }"#,
            limits,
        )
        .unwrap();
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "1");
        let err = f.pool.call(get("http://a.test/spin")).await.unwrap_err();
        assert!(
            matches!(&err, JsError::Exception(m) if m.contains("replaced") && m.contains("timed out")),
            "{err:?}"
        );
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "1");
    }

    /// A call whose caller gave up leaves the isolate at once.
    #[tokio::test]
    async fn a_call_given_up_on_frees_its_place() {
        let limits = Limits {
            workers: 1,
            queue: 1,
            ..Limits::default()
        };
        let f = start(
            Kind::App,
            r#"export default { async fetch(req) {
              if (req.url.endsWith('/hang')) await new Promise(() => setTimeout(() => {}, 60000));
              return new Response('ok');
            } }"#,
            limits,
        )
        .unwrap();
        // The client goes away while the call waits on its timer.
        let gone = tokio::time::timeout(Duration::from_millis(50), f.pool.call(get("http://a.test/hang"))).await;
        assert!(gone.is_err());
        // It was forgotten when its future was dropped: the one place is free.
        assert_eq!(text(&f.pool, get("http://a.test/")).await.2, "ok");
    }

    /// Inline isolates need a runtime whose tasks stay on one thread.
    #[test]
    fn a_multi_thread_runtime_is_refused() {
        let f = app("export default { fetch() { return new Response('x'); } }");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let err = rt.block_on(f.pool.call(get("http://a.test/"))).unwrap_err();
        assert!(
            matches!(&err, JsError::Exception(m) if m.contains("current-thread")),
            "{err:?}"
        );
    }
}
