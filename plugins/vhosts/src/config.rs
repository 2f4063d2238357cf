//! The vhosts manifest's `config` block (documented in `manifests/vhosts.yaml`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Typed `config` of the vhosts plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host pattern → entry. A pattern is an exact host (`example.com`), a
    /// wildcard (`*.example.com`, capturing the tenant) or a regex prefixed
    /// with `~` (anchored; a named group `tenant` captures the tenant).
    #[serde(default, deserialize_with = "host_entry")]
    pub hosts: BTreeMap<String, HostEntry>,
    /// Also route every app's `domains` from the platform file.
    #[serde(default = "yes")]
    pub app_domains: bool,
}

fn yes() -> bool {
    true
}

/// Where one host pattern sends a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Id of the app that serves this host.
    #[serde(deserialize_with = "app_name")]
    pub app: String,
    /// Only paths under this prefix match this entry; others fall through.
    #[serde(rename = "pathPrefix", default)]
    pub path_prefix: Option<String>,
    /// Skip the app's `on_request`/`on_response` plugins for this host.
    #[serde(default)]
    pub bypass: bool,
}

/// A host's entry is a map: `"sked.ly": skedly` (the app's name alone,
/// as other tools' host maps take it) is refused with the map to write,
/// never read as something else.
fn host_entry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, HostEntry>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = BTreeMap<String, HostEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(r#"a map of host patterns to entries, `hosts: { "sked.ly": { app: "skedly" } }`"#)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(host) = map.next_key::<String>()? {
                let entry = map.next_value::<Entry>()?.0;
                out.insert(host, entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries)
}

/// One host's entry, with what to write when it is not a map.
struct Entry(HostEntry);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Entry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a map like `{ app: "my-app" }`"#)
            }
            fn visit_str<E: serde::de::Error>(self, app: &str) -> Result<Entry, E> {
                Err(E::custom(format!(
                    r#"a host's entry is a map, not the app's name alone: write `{{ app: "{app}" }}` (in YAML, `app: "{app}"` on the line under the host)"#
                )))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                HostEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Entry)
            }
        }
        d.deserialize_any(Shape)
    }
}

/// `app` is the app's name: a map there (`app: { app: skedly }`, the
/// entry written one level too deep) is refused with the string to write.
fn app_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Name;
    impl<'de> serde::de::Visitor<'de> for Name {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(r#"the app's name as a string: `app: "skedly"` (or `app: "skedly@latest"`)"#)
        }
        fn visit_str<E: serde::de::Error>(self, app: &str) -> Result<String, E> {
            Ok(app.to_owned())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
            Err(serde::de::Error::custom(
                r#"`app` is the app's name as a string, not a map: write `app: "skedly"` (the entry's other keys, `pathPrefix` and `bypass`, sit beside `app`)"#,
            ))
        }
    }
    d.deserialize_any(Name)
}

/// The app an entry's `app` names: Buntime's `name@latest` is the app's
/// current version, the app itself; other `name@version` pins are apps the
/// deploy registry adds for that version (its `pinned_versions`).
pub fn served_app(app: &str) -> &str {
    app.strip_suffix("@latest").unwrap_or(app)
}

/// Refuses a pin that names no app or no version (`one@`, `@1.2`,
/// `one@1@2`): Buntime resolves such an entry to nothing, and bext would
/// route its hosts to an app no deploy can create.
pub fn check_app(app: &str) -> Result<(), String> {
    let Some((name, version)) = app.split_once('@') else {
        return Ok(());
    };
    if name.is_empty() {
        return Err(format!("`{app}` names no app before `@` (write `app@{version}`)"));
    }
    if version.is_empty() {
        return Err(format!(
            "`{app}` has no version after `@`: write `{name}@latest` (its current version), `{name}@1.2`, or `{name}`"
        ));
    }
    // `^1.2`, `~1.2`, `>=1`, `1.x`, `*`: npm's ranges, which a deploy's
    // version name is not matched against.
    if version.starts_with(['^', '~', '>', '<', '=', '*']) || version.contains(['|', '*']) || version.ends_with(".x") {
        return Err(format!(
            "`{app}`: version ranges are not supported: write `{name}@latest` (its current version) or a version's prefix (`{name}@1.2` serves the newest 1.2.x)"
        ));
    }
    if version.contains('@') || version.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!(
            "`{app}`: the version after `@` must be one word (`latest`, `1.2`, `v3`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_must_name_an_app_and_a_version() {
        for good in ["one", "one@latest", "one@1.2", "one@v3"] {
            assert_eq!(super::check_app(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("one@", "has no version after `@`: write `one@latest`"),
            ("@1.2", "names no app before `@`"),
            ("one@1@2", "must be one word"),
            ("one@1 2", "must be one word"),
            ("one@../x", "must be one word"),
            ("one@^1.2", "version ranges are not supported"),
            ("one@~1.2", "version ranges are not supported"),
            ("one@>=1", "version ranges are not supported"),
            ("one@1.x", "version ranges are not supported"),
        ] {
            let err = super::check_app(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn latest_is_the_app_itself_and_other_pins_are_kept() {
        assert_eq!(super::served_app("skedly@latest"), "skedly");
        assert_eq!(super::served_app("skedly@1.2"), "skedly@1.2");
        assert_eq!(super::served_app("admin-panel"), "admin-panel");
    }
}
