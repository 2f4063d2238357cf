//! An example bext plugin built as a shared library.
//!
//! - adds `x-hello: <greeting>` to every response,
//! - answers `GET <path>` itself (`/hello` by default) with the greeting,
//!   the app and the tenant,
//! - `GET /__panic` panics, to show that a panic stays inside the request,
//! - reads `greeting` and `path` from its manifest's `config`.

use bext_plugin_sdk::{Error, Flow, Hooks, Plugin, Request, Response, ResponseHead, Setup, export_plugin};
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
}

fn default_path() -> String {
    "/hello".into()
}

struct Hello {
    greeting: String,
    path: String,
}

impl Plugin for Hello {
    type Config = Config;

    fn new(config: Config, _setup: &Setup<'_>) -> Result<Self, Error> {
        if !config.path.starts_with('/') {
            return Err(Error::config("path", "must start with `/`"));
        }
        Ok(Hello {
            greeting: config.greeting,
            path: config.path,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_request(&self, req: &mut Request<'_>) -> Result<Flow, Error> {
        if req.path() == "/__panic" {
            panic!("rust-hello was asked to panic");
        }
        if req.method() == "GET" && req.path() == self.path {
            let body = format!(
                "{} from {} (tenant {})\n",
                self.greeting,
                req.app().unwrap_or("-"),
                req.tenant().unwrap_or("-")
            );
            return Ok(Flow::Respond(
                Response::text(200, body).header("x-answered-by", "rust-hello"),
            ));
        }
        req.set_header("x-hello-seen", "1")?;
        Ok(Flow::Continue)
    }

    fn on_response(&self, res: &mut ResponseHead<'_>) -> Result<(), Error> {
        res.set_header("x-hello", &self.greeting)
    }
}

export_plugin!(Hello);
