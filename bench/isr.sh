#!/usr/bin/env bash
# Cache hits, all in one run on this machine: the same 4 KiB page behind
# bext's isr cache (a proxy app, the page fresh for an hour) and behind
# nginx's proxy_cache, both in front of one upstream (nginx serving the
# file with `Cache-Control: max-age=3600`). After one warming request
# every request is a hit; wrk measures requests per second, rounds
# alternate. Then the same with `Accept-Encoding: gzip` (level 6 on both).
#
#   bench/isr.sh                        # 10 s rounds, 3 rounds
#   DURATION=5 ROUNDS=2 bench/isr.sh
#
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk). Both
# servers are pinned to CPU 0 with one worker, wrk to CPU 1.
source "$(dirname "$0")/common.sh"
UPSTREAM_PORT=19300 BEXT_PORT=19301 NGINX_PORT=19302
OUT=$PWD/bench/out/isr
need nginx wrk taskset curl python3

if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/nginx/cache" "$OUT/upstream" "$OUT/manifests"
python3 -c "print('<!doctype html><title>page</title>' + 'x' * 4050)" > "$OUT/www/page.html"

# The upstream, and nginx's cache in front of it (one nginx, two servers;
# the upstream is asked once per cache).
cat > "$OUT/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 300s; keepalive_requests 1000000;
  include /etc/nginx/mime.types;
  client_body_temp_path $OUT/nginx; proxy_temp_path $OUT/nginx;
  fastcgi_temp_path $OUT/nginx; uwsgi_temp_path $OUT/nginx; scgi_temp_path $OUT/nginx;
  proxy_cache_path $OUT/nginx/cache keys_zone=pages:10m max_size=100m inactive=1h;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    root $OUT/www;
    add_header Cache-Control "max-age=3600";
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://127.0.0.1:$UPSTREAM_PORT;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache pages;
      gzip on; gzip_comp_level 6; gzip_min_length 512; gzip_vary on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGINX
printf 'name: vhosts\n' > "$OUT/manifests/vhosts.yaml"
# A folder overrides only the plugins it names: deploy is on by default.
printf 'name: deploy\nenabled: false\n' > "$OUT/manifests/deploy.yaml"
printf 'name: isr\nenabled: true\n' > "$OUT/manifests/isr.yaml"
printf 'name: compress\nenabled: true\nconfig:\n  encodings: [gzip]\n' > "$OUT/manifests/compress.yaml"
cat > "$OUT/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$BEXT_PORT"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
[apps.site]
runtime = "proxy"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
TOML

cleanup() { kill "${BEXT_PID:-}" 2>/dev/null || true; [ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
taskset -c "$SERVER_CPU" nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/platform.toml" >/dev/null 2>"$OUT/bext.err" &
BEXT_PID=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$BEXT_PORT/page.html" && break; sleep 0.1; done
for port in $BEXT_PORT $NGINX_PORT; do
  curl -s -o /dev/null "http://127.0.0.1:$port/page.html"
  status=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/page.html" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
  [ "$status" = HIT ] || { echo "port $port: second request was not a cache hit ($status)"; exit 1; }
done

rps() { # port [header...] -> requests/s
  local port=$1; shift
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$@" "http://127.0.0.1:$port/page.html" | awk '/Requests\/sec/ {print $2}'
}
table() { # title [header...]
  echo "$1, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (req/s)"; shift
  printf "%-6s %12s %12s %8s\n" round bext nginx ratio
  for r in $(seq 1 "$ROUNDS"); do
    b=$(rps $BEXT_PORT "$@"); n=$(rps $NGINX_PORT "$@")
    printf "%-6s %12s %12s %8s\n" "$r" "$b" "$n" "$(python3 -c "print(round($b/$n,3))")"
  done
}
table "4 KiB page, cache hits"
# Compressed hits: bext keeps the gzip variant beside the cached page
# (compress plugin); nginx gzips the cached page on every hit (gzip on).
for port in $BEXT_PORT $NGINX_PORT; do
  enc=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/page.html" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding" {print $2}')
  [ "$enc" = gzip ] || { echo "port $port: no gzip answer ($enc)"; exit 1; }
done
table "4 KiB page, gzip-compressed cache hits" -H "Accept-Encoding: gzip"
