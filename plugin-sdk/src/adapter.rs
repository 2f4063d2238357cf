//! The library side of the boundary: a [`Plugin`] behind the FFI trait,
//! and the constructor bext calls.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RVec, Tuple2};

use crate::ffi::{
    DoneViewRef, FfiError, FfiFlow, FfiHook, FfiPlugin, FfiPlugin_TO, FfiPluginBox, FfiResponse, HttpViewMut,
};
use crate::hook::{across, contained};
use crate::{Completion, Error, Flow, Hook, Plugin, Request, ResponseHead, Setup};

/// Bridges a [`Plugin`] to the FFI trait.
struct Adapter<P>(P);

impl<P: Plugin> FfiPlugin for Adapter<P> {
    fn hooks(&self) -> u8 {
        self.0.hooks().0
    }

    fn on_init(&self) -> FfiHook<'_, RResult<(), FfiError>> {
        across(|| self.0.on_init(), |()| ())
    }

    fn fetch<'a>(&'a self, req: HttpViewMut<'a>) -> FfiHook<'a, RResult<FfiFlow, FfiError>> {
        across(|| self.0.fetch(Request { view: req }), flow)
    }

    fn on_request<'a>(&'a self, req: HttpViewMut<'a>) -> FfiHook<'a, RResult<FfiFlow, FfiError>> {
        across(|| self.0.on_request(Request { view: req }), flow)
    }

    fn on_response<'a>(&'a self, res: HttpViewMut<'a>) -> FfiHook<'a, RResult<(), FfiError>> {
        across(|| self.0.on_response(ResponseHead { view: res }), |()| ())
    }

    fn on_complete(&self, done: DoneViewRef<'_>) -> RResult<(), FfiError> {
        contained(|| {
            self.0.on_complete(&Completion { view: done });
            Ok(())
        })
    }

    fn on_shutdown(&self) -> FfiHook<'_, RResult<(), FfiError>> {
        across(
            || match self.0.on_shutdown() {
                Hook::Ready(()) => Hook::Ready(Ok(())),
                Hook::Later(f) => Hook::later(async move {
                    f.await;
                    Ok(())
                }),
            },
            |()| (),
        )
    }
}

fn flow(f: Flow) -> FfiFlow {
    match f {
        Flow::Continue => FfiFlow::Continue,
        Flow::Respond(r) => FfiFlow::Respond(FfiResponse {
            status: r.status,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| Tuple2(k.into(), v.into()))
                .collect::<RVec<_>>(),
            body: r.body.into(),
        }),
    }
}

/// Decodes the manifest's `config` (as JSON) the way bext decodes a
/// built-in plugin's: from a value, so an error names the field's dotted
/// path (bext points it at the manifest's line) and no position inside
/// the JSON text; no `config:` means all defaults.
fn decode<C: serde::de::DeserializeOwned>(json: &str) -> Result<C, Error> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::config("", format!("not JSON: {e}")))?;
    let value = if value.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        value
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Error::config(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })
}

pub(crate) extern "C" fn new_instance<P: Plugin>(
    name: RStr<'_>,
    config: RStr<'_>,
    base: RStr<'_>,
    data_dir: RStr<'_>,
) -> RResult<FfiPluginBox, FfiError> {
    contained(|| {
        let plugin = P::new(
            decode(config.as_str())?,
            &Setup {
                name: name.as_str(),
                base: base.as_str(),
                data_dir: std::path::Path::new(data_dir.as_str()),
            },
        )?;
        Ok(FfiPlugin_TO::from_value(Adapter(plugin), TD_Opaque))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        greeting: String,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: Option<u32>,
    }

    fn config_error(json: &str) -> (String, String) {
        let e = decode::<Cfg>(json).unwrap_err().into_ffi();
        (e.config_path.unwrap().into_string(), e.message.into_string())
    }

    #[test]
    fn config_errors_name_the_field_and_no_json_position() {
        let (path, message) = config_error(r#"{"greeting": "hi", "inner": {"n": "x"}}"#);
        assert_eq!(path, "inner.n");
        assert!(message.starts_with("invalid type: string"), "{message}");
        assert!(!message.contains("line") && !message.contains("column"), "{message}");

        let (path, message) = config_error(r#"{"greeting": [1]}"#);
        assert_eq!(path, "greeting");
        assert!(!message.contains("column"), "{message}");

        let (path, message) = config_error("null");
        assert_eq!(path, "");
        assert!(message.contains("missing field `greeting`"), "{message}");

        decode::<Cfg>(r#"{"greeting": "hi"}"#).unwrap();
    }
}
