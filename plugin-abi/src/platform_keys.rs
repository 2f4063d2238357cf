//! What belongs in the platform file and not in an app's
//! `bext.config.toml`: `[platform]`, `[apps.<id>]` and `[platform]`'s own
//! keys. Users of the original bext write them where its single-app pages
//! put `[server]`; serde's "unknown field" alone does not say that another
//! file was meant. One table, read by the kernel (`bext run`, `bext check
//! DIR`, a deployed version) and by the deploy plugin (a bundle's check).

/// Keys of the platform file's `[platform]` table that a bundle's
/// bext.config.toml has no place for (its `[server] listen` is its own).
const PLATFORM_KEYS: [&str; 25] = [
    "listen_tls",
    "admin_listen",
    "admin_hosts",
    "data_dir",
    "manifests",
    "default_app",
    "access_log",
    "log",
    "otel",
    "watch",
    "workers",
    "limits",
    "preview_domain",
    "encoded_slashes",
    "underscores_in_headers",
    "admin_token_env",
    "acme",
    "metrics",
    "tls_cert",
    "tls_key",
    "preview_ttl",
    "max_apps",
    "max_isolates",
    "js_threads",
    "js_isolates_per_thread",
];

/// How to serve a folder with a platform file.
const SERVE_WITH_PLATFORM_FILE: &str = "serve it with a platform file: `bext serve --config platform.toml`, \
     where platform.toml has `[platform]` and `[apps.<id>] source = \"<this folder>\"` (docs/configuration.md)";

/// Where `field` (a dotted key of a bext.config.toml: `platform`, `apps`,
/// `max_apps` or `server.max_apps`) belongs, when it is the platform
/// file's; `None` for any other key.
pub fn platform_file_key(field: &str) -> Option<String> {
    let key = field.strip_prefix("server.").unwrap_or(field);
    Some(match key {
        "platform" if field == key => format!(
            "`[platform]` is a section of the platform file, not of an app's bext.config.toml (which has \
             [server], [cache.isr], [redis], [framework] and [hooks]): move it there and {SERVE_WITH_PLATFORM_FILE}"
        ),
        "apps" if field == key => format!(
            "`[apps.<id>]` tables are the platform file's, not an app's bext.config.toml (which describes its own folder): \
             move them there and {SERVE_WITH_PLATFORM_FILE}"
        ),
        k if PLATFORM_KEYS.contains(&k) => format!(
            "`{k}` is a key of the platform file's `[platform]` table, not of bext.config.toml: write \
             `[platform]` then `{k} = ...` in platform.toml and {SERVE_WITH_PLATFORM_FILE}"
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::platform_file_key;

    #[test]
    fn the_platform_file_s_tables_and_keys_are_named_and_others_are_not() {
        for field in ["platform", "apps", "max_apps", "server.tls_cert", "server.preview_ttl"] {
            let said = platform_file_key(field).unwrap_or_default();
            assert!(said.contains("`bext serve --config platform.toml`"), "{field}: {said}");
        }
        for field in [
            "server",
            "server.listen",
            "server.static_dir",
            "cache",
            "server.platform",
            "redis",
        ] {
            assert_eq!(platform_file_key(field), None, "{field}");
        }
    }
}
