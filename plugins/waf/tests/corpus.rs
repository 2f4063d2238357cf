//! Accuracy against the labelled corpus in `tests/waf-corpus` (OWASP CRS
//! regression requests, libinjection's false positives, hand-written
//! traffic): every record goes through the same inspection the server
//! runs, and the detection and false-positive rates are checked per
//! category. `cargo test -p bext-plugin-waf --test corpus -- --nocapture`
//! prints the table and the ids of the misses.
//!
//! Three sets are measured: the given corpus (tuned on), and the two halves
//! of `tests/waf-corpus/extra.jsonl` (built by `extra.py` from sources that
//! do not overlap the corpus's hidden half): `dev`, which detection may be
//! tuned on, and `test`, which is only reported. On the extra sets the goals
//! are floors set at what the WAF measured when they were written, so that
//! a change that loses ground on attacks nobody tuned for fails here.

mod records;

use std::collections::BTreeMap;

use bext_plugin_waf::inspect::{Engine, Switches};
use records::{Built, corpus};

#[derive(Default)]
struct Tally {
    block: usize,
    caught: usize,
    allow: usize,
    refused: usize,
    misses: Vec<String>,
    false_positives: Vec<String>,
}

/// The shared corpus (OWASP CRS regression requests, libinjection's
/// false positives, hand-written traffic).
#[test]
fn shared_corpus_detection_and_false_positive_rates() {
    check_corpus("../../tests/waf-corpus/corpus.jsonl", None, &Goals::TUNED);
}

/// bext's own attacks and benign traffic (`tests/corpus/bext.jsonl`).
#[test]
fn own_corpus_detection_and_false_positive_rates() {
    check_corpus("tests/corpus/bext.jsonl", None, &Goals::TUNED);
}

/// The extra set's tuning half.
#[test]
fn extra_dev_detection_and_false_positive_rates() {
    check_corpus("../../tests/waf-corpus/extra.jsonl", Some("dev"), &Goals::EXTRA_DEV);
}

/// The extra set's held-out half: reported, never tuned on.
#[test]
fn extra_test_detection_and_false_positive_rates() {
    check_corpus("../../tests/waf-corpus/extra.jsonl", Some("test"), &Goals::EXTRA_TEST);
}

/// Both halves with `markdown_prose` on (docs/waf.md, "Code quoted in prose").
#[test]
fn extra_with_markdown_prose_detection_and_false_positive_rates() {
    check_corpus(
        "../../tests/waf-corpus/extra.jsonl",
        Some("dev"),
        &Goals::EXTRA_DEV_MARKDOWN,
    );
    check_corpus(
        "../../tests/waf-corpus/extra.jsonl",
        Some("test"),
        &Goals::EXTRA_TEST_MARKDOWN,
    );
}

/// Ordinary traffic of the kinds a WAF refuses by mistake
/// (`tests/waf-corpus/benign-extra.jsonl`): the half that refusals were
/// fixed on, with the default settings.
#[test]
fn benign_extra_dev_refusals() {
    check_corpus(
        "../../tests/waf-corpus/benign-extra.jsonl",
        Some("dev"),
        &Goals::BENIGN_DEV,
    );
}

/// Its held-out half: reported, never tuned on.
#[test]
fn benign_extra_test_refusals() {
    check_corpus(
        "../../tests/waf-corpus/benign-extra.jsonl",
        Some("test"),
        &Goals::BENIGN_TEST,
    );
}

/// What a set must reach.
struct Goals {
    /// Least detection in a category with more than 20 attacks (percent).
    detection: f64,
    /// Most refused `benign` records (percent).
    benign_refused: f64,
    /// Most refused `allow` records of every category together (percent).
    allow_refused: f64,
    /// Least detection of the attacks from each named source (percent).
    by_source: &'static [(&'static str, f64)],
    /// Least detection in each named category (percent), whatever its size.
    by_category: &'static [(&'static str, f64)],
    /// Measured with `markdown_prose` on (off is the default).
    markdown_prose: bool,
}

impl Goals {
    /// The sets detection was tuned on.
    const TUNED: Goals = Goals {
        detection: 95.0,
        benign_refused: 1.0,
        allow_refused: 2.0,
        by_source: &[],
        by_category: &[],
        markdown_prose: false,
    };
    /// The extra set's tuning half (floors at what the fifth family
    /// round measured, benign ceilings at the sixth's; see the module doc). CRS's PL2-4 tests are written
    /// for stricter rules than the default level and are held to what was
    /// measured, not to the goal; the other sources are attacks of
    /// the kinds PL1 covers.
    const EXTRA_DEV: Goals = Goals {
        detection: 91.5,
        benign_refused: 3.0,
        allow_refused: 4.5,
        markdown_prose: false,
        by_source: &[
            ("crs", 91.6),
            ("gotestwaf", 100.0),
            ("libinjection", 98.5),
            ("handmade", 100.0),
        ],
        by_category: &[
            ("sqli", 92.7),
            ("xss", 97.0),
            ("rce", 91.5),
            ("lfi", 99.9),
            ("rfi", 55.5),
            ("php", 91.9),
            ("java", 99.9),
            ("nodejs", 99.9),
            ("ssrf", 99.9),
            ("ssti", 99.9),
            ("ldap", 99.9),
            ("generic", 93.9),
        ],
    };
    /// The held-out half, held to what it measured at the end of the
    /// same round (it was not tuned on, so these only keep it from
    /// falling back).
    const EXTRA_TEST: Goals = Goals {
        detection: 75.5,
        benign_refused: 10.5,
        allow_refused: 13.0,
        markdown_prose: false,
        by_source: &[
            ("crs", 82.0),
            ("gotestwaf", 97.5),
            ("libinjection", 97.5),
            ("handmade", 88.0),
        ],
        by_category: &[
            ("sqli", 85.4),
            ("xss", 95.0),
            ("rce", 75.7),
            ("lfi", 94.1),
            ("rfi", 49.9),
            ("php", 76.4),
            ("java", 98.5),
            ("nodejs", 82.3),
            ("ssrf", 94.9),
            ("ssti", 99.9),
            ("ldap", 83.3),
            ("generic", 82.5),
        ],
    };

    /// `benign-extra.jsonl`'s tuning half: ceilings at what the seventh
    /// round measured (13 of 104, from 17 before it: code spans and shell
    /// lines in Markdown, a video `<iframe>`, a search libinjection reads
    /// as SQL, Python's `print('x')`, a `${page}` in a template literal,
    /// `process.env` in a diff, SQL in a code span).
    const BENIGN_DEV: Goals = Goals {
        benign_refused: 13.0,
        allow_refused: 13.0,
        ..Goals::TUNED
    };
    /// Its held-out half (18 of 110 at the end of the same round, from 20).
    const BENIGN_TEST: Goals = Goals {
        benign_refused: 16.5,
        allow_refused: 16.5,
        ..Goals::TUNED
    };

    /// The tuning half with `markdown_prose` on: its Markdown comments
    /// with code pass.
    const EXTRA_DEV_MARKDOWN: Goals = Goals {
        benign_refused: 1.0,
        allow_refused: 3.5,
        markdown_prose: true,
        ..Goals::EXTRA_DEV
    };
    /// The held-out half with `markdown_prose` on.
    const EXTRA_TEST_MARKDOWN: Goals = Goals {
        benign_refused: 7.0,
        allow_refused: 12.0,
        markdown_prose: true,
        ..Goals::EXTRA_TEST
    };
}

fn check_corpus(rel: &str, split: Option<&str>, goals: &Goals) {
    let engine = Engine::new();
    let on = Switches {
        markdown_prose: goals.markdown_prose,
        ..Switches::default()
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    // Attacks by source: CRS's paranoia-level-2+ tests are written for
    // stricter rules than the default level, so they are told apart.
    let mut by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    // Benign records refused by kind of traffic (`benign-extra.jsonl`).
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in corpus(rel, split) {
        let built = Built::new(&r);
        let subject = built.subject(&r);
        let finding = engine.inspect(&subject, &on);
        if r.expect == "block" {
            let s = by_source.entry(r.source.clone()).or_default();
            s.0 += 1;
            s.1 += usize::from(finding.is_some());
        }
        if let Some(kind) = &r.kind {
            let k = by_kind.entry(kind.clone()).or_default();
            k.0 += 1;
            k.1 += usize::from(finding.is_some());
        }
        let t = tallies.entry(r.category.clone()).or_default();
        match (r.expect.as_str(), finding) {
            ("block", Some(_)) => {
                t.block += 1;
                t.caught += 1;
            }
            ("block", None) => {
                t.block += 1;
                t.misses.push(r.id.clone());
            }
            (_, Some(f)) => {
                t.allow += 1;
                t.refused += 1;
                t.false_positives.push(format!("{} ({})", r.id, f.rule));
            }
            (_, None) => t.allow += 1,
        }
    }

    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    println!("{rel} {}", split.unwrap_or(""));
    println!("| category | block | detected | rate | allow | refused | rate |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut allow, mut refused, mut block, mut caught) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (cat, t) in &tallies {
        println!(
            "| {cat} | {} | {} | {:.1}% | {} | {} | {:.1}% |",
            t.block,
            t.caught,
            pct(t.caught, t.block),
            t.allow,
            t.refused,
            pct(t.refused, t.allow)
        );
        allow += t.allow;
        refused += t.refused;
        block += t.block;
        caught += t.caught;
        // The goal for categories with more than 20 records; every
        // attack in our own small corpus must be caught.
        let small_own = rel.ends_with("bext.jsonl") && t.caught < t.block;
        if (t.block > 20 && pct(t.caught, t.block) < goals.detection) || small_own {
            failures.push(format!("{cat}: {:.1}% detected", pct(t.caught, t.block)));
        }
    }
    println!(
        "| **all** | {block} | {caught} | {:.1}% | {allow} | {refused} | {:.1}% |",
        pct(caught, block),
        pct(refused, allow)
    );
    for (source, (block, caught)) in &by_source {
        println!("attacks from {source}: {caught}/{block} ({:.1}%)", pct(*caught, *block));
    }
    for (kind, (all, refused)) in &by_kind {
        println!("benign {kind}: {refused}/{all} refused");
    }
    for (source, least) in goals.by_source {
        let (block, caught) = by_source.get(*source).copied().unwrap_or_default();
        if pct(caught, block) < *least {
            failures.push(format!("{source}: {:.1}% detected", pct(caught, block)));
        }
    }
    for (cat, least) in goals.by_category {
        let t = tallies.get(*cat);
        let rate = t.map_or(0.0, |t| pct(t.caught, t.block));
        if rate < *least {
            failures.push(format!("{cat}: {rate:.1}% detected, floor {least}%"));
        }
    }
    // The held-out half's misses are not named: nothing may be tuned on them.
    for (cat, t) in tallies.iter().filter(|_| split != Some("test")) {
        if !t.misses.is_empty() {
            println!("missed {cat}: {}", t.misses.join(" "));
        }
        if !t.false_positives.is_empty() {
            println!("refused {cat}: {}", t.false_positives.join(" "));
        }
    }
    if pct(refused, allow) >= goals.allow_refused {
        failures.push(format!("{:.1}% of allow records refused", pct(refused, allow)));
    }
    if let Some(benign) = tallies.get("benign")
        && pct(benign.refused, benign.allow) >= goals.benign_refused
    {
        failures.push(format!(
            "{:.1}% of benign records refused",
            pct(benign.refused, benign.allow)
        ));
    }
    assert!(failures.is_empty(), "goals missed: {failures:?}");
}
