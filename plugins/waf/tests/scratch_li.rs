#[test]
fn scratch() {
    let vals = [
        "## setup\n\nrun `npm install` then `npm start`.\n\n```js\nconst x = require('./config');\nconsole.log(x.port);\n```\n",
        "to list files use `ls -la`.\n\n```bash\nfor f in *.txt; do echo \"$f\"; done\n```\n",
        "python:\n\n```python\nimport os\nprint(os.path.join('a', 'b'))\n```",
    ];
    for r in bext_plugin_waf::rules::RULES {
        let re = regex::bytes::RegexBuilder::new(r.pattern)
            .unicode(false)
            .build()
            .unwrap();
        for v in vals {
            if let Some(m) = re.find(v.as_bytes()) {
                println!("{} {:?}", r.id, String::from_utf8_lossy(m.as_bytes()));
            }
        }
    }
}
