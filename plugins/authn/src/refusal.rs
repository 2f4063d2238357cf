//! How a request is refused: the status, the `WWW-Authenticate`
//! challenge (RFC 6750), a body that says nothing more, and a log line
//! (target `bext::authn`) that says why.

use bext_plugin_abi::{Ctx, Flow, text_response};
use http::StatusCode;
use http::header::{HeaderValue, WWW_AUTHENTICATE};

use crate::credential::Ambiguous;
use crate::keys::Rejection;

/// Why a request does not reach the app.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal<'a> {
    /// More than one credential: 400, `invalid_request`.
    #[error("{0}")]
    Ambiguous(Ambiguous),
    /// None where one is needed: 401.
    #[error("no credentials")]
    NoCredentials,
    /// A credential that does not verify: 401, `invalid_token`.
    #[error("{0}")]
    Invalid(Rejection),
    /// A verified caller without a path's scopes: 403, `insufficient_scope`.
    #[error("missing scopes: {}", .0.join(" "))]
    MissingScopes(Vec<&'a str>),
}

impl Refusal<'_> {
    /// A fixed name of the reason, for metrics' labels (never the
    /// caller's input).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::Ambiguous(_) => "ambiguous",
            Refusal::NoCredentials => "no_credentials",
            Refusal::Invalid(r) => r.label(),
            Refusal::MissingScopes(_) => "missing_scopes",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Ambiguous(_) => StatusCode::BAD_REQUEST,
            Refusal::NoCredentials | Refusal::Invalid(_) => StatusCode::UNAUTHORIZED,
            Refusal::MissingScopes(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// The `WWW-Authenticate` values of one realm, built once.
pub(crate) struct Challenges {
    challenge: HeaderValue,
    invalid_token: HeaderValue,
    invalid_request: HeaderValue,
    insufficient_scope: HeaderValue,
}

impl Challenges {
    /// The challenges for `realm` (quotes in it are dropped).
    pub(crate) fn new(realm: &str) -> Self {
        let realm = realm.replace('"', "");
        let bearer =
            |extra: &str| HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"{extra}")).expect("printable realm");
        Challenges {
            challenge: bearer(""),
            invalid_token: bearer(", error=\"invalid_token\""),
            invalid_request: bearer(", error=\"invalid_request\""),
            insufficient_scope: bearer(", error=\"insufficient_scope\""),
        }
    }

    fn challenge(&self, why: &Refusal<'_>) -> &HeaderValue {
        match why {
            Refusal::Ambiguous(_) => &self.invalid_request,
            Refusal::NoCredentials => &self.challenge,
            Refusal::Invalid(_) => &self.invalid_token,
            Refusal::MissingScopes(_) => &self.insufficient_scope,
        }
    }

    /// The response refusing a request for `why`, logged for `plugin`.
    pub(crate) fn refuse(&self, why: &Refusal<'_>, plugin: &str, cx: &Ctx) -> Flow {
        let status = why.status();
        let reason = why.to_string();
        tracing::info!(
            target: "bext::authn",
            plugin = %plugin,
            request_id = %cx.request_id,
            status = status.as_u16(),
            reason = reason.as_str(),
            "request not authenticated"
        );
        let text = match status {
            StatusCode::FORBIDDEN => "Forbidden\n",
            StatusCode::BAD_REQUEST => "Bad Request\n",
            _ => "Unauthorized\n",
        };
        let mut res = text_response(status, text);
        res.headers_mut().insert(WWW_AUTHENTICATE, self.challenge(why).clone());
        Flow::Respond(res)
    }
}

#[cfg(test)]
mod tests {
    use bext_plugin_abi::RequestId;

    use super::*;
    use crate::credential::Source;

    fn refused(c: &Challenges, why: Refusal<'_>) -> (u16, String, String) {
        let cx = Ctx::new(RequestId(1), "127.0.0.1:1".parse().unwrap());
        let Flow::Respond(res) = c.refuse(&why, "authn", &cx) else {
            panic!("a refusal answers")
        };
        let status = res.status().as_u16();
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        let body = String::from_utf8(res.body().as_bytes().expect("a whole body").to_vec()).unwrap();
        (status, challenge, body)
    }

    #[test]
    fn each_refusal_has_its_status_challenge_and_a_bare_body() {
        let c = Challenges::new("shop \"api\"");
        let realm = "Bearer realm=\"shop api\"";
        assert_eq!(
            refused(&c, Refusal::NoCredentials),
            (401, realm.into(), "Unauthorized\n".into())
        );
        assert_eq!(
            refused(&c, Refusal::Invalid(Rejection::Expired)),
            (
                401,
                format!("{realm}, error=\"invalid_token\""),
                "Unauthorized\n".into()
            )
        );
        assert_eq!(
            refused(&c, Refusal::Ambiguous(Ambiguous(Source::Cookie, Source::Cookie))),
            (
                400,
                format!("{realm}, error=\"invalid_request\""),
                "Bad Request\n".into()
            )
        );
        assert_eq!(
            refused(&c, Refusal::MissingScopes(vec!["admin"])),
            (
                403,
                format!("{realm}, error=\"insufficient_scope\""),
                "Forbidden\n".into()
            )
        );
    }

    #[test]
    fn reasons_for_the_log() {
        assert_eq!(Refusal::NoCredentials.to_string(), "no credentials");
        assert_eq!(Refusal::Invalid(Rejection::Expired).to_string(), "expired");
        assert_eq!(
            Refusal::Ambiguous(Ambiguous(Source::ApiKeyHeader, Source::ApiKeyQuery)).to_string(),
            "more than one credential: API key header and API key query parameter"
        );
        assert_eq!(
            Refusal::MissingScopes(vec!["billing", "write"]).to_string(),
            "missing scopes: billing write"
        );
    }
}
