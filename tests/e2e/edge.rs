//! Edge mode: two real bext instances sharing a real `redis-server` (the
//! tests start their own on a free port; `.ci/run` installs it). A page
//! rendered by A is an L2 hit on B, a purge on A reaches B, and Redis
//! going away and coming back never fails a request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::isr::Counting;
use crate::support::*;

/// A `redis-server` of its own, killed on drop.
pub(crate) struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for the edge tests (apt-get install redis-server; .ci/run does)");
        let redis = Redis {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if redis.ping() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on {port}");
    }

    pub(crate) fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::start_on(port)
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| &buf[..n] == b"+PONG\r\n")
    }

    /// How many keys match `pattern` (`KEYS`, fine for a test's few keys).
    pub(crate) fn count_keys(&self, pattern: &str) -> usize {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        if s.write_all(format!("KEYS {pattern}\r\n").as_bytes()).is_err() {
            return 0;
        }
        let mut buf = vec![0u8; 64 << 10];
        let n = s.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]);
        reply
            .strip_prefix('*')
            .and_then(|r| r.split("\r\n").next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until A's write-through of a page has reached Redis (it is
    /// written after A answers).
    async fn wait_for_entries(&self, at_least: usize) {
        eventually(Duration::from_secs(5), || async {
            (self.count_keys("test:isr:e:*") >= at_least).then_some(())
        })
        .await;
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two instances of one platform (the shop proxy app, isr on) in edge mode.
fn fleet(s: &Site, upstream: SocketAddr, redis: &Redis) -> (Bext, Bext) {
    s.write("manifests/isr.yaml", "name: isr\nenabled: true\n");
    let redis_table = format!("[redis]\nurl = \"{}\"\nprefix = \"test:\"\n", redis.url());
    let cfg = shop_platform_with(s, upstream, "", &redis_table);
    let env = [("BEXT_ADMIN_TOKEN", "sekret")];
    (Bext::serve_env(&cfg, &env), Bext::serve_env(&cfg, &env))
}

async fn page(b: &Bext, path: &str) -> Reply {
    send(b.addr, request("GET", path, &[("host", "shop.test")], "")).await
}

async fn redis_state(b: &Bext) -> String {
    let auth = [("host", "shop.test"), ("authorization", "Bearer sekret")];
    let r = send(b.addr, request("GET", "/__bext/health", &auth, "")).await;
    r.json()["redis"].as_str().unwrap_or("").to_owned()
}

/// Waits until every instance's health says Redis is `state`.
pub(crate) async fn redis_is(instances: &[&Bext], state: &str, secs: u64) {
    for b in instances {
        eventually(Duration::from_secs(secs), || async {
            (redis_state(b).await == state).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_page_rendered_by_one_instance_is_an_l2_hit_on_the_other_and_purges_reach_both() {
    let up = Counting::start().await;
    let redis = Redis::start();
    let s = Site::new();
    let (a, b) = fleet(&s, up.addr, &redis);
    redis_is(&[&a, &b], "up", 5).await;

    let p = "/cc/max-age=60/shared";
    assert_eq!(page(&a, p).await.header("x-cache"), Some("MISS"));
    redis.wait_for_entries(1).await;
    let from_b = page(&b, p).await;
    assert_eq!(from_b.header("x-cache-tier"), Some("L2"));
    assert_eq!(from_b.header("x-cache"), Some("HIT"));
    assert!(from_b.text().starts_with("n=1 "));
    let again = page(&b, p).await;
    assert_eq!(
        (again.header("x-cache"), again.header("x-cache-tier")),
        (Some("HIT"), None),
        "promoted to L1"
    );
    assert_eq!(up.count(p), 1, "rendered once for the fleet");

    // A purge on A empties B's memory too (through the bus) and the L2 tier.
    let purge = send(
        a.addr,
        request(
            "POST",
            "/__bext/api/invalidate",
            &[("host", "shop.test"), ("authorization", "Bearer sekret")],
            r#"{"paths":["/cc/max-age=60/shared"]}"#,
        ),
    )
    .await;
    assert_eq!(purge.status, 200);
    let after = eventually(Duration::from_secs(5), || async {
        let r = page(&b, p).await;
        (r.header("x-cache") == Some("MISS")).then_some(r)
    })
    .await;
    assert!(after.text().starts_with("n=2 "));
}

#[tokio::test]
async fn redis_going_away_fails_no_request_and_its_return_is_noticed() {
    let up = Counting::start().await;
    let mut redis = Redis::start();
    let port = redis.port;
    let s = Site::new();
    let (a, b) = fleet(&s, up.addr, &redis);
    redis_is(&[&a], "up", 5).await;
    let warm = "/cc/max-age=60/warm";
    page(&a, warm).await;
    page(&b, warm).await;

    // Requests keep coming to both while Redis is killed under them.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, addrs) = (stop.clone(), [a.addr, b.addr]);
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let path = if i.is_multiple_of(3) {
                    format!("/cc/max-age=60/cold-{i}")
                } else {
                    warm.to_owned()
                };
                let r = send(addrs[i % 2], request("GET", &path, &[("host", "shop.test")], "")).await;
                statuses.push(r.status);
                i += 1;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(statuses.len() > 20, "only {} requests", statuses.len());
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    redis_is(&[&a], "down", 5).await;
    assert_eq!(page(&b, warm).await.header("x-cache"), Some("HIT"), "L1 keeps serving");

    let back = Redis::start_on(port);
    redis_is(&[&a, &b], "up", 10).await;
    let fresh = "/cc/max-age=60/after-restart";
    assert_eq!(page(&a, fresh).await.header("x-cache"), Some("MISS"));
    back.wait_for_entries(1).await;
    assert_eq!(page(&b, fresh).await.header("x-cache-tier"), Some("L2"));
    assert_eq!(up.count(fresh), 1);
}

#[tokio::test]
async fn a_rate_limit_holds_for_the_fleet() {
    let up = Counting::start().await;
    let redis = Redis::start();
    let s = Site::new();
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits: [{ name: fleet, by: app, rpm: 6, burst: 10 }]\n",
    );
    let (a, b) = fleet(&s, up.addr, &redis);
    redis_is(&[&a, &b], "up", 5).await;
    let mut allowed = 0;
    for i in 0..30 {
        let r = page(if i % 2 == 0 { &a } else { &b }, "/cc/no-store/limited").await;
        match r.status {
            200 => allowed += 1,
            429 => assert!(r.header("retry-after").is_some()),
            other => panic!("unexpected {other}"),
        }
    }
    // One bucket of 10 for both (one more may drip in, at 1 in 10 s);
    // two local buckets would have let 20 through.
    assert!((10..=11).contains(&allowed), "{allowed} allowed");
}

/// The fleet's Redis keys a bucket `<prefix>rl:limit|app|client`: spelt
/// plainly, a limit name with `|` could spell another limit's bucket for
/// a chosen API key, and each request would count twice in one bucket.
/// Such keys are spelt apart.
#[tokio::test]
async fn a_limit_name_with_a_bar_never_shares_another_limits_bucket() {
    let up = Counting::start().await;
    let redis = Redis::start();
    let s = Site::new();
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits:\n    - { name: lim, by: header, header: x-alias, rpm: 60, burst: 2 }\n    - { name: \"lim|shop|key:k\", by: app, rpm: 60, burst: 2 }\n",
    );
    let (a, _b) = fleet(&s, up.addr, &redis);
    redis_is(&[&a], "up", 5).await;
    // Spelt plainly, `lim`'s bucket for the key `k|shop|` and the app's
    // bucket of `lim|shop|key:k` are both `lim|shop|key:k|shop|`.
    let get = || {
        send(
            a.addr,
            request(
                "GET",
                "/cc/no-store/alias",
                &[("host", "shop.test"), ("x-alias", "k|shop|")],
                "",
            ),
        )
    };
    for n in 1..=2 {
        let r = get().await;
        assert_eq!(r.status, 200, "request {n}: each limit's burst is 2: {}", a.log());
    }
    assert_eq!(get().await.status, 429, "the third is over both");
}

#[tokio::test]
async fn bext_run_takes_redis_from_the_environment() {
    let redis = Redis::start();
    let s = Site::new();
    s.write("index.html", "hi");
    let url = redis.url();
    let b = Bext::start_env(
        &["run", s.dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[("REDIS_URL", &url), ("BEXT_ADMIN_TOKEN", "sekret")],
    );
    let auth = [("host", "localhost"), ("authorization", "Bearer sekret")];
    eventually(Duration::from_secs(5), || async {
        let r = send(b.addr, request("GET", "/__bext/health", &auth, "")).await;
        (r.json()["redis"] == "up").then_some(())
    })
    .await;
    let plain = Bext::start_env(
        &["run", s.dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[("BEXT_ADMIN_TOKEN", "sekret")],
    );
    let r = send(plain.addr, request("GET", "/__bext/health", &auth, "")).await;
    assert_eq!(r.json()["redis"], "off");
}

#[tokio::test]
async fn a_reload_with_another_redis_moves_the_cache_and_the_limits_there() {
    let up = Counting::start().await;
    let (first, mut second) = (Redis::start(), Redis::start());
    let s = Site::new();
    s.write("manifests/isr.yaml", "name: isr\nenabled: true\n");
    s.write(
        "manifests/gateway.yaml",
        "name: gateway\nenabled: true\nconfig:\n  limits: [{ name: fleet, by: app, rpm: 600, burst: 100 }]\n",
    );
    let table = |r: &Redis| format!("[redis]\nurl = \"{}\"\nprefix = \"test:\"\n", r.url());
    let cfg = shop_platform_with(&s, up.addr, "", &table(&first));
    let a = Bext::serve_env(&cfg, &[("BEXT_ADMIN_TOKEN", "sekret")]);
    redis_is(&[&a], "up", 5).await;
    page(&a, "/cc/max-age=60/before").await;
    first.wait_for_entries(1).await;
    assert_eq!(first.count_keys("test:rl:*"), 1, "the limit is kept in the first redis");

    // The platform file now names the second Redis: no restart needed.
    shop_platform_with(&s, up.addr, "", &table(&second));
    // A new page each time: one cached in memory is not written again.
    let tries = AtomicUsize::new(0);
    eventually(Duration::from_secs(10), || async {
        let n = tries.fetch_add(1, Ordering::Relaxed);
        page(&a, &format!("/cc/max-age=60/after-{n}")).await;
        (second.count_keys("test:isr:e:*") >= 1).then_some(())
    })
    .await;
    assert_eq!(second.count_keys("test:rl:*"), 1, "the limit moved too");
    let (in_first, in_second) = (first.count_keys("test:isr:e:*"), second.count_keys("test:isr:e:*"));
    page(&a, "/cc/max-age=60/third").await;
    second.wait_for_entries(in_second + 1).await;
    assert_eq!(
        first.count_keys("test:isr:e:*"),
        in_first,
        "nothing more goes to the first"
    );

    // The old connection went with the old pipeline: health follows the
    // new Redis alone.
    redis_is(&[&a], "up", 5).await;
    second.stop();
    redis_is(&[&a], "down", 5).await;
}
