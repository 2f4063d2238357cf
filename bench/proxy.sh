#!/usr/bin/env bash
# Reverse proxy load benchmark: bext's proxy app vs nginx's proxy_pass,
# both in front of the same upstream (nginx serving a 1 KiB and a 64 KiB
# file, and answering a 16 KiB POST), with keep-alive to it. nginx runs
# two variants in its one worker (proxy_buffering on, its default, and
# off); bext is compared with the faster one for each case. The proxies
# are pinned to CPU 0, the upstream and wrk share CPU 1 (two cores). Each
# round runs every server for DURATION seconds, alternating; prints req/s,
# p99 and the median ratio per case. Last, a pool of two backends (the
# same upstream nginx on two ports): bext `upstreams` against nginx
# `upstream { server a; server b; keepalive 64; }`, 1 KiB.
#
#   bench/proxy.sh                       # ROUNDS=5 DURATION=5
#   ROUNDS=7 BEXT=/path/to/bext bench/proxy.sh
#
# Needs nginx, wrk, curl and python3. Loopback only.
source "$(dirname "$0")/common.sh"
need nginx wrk curl python3
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
OUT=$PWD/bench/out/proxy
UP=18801 NGX=18802 BX=18804 UP2=18806 NGX2=18807 BX2=18808
if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/up/logs" "$OUT/nginx/logs"
head -c 1024 /dev/zero | tr '\0' x > "$OUT/www/1k.html"
head -c 65536 /dev/zero | tr '\0' y > "$OUT/www/64k.html"
temp_paths() { echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"; }
cat > "$OUT/up/nginx.conf" <<CONF
worker_processes 1; pid $OUT/up/nginx.pid; error_log $OUT/up/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s; $(temp_paths "$OUT/up")
  server { listen 127.0.0.1:$UP; listen 127.0.0.1:$UP2; root $OUT/www;
    location = /post { client_body_buffer_size 64k; return 200 "ok\n"; } }
}
CONF
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1; pid $OUT/nginx/nginx.pid; error_log $OUT/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s; $(temp_paths "$OUT/nginx")
  client_body_buffer_size 64k;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$((NGX + 1));
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }
  upstream two { server 127.0.0.1:$UP; server 127.0.0.1:$UP2; keepalive 64; }
  server { listen 127.0.0.1:$NGX2;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
proxy_platform "$OUT" "$BX" "$UP" waf gateway authn deploy isr compress
proxy_platform "$OUT/two" "$BX2" "$UP" waf gateway authn deploy isr compress
sed -i "s|^upstream = .*|upstreams = [\"http://127.0.0.1:$UP\", \"http://127.0.0.1:$UP2\"]|" "$OUT/two/platform.toml"
post_body "$OUT"

cleanup() {
  kill "${BEXT_PID:-}" "${BEXT2_PID:-}" 2>/dev/null || true
  for d in nginx up; do [ -f "$OUT/$d/nginx.pid" ] && kill "$(cat "$OUT/$d/nginx.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
taskset -c "$CLIENT_CPU" nginx -c "$OUT/up/nginx.conf" -p "$OUT/up" -e "$OUT/up/logs/error.log"
taskset -c "$SERVER_CPU" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" -e "$OUT/nginx/logs/error.log"
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/platform.toml" > "$OUT/bext.out" 2> "$OUT/bext.err" &
BEXT_PID=$!
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/two/platform.toml" > "$OUT/bext2.out" 2> "$OUT/bext2.err" &
BEXT2_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$BX/1k.html" >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$BX2/1k.html" >/dev/null && break; sleep 0.1; done
for port in "$BX" "$NGX" "$((NGX + 1))" "$BX2" "$NGX2"; do
  cmp <(curl -s "http://127.0.0.1:$port/64k.html") "$OUT/www/64k.html" || { echo "proxy on $port answers wrong"; exit 1; }
done

run_wrk() { # port case pid... -> "rps p99 server_us_per_request"
  local port=$1 case=$2 args=() path before after
  shift 2
  case $case in
    1k) path=/1k.html ;;
    64k) path=/64k.html ;;
    post16k) path=/post; args=(-s "$OUT/post.lua") ;;
  esac
  before=$(cpu_ns "$@")
  BODY_FILE=$OUT/body taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" \
    "http://127.0.0.1:$port$path" > "$OUT/wrk.txt"
  after=$(cpu_ns "$@")
  grep -qE "Non-2xx|Socket errors" "$OUT/wrk.txt" && { echo "failed requests on $port $case" >&2; cat "$OUT/wrk.txt" >&2; exit 1; }
  local n
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
  echo "$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt") $(awk '$1=="99%" {print $2}' "$OUT/wrk.txt") $(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN {printf "%.2f", (a - b) / n / 1000}')"
}
NGINX_WORKERS=($(pgrep -P "$(cat "$OUT/nginx/nginx.pid")"))

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); rounds=$ROUNDS duration=${DURATION}s connections=$CONNECTIONS"
for case in 1k 64k post16k; do
  for port in "$BX" "$NGX" "$((NGX + 1))"; do run_wrk "$port" "$case" "$BEXT_PID" >/dev/null; done # warm up
  rows=()
  for r in $(seq 1 "$ROUNDS"); do
    read -r b bp bc < <(run_wrk "$BX" "$case" "$BEXT_PID")
    read -r n np nc < <(run_wrk "$NGX" "$case" "${NGINX_WORKERS[@]}")
    read -r o op oc < <(run_wrk "$((NGX + 1))" "$case" "${NGINX_WORKERS[@]}")
    printf '%-8s round %s: bext %10s (p99 %s, %s us)  nginx %10s (p99 %s, %s us)  nginx-unbuffered %10s (p99 %s, %s us)\n' \
      "$case" "$r" "$b" "$bp" "$bc" "$n" "$np" "$nc" "$o" "$op" "$oc"
    rows+=("$b/$n/$o/$bc/$nc/$oc")
  done
  python3 - "$case" "${rows[@]}" <<'PY'
import statistics, sys
case, rows = sys.argv[1], [tuple(map(float, r.split("/"))) for r in sys.argv[2:]]
buffered, unbuffered = sum(r[1] for r in rows), sum(r[2] for r in rows)
best = 1 if buffered >= unbuffered else 2
ratios = [r[0] / r[best] for r in rows]
name = "proxy_buffering on" if best == 1 else "proxy_buffering off"
print(f"{case}: nginx's faster variant {name}; bext/nginx per round "
      + " ".join(f"{x:.3f}" for x in ratios)
      + f"; median {statistics.median(ratios):.3f}")
# Capacity: server CPU per request, against nginx's cheaper variant.
cheap = min((1, 2), key=lambda v: statistics.median(r[3 + v] for r in rows))
cpu = [r[3 + cheap] / r[3] for r in rows]
print(f"{case}: server CPU per request bext {statistics.median(r[3] for r in rows):.2f} us, nginx "
      f"{statistics.median(r[3 + cheap] for r in rows):.2f} us; capacity ratio per round "
      + " ".join(f"{x:.3f}" for x in cpu) + f"; median {statistics.median(cpu):.3f}")
PY
done
# Two backends, 1 KiB: bext's pool against nginx's upstream block.
for port in "$BX2" "$NGX2"; do run_wrk "$port" 1k "$BEXT2_PID" >/dev/null; done # warm up
rows=()
for r in $(seq 1 "$ROUNDS"); do
  read -r b bp bc < <(run_wrk "$BX2" 1k "$BEXT2_PID")
  read -r n np nc < <(run_wrk "$NGX2" 1k "${NGINX_WORKERS[@]}")
  printf '%-8s round %s: bext %10s (p99 %s, %s us)  nginx %10s (p99 %s, %s us)\n' two-1k "$r" "$b" "$bp" "$bc" "$n" "$np" "$nc"
  rows+=("$b/$n/$bc/$nc")
done
python3 - "${rows[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, r.split("/"))) for r in sys.argv[1:]]
ratios = [r[0] / r[1] for r in rows]
print("two-1k: bext/nginx per round " + " ".join(f"{x:.3f}" for x in ratios)
      + f"; median {statistics.median(ratios):.3f}")
cpu = [r[3] / r[2] for r in rows]
print(f"two-1k: server CPU per request bext {statistics.median(r[2] for r in rows):.2f} us, nginx "
      f"{statistics.median(r[3] for r in rows):.2f} us; capacity ratio median {statistics.median(cpu):.3f}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
