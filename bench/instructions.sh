#!/usr/bin/env bash
# Instructions per request on the server, counted by callgrind: a number
# that does not move with the machine's load, for changes too small for
# wrk to see (a few percent). A plugin-free static 1 KiB file, the
# browser-like request of bench/security.sh, one connection at a time (so
# no batching of requests per wake-up changes the count).
#
#   bench/instructions.sh                        # this checkout
#   BASELINE=/path/to/older/bext bench/instructions.sh
#                                                # both, and new/old
#   CG_PORT=18581 bench/instructions.sh          # the first of the ports it
#                                                # listens on (default 18481,
#                                                # the others follow it), for
#                                                # runs side by side
#   PROTOCOL=h2c bench/instructions.sh           # HTTP/2 (prior knowledge)
#                                                # with h2load, one stream
#                                                # at a time
#   METRICS_OFF=1 bench/instructions.sh          # also with [platform.metrics]
#                                                # enabled = false: what
#                                                # counting costs, same binary
#   REQUEST=plain bench/instructions.sh          # run.sh's request instead:
#                                                # GET /index.html, Host only
#   NGINX=1 bench/instructions.sh                # also nginx serving the same file
#                                                # (as run.sh's faster variant:
#                                                # sendfile off, open_file_cache,
#                                                # no access log), same requests
#   FAST_PATH_OFF=1 bench/instructions.sh        # also with http1_fast_path =
#                                                # false: hyper for every
#                                                # connection, same binary
#   OBSERVE=1 bench/instructions.sh              # what observing costs, same binary:
#                                                # neither metrics nor an access log,
#                                                # metrics only, metrics + a JSON access
#                                                # log to a file, metrics + a combined one
#                                                # (every thread's instructions: the log's
#                                                # own thread formats and writes; with
#                                                # CG_THREADS=1 also the log thread's apart)
#   NGINX_LOG=1 bench/instructions.sh            # what nginx's access log costs it, as OBSERVE
#                                                # measures bext's: nginx (as NGINX=1) with
#                                                # access_log off, the combined format, and a
#                                                # JSON log_format (escape=json) with the fields
#                                                # of bext's JSON line, each unbuffered and with
#                                                # buffer=64k (and once without its random
#                                                # $request_id); with OBSERVE=1 bext's rows too.
#                                                # Callgrind counts user space only: an
#                                                # unbuffered line's write(2) is not in it
#   JSON_LOG=1 METRICS_OFF=1 bench/instructions.sh
#                                                # the first run also writes
#                                                # a JSON access log to a file:
#                                                # metrics + logs against
#                                                # neither
#
# Builds `--profile profiling` (release code with line tables) so that
# `callgrind_annotate --inclusive=yes bench/out/instructions/<name>/cg.out.1`
# names the functions. Needs valgrind, wrk and curl.
source "$(dirname "$0")/common.sh"
OUT=bench/out/instructions
need valgrind callgrind_control callgrind_annotate wrk curl
DURATION=${DURATION:-8}
CG_PORT=${CG_PORT:-18481}

if [ -z "${BEXT:-}" ]; then cargo build --profile profiling -q -p bext; BEXT=$PWD/target/profiling/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT"

WRK_ARGS=("${BROWSER_HEADERS[@]}" -H "Authorization: Bearer abc.def.ghi")
[ "${REQUEST:-browser}" = plain ] && WRK_ARGS=()

count() { # name binary port [platform tables] [platform keys] [access_log] -> prints instructions per request
  local dir="$OUT/$1" bin=$2 port=$3 tables=${4:-} keys=${5:-} access_log=${6:-false}
  mkdir -p "$dir/www" "$dir/manifests"
  head -c 1024 /dev/zero | tr '\0' 'x' > "$dir/www/index.html"
  # vhosts on (as by default), the rest off: the kernel's own cost.
  printf 'name: vhosts\n' > "$dir/manifests/vhosts.yaml"
  for p in waf gateway authn deploy; do printf 'name: %s\nenabled: false\n' "$p" > "$dir/manifests/$p.yaml"; done
  cat > "$dir/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$port"
access_log = $access_log
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
$keys
$tables
[apps.site]
source = "www"
TOML
  CG_URL="http://127.0.0.1:$port/index.html?page=2&sort=price&utm_source=newsletter"
  [ "${REQUEST:-browser}" = plain ] && CG_URL="http://127.0.0.1:$port/index.html"
  if [ "${PROTOCOL:-h1}" = h2c ]; then
    callgrind_count "$dir/cg.out" cg_curl_ready cg_h2load_one_stream "$bin" serve --config "$dir/platform.toml"
  else
    callgrind_per_request "$dir/cg.out" "$CG_URL" "$bin" serve --config "$dir/platform.toml"
  fi
}

cg_h2load_one_stream() { # seconds -> requests done, over one h2c connection
  h2load -c1 -m1 -D"$1" "${H2LOAD_ARGS[@]}" "$CG_URL" | awk '/^requests:/ {print $8}'
}
H2LOAD_ARGS=()
for ((i = 0; i < ${#WRK_ARGS[@]}; i += 2)); do H2LOAD_ARGS+=(-H "${WRK_ARGS[i + 1]}"); done
[ "${PROTOCOL:-h1}" = h2c ] && need h2load

# nginx_count NAME PORT ROOT [ACCESS_LOG]: nginx serving ROOT as NGINX=1
# does (its faster static variant), the server's `access_log` directive
# ACCESS_LOG (default off); prints instructions per request.
nginx_count() {
  local dir=$PWD/$OUT/$1 port=$2 root=$3 access_log=${4:-off}
  mkdir -p "$dir/logs"
  # The fields of bext's JSON line for this request (time, request_id,
  # trace_id, client, method, host, path, status, bytes, duration_ms, app,
  # user_agent): nginx's nearest variables. It has no trace id: the
  # request id (32 random hex digits) stands for it.
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; tcp_nodelay on; keepalive_requests 1000000;
  open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;
  include /etc/nginx/mime.types;
  client_body_temp_path $dir; proxy_temp_path $dir;
  fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  log_format bext_json escape=json '{"time":"\$time_iso8601","request_id":"\$request_id","trace_id":"\$request_id",'
    '"client":"\$remote_addr","method":"\$request_method","host":"\$host","path":"\$uri","status":\$status,'
    '"bytes":\$body_bytes_sent,"duration_ms":\$request_time,"app":"\$server_name","user_agent":"\$http_user_agent"}';
  # The same without \$request_id, whose 16 random bytes come from
  # OpenSSL's RAND_bytes (most of the line's cost): the connection and its
  # request count stand for both ids.
  log_format bext_json_noid escape=json '{"time":"\$time_iso8601","request_id":"\$connection-\$connection_requests",'
    '"trace_id":"\$connection-\$connection_requests","client":"\$remote_addr","method":"\$request_method",'
    '"host":"\$host","path":"\$uri","status":\$status,"bytes":\$body_bytes_sent,"duration_ms":\$request_time,'
    '"app":"\$server_name","user_agent":"\$http_user_agent"}';
  server { listen 127.0.0.1:$port; server_name site; root $root; sendfile off; access_log $access_log; }
}
CONF
  local url="http://127.0.0.1:$port/index.html?page=2&sort=price&utm_source=newsletter"
  [ "${REQUEST:-browser}" = plain ] && url="http://127.0.0.1:$port/index.html"
  callgrind_per_request "$dir/cg.out" "$url" nginx -c "$dir/nginx.conf" -p "$dir"
}

if [ -n "${NGINX_LOG:-}" ]; then
  need nginx
  root=$PWD/$OUT/nginx-www
  mkdir -p "$root"
  head -c 1024 /dev/zero | tr '\0' 'x' > "$root/index.html"
  printf '%-22s %8s %7s %9s\n' "nginx access_log" all ratio "per line"
  n_off=$(nginx_count nginx-log-off $((CG_PORT + 10)) "$root")
  printf '%-22s %8s %7s %9s\n' off "$n_off" 1.000 0
  port=$((CG_PORT + 11))
  for row in "combined combined" "combined-64k combined buffer=64k" "json bext_json" "json-64k bext_json buffer=64k" \
    "json-noid-64k bext_json_noid buffer=64k"; do
    set -- $row
    name=$1; shift
    n=$(nginx_count "nginx-log-$name" "$port" "$root" "$PWD/$OUT/nginx-log-$name/access.log $*")
    lines=$(wc -l < "$OUT/nginx-log-$name/access.log")
    python3 -c "print(f'{\"$name\":<22} {$n:>8,} {$n/$n_off:7.3f} {$n-$n_off:>9,}  ({$lines} lines)')"
    port=$((port + 1))
  done
  tail -1 "$OUT/nginx-log-json/access.log"
  [ -z "${OBSERVE:-}" ] && exit 0
fi

if [ -n "${OBSERVE:-}" ]; then
  off=$(count observe-off "$BEXT" $((CG_PORT + 4)) $'[platform.metrics]\nenabled = false')
  metrics=$(count observe-metrics "$BEXT" $((CG_PORT + 5)))
  json=$(count observe-json "$BEXT" $((CG_PORT + 6)) "" "" "{ format = \"json\", path = \"$PWD/$OUT/observe-json/access.log\" }")
  combined=$(count observe-combined "$BEXT" $((CG_PORT + 7)) "" "" "{ format = \"combined\", path = \"$PWD/$OUT/observe-combined/access.log\" }")
  echo "access log lines: json $(wc -l < "$OUT/observe-json/access.log"), combined $(wc -l < "$OUT/observe-combined/access.log")"
  # The log's own thread, apart (CG_THREADS=1 counts each thread).
  log_thread() { awk '$2 == "access-log-thread" {n += $1} END {print n + 0}' "$OUT/$1/cg.out.threads" 2>/dev/null || echo 0; }
  printf '%-18s %8s %7s %12s %7s\n' run all ratio "log thread" "others/off"
  for row in "off $off observe-off" "metrics $metrics observe-metrics" "metrics+json $json observe-json" \
    "metrics+combined $combined observe-combined"; do
    set -- $row
    lt=$(log_thread "$3")
    python3 -c "print(f'{\"$1\":<18} {$2:>8,} {$2/$off:7.3f} {$lt:>12,} {($2-$lt)/$off:7.3f}')"
  done
  exit 0
fi
if [ -n "${JSON_LOG:-}" ]; then
  new=$(count new "$BEXT" $((CG_PORT + 0)) "" "" "{ format = \"json\", path = \"$PWD/$OUT/new/access.log\" }")
  echo "access log lines: $(wc -l < "$OUT/new/access.log")"
else
  new=$(count new "$BEXT" $((CG_PORT + 0)))
fi
echo "instructions per request: $new ($BEXT)"
if [ -n "${METRICS_OFF:-}" ]; then
  off=$(count metrics-off "$BEXT" $((CG_PORT + 2)) $'[platform.metrics]\nenabled = false')
  echo "instructions per request: $off (metrics off)"
  python3 -c "print(f'metrics on/off instructions: {$new/$off:.4f}')"
fi
if [ -n "${FAST_PATH_OFF:-}" ]; then
  off=$(count fast-path-off "$BEXT" $((CG_PORT + 3)) "" "http1_fast_path = false")
  echo "instructions per request: $off (http1_fast_path = false)"
  python3 -c "print(f'fast path on/off instructions: {$new/$off:.3f}')"
fi
if [ -n "${BASELINE:-}" ]; then
  old=$(count old "$BASELINE" $((CG_PORT + 1)))
  echo "instructions per request: $old ($BASELINE)"
  python3 -c "print(f'new/old instructions: {$new/$old:.3f}')"
fi
if [ -n "${NGINX:-}" ]; then
  need nginx
  ngx=$(nginx_count nginx $((CG_PORT + 8)) "$PWD/$OUT/new/www")
  echo "instructions per request: $ngx (nginx, sendfile off)"
  python3 -c "print(f'bext/nginx instructions: {$new/$ngx:.3f}')"
fi
