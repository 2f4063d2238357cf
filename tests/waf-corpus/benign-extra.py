#!/usr/bin/env python3
"""Builds benign-extra.jsonl: ordinary traffic of the kinds a WAF refuses by
mistake, written for bext from the formats themselves (what rich-text
editors emit, what GraphQL clients and JSON APIs send, what people type in a
search box, Markdown in issue trackers and forums, uploads as base64, tokens
and cookies as browsers send them), not from any corpus record.

Every record is `benign` and `allow`, with the fields of corpus.jsonl, a
`kind` (api, graphql, richtext, search, markdown, base64, jwt, cookie, form)
and a `split`: `dev` (refusals may be looked at and fixed) or `test` (only
its totals are reported), chosen by the same fixed hash of the id as
extra.py. The script is deterministic:

    python3 benign-extra.py > benign-extra.jsonl
"""

import base64
import hashlib
import json
import urllib.parse

BROWSER = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}


def split_of(record_id):
    """dev or test, by a fixed hash of the id (as extra.py does)."""
    digest = hashlib.sha256(("split:" + record_id).encode()).hexdigest()
    return "dev" if int(digest[:8], 16) % 2 == 0 else "test"


def record(rid, kind, method, uri, body=None, ctype=None, headers=None):
    h = dict(BROWSER, Host="app.example.com")
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    return {
        "id": rid,
        "source": "handmade",
        "category": "benign",
        "kind": kind,
        "method": method,
        "uri": uri,
        "headers": h,
        "body": body,
        "expect": "allow",
    }


def b64url(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(header, claims, seed):
    sig = base64.urlsafe_b64encode(hashlib.sha512(seed.encode()).digest() * 4).decode().rstrip("=")
    return "%s.%s.%s" % (b64url(header), b64url(claims), sig[:342])


def blob(seed, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(("%s-%d" % (seed, i)).encode()).digest()
        i += 1
    return out[:n]


# API JSON bodies, as shops, payment, chat and analytics clients send them.
API = [
    ("POST", "/v1/customers", {
        "email": "jenny.rosen@example.com", "name": "Jenny Rosen", "metadata": {"order_id": "6735"},
        "address": {"line1": "510 Townsend St", "postal_code": "98140", "city": "San Francisco", "state": "CA",
                    "country": "US"}}),
    ("POST", "/api/orders", {
        "items": [{"sku": "TSHIRT-RED-M", "qty": 2}, {"sku": "MUG-01", "qty": 1}],
        "notes": "Leave it at the back door; ring twice -- thanks!", "coupon": "SUMMER-24"}),
    ("PATCH", "/api/users/me", {
        "bio": "Backend dev. I write SQL & Rust; opinions are my own.", "website": "https://jenny.dev",
        "location": "Berlin / Remote"}),
    ("POST", "/api/chat.postMessage", {
        "channel": "C024BE91L", "text": "Deploy finished :rocket: <https://ci.example.com/builds/812|build #812>",
        "thread_ts": "1503435956.000247"}),
    ("POST", "/collect", [
        {"event": "click", "props": {"selector": "#buy-now > button.primary", "path": "/product/42?ref=home"}},
        {"event": "scroll", "props": {"depth": 75, "title": "Men's shoes | Acme"}}]),
    ("POST", "/api/search", {
        "query": "wireless headphones", "filters": {"price": {"gte": 20, "lte": 150}, "brand": ["Sony", "Bose"]},
        "sort": [{"field": "rating", "order": "desc"}], "page": 2}),
    ("POST", "/products/_search", {
        "query": {"bool": {"must": [{"match": {"title": "drop table legs"}}],
                           "filter": [{"range": {"date": {"gte": "now-7d/d"}}}]}}}),
    ("POST", "/hooks/github", {
        "ref": "refs/heads/main",
        "commits": [{"message": "Fix: escape quotes in search (#123)\n\nUse parameterized queries instead of "
                                "string concatenation.", "author": {"name": "Ann Lee"}}]}),
    ("PUT", "/api/addresses/7", {
        "street": "12 O'Connell St.", "city": "Dublin", "notes": "Flat 3 -- buzz \"O'Brien\""}),
    ("POST", "/api/i18n", {"greeting": "\u00bfQu\u00e9 tal?", "fr": "C'est l'\u00e9t\u00e9",
                           "ja": "\u3053\u3093\u306b\u3061\u306f"}),
    ("PUT", "/api/jobs/backup", {"cron": "*/15 * * * *", "timezone": "Europe/Berlin", "label": "nightly backup"}),
    ("POST", "/api/events", {"title": "1:1 w/ Sam", "start": "2024-06-03T10:00:00+02:00",
                             "rrule": "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20241231T000000Z"}),
    ("POST", "/api/flags", {"key": "new-checkout", "rule": "country in ['DE', 'FR'] and plan == 'pro'",
                            "rollout": 25}),
    ("PATCH", "/api/tickets/88", {"status": "closed", "resolution": "Won't fix -- works as intended.",
                                  "tags": ["ui", "select-box", "drop-down"]}),
]

# GraphQL requests, in the shapes of the spec's and common clients' examples.
GRAPHQL = [
    ("query GetRepo($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { ...RepoFields "
     "issues(first: 10, states: [OPEN]) { edges { node { title } } } } } "
     "fragment RepoFields on Repository { name description stargazerCount }",
     {"owner": "acme", "name": "app"}),
    ("mutation CreateIssue($input: CreateIssueInput!) { createIssue(input: $input) { issue { number url } } }",
     {"input": {"repositoryId": "R_kgDOAbc", "title": "Save button does nothing",
                "body": "Steps:\n1. open settings\n2. click 'Save'\n3. nothing happens"}}),
    ("query Hero($episode: Episode, $withFriends: Boolean!) { hero(episode: $episode) { name "
     "friends @include(if: $withFriends) { name } } }", {"episode": "JEDI", "withFriends": False}),
    ('{ search(text: "an") { __typename ... on Human { name height } ... on Droid { name primaryFunction } } }',
     None),
    ("query IntrospectionQuery { __schema { queryType { name } types { name kind } } }", None),
    ("subscription OnComment($postId: ID!) { commentAdded(postId: $postId) { id content author { name } } }",
     {"postId": "42"}),
    ("mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) "
     "{ token } }", {"email": "ann@example.com", "password": "Tr0ub4dor&3"}),
    ('query { products(first: 20, filter: {name: {contains: "select"}, price: {lt: 50}}, '
     'orderBy: {price: ASC}) { edges { cursor node { id name } } } }', None),
]

# Rich text as editors emit it: TinyMCE, Quill, CKEditor, Gutenberg, Trix,
# Summernote, and a forum's BBCode.
RICH_TEXT = [
    '<p style="text-align: center;"><span style="color: #e03e2d; font-size: 14pt;">Big sale!</span></p>\n'
    '<p><a href="https://shop.example.com/sale?utm_source=news&amp;utm_medium=email" target="_blank" '
    'rel="noopener">Shop now</a></p>',
    '<table style="border-collapse: collapse; width: 100%;" border="1"><tbody><tr>'
    '<td style="width: 50%;">Item</td><td style="width: 50%;">Price</td></tr></tbody></table>',
    '<p><img src="/media/uploads/2024/06/banner.jpg" alt="Summer banner" width="600" height="200" /></p>',
    '<p class="ql-align-center"><strong>Hello</strong> <em>world</em></p><ol><li>First</li>'
    '<li class="ql-indent-1">Nested</li></ol>',
    '<pre class="ql-syntax" spellcheck="false">const total = items.reduce((a, b) =&gt; a + b.price, 0);\n</pre>',
    '<iframe class="ql-video" frameborder="0" allowfullscreen="true" '
    'src="https://www.youtube.com/embed/dQw4w9WgXcQ?showinfo=0"></iframe><p><br></p>',
    '<p><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf'
    'DwAChwGA60e6kgAAAABJRU5ErkJggg=="></p>',
    '<figure class="image image-style-side"><img src="https://cdn.example.com/a.png" alt="chart">'
    '<figcaption>Q3 revenue</figcaption></figure><blockquote><p>Numbers don\'t lie.</p></blockquote>',
    '<p>Contact <a href="mailto:sales@example.com?subject=Quote%20request">sales</a> or call '
    '<a href="tel:+441234567890">+44 1234 567890</a>.</p>',
    '<!-- wp:paragraph {"align":"center"} -->\n<p class="has-text-align-center">Welcome to our site!</p>\n'
    '<!-- /wp:paragraph -->',
    '<div>Meeting notes<br><br></div><ul><li>ship v2 &amp; fix login</li><li>review PR #42</li></ul>',
    '<p><span style="font-family: Georgia, serif;"><u>Chapter 1</u></span></p><p><font color="#ff0000">'
    'Note:</font> prices include VAT.</p>',
    "[quote=\"ann\"]It's [b]not[/b] a bug[/quote] See [url=https://example.com/faq#returns]the FAQ[/url].",
    '<h2 id="faq">FAQ</h2><details><summary>How do I return an item?</summary><p>Within 30 days.</p></details>',
]

# What people type in a search box.
SEARCHES = [
    '"new york" OR "los angeles" hotels',
    'title:"release notes" -draft author:ann',
    'site:stackoverflow.com "select * from" where clause null',
    "o'reilly \"sql cookbook\" 2nd ed",
    "8' or 10' extension cord",
    "2x4 lumber 8' price",
    '"and" vs "&" in book titles',
    "c# string.format {0} example",
    "how to exit vim :wq!",
    "rm -rf node_modules windows",
    "price < 100 and rating >= 4",
    "SELECT vs SELECT DISTINCT performance",
    '1/4" drill bit set',
    "<div> vs <span>",
    "user's guide -pdf",
    "don't stop believin' lyrics",
    "100% cotton t-shirt",
    "what does || mean in javascript",
]

# Markdown with code: READMEs, issue comments, forum answers.
MARKDOWN = [
    "# acme-cli\n\nA small tool.\n\n## Install\n\n```bash\ncargo install acme-cli\n```\n\n## Usage\n\n"
    "```bash\nacme serve --config app.toml\n```\n",
    "I get this error when I run `npm run build`:\n\n```\nError: Cannot find module 'webpack'\n"
    "    at Function.Module._resolveFilename (node:internal/modules/cjs/loader:1039:15)\n```\n\nAny idea?",
    "Steps to reproduce:\n\n```sh\ngit clone https://github.com/acme/app.git\ncd app\nmake test\n```\n\n"
    "Expected: tests pass. Actual: `make: *** [test] Error 1`",
    "You can debounce it like this:\n\n```js\nfunction debounce(fn, ms) {\n  let t;\n"
    "  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };\n}\n```",
    "```python\nwith open('data.csv') as f:\n    rows = list(csv.reader(f))\n```\n\nThen `len(rows)` gives the count.",
    "The query is slow:\n\n```sql\nSELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.created_at > now() - interval '7 days';\n```\n\nIs there an index I'm missing?",
    "Run it with `docker run -p 8080:80 nginx:alpine` and open http://localhost:8080 in the browser.",
    "Set `DATABASE_URL` in your environment, e.g. `postgres://app:secret@db:5432/app`, then restart.",
    "Rebase with `git rebase -i HEAD~3` and squash the fixups before you merge.",
    "- [x] tests\n- [ ] docs\n- [ ] changelog\n\nCloses #123. cc @ann",
    "Use `<br>` for line breaks, or wrap the text in `<p>` tags.",
    "```rust\nfn main() {\n    println!(\"{}\", std::env::args().count());\n}\n```\n\nPrints the number of arguments.",
    "My compose file:\n\n```yaml\nservices:\n  web:\n    image: nginx\n    ports:\n      - \"80:80\"\n```",
    "Try:\n\n```bash\ncurl -H 'Authorization: Bearer $TOKEN' https://api.example.com/v1/me\n```\n\n"
    "and check the status code.",
    "In Go you would write `if err != nil { return err }` after every call.",
    "> Quoting the docs: *the cache is per worker*\n\nSo two workers means two caches, right?",
]


def png_data_uri():
    return ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
            "60e6kgAAAABJRU5ErkJggg==")


def jpeg_b64(seed):
    return base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                            + blob(seed, 900)).decode()


def pdf_b64():
    pdf = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] "
           b"/Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n"
           b"trailer << /Root 1 0 R >>\n%%EOF\n")
    return base64.b64encode(pdf).decode()


def readme_b64():
    text = b"# Notes\n\nRun `make` to build; see docs/ for more.\n" * 3
    enc = base64.b64encode(text).decode()
    return "\n".join(enc[i:i + 60] for i in range(0, len(enc), 60)) + "\n"


def build():
    out = []
    for i, (method, uri, obj) in enumerate(API, 1):
        out.append(record("benign-api-%d" % i, "api", method, uri, json.dumps(obj), "application/json",
                          {"Accept": "application/json"}))
    for i, (query, variables) in enumerate(GRAPHQL, 1):
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        out.append(record("benign-graphql-%d" % i, "graphql", "POST", "/graphql", json.dumps(body),
                          "application/json", {"Accept": "application/json"}))
    persisted = {"variables": json.dumps({"first": 20, "after": "YXJyYXljb25uZWN0aW9uOjE5"}),
                 "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(
                     b"query Products").hexdigest()}})}
    out.append(record("benign-graphql-get-1", "graphql", "GET",
                      "/graphql?operationName=Products&" + urllib.parse.urlencode(persisted)))
    for i, html in enumerate(RICH_TEXT, 1):
        body = "title=Update&content=" + urllib.parse.quote_plus(html)
        out.append(record("benign-richtext-%d" % i, "richtext", "POST", "/admin/posts/new", body,
                          "application/x-www-form-urlencoded"))
        out.append(record("benign-richtext-json-%d" % i, "richtext", "PUT", "/api/pages/%d" % i,
                          json.dumps({"title": "Update", "html": html}), "application/json"))
    for i, q in enumerate(SEARCHES, 1):
        out.append(record("benign-search-%d" % i, "search", "GET", "/search?q=" + urllib.parse.quote_plus(q)))
    for i, md in enumerate(MARKDOWN, 1):
        out.append(record("benign-markdown-%d" % i, "markdown", "POST", "/api/issues/17/comments",
                          json.dumps({"body": md}), "application/json"))
        out.append(record("benign-markdown-form-%d" % i, "markdown", "POST", "/t/help/42/reply",
                          "raw=" + urllib.parse.quote_plus(md) + "&reply_to=3", "application/x-www-form-urlencoded"))
    uploads = [
        {"filename": "avatar.png", "file": png_data_uri()},
        {"filename": "photo.jpg", "content_type": "image/jpeg", "data": jpeg_b64("photo")},
        {"name": "invoice-2024-06.pdf", "content": pdf_b64()},
        {"message": "Update README", "content": readme_b64(), "sha": hashlib.sha1(b"readme").hexdigest()},
        {"avatar": "data:image/jpeg;base64," + jpeg_b64("avatar")},
    ]
    for i, obj in enumerate(uploads, 1):
        out.append(record("benign-base64-%d" % i, "base64", "PUT" if "sha" in obj else "POST", "/api/files",
                          json.dumps(obj), "application/json"))
    form = "avatar=" + urllib.parse.quote_plus("data:image/jpeg;base64," + jpeg_b64("form")) + "&save=1"
    out.append(record("benign-base64-form-1", "base64", "POST", "/settings/profile", form,
                      "application/x-www-form-urlencoded"))
    tokens = [
        ({"alg": "RS256", "typ": "JWT", "kid": "0a1b2c"},
         {"iss": "https://auth.example.com/", "sub": "auth0|5f7c8ec7c33c6c004bbafe82", "aud": ["https://api.example.com",
          "https://example.eu.auth0.com/userinfo"], "iat": 1717400000, "exp": 1717486400,
          "scope": "openid profile email read:orders write:orders"}),
        ({"alg": "HS256", "typ": "JWT"}, {"sub": "1234567890", "name": "John O'Doe", "admin": False,
                                          "iat": 1516239022}),
        ({"alg": "ES256", "kid": "key-2024"}, {"sub": "ann", "roles": ["user", "billing"], "tenant": "acme-corp",
                                               "https://example.com/claims/groups": ["eng", "on-call"]}),
    ]
    for i, (header, claims) in enumerate(tokens, 1):
        out.append(record("benign-jwt-%d" % i, "jwt", "GET", "/api/orders?page=1", headers={
            "Accept": "application/json", "Authorization": "Bearer " + jwt(header, claims, "jwt%d" % i)}))
    out.append(record("benign-jwt-cookie-1", "jwt", "GET", "/dashboard", headers={
        "Cookie": "id_token=" + jwt({"alg": "RS256"}, {"sub": "u-88", "email": "ann@example.com"}, "cookie")}))
    cart = urllib.parse.quote(json.dumps({"items": [{"id": 42, "qty": 2, "name": "Men's shoes"}], "cur": "EUR"}))
    consent = ("isGpcEnabled=0&datestamp=Mon+Jun+03+2024+10%3A00%3A00+GMT%2B0200+(Central+European+Summer+Time)"
               "&version=202401.1.0&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0004%3A0")
    cookies = [
        "_ga=GA1.2.1234567890.1717400000; _gid=GA1.2.987654321.1717400000; _gat_UA-12345-1=1; "
        "_fbp=fb.1.1717400000000.1234567890",
        "cart=" + cart + "; currency=EUR; lang=en-GB",
        "OptanonConsent=" + consent + "; OptanonAlertBoxClosed=2024-06-03T08:00:00.000Z",
        "__Secure-next-auth.session-token=" + base64.urlsafe_b64encode(blob("jwe", 600)).decode().rstrip("=")
        + "; __Host-next-auth.csrf-token=" + hashlib.sha256(b"csrf").hexdigest() + "%7C"
        + hashlib.sha256(b"csrf2").hexdigest(),
        "_shopify_y=2d6b1e0a-6f47-4a2a-9d7c-1f2e3d4c5b6a; cart_sig=" + hashlib.md5(b"sig").hexdigest()
        + "; secure_customer_sig=; _orig_referrer=https%3A%2F%2Fwww.google.com%2F; "
        "_landing_page=%2Fcollections%2Fall%3Fsort_by%3Dprice-ascending",
    ]
    for i, c in enumerate(cookies, 1):
        out.append(record("benign-cookie-%d" % i, "cookie", "GET", "/account", headers={"Cookie": c}))
    forms = [
        "email=ann%40example.com&password=" + urllib.parse.quote_plus("p@ss'w0rd\"; -- 1=1?") + "&remember=on",
        "name=Se%C3%A1n+O%27Neill&email=sean%40example.ie&message="
        + urllib.parse.quote_plus("Hi -- I ordered 2 items (order #5512) but got 1. Can you check? Thanks!"),
        "address1=" + urllib.parse.quote_plus("Apt. #4; rear entrance") + "&city=Portland&zip=97201&country=US",
        "q=" + urllib.parse.quote_plus("union square") + "&near=" + urllib.parse.quote_plus("San Francisco, CA"),
        "comment=" + urllib.parse.quote_plus("This is 100% the best -- 5/5 would buy again :)") + "&rating=5",
        "bio=" + urllib.parse.quote_plus("Sysadmin. Likes cats, /dev/null jokes and 'select' music."),
    ]
    for i, f in enumerate(forms, 1):
        out.append(record("benign-form-%d" % i, "form", "POST", "/forms/%d" % i, f,
                          "application/x-www-form-urlencoded"))
    for r in out:
        r["split"] = split_of(r["id"])
    return out


if __name__ == "__main__":
    for r in build():
        print(json.dumps(r, ensure_ascii=False))
