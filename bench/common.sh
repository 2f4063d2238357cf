# Shared by the load benchmarks (sourced): run from the repository root,
# the settings every script takes from the environment, and a check for
# the tools a script needs.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# need TOOL...: installs the Debian package of each missing tool (as
# tests/run does for the tests' servers), or stops with a clear message
# when it cannot.
need() {
  local tool package missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    package=$(debian_package "$tool")
    [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local apt=(apt-get)
  [ "$(id -u)" = 0 ] || apt=(sudo apt-get)
  echo "installing ${missing[*]} (Debian packages) for $(basename "$0")" >&2
  "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null \
    || { echo "could not install ${missing[*]}: install them and run $(basename "$0") again" >&2; exit 1; }
  # Debian starts the packaged nginx; the benches start their own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    (command -v systemctl >/dev/null 2>&1 && systemctl stop nginx 2>/dev/null) || service nginx stop >/dev/null 2>&1 || true
  fi
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool after installing ${missing[*]}" >&2; exit 1; }
  done
}

# debian_package TOOL: the Debian package that installs TOOL.
debian_package() {
  case $1 in
    nginx) echo nginx-light ;;
    h2load) echo nghttp2-client ;;
    valgrind | callgrind_control | callgrind_annotate) echo valgrind ;;
    taskset | unshare) echo util-linux ;;
    ip) echo iproute2 ;;
    cc) echo gcc ;;
    node) echo nodejs ;;
    perf) echo linux-perf ;;
    *) echo "$1" ;; # wrk, heaptrack, curl, python3, npm, openssl
  esac
}

# A browser's request headers (user agent, accept, language, cookies,
# referer): what security.sh and instructions.sh send, each adding its own
# Authorization.
BROWSER_HEADERS=(
  -H "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
  -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
  -H "Accept-Language: en-US,en;q=0.9"
  -H "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"
  -H "Referer: https://shop.example.com/category/shoes?color=red"
)

# small_page FILE: the same small file for every static bench (a typical
# small HTML page, 1 KiB), so their figures compare.
small_page() {
  python3 - "$1" <<'PY'
import sys
body = "<!doctype html><title>bench</title>" + "<p>bext static benchmark</p>" * 34
open(sys.argv[1], "w").write(body[:1024])
PY
}

# callgrind_per_request CG_FILE URL COMMAND...: runs COMMAND (a server)
# under callgrind, warms it with wrk, counts what it executes for DURATION
# seconds of one connection's requests to URL (with the wrk arguments in
# the WRK_ARGS array, headers say) and prints instructions per request.
# The server's output goes to CG_FILE.log.
callgrind_per_request() {
  local cg=$1
  CG_URL=$2
  shift 2
  callgrind_count "$cg" cg_curl_ready cg_wrk_one_connection "$@"
}
cg_curl_ready() { curl -s -o /dev/null "$CG_URL"; }
cg_wrk_one_connection() { # seconds -> requests done
  wrk -t1 -c1 -d"$1s" "${WRK_ARGS[@]}" "$CG_URL" | awk '/requests in/ {print $1}'
}

# callgrind_count CG_FILE READY LOAD COMMAND...: the same with other
# clients: READY (a command) succeeds once the server answers, LOAD SECONDS
# sends load for that long and prints how many requests (or handshakes) it
# completed. Prints instructions per request.
callgrind_count() {
  local cg=$1 ready=$2 load=$3; shift 3
  local per_thread=()
  [ -n "${CG_THREADS:-}" ] && per_thread=(--separate-threads=yes)
  valgrind --tool=callgrind --instr-atstart=no "${per_thread[@]}" --callgrind-out-file="$cg" "$@" >"$cg.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do "$ready" && break; sleep 0.2; done
  "$load" 2 >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local n total
  n=$("$load" "$DURATION")
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -z "${CG_THREADS:-}" ]; then
    total=$(callgrind_annotate "$cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    echo $((total / n))
    return
  fi
  # CG_THREADS=1: one file per thread; their sum, and each thread's share
  # per request in $cg.threads (with the functions a thread ran, to name it).
  local f t
  total=0
  : >"$cg.threads"
  for f in "$cg".1-*; do
    t=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    [[ $t =~ ^[0-9]+$ ]] || t=0 # a thread that ran nothing while counted
    total=$((total + t))
    echo "$((t / n)) $(grep -q 'fn=.*write_out' "$f" && echo access-log-thread || echo other)" >>"$cg.threads"
  done
  echo $((total / n))
}

# idle_per_connection NAME PID PORT MODE: opens N connections to PORT on
# loopback, sends one GET /index.html on each (MODE h1: HTTP/1.1; h2c:
# HTTP/2 with prior knowledge; tls: HTTP/1.1 over TLS with SNI $TLS_NAME,
# verified against $TLS_CA, ALPN http/1.1), reads each answer, then leaves
# them idle and prints how much PID's resident memory grew per connection
# WAIT seconds later; then, while they still idle, times REQS requests
# (default 100) on each of FRESH (default 4) new connections, one request
# at a time, and prints the p50, p99 and worst answer time.
idle_per_connection() {
  python3 - "$3" "$N" "$2" "$WAIT" "$4" "$1" "${TLS_CA:-}" "${TLS_NAME:-}" "${FRESH:-4}" "${REQS:-100}" <<'PY'
import resource, socket, ssl, struct, sys, time
port, n, pid, wait, mode, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6]
ca, sni = sys.argv[7], sys.argv[8]
fresh, reqs = int(sys.argv[9]), int(sys.argv[10])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, n + 1000))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
def frame(t, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", stream) + payload
if mode == "h2c":  # preface, SETTINGS, GET /index.html (HPACK: static indexes and literals)
    req = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
           + frame(1, 5, 1, b"\x82\x86\x44\x0b/index.html\x41\x01x"))
else:
    host = sni.encode() if mode == "tls" else b"x"
    req = b"GET /index.html HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
if mode == "tls":
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
time.sleep(0.5)
base = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname=sni)
    s.sendall(req)
    socks.append(s)
for s in socks:
    s.settimeout(10)
    got = 0
    while got < 1100:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    if mode == "h2c":
        s.sendall(frame(4, 1, 0, b""))
time.sleep(wait)
held = rss()
open_ = sum(1 for s in socks if s.fileno() >= 0)
print(f"{name:6} {mode:4} {open_} idle connections: {(held - base) / n:6.2f} KiB each ({base/1024:.1f} -> {held/1024:.1f} MiB)")

# While they idle: FRESH connections of REQS requests each, one at a time,
# in the same protocol; the time from sending a request to the end of its
# answer.
def read_exact(s, k):
    data = b""
    while len(data) < k:
        chunk = s.recv(k - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data
def h2_answer(s, stream):  # frames until END_STREAM on `stream`
    while True:
        head = read_exact(s, 9)
        length, kind, flags, sid = int.from_bytes(head[:3], "big"), head[3], head[4], int.from_bytes(head[5:], "big") & 0x7FFFFFFF
        read_exact(s, length)
        if sid == stream and kind in (0, 1) and flags & 1:
            return
def h1_answer(s):  # head, then Content-Length bytes
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    if len(body) < length:
        read_exact(s, length - len(body))
times = []
for _ in range(fresh):
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname=sni)
    s.settimeout(10)
    if mode == "h2c":  # and a connection window large enough for all answers
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(8, 0, 0, struct.pack(">I", 1 << 30)))
    for i in range(reqs):
        started = time.perf_counter()
        if mode == "h2c":
            stream = 2 * i + 1
            s.sendall(frame(1, 5, stream, b"\x82\x86\x44\x0b/index.html\x41\x01x"))
            h2_answer(s, stream)
        else:
            s.sendall(req)
            h1_answer(s)
        times.append(time.perf_counter() - started)
    s.close()
if times:
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
    print(f"{name:6} {mode:4} meanwhile {len(times)} requests on {fresh} fresh connections: p50 {pct(0.5):.3f} ms, p99 {pct(0.99):.3f} ms, max {times[-1] * 1000:.3f} ms")
for s in socks:
    s.close()
PY
}

# proxy_platform DIR PORT UPSTREAM_PORT PLUGIN...: DIR/platform.toml with
# one proxy app (the default app) on 127.0.0.1:PORT to
# 127.0.0.1:UPSTREAM_PORT, one worker, no access log and no per-client
# connection cap, and DIR/manifests turning the PLUGINs off.
proxy_platform() {
  local dir=$1 port=$2 upstream=$3; shift 3
  mkdir -p "$dir/manifests"
  printf 'name: vhosts\n' > "$dir/manifests/vhosts.yaml"
  for p in "$@"; do printf 'name: %s\nenabled: false\n' "$p" > "$dir/manifests/$p.yaml"; done
  cat > "$dir/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$port"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "up"
[platform.limits]
max_connections_per_ip = 0
[apps.up]
runtime = "proxy"
upstream = "http://127.0.0.1:$upstream"
TOML
}

# cpu_ns PID...: the CPU time of those processes, every thread, in
# nanoseconds (the scheduler's own count, /proc/PID/task/*/schedstat):
# per request, what a core of each server serves when the client, not the
# server, limits requests per second.
cpu_ns() { local p; for p in "$@"; do cat /proc/"$p"/task/*/schedstat; done | awk '{t += $1} END {print t}'; }

# security_manifests DIR WAF GATEWAY AUTHN: the plugin manifests of
# bench/security.sh in DIR/manifests, each security plugin on or off
# (true/false): the waf in block mode with every rule, the gateway with a
# per-IP limit too high to refuse, CORS and security headers, authn
# verifying an HS256 JWT signed with $BENCH_JWT_SECRET.
security_manifests() {
  mkdir -p "$1/manifests"
  printf 'name: vhosts\n' > "$1/manifests/vhosts.yaml"
  # A folder overrides only the plugins it names: deploy is on by default.
  printf 'name: deploy\nenabled: false\n' > "$1/manifests/deploy.yaml"
  printf 'name: waf\nenabled: %s\n' "$2" > "$1/manifests/waf.yaml"
  cat > "$1/manifests/gateway.yaml" <<YAML
name: gateway
enabled: $3
config:
  limits: [{ by: ip, rpm: 100000000, burst: 1000000 }]
  cors: { origins: [https://shop.example.com] }
  security_headers: basic
YAML
  printf 'name: authn\nenabled: %s\nconfig:\n  jwt_secret_env: BENCH_JWT_SECRET\n' "$4" > "$1/manifests/authn.yaml"
}

# security_site DIR PORT WAF GATEWAY AUTHN: DIR/platform.toml (one worker,
# no access log, the static site ../www) and its manifests as above.
security_site() {
  security_manifests "$1" "$3" "$4" "$5"
  cat > "$1/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$2"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
[apps.site]
source = "../www"
TOML
}

# bench_jwt: an HS256 JWT (sub user-42, far expiry) signed with
# $BENCH_JWT_SECRET, which it sets when unset.
export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-0123456789abcdef0123456789abcdef-bench}
bench_jwt() {
  python3 - <<'PY'
import base64, hmac, hashlib, json, os
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b(json.dumps({"sub": "user-42", "exp": 4000000000, "scope": "read"}).encode())
sig = b(hmac.new(os.environ["BENCH_JWT_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}

# post_body DIR: DIR/body (16 KiB) and DIR/post.lua, a wrk script that POSTs
# the file named by $BODY_FILE (the proxy benches' request body).
post_body() {
  head -c 16384 /dev/zero | tr '\0' z > "$1/body"
  cat > "$1/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
}
