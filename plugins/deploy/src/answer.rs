//! The admin API's JSON answers that are not a registry record as is: an
//! app with its versions and canary traffic, an error, an unknown
//! endpoint.

use bext_plugin_abi::Response;
use bext_plugin_abi::admin::json;
use http::StatusCode;
use serde_json::{Value, json as value};

use crate::canary::Canary;
use crate::error::DeployError;
use crate::registry::{AppRecord, VersionRecord};

/// `GET {base}/apps/{id}`: the app, its versions, and the traffic of each
/// version if it has a canary running here.
pub(crate) fn app(app: &AppRecord, versions: &[VersionRecord], stats: Option<Value>) -> Response {
    json(
        StatusCode::OK,
        &value!({ "app": app, "versions": versions, "canary_stats": stats }),
    )
}

/// The traffic of each version of a canaried app.
pub(crate) fn canary_stats(canary: &Canary) -> Value {
    value!({
        "stable": canary.stats[Canary::STABLE].snapshot(),
        "canary": canary.stats[Canary::CANARY].snapshot(),
    })
}

/// A failed request: the error's status, and what went wrong.
pub(crate) fn error(e: &DeployError) -> Response {
    json(e.status(), &value!({ "error": e.to_string() }))
}

/// A method and path the API does not have.
pub(crate) fn no_such_endpoint() -> Response {
    json(StatusCode::NOT_FOUND, &value!({ "error": "no such endpoint" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(res: Response) -> (StatusCode, Value) {
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_say_what_went_wrong_with_their_status() {
        let (status, v) = body(error(&DeployError::NotFound("no app shop".into()))).await;
        assert_eq!((status, v), (StatusCode::NOT_FOUND, value!({ "error": "no app shop" })));
        let (status, v) = body(no_such_endpoint()).await;
        assert_eq!(
            (status, v),
            (StatusCode::NOT_FOUND, value!({ "error": "no such endpoint" }))
        );
    }
}
