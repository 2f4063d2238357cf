//! A plugin that behaves differently from rust-hello with the same
//! manifest: the e2e test copies it over rust-hello's library at the same
//! path to see that a reload runs the new code.

use bext_plugin_sdk::{Error, Hook, Hooks, Plugin, ResponseHead, Setup, export_plugin};

/// Takes rust-hello's config and ignores it.
struct Rebuilt;

impl Plugin for Rebuilt {
    type Config = serde::de::IgnoredAny;

    fn new(_config: serde::de::IgnoredAny, _setup: &Setup<'_>) -> Result<Self, Error> {
        Ok(Rebuilt)
    }

    fn hooks(&self) -> Hooks {
        Hooks::RESPONSE
    }

    fn on_response<'a>(&'a self, mut res: ResponseHead<'a>) -> Hook<'a, Result<(), Error>> {
        Hook::Ready(res.set_header("x-hello", "rebuilt"))
    }
}

export_plugin!(Rebuilt);
