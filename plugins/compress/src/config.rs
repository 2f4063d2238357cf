//! The compress manifest's `config` block (documented in `manifests/compress.yaml`).

use std::ops::RangeInclusive;

use bext_plugin_abi::PluginError;
use bext_plugin_abi::units::ByteSize;
use serde::Deserialize;

use crate::negotiate::Encoding;

/// Typed `config` of the compress plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Codings offered, most preferred first when a client rates several
    /// the same.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<Encoding>,
    /// Smaller bodies are sent as they are (compression would not pay).
    #[serde(default = "default_min_size")]
    pub min_size: ByteSize,
    /// Media types compressed: exact (`application/json`), a type prefix
    /// (`text/*`) or a structured-syntax suffix (`*+json`).
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    /// Levels per coding.
    #[serde(default)]
    pub levels: Levels,
    /// Compressed copies of in-memory bodies (cached pages, static files)
    /// are kept up to this many bytes, so a repeat costs no compression.
    #[serde(default = "default_store_bytes")]
    pub store_bytes: ByteSize,
    /// In-memory bodies up to this size are compressed whole and kept;
    /// larger ones and streams are compressed as they stream.
    #[serde(default = "default_max_stored_body")]
    pub max_stored_body: ByteSize,
}

/// Compression levels.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// gzip, 1 to 9.
    #[serde(default = "default_gzip")]
    pub gzip: i32,
    /// brotli, 0 to 11.
    #[serde(default = "default_br")]
    pub br: i32,
    /// zstd, 1 to 22.
    #[serde(default = "default_zstd")]
    pub zstd: i32,
}

impl Levels {
    /// Each level within its coding's range; an error names the field.
    pub fn check(&self) -> Result<(), PluginError> {
        let within = |field: &str, v: i32, range: RangeInclusive<i32>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(PluginError::config(
                    format!("levels.{field}"),
                    format!("{v} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
        within("gzip", self.gzip, 1..=9)?;
        within("br", self.br, 0..=11)?;
        within("zstd", self.zstd, 1..=22)
    }
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            gzip: default_gzip(),
            br: default_br(),
            zstd: default_zstd(),
        }
    }
}

fn default_encodings() -> Vec<Encoding> {
    vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip]
}

fn default_min_size() -> ByteSize {
    ByteSize(512)
}

fn default_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/wasm",
        "application/manifest+json",
        "image/svg+xml",
        "*+json",
        "*+xml",
    ]
    .map(String::from)
    .to_vec()
}

fn default_store_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_max_stored_body() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_gzip() -> i32 {
    6
}

fn default_br() -> i32 {
    5
}

fn default_zstd() -> i32 {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_outside_their_range_name_the_field() {
        assert!(Levels::default().check().is_ok());
        let edges = Levels {
            gzip: 9,
            br: 0,
            zstd: 22,
        };
        assert!(edges.check().is_ok());
        for (levels, field) in [
            (
                Levels {
                    gzip: 0,
                    ..Levels::default()
                },
                "levels.gzip",
            ),
            (
                Levels {
                    br: 12,
                    ..Levels::default()
                },
                "levels.br",
            ),
            (
                Levels {
                    zstd: 23,
                    ..Levels::default()
                },
                "levels.zstd",
            ),
        ] {
            match levels.check() {
                Err(PluginError::Config { path, .. }) => assert_eq!(path, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
