#!/usr/bin/env bash
# Static-file load benchmark: bext vs nginx, same files, same 1,000 virtual
# hosts, same load generator, same run. nginx runs in two variants
# (sendfile on with tcp_nopush, sendfile off; open_file_cache on both) and
# bext is compared with the faster one. Prints requests/s, p99, each
# server's CPU time per request (and wrk's) and the ratios of both, then
# bext's resident memory idle and with 10,000 idle keep-alive
# connections.
#
#   bench/run.sh                 # defaults: 1000 hosts, 10 s per round, 2 rounds
#   HOSTS=1000 DURATION=10 ROUNDS=2 CONNECTIONS=64 bench/run.sh
#   BEXT=/path/to/older/bext bench/run.sh   # another build against the same nginx
#   WORKERS=2 bench/run.sh       # bext `workers = 2` against nginx `worker_processes 2`,
#                                # servers and wrk (2 threads) sharing CPUs 0-1
#
# Needs nginx, wrk and python3 (Debian: apt-get install nginx-light wrk).
# The servers are pinned to CPU 0 with one worker each, wrk to CPU 1, so the
# two do not fight over the same core. Loopback only.
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-1}
# NGINX_LISTEN=" reuseport": a listening socket per nginx worker, as bext
# has per worker (try both ways with WORKERS=2; keep nginx's faster).
NGINX_LISTEN=${NGINX_LISTEN:-}
if [ "$WORKERS" -gt 1 ]; then
  # Scaling: every process on the same cores, as on a real machine.
  SERVER_CPU=${SERVER_CPU:-0-$((WORKERS - 1))}
  CLIENT_CPU=${CLIENT_CPU:-0-$((WORKERS - 1))}
fi
source "$(dirname "$0")/common.sh"

HOSTS=${HOSTS:-1000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
BEXT_PORT=${BEXT_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
OUT=bench/out

need nginx wrk python3 taskset

# BEXT=path/to/bext measures another build (an older one, to compare).
if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi

rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/nginx/logs"
small_page "$OUT/www/index.html"

# bext: one app per host, all sharing the same document root.
{
  echo "[platform]"
  echo "listen = \"127.0.0.1:$BEXT_PORT\""
  echo "access_log = false"
  echo "watch = false"
  echo "workers = $WORKERS"
  echo "[platform.limits]"
  echo "idle_timeout = \"300s\""
  echo "header_read_timeout = \"300s\""
  # Every idle connection of the memory test comes from 127.0.0.1.
  echo "max_connections_per_ip = 0"
  echo "max_connections = $((IDLE_CONNECTIONS + 1000))"
  for i in $(seq 1 "$HOSTS"); do
    echo "[apps.site$i]"
    echo "source = \"www\""
    echo "domains = [\"site$i.bench.test\"]"
  done
} > "$OUT/platform.toml"

# nginx: one server block per host and variant, same root, no access log.
{
  echo "worker_processes $WORKERS;"
  echo "pid $PWD/$OUT/nginx/nginx.pid;"
  echo "error_log $PWD/$OUT/nginx/logs/error.log warn;"
  echo "events { worker_connections 20000; }"
  echo "http {"
  echo "  access_log off;"
  echo "  tcp_nodelay on;"
  echo "  keepalive_timeout 300s; keepalive_requests 1000000;"
  echo "  open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;"
  echo "  include /etc/nginx/mime.types;"
  echo "  server_names_hash_max_size 4096; server_names_hash_bucket_size 128;"
  echo "  client_body_temp_path $PWD/$OUT/nginx; proxy_temp_path $PWD/$OUT/nginx;"
  echo "  fastcgi_temp_path $PWD/$OUT/nginx; uwsgi_temp_path $PWD/$OUT/nginx; scgi_temp_path $PWD/$OUT/nginx;"
  # Two variants in the one worker: sendfile with tcp_nopush (nginx's
  # usual advice) on NGINX_PORT, and plain writes (often faster for a
  # 1 KiB file) on NGINX_PORT+1; bext is compared with the faster one.
  for i in $(seq 1 "$HOSTS"); do
    # Listen options go on an address's first server only.
    opts=""; [ "$i" = 1 ] && opts=$NGINX_LISTEN
    echo "  server { listen 127.0.0.1:$NGINX_PORT$opts; server_name site$i.bench.test; root $PWD/$OUT/www; sendfile on; tcp_nopush on; }"
    echo "  server { listen 127.0.0.1:$((NGINX_PORT + 1))$opts; server_name site$i.bench.test; root $PWD/$OUT/www; sendfile off; }"
  done
  echo "}"
} > "$OUT/nginx/nginx.conf"

# wrk spreads requests over every host.
cat > "$OUT/hosts.lua" <<LUA
local n = $HOSTS
local i = 0
request = function()
  i = (i % n) + 1
  return wrk.format("GET", "/index.html", { Host = "site" .. i .. ".bench.test" })
end
LUA

ulimit -n 65536 2>/dev/null || true
cleanup() { kill "${BEXT_PID:-}" 2>/dev/null || true; [ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/platform.toml" > "$OUT/bext.out" 2> "$OUT/bext.err" &
BEXT_PID=$!
taskset -c "$SERVER_CPU" nginx -c "$PWD/$OUT/nginx/nginx.conf" -e "$PWD/$OUT/nginx/logs/error.log"
for _ in $(seq 1 100); do
  curl -sf -H "Host: site1.bench.test" "http://127.0.0.1:$BEXT_PORT/index.html" >/dev/null && \
  curl -sf -H "Host: site1.bench.test" "http://127.0.0.1:$NGINX_PORT/index.html" >/dev/null && break
  sleep 0.1
done
cmp <(curl -s -H "Host: site$HOSTS.bench.test" "http://127.0.0.1:$BEXT_PORT/index.html") \
    <(curl -s -H "Host: site$HOSTS.bench.test" "http://127.0.0.1:$NGINX_PORT/index.html") || { echo "servers disagree"; exit 1; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
BEXT_IDLE_RSS=$(rss_kib "$BEXT_PID")

run_wrk() { # port pid... -> "rps p99_ms server_us_per_request wrk_us_per_request"
  local port=$1; shift
  local before after
  before=$(cpu_ns "$@")
  /usr/bin/time -f '%U %S' -o "$OUT/wrk.time" taskset -c "$CLIENT_CPU" \
    wrk -t"$WORKERS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$OUT/hosts.lua" "http://127.0.0.1:$port/" > "$OUT/wrk.$port.txt"
  after=$(cpu_ns "$@")
  local rps p99 n
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.$port.txt")
  p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk.$port.txt")
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk.$port.txt")
  # Every request must succeed: wrk's error lines are shown as they are.
  grep -E 'Socket errors|Non-2xx' "$OUT/wrk.$port.txt" | sed "s/^/  port $port: /" >&2 || true
  python3 -c "n = $n; u, s = map(float, open('$OUT/wrk.time').read().split()[-2:]); print($rps, $(to_ms "$p99"), round(($after - $before) / 1e3 / n, 3), round((u + s) * 1e6 / n, 3))"
}
to_ms() { # wrk latency like 1.23ms / 456.00us / 1.2s -> ms
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); f={'us':0.001,'ms':1,'s':1000}[m.group(2)]; print(round(float(m.group(1))*f,3))" "$1"
}

# Warm all up (file caches, connection pools).
for port in "$BEXT_PORT" "$NGINX_PORT" "$((NGINX_PORT + 1))"; do
  taskset -c "$CLIENT_CPU" wrk -t"$WORKERS" -c"$CONNECTIONS" -d2s -s "$OUT/hosts.lua" "http://127.0.0.1:$port/" >/dev/null
done

echo "hosts=$HOSTS connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS workers=$WORKERS (server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU)"
NGINX_WORKERS=($(pgrep -P "$(cat "$OUT/nginx/nginx.pid")"))
printf '%-6s %-14s %12s %10s %14s %12s\n' round server req/s p99_ms server_us/req wrk_us/req
rows=()
for r in $(seq 1 "$ROUNDS"); do
  read -r b_rps b_p99 b_cpu b_wrk < <(run_wrk "$BEXT_PORT" "$BEXT_PID")
  read -r s_rps s_p99 s_cpu s_wrk < <(run_wrk "$NGINX_PORT" "${NGINX_WORKERS[@]}")
  read -r w_rps w_p99 w_cpu w_wrk < <(run_wrk "$((NGINX_PORT + 1))" "${NGINX_WORKERS[@]}")
  printf '%-6s %-14s %12s %10s %14s %12s\n' "$r" bext "$b_rps" "$b_p99" "$b_cpu" "$b_wrk" \
    "$r" nginx-sendfile "$s_rps" "$s_p99" "$s_cpu" "$s_wrk" "$r" nginx-write "$w_rps" "$w_p99" "$w_cpu" "$w_wrk"
  rows+=("$b_rps,$b_p99,$b_cpu,$s_rps,$s_p99,$s_cpu,$w_rps,$w_p99,$w_cpu")
done
# Two comparisons against nginx's faster variant: requests per second
# (which wrk, on one core, may cap), and the server's CPU per request
# (what a core of each serves when the client is not the limit).
python3 - "${rows[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, r.split(","))) for r in sys.argv[1:]]
variants = {1: "sendfile on, tcp_nopush", 2: "sendfile off"}
rps = {v: statistics.mean(r[3 * v] for r in rows) for v in variants}
best = max(variants, key=lambda v: rps[v])
print(f"nginx's faster variant by req/s: {variants[best]} (mean {rps[best]:.0f} req/s, the other {min(rps.values()):.0f})")
ratios = [r[0] / r[3 * best] for r in rows]
print("req/s ratio bext/nginx per round:", " ".join(f"{x:.3f}" for x in ratios))
print(f"req/s ratio: mean {statistics.mean(ratios):.3f}, median {statistics.median(ratios):.3f}")
print(f"p99 ms: bext median {statistics.median(r[1] for r in rows):.3f}, nginx median {statistics.median(r[3 * best + 1] for r in rows):.3f}")
cpu = {v: statistics.median(r[3 * v + 2] for r in rows) for v in variants}
cheap = min(variants, key=lambda v: cpu[v])
cpu_ratios = [r[3 * cheap + 2] / r[2] for r in rows]
print(f"server CPU per request: bext median {statistics.median(r[2] for r in rows):.2f} us, nginx ({variants[cheap]}) {cpu[cheap]:.2f} us")
print("capacity ratio (nginx us / bext us) per round:", " ".join(f"{x:.3f}" for x in cpu_ratios))
print(f"capacity ratio: median {statistics.median(cpu_ratios):.3f}")
PY

# Memory: idle, then holding idle keep-alive connections that each served one request.
python3 - "$BEXT_PORT" "$IDLE_CONNECTIONS" "$BEXT_PID" "$BEXT_IDLE_RSS" <<'PY'
import socket, sys, time
port, n, pid, idle = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: site1.bench.test\r\n\r\n")
    socks.append(s)
for s in socks:
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data) < 1100:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
# bext gives an idle connection's buffers back 3 s after its answer and its
# pages to the system every 5 s (vendor/hyper/BEXT-PATCH.md).
time.sleep(10)
held = rss()
alive = sum(1 for s in socks if s.fileno() >= 0)
print(f"bext RSS idle: {idle/1024:.1f} MiB; with {alive} idle keep-alive connections: {held/1024:.1f} MiB "
      f"({(held-idle)/alive:.2f} KiB per connection)")
for s in socks:
    s.close()
PY
