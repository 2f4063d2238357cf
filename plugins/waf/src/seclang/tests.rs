//! Evaluation: chains, markers, setvar, ctl, counts, negation, phases,
//! anomaly scoring and paranoia levels, on small rule texts.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::inspect::Subject;

fn set(text: &str) -> RuleSet {
    RuleSet::compile(&[("t.conf".into(), text.into())], Path::new(".")).unwrap()
}

fn req(method: Method, target: &str, headers: &[(&'static str, &str)], body: &str) -> RequestData {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    RequestData::new(
        &Subject {
            method: &method,
            path,
            query,
            headers: &h,
            body: body.as_bytes(),
        },
        "192.0.2.1",
    )
}

fn get(target: &str) -> RequestData {
    req(Method::GET, target, &[], "")
}

fn denied(s: &RuleSet, r: &RequestData) -> Option<u32> {
    s.evaluate(r, &Exclusions::default()).denied_by
}

#[test]
fn rule_with_transformations_and_negation() {
    let s = set(
        r#"SecRule ARGS "@rx union select" "id:1,phase:2,deny,t:none,t:urlDecodeUni,t:lowercase"
SecRule REQUEST_METHOD "!@within GET POST" "id:2,phase:1,deny""#,
    );
    assert_eq!(denied(&s, &get("/?q=UNION%2520SELECT")), Some(1));
    assert_eq!(denied(&s, &get("/?q=union+station")), None);
    assert_eq!(denied(&s, &req(Method::PUT, "/", &[], "")), Some(2));
}

#[test]
fn chain_needs_every_link_and_sees_matched_var() {
    let s = set(r#"SecRule ARGS_NAMES "@rx ^a" "id:1,phase:2,deny,chain"
    SecRule MATCHED_VARS "@rx ^ab" "chain"
    SecRule ARGS "@contains x""#);
    assert_eq!(denied(&s, &get("/?abc=x")), Some(1));
    assert_eq!(denied(&s, &get("/?acc=x")), None);
    assert_eq!(denied(&s, &get("/?abc=y")), None);
}

#[test]
fn capture_and_macros_in_operator_arguments() {
    let s = set(r#"SecAction "id:1,phase:1,pass,setvar:tx.allowed=GET HEAD"
SecRule REQUEST_METHOD "!@within %{tx.allowed}" "id:2,phase:1,deny"
SecRule ARGS:v "@rx ^(\w+)-" "id:3,phase:2,pass,capture,chain"
    SecRule TX:1 "@streq evil" "setvar:tx.hit=%{tx.1}"
SecRule TX:hit "@streq evil" "id:4,phase:2,deny""#);
    assert_eq!(denied(&s, &req(Method::POST, "/", &[], "")), Some(2));
    assert_eq!(denied(&s, &get("/?v=evil-1")), Some(4));
    assert_eq!(denied(&s, &get("/?v=good-1")), None);
}

#[test]
fn skip_after_jumps_to_the_marker() {
    let s = set(
        r#"SecRule REQUEST_FILENAME "@beginsWith /static" "id:1,phase:2,pass,skipAfter:END"
SecRule ARGS "@rx x" "id:2,phase:2,deny"
SecMarker END
SecRule ARGS "@rx zz" "id:3,phase:2,deny""#,
    );
    assert_eq!(denied(&s, &get("/static/a?q=x")), None);
    assert_eq!(denied(&s, &get("/static/a?q=zz")), Some(3));
    assert_eq!(denied(&s, &get("/a?q=x")), Some(2));
}

#[test]
fn counts_selectors_and_exclusions_in_the_target_list() {
    let s = set(r#"SecRule &REQUEST_HEADERS:User-Agent "@eq 0" "id:1,phase:1,deny"
SecRule ARGS|!ARGS:pass|REQUEST_COOKIES:/^sess/ "@rx '" "id:2,phase:2,deny""#);
    assert_eq!(denied(&s, &get("/")), Some(1));
    let ua = ("user-agent", "x");
    assert_eq!(denied(&s, &req(Method::GET, "/?pass='", &[ua], "")), None);
    assert_eq!(denied(&s, &req(Method::GET, "/?user='", &[ua], "")), Some(2));
    assert_eq!(
        denied(&s, &req(Method::GET, "/", &[ua, ("cookie", "session=a'b")], "")),
        Some(2)
    );
    assert_eq!(
        denied(&s, &req(Method::GET, "/", &[ua, ("cookie", "other=a'b")], "")),
        None
    );
}

#[test]
fn ctl_removes_rules_and_targets_at_runtime() {
    let s = set(
        r#"SecRule REQUEST_FILENAME "@streq /editor" "id:1,phase:1,pass,ctl:ruleRemoveTargetById=3;ARGS:body"
SecRule REQUEST_FILENAME "@streq /off" "id:2,phase:1,pass,ctl:ruleRemoveById=3"
SecRule ARGS "@rx <script" "id:3,phase:2,deny""#,
    );
    assert_eq!(denied(&s, &get("/editor?body=<script")), None);
    assert_eq!(denied(&s, &get("/editor?title=<script")), Some(3));
    assert_eq!(denied(&s, &get("/off?title=<script")), None);
    let mut ex = Exclusions::default();
    ex.remove("3", &["q".into()]).unwrap();
    assert_eq!(s.evaluate(&get("/?q=<script"), &ex).denied_by, None);
    assert_eq!(s.evaluate(&get("/?r=<script"), &ex).denied_by, Some(3));
}

#[test]
fn phase_one_does_not_see_the_body() {
    let s = set(r#"SecRule ARGS "@rx evil" "id:1,phase:1,deny"
SecRule ARGS_POST "@rx evil" "id:2,phase:2,deny""#);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(denied(&s, &req(Method::POST, "/", &form, "a=evil")), Some(2));
}

#[test]
fn anomaly_scoring_with_paranoia_levels_and_a_threshold() {
    // The shape of CRS: rules add to the score, rules above the paranoia
    // level are skipped by marker, 949110 compares with the threshold.
    let rules = r#"SecRule TX:PARANOIA_LEVEL "@lt 1" "id:10,phase:2,pass,skipAfter:END-PL"
SecRule ARGS "@rx select" "id:11,phase:2,pass,severity:'CRITICAL',msg:'sqli',setvar:'tx.anomaly_score=+5'"
SecRule TX:PARANOIA_LEVEL "@lt 2" "id:12,phase:2,pass,skipAfter:END-PL"
SecRule ARGS "@rx '" "id:13,phase:2,pass,severity:'WARNING',setvar:'tx.anomaly_score=+3'"
SecMarker END-PL
SecRule TX:ANOMALY_SCORE "@ge %{tx.inbound_anomaly_score_threshold}" "id:949110,phase:2,deny""#;
    let with = |pl: u8, threshold: u32| {
        let mut texts = vec![(
            "setup".to_string(),
            setup(&Options {
                paranoia: pl,
                inbound_threshold: threshold,
            }),
        )];
        texts.push(("r.conf".into(), rules.into()));
        RuleSet::compile(&texts, Path::new(".")).unwrap()
    };
    let quote = get("/?q=o'brien");
    assert_eq!(denied(&with(1, 3), &quote), None);
    let v = with(2, 3).evaluate(&quote, &Exclusions::default());
    assert_eq!((v.denied_by, v.score), (Some(949110), 3));
    assert_eq!(denied(&with(2, 5), &quote), None);
    let v = with(1, 5).evaluate(&get("/?q=select"), &Exclusions::default());
    assert_eq!(v.denied_by, Some(949110));
    assert_eq!(
        (v.hits[0].id, v.hits[0].var.as_str(), v.hits[0].data.as_str()),
        (11, "ARGS:q", "select")
    );
    assert_eq!(v.hits[0].msg, "sqli");
}

#[test]
fn unsupported_rules_are_counted_and_bad_files_are_errors() {
    let s = set(r#"SecRule REMOTE_ADDR "@rbl x" "id:1,phase:1,deny"
SecRule ARGS "@rx (?<=a)b" "id:2,phase:2,deny,chain"
    SecRule ARGS "@rx c"
SecRule XML:/* "@rx x" "id:3,phase:2,deny"
SecRuleRemoveById 3"#);
    assert_eq!(s.stats().skipped.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((s.stats().rules, s.stats().empty_variables), (0, 1));
    let err = |t: &str| {
        RuleSet::compile(&[("f.conf".into(), t.into())], Path::new("."))
            .err()
            .unwrap()
            .to_string()
    };
    assert!(
        err("SecRule ARGS \"@rx a\" \"phase:2\"").contains("f.conf:1"),
        "{}",
        err("SecRule ARGS \"@rx a\" \"phase:2\"")
    );
    assert!(err("SecRule ARGS").contains("wrong number"));
    assert!(
        RuleSet::load(
            Path::new("/nonexistent"),
            &Options {
                paranoia: 1,
                inbound_threshold: 5
            }
        )
        .is_err()
    );
}

#[test]
fn multi_match_checks_the_value_after_each_transformation() {
    // `%3Cscript`: only the raw value has `%3C`, only the decoded one `<`.
    let raw = set(r#"SecRule ARGS "@rx %3c" "id:1,phase:2,deny,t:none,t:lowercase,t:urlDecode,multiMatch""#);
    let last = set(r#"SecRule ARGS "@rx %3c" "id:1,phase:2,deny,t:none,t:lowercase,t:urlDecode""#);
    let target = "/?q=%253Cscript";
    assert_eq!(denied(&raw, &get(target)), Some(1));
    assert_eq!(denied(&last, &get(target)), None);
}

#[test]
fn phrase_files_tags_engine_off_and_allow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.data"), "# comment\netc/passwd\n\nboot.ini\n").unwrap();
    let text = r#"SecRule REQUEST_FILENAME "@streq /off" "id:1,phase:1,pass,ctl:ruleEngine=Off"
SecRule REQUEST_FILENAME "@streq /notag" "id:2,phase:1,pass,ctl:ruleRemoveByTag=attack-lfi"
SecRule REQUEST_FILENAME "@streq /allowed" "id:3,phase:1,allow"
SecRule ARGS "@pmFromFile words.data" "id:4,phase:2,deny,tag:'attack-lfi',t:none,t:lowercase""#;
    let s = RuleSet::compile(&[("t.conf".into(), text.into())], dir.path()).unwrap();
    assert_eq!(denied(&s, &get("/x?f=../../ETC/PASSWD")), Some(4));
    assert_eq!(denied(&s, &get("/x?f=c:\\boot.ini")), Some(4));
    assert_eq!(denied(&s, &get("/x?f=readme")), None);
    assert_eq!(denied(&s, &get("/off?f=etc/passwd")), None);
    assert_eq!(denied(&s, &get("/notag?f=etc/passwd")), None);
    assert_eq!(denied(&s, &get("/allowed?f=etc/passwd")), None);
    // A data file that is not there is an error naming the rule's line.
    let err = RuleSet::compile(&[("t.conf".into(), text.into())], Path::new("/nonexistent"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("t.conf:4") && err.contains("words.data"), "{err}");
}

#[test]
fn request_line_basename_files_and_body_variables() {
    let s = set(
        r#"SecRule REQUEST_LINE "@beginsWith GET /a/b.php?" "id:1,phase:1,deny,chain"
    SecRule REQUEST_BASENAME "@streq b.php"
SecRule FILES "@rx \.php$" "id:2,phase:2,deny"
SecRule REQBODY_ERROR "!@eq 0" "id:3,phase:2,deny"
SecRule &ARGS_POST "@eq 2" "id:4,phase:2,deny""#,
    );
    assert_eq!(denied(&s, &get("/a/b.php?x=1")), Some(1));
    assert_eq!(denied(&s, &get("/a/b.phps?x=1")), None);
    let upload = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"shell.php\"\r\n\r\nx\r\n--B--\r\n";
    let mp = [("content-type", "multipart/form-data; boundary=B")];
    assert_eq!(denied(&s, &req(Method::POST, "/up", &mp, upload)), Some(2));
    let json = [("content-type", "application/json")];
    assert_eq!(denied(&s, &req(Method::POST, "/api", &json, "{\"a\":")), Some(3));
    assert_eq!(
        denied(&s, &req(Method::POST, "/api", &json, r#"{"a":1,"b":[2]}"#)),
        Some(4)
    );
}
