//! The dashboard's pages, rendered on the server (readable with
//! JavaScript off): every value from an app, a deploy or a request is
//! escaped here, since WAF events carry attackers' paths and hosts.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// Escapes text for HTML content and quoted attributes.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text (strings without their quotes, null as empty).
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Unix seconds as an HTTP date (UTC).
pub(super) fn when(v: &Value) -> String {
    v.as_u64()
        .map(|s| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(s)))
        .unwrap_or_default()
}

/// The page around `body`: title, navigation (with the logout form when
/// a session has a CSRF token), the stylesheet and the script.
pub(super) fn page(title: &str, csrf: Option<&str>, body: &str) -> String {
    // A bearer client has no session to end.
    let logout = csrf
        .filter(|t| !t.is_empty())
        .map(|t| {
            format!(
                r#"<form method="post" action="/__bext/ui/logout" class="logout"><input type="hidden" name="csrf" value="{}"><button type="submit" id="logout">Log out</button></form>"#,
                esc(t)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · bext</title><link rel="stylesheet" href="/__bext/ui/ui.css"></head>
<body><header><a href="/__bext/ui" class="brand">bext</a> <span id="live" class="live">static</span>{logout}</header>
<main>
{body}
</main><script src="/__bext/ui/ui.js"></script></body></html>
"#,
        title = esc(title),
    )
}

/// The login form, with an error line after a refused token.
pub(super) fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    page(
        "Log in",
        None,
        &format!(
            r#"<h1>Log in</h1>{error}
<form method="post" action="/__bext/ui/login" class="login">
<label>Admin token <input type="password" name="token" id="token" autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button></form>"#
        ),
    )
}

/// A table with `head` columns and already rendered rows, or `empty` when
/// there are none.
pub(super) fn table(id: &str, head: &[&str], rows: &[String], empty: &str) -> String {
    let mut out = format!(r#"<table id="{id}"><thead><tr>"#);
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            r#"<tr id="{id}-none"><td colspan="{}">{}</td></tr>"#,
            head.len(),
            esc(empty)
        );
    }
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    out
}

/// A row of escaped cells.
pub(super) fn row(cells: &[String]) -> String {
    let mut out = String::from("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{}</td>", esc(c));
    }
    out.push_str("</tr>");
    out
}

/// A WAF audit event as a table row (the same cells the script adds).
pub(super) fn waf_row(e: &Value) -> String {
    let request = format!("{} {}{}", text(&e["method"]), text(&e["host"]), text(&e["path"]));
    row(&[
        when(&e["time"]),
        text(&e["action"]),
        text(&e["app"]),
        text(&e["rule"]),
        text(&e["category"]),
        request,
        text(&e["client_ip"]),
        text(&e["request_id"]),
    ])
    .replacen("<tr>", r#"<tr class="waf-event">"#, 1)
}

/// The header of [`waf_row`]'s table.
pub(super) const WAF_HEAD: [&str; 8] = [
    "time",
    "action",
    "app",
    "rule",
    "family",
    "request",
    "client",
    "request id",
];

/// A form posting to one of the dashboard's actions, with the session's
/// CSRF token.
pub(super) fn button(action: &str, label: &str, id: &str, csrf: &str, extra: &str) -> String {
    format!(
        r#"<form method="post" action="{}" class="action">{extra}<input type="hidden" name="csrf" value="{}"><button type="submit" id="{}">{}</button></form>"#,
        esc(action),
        esc(csrf),
        esc(id),
        esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_escaped() {
        let e = serde_json::json!({"method": "GET", "host": "x\"><script>", "path": "/<img src=x onerror=alert(1)>", "time": 0});
        let r = waf_row(&e);
        assert!(!r.contains("<script>") && !r.contains("<img"), "{r}");
        assert!(r.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(esc("'&"), "&#39;&amp;");
    }
}
