#[test]
fn scratch() {
    let vals: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string("/tmp/waf3_sqli_vals.json").unwrap()).unwrap();
    for (id, v) in vals {
        let r = libinjectionrs::detect_sqli(v.as_bytes());
        println!(
            "{id}\t{}\t{:?}\t{}",
            r.is_injection(),
            r.fingerprint.map(|f| f.to_string()),
            v.chars().take(80).collect::<String>().replace('\n', "\\n")
        );
    }
}
