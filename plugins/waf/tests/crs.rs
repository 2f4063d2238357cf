//! The CRS tier against the labelled corpus: the OWASP CRS files of
//! Debian's `modsecurity-crs` (tests/run installs it; `BEXT_CRS_RULES`
//! names another directory) run by bext's SecLang engine.
//! `cargo test -p bext-plugin-waf --test crs -- --nocapture --test-threads 1`
//! prints the tables docs/waf.md quotes.
//!
//! - Conformance: each record from CRS's regression tests names a rule
//!   (`crs-<rule>-<n>`); at the record's paranoia level, that rule must
//!   fire on a `block` record and stay silent on an `allow` one.
//! - Held-out detection per family and benign refused, on the `test`
//!   half of `extra.jsonl`, for the native rules, the CRS tier alone at
//!   PL1 and PL2, and both (native first, CRS on what it cannot clear).
//!   Floors are what was measured when they were written.

mod records;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bext_plugin_waf::crs::unclear;
use bext_plugin_waf::inspect::{Engine, Switches};
use bext_plugin_waf::seclang::{Exclusions, Options, RequestData, RuleSet};
use records::{Built, Record, corpus};

fn rules_dir() -> PathBuf {
    std::env::var_os("BEXT_CRS_RULES").map_or_else(|| PathBuf::from("/usr/share/modsecurity-crs/rules"), PathBuf::from)
}

fn load(paranoia: u8) -> RuleSet {
    let dir = rules_dir();
    RuleSet::load(
        &dir,
        &Options {
            paranoia,
            inbound_threshold: 5,
        },
    )
    .unwrap_or_else(|e| panic!("CRS rules (install Debian's modsecurity-crs, tests/run does): {e}"))
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 }
}

#[test]
fn engine_loads_the_crs_and_says_what_it_left_out() {
    let set = load(1);
    let stats = set.stats();
    println!(
        "rules compiled: {}, left out: {}, variables read as empty: {}",
        stats.rules,
        stats.skipped.len(),
        stats.empty_variables
    );
    for (id, why) in &stats.skipped {
        println!("  left out {id}: {why}");
    }
    assert!(stats.rules > 400, "{} rules", stats.rules);
    assert!(stats.skipped.len() < 20, "{:?}", stats.skipped);
}

/// Does the rule a CRS record names fire, as the test expects?
#[test]
fn conformance_on_crs_regression_requests() {
    let sets: Vec<RuleSet> = (1..=4).map(load).collect();
    // (set, level, rule in these files) -> (records, as expected)
    let mut by_level: BTreeMap<(&str, u8, bool), (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let files = [
        ("../../tests/waf-corpus/corpus.jsonl", "corpus"),
        ("../../tests/waf-corpus/extra.jsonl", "extra"),
    ];
    for (file, label) in files {
        for r in corpus(file, None).into_iter().filter(|r| r.source == "crs") {
            let Some(rule) = r.id.split('-').nth(1).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let level = r.paranoia.unwrap_or(1);
            let built = Built::new(&r);
            let data = RequestData::new(&built.subject(&r), "192.0.2.1");
            let verdict = sets[usize::from(level - 1)].evaluate(&data, &Exclusions::default());
            let fired = verdict.hits.iter().any(|h| h.id == rule);
            let ok = fired == (r.expect == "block");
            let present = sets[usize::from(level - 1)].has_rule(rule);
            let t = by_level.entry((label, level, present)).or_default();
            t.0 += 1;
            t.1 += usize::from(ok);
            if !ok {
                failures.push(r.id.clone());
            }
        }
    }
    println!("| set | paranoia level | rule in these files | records | rule behaves as the test expects |");
    println!("|---|---:|---|---:|---:|");
    let (mut all, mut ok, mut all_present, mut ok_present) = (0, 0, 0, 0);
    for ((label, level, present), (n, good)) in &by_level {
        println!(
            "| {label} | {level} | {present} | {n} | {good} ({:.1}%) |",
            pct(*good, *n)
        );
        all += n;
        ok += good;
        if *present {
            all_present += n;
            ok_present += good;
        }
    }
    println!("| all | | | {all} | {ok} ({:.1}%) |", pct(ok, all));
    println!(
        "| all | | true | {all_present} | {ok_present} ({:.1}%) |",
        pct(ok_present, all_present)
    );
    println!("not as expected: {}", failures.join(" "));
    assert!(pct(ok, all) >= CONFORMANCE_FLOOR, "conformance {:.1}%", pct(ok, all));
    let present = pct(ok_present, all_present);
    assert!(
        present >= PRESENT_FLOOR,
        "conformance on rules these files have {present:.1}%"
    );
}

/// The same on the records whose rule these files have (CRS 3.3.4 lacks
/// the rules CRS 4 added).
const PRESENT_FLOOR: f64 = 82.5;

/// The least conformance (percent) measured when this test was written.
const CONFORMANCE_FLOOR: f64 = 63.0;

/// How a configuration is judged.
enum Setup<'a> {
    Native,
    Crs(&'a RuleSet),
    /// Native first; CRS on what it cannot clear.
    Both(&'a RuleSet),
    /// Native first; CRS on everything it let through (`scope: all`).
    BothAll(&'a RuleSet),
}

#[derive(Default)]
struct Tally {
    block: usize,
    caught: usize,
    benign: usize,
    benign_refused: usize,
    allow: usize,
    allow_refused: usize,
}

fn measure(records: &[Record], setup: &Setup<'_>, engine: &Engine) -> BTreeMap<String, Tally> {
    let on = Switches::default();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for r in records {
        let built = Built::new(r);
        let subject = built.subject(r);
        let crs = |set: &RuleSet| {
            set.evaluate(&RequestData::new(&subject, "192.0.2.1"), &Exclusions::default())
                .denied_by
                .is_some()
        };
        let refused = match setup {
            Setup::Native => engine.inspect(&subject, &on).is_some(),
            Setup::Crs(set) => crs(set),
            Setup::Both(set) => engine.inspect(&subject, &on).is_some() || (unclear(&subject) && crs(set)),
            Setup::BothAll(set) => engine.inspect(&subject, &on).is_some() || crs(set),
        };
        let t = tallies.entry(r.category.clone()).or_default();
        match r.expect.as_str() {
            "block" => {
                t.block += 1;
                t.caught += usize::from(refused);
            }
            _ if r.category == "benign" => {
                t.benign += 1;
                t.benign_refused += usize::from(refused);
            }
            _ => {
                t.allow += 1;
                t.allow_refused += usize::from(refused);
            }
        }
    }
    tallies
}

/// Held-out detection per family and benign refused, for each setup; the
/// combined setup is held to floors per family.
#[test]
fn held_out_detection_native_crs_and_both() {
    let engine = Engine::new();
    let (pl1, pl2) = (load(1), load(2));
    for split in ["dev", "test"] {
        let records = corpus("../../tests/waf-corpus/extra.jsonl", Some(split));
        let setups = [
            ("native", Setup::Native),
            ("CRS PL1", Setup::Crs(&pl1)),
            ("CRS PL2", Setup::Crs(&pl2)),
            ("native + CRS PL1", Setup::Both(&pl1)),
            ("native + CRS PL2", Setup::Both(&pl2)),
            ("native + CRS PL1, scope all", Setup::BothAll(&pl1)),
        ];
        if split == "dev" {
            // What CRS refuses in the tuning half's benign traffic, by rule
            // (the held-out half's are never looked at).
            let mut by_rule: BTreeMap<u32, usize> = BTreeMap::new();
            for r in records.iter().filter(|r| r.category == "benign") {
                let built = Built::new(r);
                let v = pl1.evaluate(
                    &RequestData::new(&built.subject(r), "192.0.2.1"),
                    &Exclusions::default(),
                );
                if v.denied_by.is_some() {
                    for h in v.hits {
                        *by_rule.entry(h.id).or_default() += 1;
                    }
                }
            }
            println!("dev benign refused by CRS PL1, rules that scored: {by_rule:?}");
        }
        let results: Vec<_> = setups
            .iter()
            .map(|(name, s)| (*name, measure(&records, s, &engine)))
            .collect();
        println!("extra.jsonl {split}: attacks caught per family");
        println!(
            "| family | attacks | {} |",
            results.iter().map(|r| r.0).collect::<Vec<_>>().join(" | ")
        );
        println!("|---|---:|{}", "---:|".repeat(results.len()));
        let families: Vec<&String> = results[0].1.keys().filter(|k| results[0].1[*k].block > 0).collect();
        for fam in &families {
            let cells: Vec<String> = results
                .iter()
                .map(|(_, t)| format!("{:.1}%", pct(t[*fam].caught, t[*fam].block)))
                .collect();
            println!("| {fam} | {} | {} |", results[0].1[*fam].block, cells.join(" | "));
        }
        let sum = |t: &BTreeMap<String, Tally>, f: fn(&Tally) -> usize| t.values().map(f).sum::<usize>();
        let row = |label: &str, num: fn(&Tally) -> usize, den: fn(&Tally) -> usize| {
            let cells: Vec<String> = results
                .iter()
                .map(|(_, t)| {
                    format!(
                        "{}/{} ({:.1}%)",
                        sum(t, num),
                        sum(t, den),
                        pct(sum(t, num), sum(t, den))
                    )
                })
                .collect();
            println!("| {label} | | {} |", cells.join(" | "));
        };
        row("all attacks", |t| t.caught, |t| t.block);
        row("benign refused", |t| t.benign_refused, |t| t.benign);
        row("near misses refused", |t| t.allow_refused, |t| t.allow);
        if split == "test" {
            let both = &results[3].1;
            let mut failures = Vec::new();
            for (fam, floor) in FLOORS {
                if let Some(t) = both.get(*fam)
                    && pct(t.caught, t.block) < *floor
                {
                    failures.push(format!("{fam}: {:.1}% < {floor}%", pct(t.caught, t.block)));
                }
            }
            let benign = pct(sum(both, |t| t.benign_refused), sum(both, |t| t.benign));
            if benign > BENIGN_CEILING {
                failures.push(format!("benign refused {benign:.1}% > {BENIGN_CEILING}%"));
            }
            assert!(failures.is_empty(), "{failures:?}");
        }
    }
}

/// Least detection per family (percent) of native + CRS PL1 on the
/// held-out half, as measured when written.
const FLOORS: &[(&str, f64)] = &[
    ("generic", 82.0),
    ("java", 98.5),
    ("ldap", 94.0),
    ("lfi", 100.0),
    ("nodejs", 82.0),
    ("php", 76.4),
    ("rce", 82.2),
    ("rfi", 49.9),
    ("sqli", 87.0),
    ("ssrf", 94.9),
    ("ssti", 100.0),
    ("xss", 95.5),
];
/// Most benign refused (percent) of native + CRS PL1 on the held-out half.
const BENIGN_CEILING: f64 = 26.0;

/// A JSON body of `n` values, as an API client (or an attacker spending
/// the server's CPU) sends it.
fn json_body(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":{i},"name":"item {i}","tag":"a-{i}","note":"it's ok"}}"#))
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

/// What the CRS tier's cost grows with: every argument is read by each
/// ARGS rule, so a body's argument count multiplies the work; the tier's
/// `max_args`/`max_bytes` bound it (the e2e test
/// `the_crs_tier_bounds_what_it_inspects` checks the outcome). Prints the
/// CPU time of a JSON body by its number of values.
#[test]
fn crs_work_grows_with_the_number_of_arguments() {
    let set = load(1);
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", http::HeaderValue::from_static("application/json"));
        h.insert("host", http::HeaderValue::from_static("shop.example"));
        h
    };
    for n in [40usize, 200, 800] {
        let body = json_body(n / 4);
        let subject = bext_plugin_waf::inspect::Subject {
            method: &http::Method::POST,
            path: "/api/items",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        };
        let start = std::time::Instant::now();
        let data = RequestData::new(&subject, "192.0.2.1");
        let (args, bytes) = data.args_size();
        let verdict = set.evaluate(&data, &Exclusions::default());
        println!(
            "{args} arguments, {bytes} bytes: {:?}, score {}",
            start.elapsed(),
            verdict.score
        );
        assert_eq!(args, n);
    }
}
