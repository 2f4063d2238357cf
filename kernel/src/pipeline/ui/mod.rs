//! The dashboard at `/__bext/ui`: part of the admin surface (on
//! `admin_listen` and admin hosts only; a tenant's host gets the 404 of an
//! unknown path), behind the admin token. A browser logs in with a form
//! that trades the token for a session cookie (HttpOnly, SameSite=Strict,
//! Secure over TLS; it holds a random session id, never the token);
//! scripts may send `Authorization: Bearer` instead. Pages are rendered on
//! the server; the buttons are forms whose POSTs carry the session's CSRF
//! token (checked here; a bearer request needs none, since no other site
//! can make a browser send that header), and call the deploy plugin's
//! admin API in-process. See docs/observability.md#dashboard.

mod data;
mod events;

pub(crate) use events::stop_streams;
mod html;
mod pages;
mod session;

use std::sync::Arc;

use bext_plugin_abi::admin::{refuse_unless_admin, secrets_match};
use bext_plugin_abi::{Body, Ctx, Request, Response};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use super::Pipeline;
use super::admin::Access;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");
/// Largest form body read (login and buttons).
const MAX_FORM: usize = 16 << 10;
/// Where the pages are.
const BASE: &str = "/__bext/ui";

/// Answers `rest` (the path under `/__bext`) if it is the dashboard's and
/// `access` lets the host see the admin surface.
pub(crate) async fn respond(
    pipeline: &Arc<Pipeline>,
    rest: &str,
    req: &mut Request,
    cx: &mut Ctx,
    access: Access,
) -> Option<Response> {
    let sub = rest.strip_prefix("/ui")?;
    if !(sub.is_empty() || sub.starts_with('/')) || access == Access::Tenant {
        return None;
    }
    let token = std::env::var(&pipeline.platform.settings.admin_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Some(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let res = match (sub, get) {
        ("/ui.css", true) => asset(CSS, "text/css; charset=utf-8"),
        ("/ui.js", true) => asset(JS, "text/javascript; charset=utf-8"),
        ("/login", true) => html(StatusCode::OK, html::login(None)),
        ("/login", false) if method == Method::POST => login(req, cx, &token).await,
        _ => match authenticate(req, cx, &token, get) {
            Err(refused) => *refused,
            Ok(who) => serve(pipeline, sub, req, cx, &method, who).await,
        },
    };
    Some(res)
}

/// Who is asking, once authenticated.
enum Who {
    /// A browser's session (its forms must carry its CSRF token).
    Session { id: String, csrf: String },
    /// A client with `Authorization: Bearer <admin token>`.
    Bearer,
}

/// The bearer token when the request has an `Authorization` header, else
/// the session cookie; without either a page is sent to the login form.
fn authenticate(req: &Request, cx: &Ctx, token: &str, get: bool) -> Result<Who, Box<Response>> {
    if req.headers().contains_key(AUTHORIZATION) {
        return match refuse_unless_admin(req, cx, Some(token)) {
            Some(refused) => Err(Box::new(refused)),
            None => Ok(Who::Bearer),
        };
    }
    if let Some(id) = session::cookie_id(req.headers())
        && let Some(s) = session::find(&id)
    {
        return Ok(Who::Session { id, csrf: s.csrf });
    }
    if get {
        Err(Box::new(see_other(&format!("{BASE}/login"))))
    } else {
        Err(Box::new(plain(StatusCode::UNAUTHORIZED, "log in first\n")))
    }
}

async fn serve(
    pipeline: &Arc<Pipeline>,
    sub: &str,
    req: &mut Request,
    cx: &mut Ctx,
    method: &Method,
    who: Who,
) -> Response {
    let csrf = match &who {
        Who::Session { csrf, .. } => csrf.clone(),
        Who::Bearer => String::new(),
    };
    let get = method == Method::GET || method == Method::HEAD;
    if get {
        return match sub {
            "" | "/" => html(StatusCode::OK, pages::overview(pipeline, cx, &csrf).await),
            "/events" => events::stream(pipeline, cx).await,
            _ => match app_path(sub) {
                Some((id, None)) => match pages::app(pipeline, cx, id, &csrf).await {
                    Some(page) => html(StatusCode::OK, page),
                    None => plain(StatusCode::NOT_FOUND, "no such app\n"),
                },
                _ => plain(StatusCode::NOT_FOUND, "not found\n"),
            },
        };
    }
    if *method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
    }
    let action = match (sub, app_path(sub)) {
        ("/logout", _) => None,
        (_, Some((id, Some(act @ ("rollback" | "promote"))))) => Some((id.to_owned(), act)),
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(res) => return *res,
    };
    if let Who::Session { csrf, .. } = &who {
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        let presented = field(&form, "csrf").unwrap_or_default();
        if cross_site || !secrets_match(&presented, csrf) {
            return plain(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong: reload the page\n",
            );
        }
    }
    let Some((id, act)) = action else {
        return logout(&who);
    };
    let mut path = format!("{}/apps/{id}/{act}", data::DEPLOY_API);
    if act == "promote"
        && let Some(to) = field(&form, "to").filter(|t| !t.is_empty())
    {
        if to.len() > 3 || !to.bytes().all(|b| b.is_ascii_digit()) {
            return plain(StatusCode::BAD_REQUEST, "`to` is a percentage from 1 to 99\n");
        }
        path.push_str(&format!("?to={to}"));
    }
    let Some(res) = data::admin_call(pipeline, cx, Method::POST, &path).await else {
        return plain(StatusCode::NOT_FOUND, "the deploy plugin is off\n");
    };
    let (status, answer) = data::json_of(res).await;
    if status.is_success() {
        return see_other(&format!("{BASE}/apps/{id}"));
    }
    let error = html::text(&answer["error"]);
    let body = format!(
        r#"<h1>{act} refused</h1><p class="error" id="action-error">{} {}</p><p><a href="{BASE}/apps/{}">back</a></p>"#,
        status.as_u16(),
        html::esc(&error),
        html::esc(&id)
    );
    html(status, html::page(act, Some(&csrf), &body))
}

/// `/apps/{id}` or `/apps/{id}/{action}`, with an id of the characters app
/// ids have.
fn app_path(sub: &str) -> Option<(&str, Option<&str>)> {
    let rest = sub.strip_prefix("/apps/")?;
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some((id, action))
}

/// `POST /__bext/ui/login`: the form's token, checked like a bearer token
/// (the same throttle of wrong guesses), traded for a session.
async fn login(req: &mut Request, cx: &Ctx, token: &str) -> Response {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(res) => return *res,
    };
    let presented = field(&form, "token").unwrap_or_default();
    let mut probe: Request = http::Request::new(Body::full(""));
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {presented}")) {
        probe.headers_mut().insert(AUTHORIZATION, v);
    }
    if let Some(refused) = refuse_unless_admin(&probe, cx, Some(token)) {
        if refused.status() == StatusCode::TOO_MANY_REQUESTS {
            return refused;
        }
        return html(StatusCode::UNAUTHORIZED, html::login(Some("wrong token")));
    }
    let id = session::create();
    let secure = if cx.ext.get::<crate::apps::OverTls>().is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={id}; Path={BASE}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        session::LIFETIME.as_secs()
    );
    let mut res = see_other(BASE);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    res
}

/// Ends the session and clears its cookie.
fn logout(who: &Who) -> Response {
    if let Who::Session { id, .. } = who {
        session::remove(id);
    }
    let mut res = see_other(&format!("{BASE}/login"));
    let clear = format!(
        "{}=; Path={BASE}; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    res
}

/// An `application/x-www-form-urlencoded` body, as pairs.
async fn read_form(req: &mut Request) -> Result<Vec<(String, String)>, Box<Response>> {
    let body = std::mem::replace(req.body_mut(), Body::full(""));
    let bytes = match http_body_util::Limited::new(body, MAX_FORM).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Box::new(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "form too large or cut short\n",
            )));
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(Box::new(plain(StatusCode::BAD_REQUEST, "the form is not UTF-8\n")));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
    };
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (decode(k), decode(v)) {
            (Ok(k), Ok(v)) => pairs.push((k, v)),
            _ => return Err(Box::new(plain(StatusCode::BAD_REQUEST, "the form is not UTF-8\n"))),
        }
    }
    Ok(pairs)
}

/// The first value of `name` in a form.
fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn with_headers(mut res: Response, content_type: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(http::header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}

fn html(status: StatusCode, page: String) -> Response {
    let mut res = Response::new(Body::full(page));
    *res.status_mut() = status;
    with_headers(res, "text/html; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    with_headers(Response::new(Body::full(text)), content_type)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut res = Response::new(Body::full(text));
    *res.status_mut() = status;
    with_headers(res, "text/plain; charset=utf-8")
}

fn see_other(location: &str) -> Response {
    let mut res = plain(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(http::header::LOCATION, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_take_only_app_ids() {
        assert_eq!(app_path("/apps/blog"), Some(("blog", None)));
        assert_eq!(app_path("/apps/blog/rollback"), Some(("blog", Some("rollback"))));
        assert_eq!(app_path("/apps/../x"), None);
        assert_eq!(app_path("/apps/a%2Fb"), None);
        assert_eq!(app_path("/apps/"), None);
        assert_eq!(app_path("/other"), None);
    }
}
