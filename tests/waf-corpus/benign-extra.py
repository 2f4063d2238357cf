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


# Round 7 (issue 24): more everyday traffic of the kinds, written
# from what those apps send, added with new ids so the first 122 keep theirs.
API_MORE = [
    ("POST", "/v1/payment_intents", {
        "amount": 2000, "currency": "usd", "payment_method_types": ["card"],
        "description": "Order #1042 -- 2x T-shirt (M), 1x mug", "metadata": {"cart_id": "c_9f8e"},
        "receipt_email": "o'hara@example.com"}),
    ("POST", "/api/chat.postMessage", {
        "channel": "C1H9RESGL", "blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": "*Deploy* of `api` to _prod_ finished in 3m 12s :white_check_mark:\n"
                                      "<https://ci.example.com/runs/9921|View run> | rollback with `/deploy undo`"}}]}),
    ("POST", "/api/1/envelope/", {
        "exception": {"values": [{"type": "TypeError",
                                  "value": "Cannot read properties of undefined (reading 'map')",
                                  "stacktrace": {"frames": [
                                      {"filename": "webpack:///./src/components/Cart.jsx", "function": "render",
                                       "lineno": 42, "context_line": "    return items.map((item) => <Row key={item.id} {...item} />);"},
                                      {"filename": "node_modules/react-dom/cjs/react-dom.development.js",
                                       "function": "renderWithHooks", "lineno": 14985}]}}]},
        "request": {"url": "https://app.example.com/cart?step=2", "method": "GET"}}),
    ("POST", "/v1/track", {
        "event": "Order Completed", "userId": "019mr8mf4r",
        "properties": {"order_id": "50314b8e9bcf000000000000", "total": 27.5, "coupon": "hasbros",
                       "products": [{"name": "Monopoly: 3rd Edition", "price": 19, "category": "Games"},
                                    {"name": "Uno Card Game", "price": 3, "category": "Games"}]}}),
    ("POST", "/rest/api/2/issue", {"fields": {
        "project": {"key": "OPS"}, "issuetype": {"name": "Bug"},
        "summary": "Login fails when the password contains ' or \"",
        "description": "Steps:\n1) go to /login\n2) type pa'ss\"word\n3) submit -> HTTP 500\n\n"
                       "Expected: 'wrong password' message."}}),
    ("PUT", "/3.0/lists/57afe96172/members/62eeb292278cc15f5817cb78f7790b08", {
        "email_address": "urist.mcvankab@example.com", "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Urist", "LNAME": "McVankab", "ADDRESS": "1 Main St; Apt 2"}}),
    ("POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Why does this print 'done'?\n\nfor i in range(3):\n    print(i)\n"
                                        "else:\n    print('done')"}]}),
    ("PUT", "/admin/api/2024-04/products/632910392.json", {"product": {
        "title": "Burton Custom Freestyle 151", "body_html": "<strong>Good snowboard!</strong><br>Sizes 151 &amp; 155",
        "vendor": "Burton", "tags": "Barnes & Noble, Big Air, John's Fav"}}),
    ("POST", "/api/todos", {"title": "Buy milk & eggs; call mom re: Sunday", "due": "2024-06-05", "done": False,
                            "notes": "-- don't forget the 'good' bread --"}),
    ("GET", "/v0/appABC123/Tasks?" + urllib.parse.urlencode({
        "filterByFormula": "AND({Status}='Done', IS_AFTER({Due}, TODAY()))", "maxRecords": "20",
        "sort[0][field]": "Due", "sort[0][direction]": "desc"}), None),
    ("POST", "/1/indexes/*/queries", {"requests": [{"indexName": "products", "params": urllib.parse.urlencode({
        "query": "iphone case", "hitsPerPage": 20, "facetFilters": json.dumps(["brand:Apple"])})}]}),
    ("POST", "/repos/acme/app/pulls/12/comments", {
        "body": "```suggestion\nconst total = items.reduce((sum, item) => sum + item.price, 0);\n```",
        "commit_id": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "path": "src/cart.js", "line": 14}),
    ("POST", "/v3/mail/send", {
        "personalizations": [{"to": [{"email": "john@example.com"}], "subject": "Your order #5512 has shipped!"}],
        "from": {"email": "orders@example.com", "name": "Acme Shop"},
        "content": [{"type": "text/html", "value": "<p>Hi John,</p><p>Track it <a href=\"https://acme.example/t/5512\">here</a>.</p>"}]}),
    ("PATCH", "/api/settings", {"theme": "dark", "shortcuts": {"save": "Ctrl+S", "search": "/", "palette": "Ctrl+Shift+P"},
                                "signature": "-- \nAnn Lee | Support | \"We're here to help\""}),
]

GRAPHQL_MORE = [
    ('query getProducts($first: Int!) { products(first: $first, query: "tag:sale AND price:<50") '
     '{ edges { node { id title handle priceRange { minVariantPrice { amount currencyCode } } } } } }',
     {"first": 12}),
    ("mutation AddComment($subjectId: ID!, $body: String!) { addComment(input: {subjectId: $subjectId, body: $body}) "
     "{ commentEdge { node { id } } } }",
     {"subjectId": "I_kwDOA", "body": "Looks good -- but `select` should be `SELECT` in the docs, and the `<table>` "
                                        "example is missing `</tr>`."}),
    ('query { search(query: "repo:acme/app is:issue is:open label:bug", type: ISSUE, first: 5) '
     '{ issueCount edges { node { ... on Issue { number title } } } } }', None),
    ('query Users { users(where: {_or: [{name: {_ilike: "%ann%"}}, {email: {_like: "%@example.com"}}]}, '
     'order_by: {created_at: desc}, limit: 10) { id name email } }', None),
    ("query Dashboard($id: ID!) { me { ...UserParts } project(id: $id) { name owner { ...UserParts } } } "
     "fragment UserParts on User { id login avatarUrl(size: 64) }", {"id": "p-7"}),
    ("mutation Update($id: ID!, $patch: PostPatch!) { updatePost(id: $id, patch: $patch) { id updatedAt } }",
     {"id": "42", "patch": {"title": "What's new in 2.0?", "body": "<p>Faster builds &amp; a new CLI.</p>"}}),
]

RICH_TEXT_MORE = [
    '<pre class="language-javascript"><code>if (a &lt; b) {\n  return fetch(`/api/items?page=${page}`);\n}</code></pre>',
    '<!--[if mso]><table role="presentation" width="600"><tr><td><![endif]-->'
    '<div style="max-width:600px;margin:0 auto;font-family:Arial,sans-serif">Hello {{first_name}},</div>'
    '<!--[if mso]></td></tr></table><![endif]-->',
    '<blockquote><p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server '
    'version for the right syntax to use near \'\' at line 1</p></blockquote><p>I get this after the upgrade. '
    'Any ideas?</p>',
    '<p>Great recipe!! I used 1/2 cup sugar instead of 3/4 cup &amp; it was still sweet :)</p>',
    '[caption id="attachment_12" align="alignnone" width="300"]<img class="size-medium wp-image-12" '
    'src="https://blog.example.com/wp-content/uploads/2024/05/cake-300x200.jpg" alt="" width="300" height="200" /> '
    'Birthday cake[/caption]',
    '<p>Thanks <span class="mention" data-mention="@ann" contenteditable="false">@ann</span>! '
    'Fixed in <a href="https://git.example.com/acme/app/commit/4f2a" rel="nofollow">4f2a</a>.</p>',
    '<h3>Ingredients</h3><ul><li>2 cups flour</li><li>1 tsp salt</li></ul><h3>Steps</h3>'
    '<ol><li>Mix; then rest for 30 min.</li><li>Bake at 200&deg;C (400&deg;F).</li></ol>',
    '<p><code>npm install --save lodash</code> then <code>import debounce from \'lodash/debounce\'</code>.</p>',
]

SEARCHES_MORE = [
    '"drop-down menu" css hover',
    "select all checkbox jquery",
    "kids' shoes size 13",
    '"O\'Hare" to "Midway" bus',
    "5'11\" in cm",
    '"script" tag defer vs async',
    "grep -r \"TODO\" . --include=*.js",
    "order by date desc limit 10",
    'laptop -refurbished "16gb ram"',
    "c++ vs rust performance",
    "what is /etc/hosts file",
    "sleep(1) in python",
    "wait for it... (live)",
    "rock & roll hall of fame tickets",
]

MARKDOWN_MORE = [
    "```python\nimport os\n\nfor name in os.listdir(path):\n    print(name)\n```\n\nThis lists the folder, "
    "but not recursively.",
    "Every Rust binary starts at `fn main() {}`, and a library has none.",
    "On Stack Overflow style indentation:\n\n    def greet(name):\n        return f\"Hello, {name}!\"\n\n"
    "Then call `greet('Ann')`.",
    "```go\nfunc main() {\n\tif err := run(); err != nil {\n\t\tlog.Fatal(err)\n\t}\n}\n```",
    "You can chain it:\n\n```js\nfetch('/api/items')\n  .then((r) => r.json())\n  .then((items) => render(items));\n```",
    "```diff\n- const limit = 10;\n+ const limit = Number(process.env.LIMIT ?? 10);\n```\n\nReads the limit from the env.",
    "Use `SELECT COUNT(*) FROM users WHERE active` instead of loading every row.",
    "```dockerfile\nFROM node:20-alpine\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\n"
    "CMD [\"node\", \"server.js\"]\n```",
    "Traceback (most recent call last):\n  File \"app.py\", line 12, in <module>\n    main()\n"
    "  File \"app.py\", line 8, in main\n    data = json.loads(raw)\nValueError: Expecting value: line 1 column 1 (char 0)",
    "```c\nint main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n```",
    "```java\npublic class Main {\n    public static void main(String[] args) {\n        System.out.println(\"Hi\");\n    }\n}\n```",
    "In Kotlin: `fun main() { println(\"Hi\") }`, in Swift: `func greet() { print(\"Hi\") }`.",
    "```ts\nexport function sum(xs: number[]): number {\n  return xs.reduce((a, b) => a + b, 0);\n}\n```",
    "Thanks! That fixed it. For others: the key was `ls = os.listdir(folder)` instead of `glob`.",
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


def gif_data_uri():
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00" \
          b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    return "data:image/gif;base64," + base64.b64encode(gif).decode()


def svg_icon_b64():
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
           b'<path d="M12 2L2 7l10 5 10-5-10-5z" fill="none" stroke="currentColor" stroke-width="2"/></svg>')
    return base64.b64encode(svg).decode()


def script_b64():
    code = (b"import os\nimport sys\n\n\ndef main():\n    for name in sorted(os.listdir(sys.argv[1])):\n"
            b"        print(name)\n\n\nif __name__ == '__main__':\n    main()\n")
    return base64.b64encode(code).decode()


def csv_b64():
    rows = b'name,email,notes\n"O\'Brien, Pat",pat@example.com,"said ""hi"" -- call back"\nAnn Lee,ann@example.com,\n'
    return base64.b64encode(rows).decode()



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

    # Round 7 records (see API_MORE).
    for i, (method, uri, obj) in enumerate(API_MORE, 1):
        body = None if obj is None else json.dumps(obj)
        out.append(record("benign-api-more-%d" % i, "api", method, uri, body,
                          None if obj is None else "application/json", {"Accept": "application/json"}))
    out.append(record("benign-api-more-form-1", "api", "POST", "/2010-04-01/Accounts/AC123/Messages.json",
                      urllib.parse.urlencode({"To": "+15558675310", "From": "+15017122661",
                                              "Body": "Your code is 123456. Don't share it (we'll never ask)."}),
                      "application/x-www-form-urlencoded"))
    for i, (query, variables) in enumerate(GRAPHQL_MORE, 1):
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        out.append(record("benign-graphql-more-%d" % i, "graphql", "POST", "/graphql", json.dumps(body),
                          "application/json", {"Accept": "application/json"}))
    batch = [{"operationName": "Me", "query": "query Me { me { id name } }", "variables": {}},
             {"operationName": "Cart", "query": "query Cart($id: ID!) { cart(id: $id) { lines { quantity } } }",
              "variables": {"id": "gid://shop/Cart/c1"}}]
    out.append(record("benign-graphql-more-batch-1", "graphql", "POST", "/graphql", json.dumps(batch),
                      "application/json", {"Accept": "application/json"}))
    out.append(record("benign-graphql-more-get-1", "graphql", "GET", "/graphql?" + urllib.parse.urlencode({
        "query": "query Product($handle: String!) { product(handle: $handle) { title description } }",
        "variables": json.dumps({"handle": "men's-shoes"})})))
    for i, html in enumerate(RICH_TEXT_MORE, 1):
        body = "title=" + urllib.parse.quote_plus("Re: update") + "&content=" + urllib.parse.quote_plus(html)
        out.append(record("benign-richtext-more-%d" % i, "richtext", "POST", "/admin/posts/new", body,
                          "application/x-www-form-urlencoded"))
        out.append(record("benign-richtext-more-json-%d" % i, "richtext", "PUT", "/api/pages/%d" % (100 + i),
                          json.dumps({"title": "Update", "html": html}), "application/json"))
    draft = {"blocks": [{"key": "a1b2c", "text": "Use <b> for bold; 'quotes' and \"doubles\" are fine.",
                         "type": "unstyled", "inlineStyleRanges": [{"offset": 4, "length": 3, "style": "CODE"}]},
                        {"key": "d3e4f", "text": "SELECT the best plan -- then upgrade.", "type": "header-two",
                         "inlineStyleRanges": []}], "entityMap": {}}
    out.append(record("benign-richtext-more-draftjs-1", "richtext", "POST", "/api/notes",
                      json.dumps({"content": json.dumps(draft)}), "application/json"))
    for i, q in enumerate(SEARCHES_MORE, 1):
        out.append(record("benign-search-more-%d" % i, "search", "GET", "/search?q=" + urllib.parse.quote_plus(q)))
    for i, md in enumerate(MARKDOWN_MORE, 1):
        out.append(record("benign-markdown-more-%d" % i, "markdown", "POST", "/api/issues/21/comments",
                          json.dumps({"body": md}), "application/json"))
        out.append(record("benign-markdown-more-form-%d" % i, "markdown", "POST", "/t/help/77/reply",
                          "raw=" + urllib.parse.quote_plus(md) + "&reply_to=1", "application/x-www-form-urlencoded"))
    uploads_more = [
        ("PUT", "/repos/acme/tools/contents/list_dir.py",
         {"message": "Add list_dir.py", "content": script_b64(), "branch": "main"}),
        ("POST", "/v3/mail/send", {"personalizations": [{"to": [{"email": "ann@example.com"}]}],
                                   "from": {"email": "billing@example.com"}, "subject": "Invoice",
                                   "attachments": [{"content": pdf_b64(), "filename": "invoice.pdf",
                                                    "type": "application/pdf", "disposition": "attachment"}]}),
        ("POST", "/api/imports", {"filename": "contacts.csv", "data": csv_b64()}),
        ("POST", "/api/icons", {"name": "layers", "svg": svg_icon_b64()}),
        ("POST", "/api/reactions", {"emoji": "party", "image": gif_data_uri()}),
    ]
    for i, (method, uri, obj) in enumerate(uploads_more, 1):
        out.append(record("benign-base64-more-%d" % i, "base64", method, uri, json.dumps(obj), "application/json"))
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    multipart = ("--%s\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ2 report\r\n"
                 "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n"
                 "Content-Type: text/plain\r\n\r\nAgenda: budget; hiring -- and the 'new' office.\r\n"
                 "--%s--\r\n") % (boundary, boundary, boundary)
    out.append(record("benign-base64-more-multipart-1", "base64", "POST", "/upload", multipart,
                      "multipart/form-data; boundary=" + boundary))
    forms_more = [
        "password=" + urllib.parse.quote_plus("x7#Lq$9!mZ(p") + "&password_confirmation="
        + urllib.parse.quote_plus("x7#Lq$9!mZ(p") + "&terms=1",
        "address2=" + urllib.parse.quote_plus("Units 5 & 6 (back door)") + "&city=" + urllib.parse.quote_plus("St. John's")
        + "&province=NL",
        "subject=" + urllib.parse.quote_plus("Refund? Order #5512 / #5513") + "&body="
        + urllib.parse.quote_plus("Hello,\r\n\r\nI returned both items on 03/06 -- tracking: 1Z999AA10123456784.\r\n\r\nThanks,\r\nAnn"),
        "display_name=" + urllib.parse.quote_plus("<Ann> the \"great\"") + "&pronouns=she%2Fher",
    ]
    for i, f in enumerate(forms_more, 1):
        out.append(record("benign-form-more-%d" % i, "form", "POST", "/forms/more/%d" % i, f,
                          "application/x-www-form-urlencoded"))
    for r in out:
        r["split"] = split_of(r["id"])
    return out


if __name__ == "__main__":
    for r in build():
        print(json.dumps(r, ensure_ascii=False))
