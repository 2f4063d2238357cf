//! The ids of the hidden apps a canary or a preview is served as, and the
//! cookie that keeps a visitor on one version: platform files may not use
//! `~` or `@` in an app id, so these never clash with a declared app.

/// The hidden app a preview is served as: `{app}~{name}`, on hosts of its
/// own (the platform's `preview_domain` template).
pub fn preview_app_id(app: &str, name: &str) -> String {
    format!("{app}~{name}")
}

/// The hidden app a canary version is served as: `{app}@{version}`. The
/// kernel adds it to the app table; this plugin sends a canary's share of
/// visitors to it.
pub fn canary_app_id(app: &str, version: &str) -> String {
    format!("{app}@{version}")
}

/// The cookie that keeps a visitor on one version of `app`.
pub(crate) fn cookie_name(app: &str) -> String {
    format!("bext_canary_{app}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_apps_and_the_cookie_are_named_after_the_app() {
        assert_eq!(preview_app_id("shop", "pr-12"), "shop~pr-12");
        assert_eq!(canary_app_id("shop", "v7"), "shop@v7");
        assert_eq!(cookie_name("shop"), "bext_canary_shop");
        assert_ne!(preview_app_id("a", "b"), canary_app_id("a", "b"));
    }
}
