#!/usr/bin/env python3
"""Builds extra.jsonl: labelled requests that no bext rule was written for.

The given corpus (corpus.jsonl) is one half of the paranoia-level-1 CRS
regression tests plus libinjection's false positives; the other half is the
acceptance set, which bext never sees. To measure how the WAF holds up on
attacks it was not tuned on, this script builds more records the same way
from sources that cannot overlap that hidden half:

* OWASP CRS regression tests (Apache-2.0) of the rules at paranoia levels
  2-4 in the families the corpus covers. The paranoia-level-1 tests of those
  families are left out on purpose: the ones not in corpus.jsonl *are* the
  hidden half, and reading them would spoil the acceptance check.
* libinjection's SQLi and XSS sample files (BSD-3-Clause), `sqli-*.txt` and
  `xss-*.txt` (its `false_positives.txt` feeds the hidden half, so it is not
  used here either).
* gotestwaf's test cases (MIT): its attack payloads with the URL encoder, and
  its false-positive texts as benign records.
* Benign traffic written here by kind (API JSON, GraphQL, rich-text forms,
  search queries with quotes, Markdown with code, base64 uploads), and
  attack-family spellings written here from the families' descriptions
  (traversal encodings, SSRF address spellings, prototype pollution, LDAP
  filters): `source: handmade`.

Each record has the fields of corpus.jsonl plus `split`: `dev` (tune on it)
or `test` (report only), chosen by a fixed hash of the id, and for CRS
records `paranoia` (the rule's paranoia level).

Usage:
    python3 extra.py CRS_CHECKOUT LIBINJECTION_CHECKOUT GOTESTWAF_CHECKOUT > extra.jsonl

The checkouts used for the committed file: coreruleset 2cbd1d0,
libinjection 85e252a, gotestwaf 67dfd7a. Needs PyYAML.
"""

import base64
import glob
import hashlib
import json
import os
import re
import sys
import urllib.parse

import yaml

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.7",
}


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def split_of(record_id):
    """dev or test, by a fixed hash of the id (about half each)."""
    return "dev" if int(digest("split:" + record_id)[:8], 16) % 2 == 0 else "test"


def sample(items, key, n):
    """A deterministic sample of n items, chosen by hash."""
    return sorted(items, key=lambda i: digest(key + repr(i)))[:n]


# ---------------------------------------------------------------- CRS tests


def crs_rule_meta(crs):
    """rule id -> (paranoia level, severity) from the rule files."""
    meta = {}
    for path in glob.glob(os.path.join(crs, "rules", "REQUEST-9*.conf")):
        text = re.sub(r"\\\n", "", open(path, encoding="utf-8").read())
        for line in text.split("\n"):
            m = re.search(r"id:(\d+)", line)
            if not m:
                continue
            pl = re.search(r"paranoia-level/(\d)", line)
            sev = re.search(r"severity:'?(\w+)", line)
            meta[int(m.group(1))] = (
                int(pl.group(1)) if pl else None,
                sev.group(1) if sev else None,
            )
    return meta


def crs_category(rule):
    """The corpus's category for a CRS rule, or None to leave it out."""
    family = rule // 1000
    if rule in (934100, 934101, 934130, 934160):
        return "nodejs"
    if rule in (934110, 934120, 934190):
        return "ssrf"
    if rule in (934180, 934200):
        return "ssti"
    if family == 934:
        return "generic"
    return {
        913: "scanner",
        921: "protocol",
        930: "lfi",
        931: "rfi",
        932: "rce",
        933: "php",
        941: "xss",
        942: "sqli",
        944: "java",
    }.get(family)


def form_encode_plain(body):
    """go-ftw URL-encodes a form body's keys and values when it has no % or +."""
    if "%" in body or "+" in body:
        return body
    parts = []
    for pair in body.split("&"):
        k, sep, v = pair.partition("=")
        parts.append(urllib.parse.quote_plus(k) + sep + urllib.parse.quote_plus(v))
    return "&".join(parts)


def safe_uri(uri):
    """Percent-encode what hyper refuses in a request-target (as the corpus does)."""
    out = []
    for ch in uri:
        if ch in '"<>`{}|\\^' or ord(ch) > 126 or ord(ch) < 33:
            out.append("".join("%%%02X" % b for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def crs_records(crs, given_keys):
    meta = crs_rule_meta(crs)
    records = []
    for path in sorted(glob.glob(os.path.join(crs, "tests/regression/tests/REQUEST-9*/*.yaml"))):
        doc = yaml.safe_load(open(path, encoding="utf-8"))
        if not doc or "rule_id" not in doc:
            continue
        rule = int(doc["rule_id"])
        category = crs_category(rule)
        pl, severity = meta.get(rule, (None, None))
        if category is None or pl is None or pl < 2:
            # PL1 tests are the corpus and its hidden half: not ours to read.
            continue
        if category == "protocol" and pl > 2:
            continue  # PL3/4 protocol rules are site policy, not attacks
        for test in doc.get("tests", []):
            stages = test.get("stages", [])
            if len(stages) != 1:
                continue
            stage = stages[0]
            inp, out = stage.get("input", {}), stage.get("output", {})
            log = out.get("log") or {}
            expect_ids = log.get("expect_ids") or []
            no_expect_ids = log.get("no_expect_ids") or []
            if "encoded_request" in inp or "encoded_request" in stage:
                continue
            if inp.get("version", "HTTP/1.1") != "HTTP/1.1":
                continue
            if rule in expect_ids and severity == "CRITICAL":
                expect = "block"
            elif rule in no_expect_ids and not expect_ids:
                expect = "allow"
            else:
                continue
            uri = str(inp.get("uri", "/"))
            if not uri.startswith("/"):
                continue
            uri = safe_uri(uri)
            headers = {str(k): str(v) for k, v in (inp.get("headers") or {}).items()}
            headers.pop("Content-Length", None)
            headers.pop("content-length", None)
            if any(re.search(r"[^\x20-\x7e\t]", k + v) for k, v in headers.items()):
                continue
            body = inp.get("data")
            if isinstance(body, list):
                body = "\n".join(body)
            if body is not None:
                body = str(body)
                ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
                if ctype is None:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    body = form_encode_plain(body)
                elif "multipart" in ctype.lower():
                    body = body.replace("\r\n", "\n").replace("\n", "\r\n")
            record = {
                "id": "crs-%d-%s" % (rule, test["test_id"]),
                "source": "crs",
                "category": category,
                "paranoia": pl,
                "method": str(inp.get("method", "GET")),
                "uri": uri,
                "headers": headers,
                "body": body,
                "expect": expect,
            }
            records.append(record)
    return records


# ------------------------------------------------------------- libinjection


def libinjection_records(li):
    records = []
    for path in sorted(glob.glob(os.path.join(li, "data", "*.txt"))):
        name = os.path.basename(path)[:-4]
        if name.startswith("sqli-"):
            category, n = "sqli", 12
        elif name.startswith("xss-"):
            category, n = "xss", 12
        else:
            continue  # false_positives.txt feeds the hidden half; tbd-* are unsure
        lines = []
        for i, line in enumerate(open(path, encoding="utf-8", errors="replace")):
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                lines.append((i + 1, line))
        for lineno, line in sample(lines, name, n):
            # libinjection's reader: + is a space, %XX a byte.
            text = urllib.parse.unquote_plus(line, errors="replace")
            if not text.strip():
                continue
            records.append(
                carrier(
                    "libinjection-%s-%d" % (name, lineno),
                    "libinjection",
                    category,
                    text,
                    "block",
                )
            )
    return records


# ----------------------------------------------------------------- carriers


def carrier(record_id, source, category, text, expect, where=None):
    """Put a payload where a real request carries user input: chosen by hash."""
    places = ["query", "form", "json", "multipart"]
    place = where or places[int(digest("place:" + record_id)[:8], 16) % len(places)]
    headers = dict(BROWSER, Host="shop.example.com")
    uri, body, method = "/search?q=" + urllib.parse.quote_plus(text), None, "GET"
    if place == "path":
        uri = "/files/" + urllib.parse.quote(text, safe="/")
    elif place == "form":
        method, uri = "POST", "/comment"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = "name=ann&text=" + urllib.parse.quote_plus(text)
    elif place == "json":
        method, uri = "POST", "/api/items"
        headers["Content-Type"] = "application/json"
        body = json.dumps({"title": "x", "value": text})
    elif place == "multipart":
        method, uri = "POST", "/upload"
        headers["Content-Type"] = "multipart/form-data; boundary=----bextboundary"
        body = (
            "------bextboundary\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
            + text
            + "\r\n------bextboundary--\r\n"
        )
    return {
        "id": record_id,
        "source": source,
        "category": category,
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": body,
        "expect": expect,
    }


# ---------------------------------------------------------------- gotestwaf

GOTESTWAF_TYPES = {
    "owasp/ldap-injection": "ldap",
    "owasp/path-traversal": "lfi",
    "community/community-lfi": "lfi",
    "owasp/shell-injection": "rce",
    "owasp/rce-urlparam": "rce",
    "community/community-rce": "rce",
    "owasp/sql-injection": "sqli",
    "community/community-sqli": "sqli",
    "owasp/xss-scripting": "xss",
    "community/community-xss": "xss",
    "owasp/sst-injection": "ssti",
}
PLACES = {
    "URLParam": "query",
    "HTMLForm": "form",
    "JSONRequest": "json",
    "HTMLMultipartForm": "multipart",
    "URLPath": "path",
}


def load_testcase(path):
    """A gotestwaf test case; a few are YAML that only Go's parser takes, so a
    file PyYAML refuses is read entry by entry and the entries it refuses are
    left out."""
    text = open(path, encoding="utf-8").read()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        pass
    doc, key = {}, None
    for line in text.split("\n"):
        if re.match(r"^\w+:\s*$", line):
            key = line.split(":")[0]
            doc[key] = []
        elif key and line.startswith("  - "):
            try:
                doc[key].append(yaml.safe_load(line[4:]))
            except yaml.YAMLError:
                continue
    return doc


def gotestwaf_records(gtw):
    records = []
    for name, category in sorted(GOTESTWAF_TYPES.items()):
        doc = load_testcase(os.path.join(gtw, "testcases", name + ".yml"))
        places = [PLACES[p] for p in doc.get("placeholder", []) if p in PLACES]
        for i, payload in enumerate(doc["payload"]):
            for place in places:
                rid = "gotestwaf-%s-%d-%s" % (name.split("/")[1], i + 1, place)
                records.append(carrier(rid, "gotestwaf", category, str(payload), "block", place))
    doc = load_testcase(os.path.join(gtw, "testcases/false-pos/texts.yml"))
    for i, text in enumerate(doc["payload"]):
        rid = "gotestwaf-fp-%d" % (i + 1)
        records.append(carrier(rid, "gotestwaf", "benign", str(text), "allow"))
    return records


# ----------------------------------------------------------------- handmade

SEARCHES = [
    'she said "it\'s fine" and left',
    "O'Reilly's \"Learning SQL\" 3rd edition",
    '"select all" checkbox not working in gmail',
    "rock 'n' roll hall of fame tickets",
    '"drop shipping" vs "dropshipping"',
    "what does 'or' mean in a boolean search?",
    "men's shoes size 10 -leather",
    '"union jack" cushion covers',
    "where to insert a sim card iphone 15",
    "how to delete a column from a table in word",
    "1/2\" copper pipe fittings",
    "the 'update' button doesn't work; what now?",
    "script writing course near me",
    "C# vs. C++ -- which is faster?",
    "5' 11\" in cm",
    "alert icon svg free",
    "iframe embed youtube responsive",
    "node.js require vs import",
    "etc etc meaning",
    "passwd vs password",
    "<3 emoji meaning",
    "exec summary template (word)",
    "1=1 in math proof",
    "a & b's wedding photos",
    "java.lang.NullPointerException how to fix",
    "process.env in react",
    "cat /dev/null explained",
    "localhost:3000 refused to connect",
    "http://localhost not working windows 11",
    "what is 169.254 address",
    "ldap (objectClass=user) filter examples",
    "../ meaning in file paths",
    "curl -X POST json example",
    "SELECT * FROM book club reading list",
    "wget tutorial for beginners",
]

MARKDOWN = [
    "## Setup\n\nRun `npm install` then `npm start`.\n\n```js\nconst x = require('./config');\nconsole.log(x.port);\n```\n",
    "To list files use `ls -la`.\n\n```bash\nfor f in *.txt; do echo \"$f\"; done\n```\n",
    "Query:\n\n```sql\nSELECT name, price FROM products WHERE price < 10 ORDER BY name;\n```\n\nThat returns the cheap ones.",
    "Use `<details>` for collapsible sections. *Note*: it works on GitHub.",
    "> Quote from the docs: the path `../assets/logo.png` is relative.\n\n1. one\n2. two",
    "Python:\n\n```python\nimport os\nprint(os.path.join('a', 'b'))\n```",
    "Tables:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nand a link [home](https://example.com/?a=1&b=2).",
    "Inline math $a < b$ and `x => x * 2` arrow functions.",
]

RICH_TEXT = [
    "<p>Hello <strong>team</strong>, the meeting is at <em>3pm</em>.</p>",
    '<p>See <a href="https://example.com/docs?page=2">the docs</a> for details.</p>',
    "<ul><li>Milk</li><li>Eggs &amp; bacon</li></ul>",
    '<p><img src="/uploads/cat.png" alt="my cat" width="200"></p>',
    "<blockquote>It's not a bug, it's a feature.</blockquote>",
    "<h2>Release notes</h2><p>Fixed the <code>select</code> dropdown.</p>",
    '<p style="text-align:center">Centered text</p>',
    "<table><tr><td>Q1</td><td>$1,200</td></tr></table>",
]

GRAPHQL = [
    "query { product(id: \"42\") { name price reviews(first: 5) { text rating } } }",
    "mutation AddToCart($id: ID!, $qty: Int!) { addToCart(productId: $id, quantity: $qty) { total } }",
    "query Search($q: String!) { search(query: $q, filter: {inStock: true}) { edges { node { id title } } } }",
    "{ viewer { login repositories(last: 3, orderBy: {field: CREATED_AT, direction: DESC}) { nodes { name } } } }",
    "query { user(email: \"ann@example.com\") { id roles } }",
]

API_JSON = [
    {"name": "Ann O'Neil", "email": "ann@example.com", "tags": ["vip", "newsletter"]},
    {"order": {"items": [{"sku": "A-1", "qty": 2}], "note": "leave at the door; ring twice"}},
    {"query": "price > 10 and colour = 'red'", "page": 2, "per_page": 50},
    {"filter": {"status": {"in": ["open", "pending"]}}, "sort": "-created_at"},
    {"title": "Why I switched from bash to zsh", "body": "It's mostly the completion."},
    {"settings": {"theme": "dark", "redirect_url": "https://app.example.com/home"}},
    {"comment": "The select & update statements are in chapter 4.", "rating": 5},
    {"path": "docs/guide/intro.md", "branch": "main", "message": "Fix typo in intro"},
    {"constructor_name": "Acme Builders Ltd", "prototype_version": "2.1"},
    {"event": "page_view", "url": "/products?id=7&ref=home", "ts": 1733400000},
    {"script": "Chapter one: the hero arrives.", "lang": "en"},
    {"address": {"line1": "10 Downing St.", "city": "London", "postcode": "SW1A 2AA"}},
]


def handmade_benign():
    records = []
    for i, q in enumerate(SEARCHES):
        records.append(carrier("handmade-x-search-%d" % (i + 1), "handmade", "benign", q, "allow", "query"))
    for i, md in enumerate(MARKDOWN):
        records.append(carrier("handmade-x-markdown-%d" % (i + 1), "handmade", "benign", md, "allow", "json"))
        records.append(carrier("handmade-x-markdown-form-%d" % (i + 1), "handmade", "benign", md, "allow", "form"))
    for i, html in enumerate(RICH_TEXT):
        records.append(carrier("handmade-x-richtext-%d" % (i + 1), "handmade", "benign", html, "allow", "form"))
    for i, gql in enumerate(GRAPHQL):
        rid = "handmade-x-graphql-%d" % (i + 1)
        rec = carrier(rid, "handmade", "benign", "", "allow", "json")
        rec["uri"] = "/graphql"
        rec["body"] = json.dumps({"query": gql, "variables": {"id": "42", "qty": 1, "q": "red shoes"}})
        records.append(rec)
    for i, obj in enumerate(API_JSON):
        rid = "handmade-x-api-%d" % (i + 1)
        rec = carrier(rid, "handmade", "benign", "", "allow", "json")
        rec["method"] = ["POST", "PUT", "PATCH"][i % 3]
        rec["uri"] = "/api/v1/resources/%d" % (i + 1)
        rec["headers"]["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
        rec["body"] = json.dumps(obj)
        records.append(rec)
    for i in range(8):
        rid = "handmade-x-base64-%d" % (i + 1)
        blob = hashlib.sha256(("blob%d" % i).encode()).digest() * (4 + 4 * i)
        b64 = base64.b64encode(blob).decode()
        rec = carrier(rid, "handmade", "benign", "", "allow", "json")
        rec["uri"] = "/api/uploads"
        rec["body"] = json.dumps({"filename": "photo-%d.jpg" % i, "data": b64})
        if i % 2:
            rec["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
            rec["body"] = "filename=scan-%d.pdf&data=%s" % (i, urllib.parse.quote_plus(b64))
        records.append(rec)
    return records


# Attack spellings written from each family's description, not from any record.
FAMILY_ATTACKS = {
    "lfi": [
        "..%2f..%2f..%2fetc%2fpasswd",
        "..%252f..%252f..%252fetc%252fshadow",
        "%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
        "..%c0%af..%c0%af..%c0%afwindows%c0%afwin.ini",
        "....//....//....//etc/hosts",
        "..\\..\\..\\windows\\system32\\drivers\\etc\\hosts",
        "..%5c..%5c..%5cboot.ini",
        "/proc/self/environ",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "file:///etc/passwd",
        "../../../../var/log/apache2/access.log",
        "%2e%2e/%2e%2e/%2e%2e/etc/group",
        "..%u2215..%u2215etc%u2215passwd",
        "/var/www/../../etc/issue",
        "....\\\\....\\\\windows\\\\win.ini",
        "..;/..;/WEB-INF/web.xml",
        "/home/user/.ssh/id_rsa",
        "/root/.bash_history",
        "..%00/..%00/etc/passwd",
    ],
    "ssrf": [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://2852039166/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://127.0.0.1:6379/",
        "http://127.1/admin",
        "http://0/",
        "http://localhost.:8080/",
        "http://[::1]/server-status",
        "gopher://127.0.0.1:6379/_INFO",
        "dict://localhost:11211/stats",
        "file:///etc/passwd",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://localtest.me/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://192.168.0.1/admin",
        "http://10.0.0.5:8500/v1/agent/self",
        "ldap://127.0.0.1:389/",
        "http://LOCALHOST/",
    ],
    "nodejs": [
        '{"__proto__": {"isAdmin": true}}',
        '{"constructor": {"prototype": {"polluted": 1}}}',
        "__proto__[admin]=1",
        "constructor[prototype][role]=admin",
        "require('child_process').exec('id')",
        "process.mainModule.require('fs').readFileSync('/etc/passwd')",
        "global.process.binding('spawn_sync')",
        "new Function('return process')().exit()",
        "this.constructor.constructor('return process')()",
        "require(\"child_process\").spawnSync(\"ls\")",
        "eval(String.fromCharCode(114,101,113,117,105,114,101))",
        "res.end(require('fs').readdirSync('.').toString())",
        "Object.prototype.polluted=1",
        "__proto__.toString=1",
        "{\"a\":{\"__proto__\":{\"shell\":\"/bin/sh\"}}}",
        "[].constructor.constructor('return this.process')()",
        "import('child_process').then(m=>m.exec('id'))",
        "while(true){}",
        "Array(1e9).fill(0)",
        "process.kill(process.pid)",
    ],
    "ldap": [
        "*)(uid=*))(|(uid=*",
        "admin)(&)",
        "*)(|(password=*))",
        "admin*)((|userPassword=*)",
        "x)(objectClass=*",
        "*)(&(objectClass=user)(cn=*",
        "(|(cn=*)(mail=*))",
        "jdoe)(|(memberOf=cn=admins,dc=example,dc=com)",
        "*))%00",
        "admin)(!(&(1=0",
        ")(cn=*))(|(cn=*",
        "*(|(mail=*))",
        "(&(uid=*)(userPassword=*))",
        "x*)(|(objectclass=*)",
        "%2a%29%28uid%3d%2a",
        "*)(uid=*))(|(uid=admin",
        "test)(|(sn=*)",
        "*)(|(givenName=a*",
        "((uid=admin))",
        "*)(description=*",
    ],
}


def handmade_attacks():
    records = []
    for category, payloads in sorted(FAMILY_ATTACKS.items()):
        for i, text in enumerate(payloads):
            rid = "handmade-x-%s-%d" % (category, i + 1)
            if category == "lfi" and i % 2 == 0:
                rec = carrier(rid, "handmade", category, "", "block", "query")
                rec["uri"] = "/download?file=" + safe_uri(text)
            else:
                rec = carrier(rid, "handmade", category, text, "block")
            records.append(rec)
    return records


def main():
    crs, li, gtw = sys.argv[1:4]
    here = os.path.dirname(os.path.abspath(__file__))
    given = set()
    for line in open(os.path.join(here, "corpus.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        given.add((r["method"], r["uri"], r["body"]))
    records = crs_records(crs, given) + libinjection_records(li) + gotestwaf_records(gtw)
    records += handmade_benign() + handmade_attacks()
    seen, out = set(), []
    for r in records:
        key = (r["method"], r["uri"], r["body"])
        if key in seen or key in given:
            continue  # identical requests once; nothing copied from corpus.jsonl
        seen.add(key)
        r["split"] = split_of(r["id"])
        out.append(r)
    for r in out:
        print(json.dumps(r, ensure_ascii=False, separators=(",", ":")))


if __name__ == "__main__":
    main()
