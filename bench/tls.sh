#!/usr/bin/env bash
# TLS: bext vs nginx over HTTPS, the same ECDSA P-256 certificate, same run.
#
#   keepalive   a 1 KiB static file over TLS keep-alive through 1,000 virtual
#               hosts (wrk, 1 thread, CONNECTIONS connections, the Host
#               header rotating over every host as in bench/run.sh); nginx
#               with ssl_buffer_size 16k and 4k, bext against the faster.
#   handshakes  new TLS 1.3 connections, one request each (wrk with
#               `Connection: close`, which would resume sessions: the
#               bench/tls/noresume.c shim makes every connection a full
#               handshake, checked below against nginx's
#               $ssl_session_reused); nginx with its default session
#               tickets and with tickets and the session cache off, bext
#               against the cheaper. Besides the client's req/s, the
#               servers' own CPU time per handshake (utime + stime, the
#               kernel's share included), because one wrk core is not
#               always enough to saturate the server's core.
#   idle        resident memory per idle TLS connection after a handshake
#               and one request (N connections, read WAIT s later).
#   instructions  (only when asked) callgrind instructions per keep-alive
#               request and per handshake (with its one request), each
#               bext build and nginx, one connection at a time.
#
#   bench/tls.sh                                  # keepalive handshakes idle, ROUNDS=5
#   PARTS="handshakes" ROUNDS=7 DURATION=5 bench/tls.sh
#   BEXT_NAME=ring OTHER=/path/to/bext OTHER_NAME=aws-lc bench/tls.sh   # a second build, same rounds
#   PARTS=instructions bench/tls.sh
#
# Certificate: one self-signed ECDSA P-256 certificate for `*.bench.test`,
# served by every one of bext's 1,000 apps (each names the same files) and
# by every nginx server block. SNI is site1.bench.test for every
# connection (wrk sends the URL's host); the Host header rotates. wrk runs
# in a private mount namespace whose /etc/hosts maps the name to 127.0.0.1,
# and the whole run in a private network namespace (see below); so this
# needs root, as `unshare` does. Nothing outside changes.
# The key exchange is the clients' default, X25519.
#
# Needs nginx (with ssl), wrk, openssl, cc, python3, taskset, unshare
# (Debian: apt-get install nginx-light wrk); valgrind for instructions.
# Servers pinned to CPU 0 with one worker each, wrk to CPU 1.
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
source "$(dirname "$0")/common.sh"
need nginx wrk openssl cc python3 taskset unshare ip

PARTS=${PARTS:-keepalive handshakes idle}
HOSTS=${HOSTS:-1000}
HANDSHAKE_CONNECTIONS=${HANDSHAKE_CONNECTIONS:-32}
N=${N:-2000}
WAIT=${WAIT:-10}
BEXT_PORT=${BEXT_PORT:-18443}
OTHER_PORT=${OTHER_PORT:-18444}
NGINX_PORT=${NGINX_PORT:-18445} # keep-alive 16k, +1 keep-alive 4k, +2 handshakes tickets, +3 no tickets
OTHER_NAME=${OTHER_NAME:-other}
BEXT_NAME=${BEXT_NAME:-bext}
OUT=$PWD/bench/out/tls
NAME=site1.bench.test

if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
# Everything runs in a network namespace of its own: its loopback is this
# run's alone, and so is its table of TIME_WAIT connections. On the shared
# loopback, thousands of connections a second that the server closes
# leave ports in TIME_WAIT, new SYNs land on them, and both sides stall
# (the handshake rate fell several-fold from 32 to 128 connections).
if [ -z "${BEXT_TLS_NETNS:-}" ]; then
  exec env BEXT_TLS_NETNS=1 BEXT="$BEXT" unshare -n "$PWD/bench/tls.sh" "$@"
fi
ip link set lo up
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/nginx/logs" "$OUT/cert"
small_page "$OUT/www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=bench.test -addext 'subjectAltName=DNS:*.bench.test' \
  -keyout "$OUT/cert/key.pem" -out "$OUT/cert/cert.pem" 2>/dev/null
cc -O2 -shared -fPIC -o "$OUT/noresume.so" bench/tls/noresume.c -ldl
echo "127.0.0.1 $NAME" > "$OUT/hosts"

bext_config() { # port -> platform.toml
  echo "[platform]"
  echo "listen = \"127.0.0.1:$(($1 + 100))\""
  echo "listen_tls = \"127.0.0.1:$1\""
  echo "access_log = false"
  echo "watch = false"
  echo "workers = 1"
  echo "[platform.limits]"
  echo "idle_timeout = \"300s\""
  echo "header_read_timeout = \"300s\""
  echo "max_connections_per_ip = 0"
  echo "max_connections = $((N + 1000))"
  for i in $(seq 1 "$HOSTS"); do
    echo "[apps.site$i]"
    echo "source = \"www\""
    echo "domains = [\"site$i.bench.test\"]"
    echo "tls = { cert = \"cert/cert.pem\", key = \"cert/key.pem\" }"
  done
}
bext_config "$BEXT_PORT" > "$OUT/bext.toml"
[ -n "${OTHER:-}" ] && bext_config "$OTHER_PORT" > "$OUT/other.toml"

# nginx: TLS 1.2 and 1.3 (1.22's default lacks 1.3), the same certificate.
{
  echo "worker_processes 1;"
  echo "worker_rlimit_nofile $((N * 2 + 1000));"
  echo "pid $OUT/nginx/nginx.pid;"
  echo "error_log $OUT/nginx/logs/error.log warn;"
  echo "events { worker_connections $((N + 1000)); }"
  echo "http {"
  echo "  access_log off;"
  echo "  tcp_nodelay on; sendfile off;"
  echo "  keepalive_timeout 300s; keepalive_requests 1000000;"
  echo "  open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;"
  echo "  include /etc/nginx/mime.types;"
  echo "  server_names_hash_max_size 4096; server_names_hash_bucket_size 128;"
  echo "  client_body_temp_path $OUT/nginx; proxy_temp_path $OUT/nginx;"
  echo "  fastcgi_temp_path $OUT/nginx; uwsgi_temp_path $OUT/nginx; scgi_temp_path $OUT/nginx;"
  echo "  ssl_certificate $OUT/cert/cert.pem; ssl_certificate_key $OUT/cert/key.pem;"
  echo "  ssl_protocols TLSv1.2 TLSv1.3;"
  echo "  log_format resumed '\$ssl_session_reused \$ssl_protocol';"
  # Keep-alive: ssl_buffer_size 16k (the default) and 4k, all 1,000 hosts.
  for i in $(seq 1 "$HOSTS"); do
    echo "  server { listen 127.0.0.1:$NGINX_PORT ssl; server_name site$i.bench.test; root $OUT/www; ssl_buffer_size 16k; }"
    echo "  server { listen 127.0.0.1:$((NGINX_PORT + 1)) ssl; server_name site$i.bench.test; root $OUT/www; ssl_buffer_size 4k; }"
  done
  # Handshakes: TLS 1.3 only; session tickets as by default (two a
  # handshake), and no tickets nor session cache (nothing sent after it).
  echo "  server { listen 127.0.0.1:$((NGINX_PORT + 2)) ssl; server_name $NAME; root $OUT/www; ssl_protocols TLSv1.3;"
  echo "           access_log $OUT/nginx/logs/resumed.log resumed; }"
  echo "  server { listen 127.0.0.1:$((NGINX_PORT + 3)) ssl; server_name $NAME; root $OUT/www; ssl_protocols TLSv1.3;"
  echo "           ssl_session_tickets off; ssl_session_cache off; }"
  echo "}"
} > "$OUT/nginx/nginx.conf"

cat > "$OUT/hosts.lua" <<LUA
local n = $HOSTS
local i = 0
request = function()
  i = (i % n) + 1
  return wrk.format("GET", "/index.html", { Host = "site" .. i .. ".bench.test" })
end
LUA

# client COMMAND...: runs COMMAND on the client's CPU, where $NAME is 127.0.0.1.
# With TIMER set (/usr/bin/time ...), the client's own CPU time is kept too.
TIMER=()
client() {
  "${TIMER[@]}" taskset -c "$CLIENT_CPU" unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$OUT/hosts" "$@"
}
url() { echo "https://$NAME:$1/index.html"; }

if [ "$PARTS" = instructions ]; then
  need valgrind callgrind_control callgrind_annotate
  sed -e 's/^worker_processes 1;/worker_processes 1; daemon off; master_process off;/' "$OUT/nginx/nginx.conf" > "$OUT/nginx/cg.conf"
  CG_PORT=$BEXT_PORT
  cg_ready() { curl -sf -o /dev/null --cacert "$OUT/cert/cert.pem" --resolve "$NAME:$CG_PORT:127.0.0.1" "$(url "$CG_PORT")"; }
  cg_keepalive() { client wrk -t1 -c1 -d"$1s" -s "$OUT/hosts.lua" "$(url "$CG_PORT")" | awk '/requests in/ {print $1}'; }
  cg_handshakes() {
    client env LD_PRELOAD="$OUT/noresume.so" wrk -t1 -c1 -d"$1s" -H "Connection: close" "$(url "$CG_PORT")" | awk '/requests in/ {print $1}'
  }
  count() { # label port load command...
    local label=$1; CG_PORT=$2; local load=$3; shift 3
    echo "$label: $(callgrind_count "$OUT/$label.cg" cg_ready "$load" "$@")"
  }
  echo "instructions per keep-alive request (1 connection) and per handshake with its request (TLS 1.3, full):"
  count "$BEXT_NAME-keepalive" "$BEXT_PORT" cg_keepalive "$BEXT" serve --config "$OUT/bext.toml"
  count "$BEXT_NAME-handshake" "$BEXT_PORT" cg_handshakes "$BEXT" serve --config "$OUT/bext.toml"
  if [ -n "${OTHER:-}" ]; then
    count "$OTHER_NAME-keepalive" "$OTHER_PORT" cg_keepalive "$OTHER" serve --config "$OUT/other.toml"
    count "$OTHER_NAME-handshake" "$OTHER_PORT" cg_handshakes "$OTHER" serve --config "$OUT/other.toml"
  fi
  count "nginx16k-keepalive" "$NGINX_PORT" cg_keepalive nginx -c "$OUT/nginx/cg.conf" -e "$OUT/nginx/logs/error.log"
  count "nginx-tickets-handshake" "$((NGINX_PORT + 2))" cg_handshakes nginx -c "$OUT/nginx/cg.conf" -e "$OUT/nginx/logs/error.log"
  count "nginx-notickets-handshake" "$((NGINX_PORT + 3))" cg_handshakes nginx -c "$OUT/nginx/cg.conf" -e "$OUT/nginx/logs/error.log"
  exit 0
fi

ulimit -n $((N * 2 + 1000))
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/bext.toml" > "$OUT/bext.log" 2>&1 &
BEXT_PID=$!; PIDS+=("$BEXT_PID")
if [ -n "${OTHER:-}" ]; then
  taskset -c "$SERVER_CPU" "$OTHER" serve --config "$OUT/other.toml" > "$OUT/other.log" 2>&1 &
  OTHER_PID=$!; PIDS+=("$OTHER_PID")
fi
taskset -c "$SERVER_CPU" nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/logs/error.log"
get() { curl -sf --cacert "$OUT/cert/cert.pem" --resolve "$NAME:$1:127.0.0.1" -H "Host: site$HOSTS.bench.test" "$(url "$1")"; }
for _ in $(seq 1 300); do get "$BEXT_PORT" >/dev/null && get "$NGINX_PORT" >/dev/null && break; sleep 0.2; done
ports=("$BEXT_PORT" "$NGINX_PORT" "$((NGINX_PORT + 1))" "$((NGINX_PORT + 2))" "$((NGINX_PORT + 3))")
[ -n "${OTHER:-}" ] && { for _ in $(seq 1 300); do get "$OTHER_PORT" >/dev/null && break; sleep 0.2; done; ports+=("$OTHER_PORT"); }
for port in "${ports[@]}"; do
  cmp <(get "$BEXT_PORT") <(get "$port") || { echo "servers disagree on port $port"; exit 1; }
done
# The pids whose CPU time is counted: bext itself (taskset execs it), nginx's one worker.
NGINX_PID=$(pgrep -P "$(cat "$OUT/nginx/nginx.pid")" | head -1)
echo "bext: $BEXT${OTHER:+; $OTHER_NAME: $OTHER}; $(nginx -v 2>&1); $(openssl version)"
for port in "$BEXT_PORT" "$((NGINX_PORT + 2))"; do
  echo "port $port negotiates: $(openssl s_client -connect "127.0.0.1:$port" -servername "$NAME" </dev/null 2>/dev/null | grep -E '^(New|Server Temp Key)' | tr '\n' ' ')"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TSV=$OUT/results.tsv
: > "$TSV"
# measure PART ROUND LABEL PID wrk-args... -> one line in $TSV
measure() {
  local part=$1 round=$2 label=$3 pid=$4; shift 4
  local before after out
  before=$(cpu_ticks "$pid")
  TIMER=(/usr/bin/time -f '%U %S' -o "$OUT/client.time")
  out=$(client "$@")
  TIMER=()
  after=$(cpu_ticks "$pid")
  local rps n errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  errors=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
  local client_cpu
  client_cpu=$(awk '{print $1 + $2}' "$OUT/client.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$round" "$label" "$rps" "$n" "$((after - before))" "$client_cpu" "$errors" >> "$TSV"
}

if [[ " $PARTS " == *" keepalive "* ]]; then
  for port in "${ports[@]:0:2}" "$((NGINX_PORT + 1))" ${OTHER:+"$OTHER_PORT"}; do
    client wrk -t1 -c"$CONNECTIONS" -d2s -s "$OUT/hosts.lua" "$(url "$port")" >/dev/null
  done
  echo "keepalive: hosts=$HOSTS connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS"
  for r in $(seq 1 "$ROUNDS"); do
    echo "round $r load: $(uptime | sed 's/.*load average: //')"
    ka() { measure keepalive "$r" "$1" "$2" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$OUT/hosts.lua" "$(url "$3")"; }
    ka "$BEXT_NAME" "$BEXT_PID" "$BEXT_PORT"
    [ -n "${OTHER:-}" ] && ka "$OTHER_NAME" "$OTHER_PID" "$OTHER_PORT"
    ka nginx-16k "$NGINX_PID" "$NGINX_PORT"
    ka nginx-4k "$NGINX_PID" "$((NGINX_PORT + 1))"
  done
fi

if [[ " $PARTS " == *" handshakes "* ]]; then
  # The shim must leave no session resumed: nginx logs each request's.
  client env LD_PRELOAD="$OUT/noresume.so" wrk -t1 -c4 -d1s -H "Connection: close" "$(url "$((NGINX_PORT + 2))")" >/dev/null
  resumed=$(grep -c '^r' "$OUT/nginx/logs/resumed.log" || true)
  full=$(grep -c '^\. TLSv1.3' "$OUT/nginx/logs/resumed.log" || true)
  echo "handshakes check: $full full TLS 1.3 handshakes, $resumed resumed (must be 0)"
  [ "$resumed" = 0 ] && [ "$full" -gt 0 ] || { echo "sessions were resumed: the numbers would not be full handshakes"; exit 1; }
  echo "handshakes: connections=$HANDSHAKE_CONNECTIONS duration=${DURATION}s rounds=$ROUNDS, one request per connection"
  for r in $(seq 1 "$ROUNDS"); do
    echo "round $r load: $(uptime | sed 's/.*load average: //')"
    hs() {
      measure handshakes "$r" "$1" "$2" env LD_PRELOAD="$OUT/noresume.so" \
        wrk -t1 -c"$HANDSHAKE_CONNECTIONS" -d"${DURATION}s" -H "Connection: close" "$(url "$3")"
    }
    hs "$BEXT_NAME" "$BEXT_PID" "$BEXT_PORT"
    [ -n "${OTHER:-}" ] && hs "$OTHER_NAME" "$OTHER_PID" "$OTHER_PORT"
    hs nginx-tickets "$NGINX_PID" "$((NGINX_PORT + 2))"
    hs nginx-notickets "$NGINX_PID" "$((NGINX_PORT + 3))"
  done
fi

if [ -s "$TSV" ]; then
  python3 - "$TSV" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
tck, duration = int(sys.argv[2]), float(sys.argv[3])
by = collections.defaultdict(dict)  # part -> label -> [(round, rps, n, ticks, errors)]
for part, rnd, label, rps, n, ticks, client, errors in rows:
    by[part].setdefault(label, []).append((int(rnd), float(rps), int(n), int(ticks), errors, float(client)))
for part, labels in by.items():
    print(f"\n{part}: per round, req/s, server CPU busy, server CPU µs per request, the client's CPU busy")
    for label, rs in labels.items():
        for rnd, rps, n, ticks, errors, client in rs:
            cpu = ticks / tck
            print(f"  {rnd} {label:16} {rps:10.0f} req/s  server cpu {100 * cpu / duration:5.1f}%  {1e6 * cpu / n:7.1f} µs/req"
                  f"  client cpu {100 * client / duration:5.1f}% {1e6 * client / n:7.1f} µs/req  {errors}")
    nginx = [l for l in labels if l.startswith("nginx")]
    # nginx's best variant: the most req/s for keep-alive, the least CPU a
    # handshake for handshakes (the client may be the bottleneck there).
    if part == "keepalive":
        best = max(nginx, key=lambda l: statistics.median(r[1] for r in labels[l]))
    else:
        best = min(nginx, key=lambda l: statistics.median(r[3] / r[2] for r in labels[l]))
    print(f"  nginx's best variant here: {best}")
    for label in [l for l in labels if not l.startswith("nginx")]:
        rps = [a[1] / b[1] for a, b in zip(labels[label], labels[best])]
        cpu = [(b[3] / b[2]) / (a[3] / a[2]) if a[3] else float("nan") for a, b in zip(labels[label], labels[best])]
        print(f"  {label}/{best}: req/s per round " + " ".join(f"{x:.3f}" for x in rps)
              + f"  median {statistics.median(rps):.3f}")
        print(f"  {label}/{best}: requests per server CPU second (nginx µs / {label} µs) per round "
              + " ".join(f"{x:.3f}" for x in cpu) + f"  median {statistics.median(cpu):.3f}")
PY
fi

if [[ " $PARTS " == *" idle "* ]]; then
  echo
  echo "idle: $N TLS connections (TLS 1.3, HTTP/1.1), one request each, memory read ${WAIT}s later; load: $(uptime | sed 's/.*load average: //')"
  export TLS_CA=$OUT/cert/cert.pem TLS_NAME=$NAME
  idle_per_connection "$BEXT_NAME" "$BEXT_PID" "$BEXT_PORT" tls
  [ -n "${OTHER:-}" ] && idle_per_connection "$OTHER_NAME" "$OTHER_PID" "$OTHER_PORT" tls
  idle_per_connection nginx "$NGINX_PID" "$NGINX_PORT" tls
fi
