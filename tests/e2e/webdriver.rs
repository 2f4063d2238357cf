//! A minimal W3C WebDriver client for the dashboard's browser test: Debian's
//! `chromedriver` driving a headless `chromium`, spoken to in JSON over the
//! test suite's own HTTP client (no WebDriver crate to build; see
//! docs/dependencies.md). Only what the test uses: open a page, find an
//! element by CSS selector, type, click and read text.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{eventually, raw, request, send};

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it.
pub(crate) struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium with a
    /// fresh profile (the flags that work in a container without a GPU).
    pub(crate) async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (tests/run installs Debian's chromium-driver)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        eventually(Duration::from_secs(20), || async move {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok();
            up.then_some(())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let answer = browser.call("POST", "/session", Some(caps)).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its `value`, or a panic with the driver's
    /// error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (answer, status) = self.try_call(method, path, body).await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
        answer
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> (Value, u16) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let host = self.addr.to_string();
        let headers = [("host", host.as_str()), ("content-type", "application/json")];
        let reply = send(self.addr, request(method, path, &headers, body)).await;
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (value["value"].clone(), reply.status)
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", &self.path("/url"), Some(json!({ "url": url }))).await;
    }

    /// The page's URL now.
    pub(crate) async fn url(&self) -> String {
        self.call("GET", &self.path("/url"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The element `css` selects, if the page has one.
    pub(crate) async fn find(&self, css: &str) -> Option<String> {
        let (v, status) = self
            .try_call(
                "POST",
                &self.path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        (status < 300).then(|| v[ELEMENT].as_str().unwrap_or("").to_owned())
    }

    /// Waits for the element `css` selects.
    pub(crate) async fn wait_for(&self, css: &str) -> String {
        eventually(Duration::from_secs(15), || self.find(css)).await
    }

    /// The rendered text of the element `css` selects (waiting for it).
    pub(crate) async fn text(&self, css: &str) -> String {
        let el = self.wait_for(css).await;
        let v = self.call("GET", &self.path(&format!("/element/{el}/text")), None).await;
        v.as_str().unwrap_or("").to_owned()
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub(crate) async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let ok = &ok;
        eventually(Duration::from_secs(15), || async move {
            let el = self.find(css).await?;
            let (v, status) = self
                .try_call("GET", &self.path(&format!("/element/{el}/text")), None)
                .await;
            let text = v.as_str().unwrap_or("").to_owned();
            (status < 300 && ok(&text)).then_some(text)
        })
        .await
    }

    /// Types `text` into the element `css` selects.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        self.call(
            "POST",
            &self.path(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element `css` selects.
    pub(crate) async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.call("POST", &self.path(&format!("/element/{el}/click")), Some(json!({})))
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromedriver closes chromium), then the driver.
        if !self.session.is_empty() {
            let del = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            let _ = raw(self.addr, del.as_bytes(), Duration::from_secs(10));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
