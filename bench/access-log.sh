#!/usr/bin/env bash
# What an access log line costs in requests per second, bext against
# nginx, same run: each server with its log off and on (a JSON line with
# the same fields; nginx with `buffer=64k`, its best), the static 1 KiB
# file of bench/run.sh, rounds alternating between the four so that the
# shared machine's load falls on all of them alike. Prints req/s per round
# and each server's on/off ratio. bench/instructions.sh (OBSERVE=1,
# NGINX_LOG=1) counts the same in instructions, which the load does not
# move.
#
#   bench/access-log.sh                          # 10 s per round, 3 rounds
#   BEXT=/path/to/bext DURATION=5 ROUNDS=4 bench/access-log.sh
#
# Servers pinned to CPU 0 (one worker each), wrk to CPU 1, as run.sh.
ROUNDS=${ROUNDS:-3}
source "$(dirname "$0")/common.sh"
OUT=bench/out/access-log
PORT=${PORT:-18680}
need nginx wrk python3 taskset

if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/nginx/logs"
small_page "$OUT/www/index.html"

bext_config() { # name port access_log
  cat > "$OUT/$1.toml" <<TOML
[platform]
listen = "127.0.0.1:$2"
access_log = $3
watch = false
workers = 1
default_app = "site"
[platform.limits]
max_connections_per_ip = 0
[apps.site]
source = "www"
TOML
}
bext_config bext-off "$PORT" false
bext_config bext-json $((PORT + 1)) "{ format = \"json\", path = \"$PWD/$OUT/bext-json.log\" }"

# The fields of bext's JSON line, as bench/instructions.sh's NGINX_LOG.
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1; pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; tcp_nodelay on; keepalive_timeout 300s; keepalive_requests 1000000;
  open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;
  include /etc/nginx/mime.types;
  client_body_temp_path $PWD/$OUT/nginx; proxy_temp_path $PWD/$OUT/nginx;
  fastcgi_temp_path $PWD/$OUT/nginx; uwsgi_temp_path $PWD/$OUT/nginx; scgi_temp_path $PWD/$OUT/nginx;
  log_format bext_json escape=json '{"time":"\$time_iso8601","request_id":"\$request_id","trace_id":"\$request_id",'
    '"client":"\$remote_addr","method":"\$request_method","host":"\$host","path":"\$uri","status":\$status,'
    '"bytes":\$body_bytes_sent,"duration_ms":\$request_time,"app":"\$server_name","user_agent":"\$http_user_agent"}';
  server { listen 127.0.0.1:$((PORT + 2)); server_name site; root $PWD/$OUT/www; sendfile off; }
  server { listen 127.0.0.1:$((PORT + 3)); server_name site; root $PWD/$OUT/www; sendfile off;
           access_log $PWD/$OUT/nginx-json.log bext_json buffer=64k; }
}
CONF

ulimit -n 65536 2>/dev/null || true
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for name in bext-off bext-json; do
  taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/$name.toml" > "$OUT/$name.out" 2>&1 &
  PIDS+=($!)
done
taskset -c "$SERVER_CPU" nginx -c "$PWD/$OUT/nginx/nginx.conf" -e "$PWD/$OUT/nginx/logs/error.log"
for port in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/index.html" >/dev/null && break; sleep 0.1; done
done

URL_PATH="/index.html?page=2&sort=price&utm_source=newsletter"
rps() { # port -> requests per second (the browser's headers, as instructions.sh)
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${BROWSER_HEADERS[@]}" \
    "http://127.0.0.1:$1$URL_PATH" | awk '/Requests\/sec/ {print $2}'
}
for port in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/index.html" >/dev/null
done

echo "connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %12s %12s %12s %12s\n' round bext-off bext-json nginx-off nginx-json
rows=()
for r in $(seq 1 "$ROUNDS"); do
  # Each round in another order, so no server always runs first.
  declare -A got=()
  ports=("$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)))
  for i in 0 1 2 3; do
    p=${ports[$(((i + r) % 4))]}
    got[$p]=$(rps "$p")
  done
  printf '%-6s %12s %12s %12s %12s\n' "$r" "${got[$PORT]}" "${got[$((PORT + 1))]}" "${got[$((PORT + 2))]}" "${got[$((PORT + 3))]}"
  rows+=("${got[$PORT]},${got[$((PORT + 1))]},${got[$((PORT + 2))]},${got[$((PORT + 3))]}")
  unset got
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "${rows[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, r.split(","))) for r in sys.argv[1:]]
b = [r[1] / r[0] for r in rows]
n = [r[3] / r[2] for r in rows]
print("bext json/off per round: ", " ".join(f"{x:.3f}" for x in b), f" median {statistics.median(b):.3f}")
print("nginx json/off per round:", " ".join(f"{x:.3f}" for x in n), f" median {statistics.median(n):.3f}")
print(f"bext/nginx, log off: {statistics.median(r[0] / r[2] for r in rows):.3f}; log on: {statistics.median(r[1] / r[3] for r in rows):.3f}")
PY
