//! The overview and an app's page: the data of [`super::data`] laid out
//! by [`super::html`].

use std::sync::Arc;

use bext_plugin_abi::Ctx;
use serde_json::Value;

use super::data::{self, DEPLOY_API, WAF_EVENTS};
use super::html::{self, WAF_HEAD, button, esc, row, table, text, when};
use crate::pipeline::Pipeline;

/// WAF events the overview lists.
const WAF_SHOWN: usize = 20;

/// The platform's own apps (not a canary's `app@v` or a preview's
/// `app~name` copies), sorted.
pub(super) fn app_ids(pipeline: &Pipeline) -> Vec<String> {
    let mut ids: Vec<String> = pipeline
        .apps
        .keys()
        .filter(|id| !id.contains(['@', '~']))
        .map(|id| id.to_string())
        .collect();
    ids.sort();
    ids
}

/// `/__bext/ui`: apps, canaries, previews, live traffic, WAF events, the
/// cache and certificates.
pub(super) async fn overview(pipeline: &Arc<Pipeline>, cx: &mut Ctx, csrf: &str) -> String {
    let deployed = data::admin_get(pipeline, cx, &format!("{DEPLOY_API}/apps")).await;
    let deployed: Vec<Value> = deployed.and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let record = |id: &str| deployed.iter().find(|a| a["id"] == id);

    let mut apps = Vec::new();
    let mut traffic = Vec::new();
    for id in app_ids(pipeline) {
        let entry = &pipeline.apps[id.as_str()];
        let current = record(&id).map(|r| text(&r["current"]["version"])).unwrap_or_default();
        apps.push(format!(
            r#"<tr><td><a href="/__bext/ui/apps/{0}" class="app-link">{0}</a></td><td>{1}</td><td>{2}</td><td class="current-version">{3}</td></tr>"#,
            esc(&id),
            esc(&entry.app.domains.join(", ")),
            esc(entry.app.runtime.kind()),
            esc(&current),
        ));
        traffic.push(format!(
            r#"<tr><td>{0}</td><td data-rps="{0}">–</td><td>{1}</td></tr>"#,
            esc(&id),
            data::requests_of(pipeline, &id)
        ));
    }

    let metrics = data::metrics_text(pipeline);
    let mut canaries = Vec::new();
    for app in deployed.iter().filter(|a| !a["canary"].is_null()) {
        let id = text(&app["id"]);
        for (side, version) in [
            ("stable", text(&app["current"]["version"])),
            ("canary", text(&app["canary"]["version"])),
        ] {
            let (answers, errors) = data::version_answers(&metrics, &id, &version, side);
            canaries.push(row(&[
                id.clone(),
                side.to_owned(),
                version,
                if side == "canary" {
                    format!("{}%", text(&app["canary"]["share"]))
                } else {
                    String::new()
                },
                answers.to_string(),
                errors.to_string(),
            ]));
        }
    }

    let previews = data::admin_get(pipeline, cx, &format!("{DEPLOY_API}/previews")).await;
    let previews: Vec<String> = previews
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            row(&[
                text(&p["app"]),
                text(&p["name"]),
                text(&p["version"]),
                when(&p["expires_at"]),
            ])
        })
        .collect();

    let events = data::admin_get(pipeline, cx, &format!("{WAF_EVENTS}?limit={WAF_SHOWN}")).await;
    let waf = match &events {
        Some(v) => {
            let rows: Vec<String> = v["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(html::waf_row)
                .collect();
            table("waf-events", &WAF_HEAD, &rows, "no events yet")
        }
        None => "<p>The WAF is not on (or its audit log has no token).</p>".to_owned(),
    };

    let (by_status, ratio) = data::cache(&metrics);
    let cache = match ratio {
        Some(r) => {
            let parts: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
            format!(
                r#"<p>Hit ratio <strong id="cache-ratio">{:.1}%</strong> ({})</p>"#,
                r * 100.0,
                esc(&parts.join(", "))
            )
        }
        None => "<p>No answers through the isr cache yet.</p>".to_owned(),
    };
    let certs: Vec<String> = data::certificates(&metrics)
        .into_iter()
        .map(|(name, not_after)| row(&[name, when(&not_after.into())]))
        .collect();

    let body = format!(
        r#"<h1>Apps</h1>{apps}
<h2>Live traffic</h2><p class="note">Requests per second, updated every second with JavaScript on.</p>{traffic}
<h2>Canaries</h2>{canaries}
<h2>Previews</h2>{previews}
<h2>Recent WAF events</h2>{waf}
<h2>Cache</h2>{cache}
<h2>Certificates</h2>{certs}"#,
        apps = table(
            "apps",
            &["app", "domains", "runtime", "current version"],
            &apps,
            "no apps"
        ),
        traffic = table("traffic", &["app", "req/s", "requests"], &traffic, "no apps"),
        canaries = table(
            "canaries",
            &["app", "side", "version", "share", "requests", "errors"],
            &canaries,
            "no canary running"
        ),
        previews = table(
            "previews",
            &["app", "preview", "version", "expires"],
            &previews,
            "no previews"
        ),
        certs = table("certificates", &["name", "notAfter"], &certs, "no certificates"),
    );
    html::page("Dashboard", Some(csrf), &body)
}

/// `/__bext/ui/apps/{id}`: the app's versions and events, with rollback
/// and promote buttons. `None` for an unknown app.
pub(super) async fn app(pipeline: &Arc<Pipeline>, cx: &mut Ctx, id: &str, csrf: &str) -> Option<String> {
    let entry = pipeline.apps.get(id)?;
    let shown = data::admin_get(pipeline, cx, &format!("{DEPLOY_API}/apps/{id}")).await;
    let mut body = format!(
        r#"<h1>{0}</h1><p>Domains: {1} · runtime: {2}</p>"#,
        esc(id),
        esc(&entry.app.domains.join(", ")),
        esc(entry.app.runtime.kind())
    );
    let Some(shown) = shown else {
        body.push_str("<p>No deploys: the deploy plugin is off or has not seen this app.</p>");
        return Some(html::page(id, Some(csrf), &body));
    };
    let app = &shown["app"];
    let current = text(&app["current"]["version"]);
    body.push_str(&format!(
        r#"<p>Current version: <strong id="current-version">{}</strong>; rollback goes to <span id="rollback-to">{}</span></p>"#,
        esc(&current),
        esc(&text(&app["rollback_to"]))
    ));
    let base = format!("/__bext/ui/apps/{id}");
    body.push_str(&button(&format!("{base}/rollback"), "Roll back", "rollback", csrf, ""));
    if !app["canary"].is_null() {
        let share = r#"<label>share % <input type="number" name="to" min="1" max="99" placeholder="100"></label>"#;
        body.push_str(&format!(
            "<p>Canary <strong>{}</strong> at {}%</p>",
            esc(&text(&app["canary"]["version"])),
            esc(&text(&app["canary"]["share"]))
        ));
        body.push_str(&button(&format!("{base}/promote"), "Promote", "promote", csrf, share));
        let metrics = data::metrics_text(pipeline);
        let rows: Vec<String> = [("stable", &app["current"]), ("canary", &app["canary"])]
            .iter()
            .map(|(side, v)| {
                let version = text(&v["version"]);
                let (answers, errors) = data::version_answers(&metrics, id, &version, side);
                row(&[(*side).to_owned(), answers.to_string(), errors.to_string()])
            })
            .collect();
        body.push_str(&table("canary-stats", &["side", "requests", "errors"], &rows, ""));
    }
    let versions: Vec<String> = shown["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let name = text(&v["version"]);
            let mark = if name == current { "current" } else { "" };
            row(&[
                name,
                mark.to_owned(),
                when(&v["deployed_at"]),
                text(&v["deployed_by"]),
                text(&v["files"]),
                text(&v["bytes"]),
            ])
        })
        .collect();
    body.push_str("<h2>Versions</h2>");
    body.push_str(&table(
        "versions",
        &["version", "", "deployed", "by", "files", "bytes"],
        &versions,
        "no versions",
    ));
    let events: Vec<String> = app["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| row(&[when(&e["at"]), text(&e["what"])]))
        .collect();
    body.push_str("<h2>History</h2>");
    body.push_str(&table("history", &["when", "what"], &events, "nothing yet"));
    Some(html::page(id, Some(csrf), &body))
}
