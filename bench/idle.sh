#!/usr/bin/env bash
# Memory per idle keep-alive connection, bext next to nginx, same run:
# N connections each send one GET for a 1 KiB file, read the answer, then
# idle; the server's resident memory is read WAIT seconds later (bext gives
# an idle connection's buffers back 3 s after its last answer and its pages
# to the system every 5 s, see vendor/hyper/BEXT-PATCH.md and
# vendor/h2/BEXT-PATCH.md). HTTP/1.1 and HTTP/2 without TLS (h2c, prior
# knowledge). While the N connections still idle, FRESH new connections
# (default 4) send REQS requests each (default 100), one at a time: the
# p50/p99/worst time to a full answer is printed.
#
#   bench/idle.sh                       # N=5000 WAIT=10
#   N=9000 WAIT=10 BEXT=/path/to/bext bench/idle.sh   # this machine's fd limit
#   FAST_PATH_OFF=1 bench/idle.sh       # bext with http1_fast_path = false
#   MODES=h2c bench/idle.sh             # one protocol only (h1, h2c)
#
# Needs nginx and python3. Loopback only.
source "$(dirname "$0")/common.sh"
need nginx python3
N=${N:-5000}
WAIT=${WAIT:-10}
OUT=bench/out/idle
BEXT_PORT=${BEXT_PORT:-18090}
NGINX_PORT=${NGINX_PORT:-18091}
ulimit -n $((N * 2 + 1000))

if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/manifests" "$OUT/nginx/logs"
head -c 1024 /dev/zero | tr '\0' x > "$OUT/www/index.html"
printf 'name: vhosts\n' > "$OUT/manifests/vhosts.yaml"
cat > "$OUT/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$BEXT_PORT"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
http1_fast_path = $([ -n "${FAST_PATH_OFF:-}" ] && echo false || echo true)
[platform.limits]
idle_timeout = "300s"
header_read_timeout = "300s"
max_connections = $((N + 1000))
max_connections_per_ip = 0
[apps.site]
source = "www"
TOML
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/logs/error.log warn;
worker_rlimit_nofile $((N * 2 + 1000));
events { worker_connections $((N + 1000)); }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$NGINX_PORT; root $PWD/$OUT/www; }
  server { listen 127.0.0.1:$((NGINX_PORT + 1)) http2; root $PWD/$OUT/www; }
}
CONF

for mode in ${MODES:-h1 h2c}; do
  "$BEXT" serve --config "$OUT/platform.toml" >"$OUT/bext.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $BEXT_PORT))" 2>/dev/null && break; sleep 0.1; done
  idle_per_connection bext "$pid" "$BEXT_PORT" "$mode"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx"
  sleep 0.5
  worker=$(pgrep -P "$(cat "$OUT/nginx/nginx.pid")" | head -1)
  port=$NGINX_PORT; [ "$mode" = h2c ] && port=$((NGINX_PORT + 1))
  idle_per_connection nginx "$worker" "$port" "$mode"
  nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx" -s quit
  # Until it has let its ports go (it removes its pid file last), or the
  # next mode's nginx cannot bind them.
  for _ in $(seq 1 100); do [ -e "$OUT/nginx/nginx.pid" ] || break; sleep 0.1; done
done
