//! An example bext plugin built as a shared library, using all six hooks.
//!
//! - with `log: true`, `on_init` opens `<data_dir>/rust-hello/completed.log`,
//! - `on_request` answers `GET <path>` (`/hello` by default) with the
//!   greeting, the app and the tenant; answers `POST <path>` with the
//!   size of the body it read (asynchronously, at most `max_body` bytes);
//!   and tells the app the size of any other request's body in
//!   `x-hello-body-bytes` (the app still gets the whole body),
//! - `on_response` adds `x-hello: <greeting>` to every response,
//! - with `log: true`, `on_complete` appends `<request id> <status> <body
//!   bytes>` to the log and `on_shutdown` writes `shutdown` to it and closes
//!   it (without, the plugin has no such hooks and costs nothing there),
//! - `/__panic` panics (`GET` in the hook, `POST` in its future), to show
//!   that a panic stays inside the request.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use bext_plugin_sdk::{
    Completion, Error, Flow, Hook, Hooks, Plugin, Request, Response, ResponseHead, Setup, export_plugin,
};
use serde::Deserialize;

/// The manifest's `config` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Text of the `x-hello` header and of the answer.
    greeting: String,
    /// Path this plugin answers itself.
    #[serde(default = "default_path")]
    path: String,
    /// Most request body bytes read.
    #[serde(default = "default_max_body")]
    max_body: usize,
    /// Log every finished request to `<data_dir>/rust-hello/completed.log`.
    #[serde(default)]
    log: bool,
}

fn default_path() -> String {
    "/hello".into()
}

fn default_max_body() -> usize {
    64 * 1024
}

struct Hello {
    greeting: String,
    path: String,
    max_body: usize,
    /// Where finished requests are logged, when they are.
    log_file: Option<PathBuf>,
    /// Opened by `on_init`; `new` does no I/O (`bext check` calls it).
    log: Mutex<Option<BufWriter<File>>>,
}

impl Hello {
    fn greet(&self, req: &Request<'_>) -> Flow {
        let body = format!(
            "{} from {} (tenant {})\n",
            self.greeting,
            req.app().unwrap_or("-"),
            req.tenant().unwrap_or("-")
        );
        Flow::Respond(Response::text(200, body).header("x-answered-by", "rust-hello"))
    }
}

impl Plugin for Hello {
    type Config = Config;

    fn new(config: Config, setup: &Setup<'_>) -> Result<Self, Error> {
        if !config.path.starts_with('/') {
            return Err(Error::config("path", "must start with `/`"));
        }
        Ok(Hello {
            greeting: config.greeting,
            path: config.path,
            max_body: config.max_body,
            log_file: config
                .log
                .then(|| setup.data_dir.join("rust-hello").join("completed.log")),
            log: Mutex::new(None),
        })
    }

    fn hooks(&self) -> Hooks {
        let hooks = Hooks::REQUEST | Hooks::RESPONSE;
        match self.log_file {
            Some(_) => hooks | Hooks::INIT | Hooks::COMPLETE | Hooks::SHUTDOWN,
            None => hooks,
        }
    }

    fn on_init(&self) -> Hook<'_, Result<(), Error>> {
        let Some(path) = &self.log_file else {
            return Hook::Ready(Ok(()));
        };
        let open = || {
            std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
            File::options().create(true).append(true).open(path)
        };
        Hook::Ready(match open() {
            Ok(file) => {
                *self.log.lock().unwrap() = Some(BufWriter::new(file));
                Ok(())
            }
            Err(e) => Err(Error::new(500, format!("{}: {e}", path.display()))),
        })
    }

    fn on_request<'a>(&'a self, mut req: Request<'a>) -> Hook<'a, Result<Flow, Error>> {
        if req.method() != "POST" {
            if req.path() == "/__panic" {
                panic!("rust-hello was asked to panic");
            }
            if req.path() == self.path {
                return Hook::Ready(Ok(self.greet(&req)));
            }
            return Hook::Ready(req.set_header("x-hello-seen", "1").map(|()| Flow::Continue));
        }
        // Reading the body waits for the client: an asynchronous hook.
        Hook::later(async move {
            let body = req.body(self.max_body).await;
            if req.path() == "/__panic" {
                panic!("rust-hello was asked to panic after reading {} bytes", body.len());
            }
            if req.path() == self.path {
                let text = format!("{}: {} bytes\n", self.greeting, body.len());
                return Ok(Flow::Respond(Response::text(200, text)));
            }
            req.set_header("x-hello-body-bytes", &body.len().to_string())?;
            Ok(Flow::Continue)
        })
    }

    fn on_response<'a>(&'a self, mut res: ResponseHead<'a>) -> Hook<'a, Result<(), Error>> {
        Hook::Ready(res.set_header("x-hello", &self.greeting))
    }

    fn on_complete(&self, done: &Completion<'_>) {
        if let Some(log) = self.log.lock().unwrap().as_mut() {
            let _ = writeln!(log, "{} {} {}", done.request_id(), done.status(), done.body_bytes());
            let _ = log.flush();
        }
    }

    fn on_shutdown(&self) -> Hook<'_, ()> {
        if let Some(mut log) = self.log.lock().unwrap().take() {
            let _ = writeln!(log, "shutdown");
            let _ = log.flush();
        }
        Hook::Ready(())
    }
}

export_plugin!(Hello);
