#!/usr/bin/env bash
# Instructions per proxied request, bext next to nginx, counted by
# callgrind (a number the machine's load does not move): both proxies in
# front of the same nginx upstream serving a 1 KiB file over keep-alive,
# one client connection at a time, plugins off; then both with a pool of
# two backends (the same nginx on two ports; nginx `upstream` with two
# servers, bext `upstreams` with two URLs, round robin); last, both
# proxying a 16 KiB POST (the upstream answers `ok`). Only the proxy runs
# under callgrind; the upstream runs natively.
#
#   bench/proxy-instructions.sh
#   BEXT=/path/to/bext bench/proxy-instructions.sh
#   FAST_PATH_OFF=1 bench/proxy-instructions.sh   # also bext with
#                                                 # http1_fast_path = false
#   CG_PORT=18981 bench/proxy-instructions.sh     # the first of the 7
#                                                 # ports it uses (18701)
#
# The GET and the POST are counted again with the deploy plugin on, as it
# is by default (its `on_response` runs only when it asks: a canaried
# app's stable answers).
#
# Builds `--profile profiling`; `callgrind_annotate --inclusive=yes
# bench/out/proxy-instructions/bext.cg.1` names the functions. Needs
# valgrind, nginx, wrk and curl.
source "$(dirname "$0")/common.sh"
need valgrind callgrind_control callgrind_annotate nginx wrk curl
OUT=$PWD/bench/out/proxy-instructions
DURATION=${DURATION:-6}
P=${CG_PORT:-18701}
UP=$P NGX=$((P + 1)) BX=$((P + 2)) UP2=$((P + 3)) NGX2=$((P + 4)) BX2=$((P + 5)) BXD=$((P + 6))
if [ -z "${BEXT:-}" ]; then cargo build --profile profiling -q -p bext; BEXT=$PWD/target/profiling/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/up/logs" "$OUT/nginx/logs"
head -c 1024 /dev/zero | tr '\0' x > "$OUT/www/index.html"
post_body "$OUT"
cat > "$OUT/up/nginx.conf" <<CONF
worker_processes 1; pid $OUT/up/nginx.pid; error_log $OUT/up/logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; listen 127.0.0.1:$UP2; root $OUT/www;
    location = /post { client_body_buffer_size 64k; return 200 "ok\n"; } } }
CONF
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000; client_body_buffer_size 64k;
  client_body_temp_path $OUT/nginx; proxy_temp_path $OUT/nginx;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  upstream two { server 127.0.0.1:$UP; server 127.0.0.1:$UP2; keepalive 64; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$NGX2;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
proxy_platform "$OUT" "$BX" "$UP" waf gateway authn deploy isr
proxy_platform "$OUT/two" "$BX2" "$UP" waf gateway authn deploy isr
proxy_platform "$OUT/deploy-on" "$BXD" "$UP" waf gateway authn isr
sed -i "s|^upstream = .*|upstreams = [\"http://127.0.0.1:$UP\", \"http://127.0.0.1:$UP2\"]|" "$OUT/two/platform.toml"
# The same pool without retries: what keeping a request's head for a
# retry costs.
mkdir -p "$OUT/two-noretry"
sed 's|^manifests = .*|manifests = "../two/manifests"|; $a retries = 0' "$OUT/two/platform.toml" > "$OUT/two-noretry/platform.toml"
nginx -c "$OUT/up/nginx.conf" -p "$OUT/up"
trap 'nginx -c "$OUT/up/nginx.conf" -p "$OUT/up" -s quit 2>/dev/null || true' EXIT

WRK_ARGS=()
count() { # name port command... -> instructions per request
  local name=$1 port=$2; shift 2
  callgrind_per_request "$OUT/$name.cg" "http://127.0.0.1:$port${CG_PATH:-/index.html}" "$@"
}
b=$(count bext "$BX" "$BEXT" serve --config "$OUT/platform.toml")
n=$(count nginx "$NGX" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx")
echo "instructions per proxied request: bext $b, nginx $n, bext/nginx $(python3 -c "print(round($b/$n, 2))")"
if [ -n "${FAST_PATH_OFF:-}" ]; then
  mkdir -p "$OUT/hyper"
  sed 's/^\[platform\]$/[platform]\nhttp1_fast_path = false/; s|^manifests = .*|manifests = "../manifests"|' "$OUT/platform.toml" > "$OUT/hyper/platform.toml"
  h=$(count bext-hyper "$BX" "$BEXT" serve --config "$OUT/hyper/platform.toml")
  echo "instructions per proxied request, http1_fast_path = false: bext $h (fast path on/off $(python3 -c "print(round($b/$h, 3))"))"
fi
b2=$(count bext-two "$BX2" "$BEXT" serve --config "$OUT/two/platform.toml")
n2=$(count nginx-two "$NGX2" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx")
echo "two backends: bext $b2, nginx $n2, bext/nginx $(python3 -c "print(round($b2/$n2, 2))")"
b3=$(count bext-two-noretry "$BX2" "$BEXT" serve --config "$OUT/two-noretry/platform.toml")
echo "two backends, retries = 0: bext $b3 (pool of two / single: $(python3 -c "print(round($b2/$b, 3))") with retries, $(python3 -c "print(round($b3/$b, 3))") without)"
WRK_ARGS=(-s "$OUT/post.lua")
export BODY_FILE=$OUT/body
p=$(CG_PATH=/post count bext-post "$BX" "$BEXT" serve --config "$OUT/platform.toml")
np=$(CG_PATH=/post count nginx-post "$NGX" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx")
echo "16 KiB POST: bext $p, nginx $np, bext/nginx $(python3 -c "print(round($p/$np, 2))")"
dp=$(CG_PATH=/post count bext-deploy-post "$BXD" "$BEXT" serve --config "$OUT/deploy-on/platform.toml")
WRK_ARGS=()
d=$(count bext-deploy "$BXD" "$BEXT" serve --config "$OUT/deploy-on/platform.toml")
echo "deploy on (the default): GET bext $d ($(python3 -c "print(round($d/$n, 2))")x nginx), 16 KiB POST bext $dp ($(python3 -c "print(round($dp/$np, 2))")x nginx)"
