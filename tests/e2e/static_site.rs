//! The static runtime: content, caching validators, ranges, precompressed
//! files, SPA fallback, and every way out of the document root refused.

use std::time::Duration;

use crate::support::*;

fn site(spa: bool) -> (Site, Bext) {
    let site = Site::new();
    site.write("www/index.html", "<h1>home</h1>");
    site.write("www/app.js", "console.log(1)");
    site.write("www/data.json", "{\"a\":1}");
    site.write("www/big.bin", vec![7u8; 2 << 20]);
    site.write("www/ten.txt", "0123456789");
    site.write("www/style.css", "body{}");
    site.write("www/style.css.br", "BROTLI");
    site.write("www/style.css.gz", "GZIP");
    site.write("www/sub/index.html", "sub index");
    site.write("www/.env", "SECRET=1");
    site.write("www/.well-known/security.txt", "contact: x");
    site.write("outside.txt", "outside the root");
    #[cfg(unix)]
    std::os::unix::fs::symlink(site.path("outside.txt"), site.path("www/leak.txt")).unwrap();
    let cfg = site.platform(&format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\nspa_fallback = {spa}\n"
    ));
    let b = Bext::serve(&cfg);
    (site, b)
}

#[tokio::test]
async fn index_and_content_types() {
    let (_s, b) = site(false);
    let r = get(b.addr, "x", "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        get(b.addr, "x", "/app.js").await.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        get(b.addr, "x", "/data.json").await.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(get(b.addr, "x", "/sub/").await.text(), "sub index");
    let r = get(b.addr, "x", "/sub").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    assert_eq!(get(b.addr, "x", "/missing").await.status, 404);
    assert_eq!(get(b.addr, "x", "/.well-known/security.txt").await.text(), "contact: x");
    // A file named as a directory is not that file (nginx: 404 too), or
    // `/backup.sql/` would pass rules that read the last segment.
    for path in [
        "/app.js/",
        "/app.js//",
        "/app.js/.",
        "/app.js/%2e",
        "/app.js/./",
        "/sub/index.html/",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = raw_async(b.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(status_of(&out), 404, "{path}\n{out}");
        assert!(!out.contains("console.log"), "{path} served the file:\n{out}");
    }
    assert_eq!(get(b.addr, "x", "/app.js").await.status, 200);
}

/// `If-Match` and `If-Unmodified-Since` (RFC 9110 §13.1.1, §13.1.4):
/// the file as the client holds it, or 412, before 304s and ranges.
#[tokio::test]
async fn if_match_and_if_unmodified_since_give_412_when_the_file_changed() {
    let (_s, b) = site(false);
    let r = get(b.addr, "x", "/ten.txt").await;
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    let ask = |headers: Vec<(&'static str, String)>| {
        let mut h: Vec<(&str, &str)> = vec![("host", "x")];
        h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        send(b.addr, request("GET", "/ten.txt", &h, ""))
    };
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for (headers, status) in [
        (vec![("if-match", etag.clone())], 200),
        (vec![("if-match", listed)], 200),
        (vec![("if-match", "*".to_owned())], 200),
        // Two lines are one list.
        (
            vec![("if-match", "\"stale-tag\"".to_owned()), ("if-match", etag.clone())],
            200,
        ),
        (vec![("if-match", "\"stale-tag\"".to_owned())], 412),
        // Strong comparison: a weak tag never matches.
        (vec![("if-match", weak)], 412),
        (vec![("if-unmodified-since", lm.clone())], 200),
        (
            vec![("if-unmodified-since", "Thu, 01 Jan 1998 00:00:00 GMT".to_owned())],
            412,
        ),
        // If-Match is evaluated alone when both come.
        (
            vec![
                ("if-match", etag.clone()),
                ("if-unmodified-since", "Thu, 01 Jan 1998 00:00:00 GMT".to_owned()),
            ],
            200,
        ),
        // Before a range or a 304.
        (
            vec![
                ("if-match", "\"stale-tag\"".to_owned()),
                ("range", "bytes=0-1".to_owned()),
            ],
            412,
        ),
        (vec![("if-match", etag.clone()), ("range", "bytes=0-1".to_owned())], 206),
        (
            vec![
                ("if-match", "\"stale-tag\"".to_owned()),
                ("if-none-match", etag.clone()),
            ],
            412,
        ),
    ] {
        let r = ask(headers.clone()).await;
        assert_eq!(r.status, status, "{headers:?}");
        if status == 412 {
            assert!(!r.text().contains("0123456789"), "{headers:?}");
        }
    }
}

#[tokio::test]
async fn etag_and_last_modified_give_304() {
    let (_s, b) = site(false);
    let r = get(b.addr, "x", "/ten.txt").await;
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("if-none-match", &etag)], ""),
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let weak = format!("W/{etag}");
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("if-none-match", &weak)], ""),
    )
    .await;
    assert_eq!(r.status, 304);
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("if-modified-since", &lm)], ""),
    )
    .await;
    assert_eq!(r.status, 304);
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("if-none-match", "\"other\"")], ""),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn ranges_and_head() {
    let (_s, b) = site(false);
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("range", "bytes=2-4")], ""),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("range", "bytes=-3")], ""),
    )
    .await;
    assert_eq!(r.text(), "789");
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("range", "bytes=20-")], ""),
    )
    .await;
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */10")));
    let r = send(
        b.addr,
        request(
            "GET",
            "/ten.txt",
            &[("host", "x"), ("range", "bytes=0-1"), ("if-range", "\"stale\"")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    // A file too large for the memory cache is streamed, ranges included.
    let r = send(
        b.addr,
        request(
            "GET",
            "/big.bin",
            &[("host", "x"), ("range", "bytes=1048570-1048579")],
            "",
        ),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = get(b.addr, "x", "/big.bin").await;
    assert_eq!(r.body.len(), 2 << 20);

    let r = send(b.addr, request("HEAD", "/ten.txt", &[("host", "x")], "")).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    assert!(r.body.is_empty());
    let r = send(b.addr, request("POST", "/ten.txt", &[("host", "x")], "x")).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn precompressed_siblings_are_served_when_accepted() {
    let (_s, b) = site(false);
    let r = send(
        b.addr,
        request(
            "GET",
            "/style.css",
            &[("host", "x"), ("accept-encoding", "gzip, br")],
            "",
        ),
    )
    .await;
    assert_eq!(
        (r.text().as_str(), r.header("content-encoding")),
        ("BROTLI", Some("br"))
    );
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    let r = send(
        b.addr,
        request(
            "GET",
            "/style.css",
            &[("host", "x"), ("accept-encoding", "gzip, br;q=0")],
            "",
        ),
    )
    .await;
    assert_eq!(
        (r.text().as_str(), r.header("content-encoding")),
        ("GZIP", Some("gzip"))
    );
    let r = get(b.addr, "x", "/style.css").await;
    assert_eq!((r.text().as_str(), r.header("content-encoding")), ("body{}", None));
}

#[tokio::test]
async fn spa_fallback_serves_index_for_unknown_paths() {
    let (_s, b) = site(true);
    let r = send(
        b.addr,
        request("GET", "/app/settings/42", &[("host", "x"), ("accept", "text/html")], ""),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    let r = send(
        b.addr,
        request("GET", "/missing.png", &[("host", "x"), ("accept", "image/png")], ""),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn one_json_request_cannot_poison_the_spa_fallback_in_the_cache() {
    let site = Site::new();
    site.write("www/index.html", "<h1>home</h1>");
    site.write("www/index.html.gz", "GZIP");
    let cfg = site.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\nspa_fallback = true\ncache = { default_ttl = \"60s\" }\n",
    );
    let b = Bext::serve(&cfg);
    let ask = |accept: &'static str| {
        send(
            b.addr,
            request("GET", "/app/settings", &[("host", "x"), ("accept", accept)], ""),
        )
    };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    let json = ask("application/json").await;
    assert_eq!((json.status, json.header("x-cache")), (404, Some("MISS")));
    let page = ask(browser).await;
    assert_eq!(
        (page.status, page.text().as_str()),
        (200, "<h1>home</h1>"),
        "{:?}",
        page.header("x-cache")
    );
    assert_eq!(page.header("vary"), Some("accept-encoding, accept"));
    assert_eq!(json.header("vary"), Some("accept"), "the 404 too was chosen by Accept");
    // Each kept under its own Accept (the JSON answer may be fetched once
    // more, as the key now holds Accept-Encoding too), then both HITs.
    assert_eq!(ask("application/json").await.status, 404);
    for _ in 0..2 {
        let again = ask(browser).await;
        assert_eq!((again.status, again.header("x-cache")), (200, Some("HIT")));
        assert_eq!(again.text(), "<h1>home</h1>");
        let json_again = ask("application/json").await;
        assert_eq!((json_again.status, json_again.header("x-cache")), (404, Some("HIT")));
    }
    // With the precompressed sibling, both are named in one Vary.
    let gz = send(
        b.addr,
        request(
            "GET",
            "/app/other",
            &[("host", "x"), ("accept", browser), ("accept-encoding", "gzip")],
            "",
        ),
    )
    .await;
    assert_eq!((gz.status, gz.header("vary")), (200, Some("accept-encoding, accept")));
}

#[tokio::test]
async fn nothing_outside_the_root_or_hidden_is_served() {
    let (_s, b) = site(false);
    let wait = Duration::from_secs(5);
    for path in [
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E%2Foutside.txt",
        "/..%5coutside.txt",
        "/sub%2f..%2f..%2foutside.txt",
        "/ten.txt%00.html",
        "/leak.txt",
        "/.env",
        "/%2eenv",
        "/%c0%ae%c0%ae/outside.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = raw_async(b.addr, req.as_bytes(), wait).await;
        let status = status_of(&out);
        assert!(matches!(status, 400 | 404), "{path} -> {status}\n{out}");
        assert!(
            !out.contains("outside the root") && !out.contains("SECRET"),
            "{path} leaked:\n{out}"
        );
    }
}

#[tokio::test]
async fn changed_files_are_picked_up() {
    let (s, b) = site(false);
    assert_eq!(get(b.addr, "x", "/ten.txt").await.text(), "0123456789");
    s.write("www/ten.txt", "changed!");
    let addr = b.addr;
    eventually(Duration::from_secs(5), || async move {
        (get(addr, "x", "/ten.txt").await.text() == "changed!").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_same_size_rewrite_in_the_same_second_gets_a_new_etag() {
    let (s, b) = site(false);
    let path = s.path("www/ten.txt");
    let set_mtime = |at: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    };
    // Both versions dated within one second: only the nanoseconds differ.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let second = std::time::UNIX_EPOCH + Duration::from_secs(now.as_secs() - 60);
    set_mtime(second + Duration::from_millis(100));
    let old = get(b.addr, "x", "/ten.txt").await;
    assert_eq!(old.text(), "0123456789");
    let old_tag = old.header("etag").unwrap().to_owned();
    s.write("www/ten.txt", "9876543210");
    set_mtime(second + Duration::from_millis(600));
    // Served from memory for up to a second, then checked on disk.
    let addr = b.addr;
    eventually(Duration::from_secs(5), || async move {
        (get(addr, "x", "/ten.txt").await.text() == "9876543210").then_some(())
    })
    .await;
    let new = get(b.addr, "x", "/ten.txt").await;
    assert_ne!(
        new.header("etag"),
        Some(old_tag.as_str()),
        "the same tag for other bytes"
    );
    // A client holding the old tag gets the new bytes, not a 304.
    let r = send(
        b.addr,
        request("GET", "/ten.txt", &[("host", "x"), ("if-none-match", &old_tag)], ""),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "9876543210"));
}
