//! `/__bext/metrics`: known traffic through the real server, scraped and
//! read with a strict parser of the text format, checked value by value;
//! and who may scrape (the admin token on the public listener, the
//! admin listener, admin hosts), tried the way an attacker spells it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

pub(crate) const TOKEN: &str = "metrics-token";
const PAGE: &str = "hello metrics";

/// A static app `site` on `site.test` and every `*.tenant.test` with the
/// WAF on; `platform` is the rest of `[platform]`, `tables` more tables.
fn serve(platform: &str, tables: &str, env: &[(&str, &str)]) -> (Site, Bext) {
    let s = Site::new();
    s.write("www/index.html", PAGE);
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = false
{platform}

[apps.site]
source = "www"
domains = ["site.test", "*.tenant.test"]
[apps.site.plugins.waf]
enabled = true
{tables}
"#
    ));
    let b = Bext::serve_env(&cfg, env);
    (s, b)
}

/// One sample: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses OpenMetrics / Prometheus text strictly: `# TYPE` before a
/// family's samples, each sample's name that family's (with its type's
/// suffixes), well-formed labels, numeric values, `# EOF` last. Panics on
/// anything else.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.pop(), Some(""), "ends with a newline");
    assert_eq!(lines.pop(), Some("# EOF"), "ends with # EOF");
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut samples = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().expect("a name"));
            assert!(valid_name(name), "bad family name in {line:?}");
            match kind {
                "TYPE" => {
                    let ty = parts.next().expect("a type");
                    assert!(
                        ["counter", "gauge", "histogram", "info", "unknown"].contains(&ty),
                        "{line:?}"
                    );
                    assert!(
                        families.insert(name.into(), ty.into()).is_none(),
                        "{name} declared twice"
                    );
                    current = Some((name.into(), ty.into()));
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (name_and_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match name_and_labels.split_once('{') {
            None => (name_and_labels, BTreeMap::new()),
            Some((name, rest)) => (name, labels_of(rest.strip_suffix('}').expect("closing }"), line)),
        };
        let (family, ty) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before # TYPE: {line:?}"));
        let suffixes: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{family}{s}")),
            "{name} is not a sample of {ty} {family}"
        );
        samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    samples
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y"` with the format's escapes.
fn labels_of(mut rest: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(valid_name(key), "bad label name in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => panic!("bad escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(key.to_owned(), value).is_none(),
            "duplicate label in {line:?}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// The value of the sample `name` with exactly `labels`, if present.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let found: Vec<_> = samples.iter().filter(|s| s.name == name && s.labels == want).collect();
    assert!(found.len() <= 1, "{name} {labels:?} appears twice");
    found.first().map(|s| s.value)
}

async fn scrape_with(addr: SocketAddr, host: &str, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("host", host)];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    send(addr, request("GET", path, &headers, "")).await
}

/// Scrapes the public listener with the token and parses the answer.
pub(crate) async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    scrape_as(addr, TOKEN).await
}

/// [`scrape`] with another test's admin token.
pub(crate) async fn scrape_as(addr: SocketAddr, token: &str) -> Vec<Sample> {
    let r = scrape_with(addr, "localhost", "/__bext/metrics", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse(&r.text())
}

fn requests(samples: &[Sample], app: &str, class: &str, method: &str) -> Option<f64> {
    value(
        samples,
        "bext_requests_total",
        &[("app", app), ("status_class", class), ("method", method)],
    )
}

/// Every `bext_...` name the dashboard and the docs use that `which`
/// selects is in the scrape `m`.
fn documented_names_are_scraped(m: &[Sample], which: impl Fn(&str) -> bool) {
    for doc in ["docs/grafana/bext.json", "docs/observability.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for name in metric_names(&text) {
            if name.starts_with("bext_plugin_my_plugin_") || name == "bext_plugin_abi" || !which(&name) {
                continue;
            }
            let scraped =
                |s: &Sample| [name.clone(), format!("{name}_total"), format!("{name}_count")].contains(&s.name);
            assert!(m.iter().any(scraped), "{doc} names {name}, which is not scraped");
        }
    }
}

/// Every `bext_...` name in a document.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("bext_") {
        if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

/// The WAF's blocks of a family, whatever rule of it fired.
fn waf_blocks(samples: &[Sample], family: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "bext_plugin_waf_blocks_total" && s.labels.get("family").is_some_and(|f| f == family))
        .inspect(|s| assert!(s.labels.contains_key("rule"), "{s:?}"))
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn known_traffic_is_counted_exactly_and_survives_reloads() {
    let (s, b) = serve(
        "[platform.metrics]\ntenants = [\"acme\"]",
        "",
        &[("BEXT_ADMIN_TOKEN", TOKEN)],
    );
    let mut site_bytes = 0;
    for _ in 0..3 {
        let r = get(b.addr, "site.test", "/index.html").await;
        assert_eq!((r.status, r.text()), (200, PAGE.to_owned()));
        site_bytes += r.body.len();
    }
    let missing = get(b.addr, "site.test", "/missing.html").await;
    assert_eq!(missing.status, 404);
    site_bytes += missing.body.len();
    let blocked = get(b.addr, "site.test", "/?id=1%27%20OR%20%271%27=%271").await;
    assert_eq!(blocked.status, 403, "the WAF blocks: {}", blocked.text());
    site_bytes += blocked.body.len();
    let head = send(b.addr, request("HEAD", "/index.html", &[("host", "site.test")], "")).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    for tenant in ["acme", "acme", "other"] {
        let r = get(b.addr, &format!("{tenant}.tenant.test"), "/").await;
        assert_eq!(r.status, 200);
        site_bytes += r.body.len();
    }
    // The WAF reads a body to inspect it: what is read is counted.
    let form = "name=metrics&value=12345";
    let post = send(
        b.addr,
        request(
            "POST",
            "/index.html",
            &[
                ("host", "site.test"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form,
        ),
    )
    .await;
    site_bytes += post.body.len();
    let post_class = format!("{}xx", post.status / 100);
    let brew = send(b.addr, request("BREW", "/index.html", &[("host", "site.test")], "")).await;
    let brew_class = format!("{}xx", brew.status / 100);

    let m = scrape(b.addr).await;
    assert_eq!(
        requests(&m, "site", "2xx", "GET"),
        Some(6.0),
        "3 pages and 3 tenants' pages"
    );
    assert_eq!(
        requests(&m, "site", "4xx", "GET"),
        Some(2.0),
        "the 404 and the WAF's 403"
    );
    assert_eq!(requests(&m, "site", "2xx", "HEAD"), Some(1.0));
    let brew_apps: Vec<_> = ["site", "-"]
        .into_iter()
        .filter(|app| requests(&m, app, &brew_class, "other") == Some(1.0))
        .collect();
    assert_eq!(brew_apps.len(), 1, "an unknown method counts once as `other`");
    if brew_apps == ["site"] {
        site_bytes += brew.body.len();
    }
    assert!(
        !m.iter().any(|s| s.labels.get("method").is_some_and(|v| v == "BREW")),
        "a client's method never becomes a label value"
    );
    assert!(
        !m.iter()
            .any(|s| s.labels.values().any(|v| v.contains("tenant.test") || v.contains('/'))),
        "no host or path in a label"
    );
    assert_eq!(requests(&m, "site", &post_class, "POST"), Some(1.0));
    assert_eq!(
        value(&m, "bext_response_bytes_total", &[("app", "site")]),
        Some(site_bytes as f64)
    );
    assert_eq!(
        value(&m, "bext_request_bytes_total", &[("app", "site")]),
        Some(form.len() as f64),
        "the WAF read the form to inspect it"
    );
    let count = value(&m, "bext_request_duration_seconds_count", &[("app", "site")]);
    assert_eq!(count, Some(11.0));
    assert_eq!(
        value(
            &m,
            "bext_request_duration_seconds_bucket",
            &[("app", "site"), ("le", "+Inf")]
        ),
        Some(11.0)
    );
    let buckets: Vec<f64> = m
        .iter()
        .filter(|s| s.name == "bext_request_duration_seconds_bucket" && s.labels["app"] == "site")
        .map(|s| s.value)
        .collect();
    assert_eq!(buckets.len(), 15);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative: {buckets:?}");
    assert!(value(&m, "bext_request_duration_seconds_sum", &[("app", "site")]).unwrap() > 0.0);
    assert_eq!(
        value(
            &m,
            "bext_tenant_requests_total",
            &[("tenant", "acme"), ("status_class", "2xx")]
        ),
        Some(2.0)
    );
    assert!(
        !m.iter().any(|s| s.labels.get("tenant").is_some_and(|t| t == "other")),
        "a tenant not in the allow-list gets no series"
    );
    assert_eq!(value(&m, "bext_reloads_total", &[("result", "ok")]), Some(0.0));
    assert_eq!(value(&m, "bext_pipeline_generation", &[]), Some(1.0));
    assert!(
        value(&m, "bext_connections_open", &[]).unwrap() >= 1.0,
        "the scrape's own"
    );
    // The WAF's own counters, published through `Host::metrics`.
    assert_eq!(waf_blocks(&m, "sqli"), 1.0, "{m:#?}");
    assert_eq!(
        value(&m, "bext_plugin_waf_decisions_total", &[("action", "block")]),
        Some(1.0)
    );

    // The dashboard and the docs name only metrics that exist (process
    // apps' need a process app and certificates a TLS app, which this
    // platform has not; they and the other plugins' are checked below).
    documented_names_are_scraped(&m, |name| {
        ![
            "bext_process_",
            "bext_certificate_",
            "bext_upstream_",
            "bext_js_",
            "bext_otel_",
            "bext_plugin_deploy_",
            "bext_plugin_gateway_",
            "bext_plugin_authn_",
            "bext_plugin_isr_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
    });

    // A reload keeps the counts; a broken one is counted as an error.
    b.signal("HUP");
    let m = eventually(Duration::from_secs(10), || async {
        let m = scrape(b.addr).await;
        (value(&m, "bext_reloads_total", &[("result", "ok")]) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(value(&m, "bext_pipeline_generation", &[]), Some(2.0));
    assert_eq!(requests(&m, "site", "2xx", "GET"), Some(6.0), "kept across the reload");
    // bext's own endpoints count as no app's, each scrape once it ends.
    let before = requests(&m, "-", "2xx", "GET").expect("earlier scrapes");
    let m = scrape(b.addr).await;
    assert_eq!(requests(&m, "-", "2xx", "GET"), Some(before + 1.0));
    let platform = std::fs::read_to_string(s.path("platform.toml")).unwrap();
    s.write(
        "platform.toml",
        format!("{platform}\n[apps.broken]\nruntime = \"nope\"\n"),
    );
    b.signal("HUP");
    let m = eventually(Duration::from_secs(10), || async {
        let m = scrape(b.addr).await;
        (value(&m, "bext_reloads_total", &[("result", "error")]) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(
        value(&m, "bext_pipeline_generation", &[]),
        Some(2.0),
        "the old one serves"
    );
    assert_eq!(waf_blocks(&m, "sqli"), 1.0, "kept across reloads");
}

/// The gateway's, authn's and isr's decisions, published through
/// `Host::metrics`, each at its decision point.
#[tokio::test]
async fn plugins_publish_rate_limit_refusals_authn_failures_and_cache_statuses() {
    let s = Site::new();
    s.write("www/index.html", PAGE);
    s.write("locked/index.html", "secret");
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits:\n    - { name: tight, by: ip, rpm: 1, burst: 2, routes: [/limited/*] }\n",
    );
    s.write(
        "manifests/isr.yaml",
        "name: isr\nenabled: true\nconfig:\n  rules:\n    - { path: /cached/*, ttl: 60s }\n",
    );
    s.write(
        "manifests/authn.yaml",
        "name: authn\nenabled: false\nconfig:\n  api_keys:\n    query: api_key\n    keys:\n      - { name: job, hash: \"sha256:3b09f674e7b604c2fabeb5bc4527a4f2312db150ad58fd1472ac01943e91cabb\" }\n",
    );
    s.write("www/cached/page.html", "cache me");
    s.write("www/limited/page.html", "limited");
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = false
manifests = "manifests"

[apps.site]
source = "www"
domains = ["site.test"]

[apps.locked]
source = "locked"
domains = ["locked.test"]
[apps.locked.plugins.authn]
enabled = true
"#,
    );
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", TOKEN)]);

    // Every `x-cache` the client saw, to compare with isr's counts.
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    let mut saw = |r: &Reply| {
        if let Some(x) = r.header("x-cache") {
            *seen.entry(x.to_owned()).or_default() += 1.0;
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = get(b.addr, "site.test", "/limited/page.html").await;
        saw(&r);
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429], "burst 2");
    let mut caches = Vec::new();
    for _ in 0..3 {
        let r = get(b.addr, "site.test", "/cached/page.html").await;
        saw(&r);
        caches.push(r.header("x-cache").map(str::to_owned));
    }
    assert_eq!(caches, [Some("MISS".into()), Some("HIT".into()), Some("HIT".into())]);
    let bypass = send(
        b.addr,
        request("POST", "/index.html", &[("host", "site.test")], "a body"),
    )
    .await;
    saw(&bypass);
    assert_eq!(bypass.header("x-cache"), Some("BYPASS"), "a request with a body");
    for _ in 0..2 {
        assert_eq!(get(b.addr, "locked.test", "/").await.status, 401);
    }

    let m = scrape(b.addr).await;
    assert_eq!(
        value(&m, "bext_plugin_gateway_rejections_total", &[("limit", "tight")]),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "bext_plugin_authn_failures_total", &[("reason", "no_credentials")]),
        Some(2.0)
    );
    let counted: BTreeMap<String, f64> = m
        .iter()
        .filter(|s| s.name == "bext_plugin_isr_responses_total")
        .map(|s| (s.labels["status"].clone(), s.value))
        .collect();
    assert_eq!(counted, seen, "isr counts what it told the client");
    assert_eq!(seen.get("HIT"), Some(&2.0));
    assert_eq!(requests(&m, "locked", "4xx", "GET"), Some(2.0));
    assert_eq!(requests(&m, "site", "4xx", "GET"), Some(2.0), "the two 429s");
    documented_names_are_scraped(&m, |name| {
        ["bext_plugin_gateway_", "bext_plugin_authn_", "bext_plugin_isr_"]
            .iter()
            .any(|p| name.starts_with(p))
    });
}

/// A process app's state and instances, read from its status when
/// scraped.
#[tokio::test]
async fn process_apps_show_their_state_and_instances() {
    let s = Site::new();
    copy_example(&s, "apps/process-node", "web");
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.web]
runtime = "process"
source = "web"
domains = ["web.test"]
command = "node server.js"
instances = 2
"#,
    );
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    eventually(Duration::from_secs(20), || async {
        (get(b.addr, "web.test", "/hello").await.status == 200).then_some(())
    })
    .await;
    // Serving once one instance is ready; both in a moment.
    let ready = |m: &[Sample], i: &str| value(m, "bext_process_instance_ready", &[("app", "web"), ("instance", i)]);
    let m = eventually(Duration::from_secs(20), || async {
        let m = scrape(b.addr).await;
        (ready(&m, "0") == Some(1.0) && ready(&m, "1") == Some(1.0)).then_some(m)
    })
    .await;
    for state in ["running", "starting", "crash-loop", "stopped"] {
        let want = if state == "running" { 1.0 } else { 0.0 };
        let got = value(&m, "bext_process_app_state", &[("app", "web"), ("state", state)]);
        assert_eq!(got, Some(want), "{state}");
    }
    for instance in ["0", "1"] {
        let labels = [("app", "web"), ("instance", instance)];
        assert_eq!(value(&m, "bext_process_instance_starts_total", &labels), Some(1.0));
    }
    assert_eq!(requests(&m, "web", "2xx", "GET"), Some(1.0));
    documented_names_are_scraped(&m, |name| name.starts_with("bext_process_"));
}

/// The expiry of each certificate bext serves, by the name it serves.
#[tokio::test]
async fn certificates_show_when_they_expire() {
    let s = Site::new();
    s.write("dev/index.html", "dev");
    let cfg = s.platform(
        r#"
[platform]
listen = "127.0.0.1:0"
listen_tls = "127.0.0.1:0"

[apps.dev]
source = "dev"
domains = ["dev.test", "*.dev.test"]
tls = "self-signed"
"#,
    );
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let dir = s.path(".bext/tls/self-signed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_, info) = bext_tls::load_pair(&dir.join("dev.crt"), &dir.join("dev.key"), now).unwrap();
    let m = scrape(b.addr).await;
    for name in ["dev.test", "*.dev.test"] {
        let got = value(&m, "bext_certificate_expiry_timestamp_seconds", &[("name", name)]);
        assert_eq!(got, Some(info.not_after as f64), "{name}");
        // Seconds left, as of the scrape (which came after `now`).
        let left = value(&m, "bext_certificate_expires_in_seconds", &[("name", name)]).unwrap();
        assert!(
            left <= (info.not_after - now) as f64 && left > (info.not_after - now - 3600) as f64,
            "{left}"
        );
    }
    documented_names_are_scraped(&m, |name| name.starts_with("bext_certificate_"));
}

/// Every other spelling of the endpoint, and the right one without the
/// right token, shows nothing.
#[tokio::test]
async fn on_the_public_listener_only_the_exact_path_with_the_token_answers() {
    let (_s, b) = serve("", "", &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let ok = scrape_with(b.addr, "localhost", "/__bext/metrics", Some(TOKEN)).await;
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("# TYPE bext_requests counter\n"), "{}", ok.text());
    for (path, token, host) in [
        ("/__bext/metrics", None, "localhost"),
        ("/__bext/metrics", Some("wrong"), "localhost"),
        ("/__bext/metrics", Some(""), "localhost"),
        ("/__bext/metrics/", Some(TOKEN), "localhost"),
        ("/__BEXT/metrics", Some(TOKEN), "localhost"),
        ("/__bext/METRICS", Some(TOKEN), "localhost"),
        ("/__bext%2Fmetrics", Some(TOKEN), "localhost"),
        ("/__bext/metrics%00", Some(TOKEN), "localhost"),
        ("/__bext/metrics.txt", Some(TOKEN), "localhost"),
        ("/site/__bext/metrics", Some(TOKEN), "localhost"),
        ("/__bext/metrics", None, "acme.tenant.test"),
        ("/__bext/metrics?x=1", None, "site.test"),
    ] {
        let r = scrape_with(b.addr, host, path, token).await;
        assert_ne!(r.status, 200, "{path} {token:?} {host}: {}", r.text());
        assert!(!r.text().contains("bext_requests"), "{path} {token:?} {host}");
    }
    let r = scrape_with(b.addr, "localhost", "/__bext/metrics", Some("wrong")).await;
    assert!(r.status == 401 || r.status == 429, "{}", r.status);
    let absolute = send(
        b.addr,
        request("GET", "http://localhost/__bext/metrics", &[("host", "localhost")], ""),
    )
    .await;
    assert_ne!(absolute.status, 200, "absolute form without the token");
}

#[tokio::test]
async fn without_a_token_configured_the_endpoint_does_not_exist() {
    let (_s, b) = serve("", "", &[]);
    for token in [None, Some(TOKEN)] {
        let r = scrape_with(b.addr, "localhost", "/__bext/metrics", token).await;
        assert_eq!(r.status, 404, "{token:?}");
    }
}

#[tokio::test]
async fn with_admin_listen_it_answers_there_and_not_on_the_public_listener() {
    let (_s, b) = serve("admin_listen = \"127.0.0.1:0\"", "", &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let admin = b.admin.expect("admin listener");
    for path in ["/metrics", "/__bext/metrics"] {
        let r = scrape_with(admin, "localhost", path, None).await;
        assert_eq!(r.status, 200, "{path}");
        let m = parse(&r.text());
        assert!(value(&m, "bext_pipeline_generation", &[]).is_some());
    }
    for token in [None, Some(TOKEN)] {
        let r = scrape_with(b.addr, "localhost", "/__bext/metrics", token).await;
        assert_eq!(r.status, 404, "public listener, token {token:?}");
        assert!(!r.text().contains("bext_requests"));
    }
}

#[tokio::test]
async fn with_admin_hosts_only_those_hosts_answer_however_spelt() {
    let (_s, b) = serve("admin_hosts = [\"admin.test\"]", "", &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    for host in ["admin.test", "ADMIN.test", "admin.test.", "admin.test:80"] {
        let r = scrape_with(b.addr, host, "/__bext/metrics", Some(TOKEN)).await;
        assert_eq!(r.status, 200, "{host}");
        let r = scrape_with(b.addr, host, "/__bext/metrics", None).await;
        assert_eq!(r.status, 401, "{host} without the token");
    }
    for host in [
        "acme.tenant.test",
        "site.test",
        "admin.test.evil.test",
        "xn--admin-test",
    ] {
        let r = scrape_with(b.addr, host, "/__bext/metrics", Some(TOKEN)).await;
        assert_eq!(r.status, 404, "{host}");
        assert!(!r.text().contains("bext_requests"), "{host}");
    }
}

#[test]
fn the_parser_is_strict() {
    let good = "# TYPE a counter\na_total{x=\"1\"} 2\n# EOF\n";
    assert_eq!(parse(good)[0].value, 2.0);
    for bad in [
        "# TYPE a counter\na_total 2\n",                         // no # EOF
        "a_total 2\n# EOF\n",                                    // no # TYPE
        "# TYPE a counter\nb_total 2\n# EOF\n",                  // another family
        "# TYPE a counter\na_total{x=1} 2\n# EOF\n",             // unquoted
        "# TYPE a counter\na_total two\n# EOF\n",                // not a number
        "# TYPE a gauge\na_total 2\n# EOF\n",                    // a gauge's suffix
        "# TYPE a counter\na_total{x=\"1\",x=\"2\"} 2\n# EOF\n", // duplicate
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "accepted {bad:?}");
    }
}

/// JS apps' isolate pools (use, queue, restarts, limit kills) and proxy
/// apps' backends (up or not), after known traffic; the JS app also sees
/// the request's `traceparent`.
#[tokio::test]
async fn js_pools_and_upstreams_show_their_state() {
    let echo = Echo::start().await;
    // A port nobody listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = Site::new();
    s.write(
        "js/index.js",
        r#"export default {
  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/loop') { for (;;) {} }
    return new Response(request.headers.get('traceparent') ?? 'none');
  },
};
"#,
    );
    let cfg = s.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"
access_log = false

[apps.js]
runtime = "js"
source = "js"
domains = ["js.test"]
isolate = {{ workers = 2, timeout = "200ms", queue = 8 }}

[apps.api]
runtime = "proxy"
upstreams = ["http://{echo}", "http://{dead}"]
domains = ["api.test"]
"#,
        echo = echo.addr
    ));
    let b = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", TOKEN)]);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = send(
        b.addr,
        request("GET", "/", &[("host", "js.test"), ("traceparent", tp)], ""),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.text();
    assert!(
        seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && seen != tp,
        "{seen}"
    );
    // A handler past its time limit: the call is stopped, the isolate replaced.
    let r = get(b.addr, "js.test", "/loop").await;
    assert!(r.status >= 500, "{}", r.status);
    // The dead backend fails its first request and is ejected at once;
    // the request is retried on the live one.
    for _ in 0..4 {
        assert_eq!(get(b.addr, "api.test", "/").await.status, 200);
    }
    let m = eventually(Duration::from_secs(20), || async {
        let m = scrape(b.addr).await;
        (value(&m, "bext_js_isolate_restarts_total", &[("app", "js")]) == Some(1.0)).then_some(m)
    })
    .await;
    let js = |name: &str| value(&m, name, &[("app", "js")]);
    assert_eq!(js("bext_js_isolates"), Some(2.0));
    assert_eq!(js("bext_js_isolates_busy"), Some(0.0));
    assert_eq!(js("bext_js_queue_length"), Some(0.0));
    assert_eq!(js("bext_js_limit_kills_total"), Some(1.0));
    assert_eq!(js("bext_js_overloaded_total"), Some(0.0));
    let up = |addr: std::net::SocketAddr| {
        let addr = addr.to_string();
        value(&m, "bext_upstream_up", &[("app", "api"), ("upstream", addr.as_str())])
    };
    assert_eq!(up(echo.addr), Some(1.0));
    assert_eq!(up(dead), Some(0.0));
    let in_flight = value(
        &m,
        "bext_upstream_in_flight",
        &[("app", "api"), ("upstream", &echo.addr.to_string())],
    );
    assert_eq!(in_flight, Some(0.0));
    documented_names_are_scraped(&m, |name| {
        name.starts_with("bext_js_") || name.starts_with("bext_upstream_")
    });
}
