//! Randomised hostile input for the parsers that see client or operator
//! bytes: none may panic, and each keeps its promise on every input.
//! A small deterministic generator keeps the runs reproducible.

use std::path::Path;

use crate::apps::static_files::sanitise_for_tests as sanitise;
use bext_plugin_abi::normalise_host as normalise;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Bytes biased towards the characters parsers care about.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b"./\\%:[]@*~-_ \t\r\n\0aZ09\xc0\xae\xff";
        let len = (self.next() as usize) % (max + 1);
        (0..len)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(3) {
                    INTERESTING[(r >> 8) as usize % INTERESTING.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect()
    }
}

#[test]
fn host_normalisation_never_panics_and_yields_clean_hosts() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let input = rng.bytes(40);
        if let Ok(host) = normalise(&input) {
            assert!(!host.is_empty());
            assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{host:?}");
            assert!(!host.ends_with('.'), "{host:?}");
            if !host.starts_with('[') {
                assert!(!host.contains(':'), "{host:?} kept a port");
                assert!(
                    host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
                    "{host:?}"
                );
            }
        }
    }
}

#[test]
fn static_paths_never_escape_the_root() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..50_000 {
        let raw = String::from_utf8_lossy(&rng.bytes(60)).into_owned();
        let raw = format!("/{raw}");
        if let Some(rel) = sanitise(&raw) {
            assert!(rel.is_relative(), "{raw:?} -> {rel:?}");
            for c in rel.components() {
                assert!(matches!(c, std::path::Component::Normal(_)), "{raw:?} -> {rel:?}");
                let s = c.as_os_str().to_string_lossy();
                assert!(!s.contains('\0') && !s.contains('\\'), "{raw:?} -> {rel:?}");
                assert!(!s.starts_with('.') || s == ".well-known", "{raw:?} -> {rel:?}");
            }
            assert!(Path::new("/srv/root").join(&rel).starts_with("/srv/root"));
        }
    }
}

#[test]
fn yaml_garbage_is_an_error_never_a_panic() {
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let text = String::from_utf8_lossy(&rng.bytes(80)).into_owned();
        let _ = crate::config::manifest::Manifest::parse(Path::new("fuzz.yaml"), &text);
        let _ = crate::config::manifest::Manifest::parse(
            Path::new("fuzz.yaml"),
            &format!("name: vhosts\nconfig:\n  {text}"),
        );
    }
}
