#!/usr/bin/env bash
# JavaScript benchmark, all in one run on this machine:
#
# 1. a hello-world JS app: bext (QuickJS isolates, on an isolate thread
#    and inline on the HTTP worker) vs Bun (Bun.serve) vs Node (node:http),
#    requests/s and ratios;
# 2. the per-request cost of a plugin: none, a built-in (request-id), a
#    dynamic Rust plugin (rust-hello, .so) and a JS plugin (bench/js/plugin.js,
#    on an isolate thread and inline), each setting one request and one
#    response header, in front of a static file;
# 3. a React page: the committed bundle of examples/apps/react-ssr
#    (react-dom/server's renderToReadableStream, streamed) served by bext
#    (threads mode as configured by default, shared, inline) vs the same
#    bundle under Bun.serve and under Node 20's node:http
#    (bench/js/node-adapter.mjs builds a Request and streams the Response);
# 4. a fetch-heavy handler (bench/js/fetch.js: one outbound fetch of a
#    1 KiB file from a local nginx per request, its body answered), the
#    same module in bext, Bun and Node.
#
#   bench/js.sh                       # 10 s rounds, 3 rounds, every part
#   DURATION=5 ROUNDS=2 bench/js.sh
#   PARTS=plugins bench/js.sh         # only part 2 (app, plugins, react, fetch; comma-separated)
#   BEXT=/path/to/bext PARTS=react,fetch bench/js.sh   # no cargo build
#
# Needs wrk, node and npm (Bun comes from the npm registry into bench/out),
# nginx for part 4. Servers are pinned to CPU 0, wrk (and part 4's
# upstream) to CPU 1; every server gets one core. Before timing, each part
# checks that every server gives the same body.
source "$(dirname "$0")/common.sh"
OUT=bench/out/js
PARTS=${PARTS:-app,plugins,react,fetch}
need wrk node npm taskset curl python3
[[ $PARTS == *fetch* ]] && need nginx

# BEXT=path skips the build (part 2 then takes the rust-hello plugin from
# next to it, or RUST_HELLO=path).
if [ -z "${BEXT:-}" ]; then
  if [[ $PARTS == *plugins* ]]; then cargo build --release -q -p bext -p bext-plugin-rust-hello; else cargo build --release -q -p bext; fi
  BEXT=$PWD/target/release/bext
fi
rm -rf "$OUT"; mkdir -p "$OUT/app" "$OUT/www"
cp bench/js/*.js bench/js/*.mjs "$OUT/"
cp bench/js/hello.js "$OUT/app/index.js"
[ -x bench/out/bun/node_modules/.bin/bun ] || (mkdir -p bench/out/bun && cd bench/out/bun && npm i --no-audit --no-fund bun@1.4.5 >/dev/null)
BUN=$PWD/bench/out/bun/node_modules/.bin/bun
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_up() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1$2" >/dev/null && return; sleep 0.1; done; echo "port $1 did not come up"; exit 1; }
rps() { # port path -> requests/s
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$1$2" | awk '/Requests\/sec/ {print $2}'
}
warm() { taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$1$2" >/dev/null; }

# ---- 1. hello world
if [[ $PARTS == *app* ]]; then
cat > "$OUT/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:19080"
access_log = false
watch = false
workers = 1
default_app = "hello"
[apps.hello]
runtime = "js"
source = "app"
isolate = { workers = 1 }
TOML
sed -e 's/19080/19083/' -e 's/isolate = { workers = 1 }/isolate = { mode = "inline" }/' "$OUT/platform.toml" > "$OUT/inline.toml"
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/platform.toml" >/dev/null 2>"$OUT/bext.err" & PIDS+=($!)
taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/inline.toml" >/dev/null 2>"$OUT/inline.err" & PIDS+=($!)
(cd "$OUT" && PORT=19081 taskset -c "$SERVER_CPU" "$BUN" bun-server.js) & PIDS+=($!)
(cd "$OUT" && PORT=19082 taskset -c "$SERVER_CPU" node node-server.mjs) & PIDS+=($!)
for p in 19080 19083 19081 19082; do wait_up $p /; warm $p /; done
for p in 19080 19083; do
  [ "$(curl -s http://127.0.0.1:$p/)" = "$(curl -s http://127.0.0.1:19081/)" ] || { echo "bext and bun disagree"; exit 1; }
done

echo "hello-world JS app, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (req/s)"
printf "%-6s %12s %12s %12s %12s %10s %10s %10s\n" round threads inline bun node threads/bun inline/bun inline/node
for r in $(seq 1 "$ROUNDS"); do
  b=$(rps 19080 /); i=$(rps 19083 /); u=$(rps 19081 /); n=$(rps 19082 /)
  printf "%-6s %12s %12s %12s %12s %10s %10s %10s\n" "$r" "$b" "$i" "$u" "$n" \
    "$(python3 -c "print(round($b/$u,3))")" "$(python3 -c "print(round($i/$u,3))")" "$(python3 -c "print(round($i/$n,3))")"
done
cleanup; PIDS=()
fi

# ---- 2. plugin overhead
if [[ $PARTS == *plugins* ]]; then
LIB=${RUST_HELLO:-$(dirname "$BEXT")/libbext_plugin_rust_hello.so}
[ -f "$LIB" ] || { echo "missing $LIB: build bext-plugin-rust-hello or set RUST_HELLO"; exit 1; }
mk() { # name port manifests...
  local name=$1 port=$2; shift 2
  mkdir -p "$OUT/$name/manifests"
  printf 'name: vhosts\n' > "$OUT/$name/manifests/vhosts.yaml"
  # A folder overrides only the plugins it names: deploy is on by default.
  printf 'name: deploy\nenabled: false\n' > "$OUT/$name/manifests/deploy.yaml"
  for m in "$@"; do printf '%s' "$m" > "$OUT/$name/manifests/$(echo "$m" | awk 'NR==1 {print $2}').yaml"; done
  cat > "$OUT/$name/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$port"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
[apps.site]
source = "../www"
TOML
  taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/$name/platform.toml" >/dev/null 2>"$OUT/$name.err" & PIDS+=($!)
}
cp bench/js/plugin.js "$OUT/js-plugin.js"
mk none 19090
mk builtin 19091 $'name: request-id\nenabled: true\n'
mk dylib 19092 "$(printf 'name: rust-hello\nentry: %s\nconfig:\n  greeting: hi\n' "$LIB")"
mk js 19093 $'name: js-plugin\nentry: ../../js-plugin.js\nlimits: { workers: 1 }\n'
mk jsinline 19094 $'name: js-plugin\nentry: ../../js-plugin.js\nlimits: { mode: inline }\n'
for p in 19090 19091 19092 19093 19094; do wait_up $p /index.html; warm $p /index.html; done

echo
echo "plugin overhead: static 1 KiB file behind one plugin (req/s; extra µs per request vs none)"
printf "%-6s %10s %10s %10s %10s %10s %14s %10s %10s %12s\n" round none builtin dylib js js-inline dylib/builtin "+us dylib" "+us js" "+us js-inline"
for r in $(seq 1 "$ROUNDS"); do
  a=$(rps 19090 /index.html); bi=$(rps 19091 /index.html); d=$(rps 19092 /index.html); j=$(rps 19093 /index.html); ji=$(rps 19094 /index.html)
  printf "%-6s %10s %10s %10s %10s %10s %14s %10s %10s %12s\n" "$r" "$a" "$bi" "$d" "$j" "$ji" \
    "$(python3 -c "print(round($d/$bi,3))")" \
    "$(python3 -c "print(round(1e6/$d-1e6/$a,2))")" "$(python3 -c "print(round(1e6/$j-1e6/$a,2))")" "$(python3 -c "print(round(1e6/$ji-1e6/$a,2))")"
done
cleanup; PIDS=()
fi

# ---- 3 and 4: a real app and a fetch-heavy handler, bext vs Bun vs Node
# checked_rps PORT PATH: "requests/s CPU-µs-per-request" for the server
# listening on PORT (its user and system time over the run, all threads,
# divided by the requests: a figure that other load on its core moves much
# less than requests/s), with a warning on stderr when some answers were
# not 2xx/3xx or connections failed (those rounds are suspect).
checked_rps() {
  local out pid t0 t1
  pid=$(ss -Htlnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$1$2")
  t1=$(cpu_ticks "$pid")
  grep -E 'Non-2xx|Socket errors' <<<"$out" | sed "s/^/  port $1: /" >&2 || true
  awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {printf "%s %.1f\n", r, ticks / hz * 1e6 / n}' <<<"$out"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime (no spaces in these comms)

# js_bext NAME PORT DIR [APP LINES]: a bext (one HTTP worker) serving the
# JS app in DIR (relative to $OUT) with the extra app settings given.
js_bext() {
  cat > "$OUT/$1.toml" <<TOML
[platform]
listen = "127.0.0.1:$2"
access_log = false
watch = false
workers = 1
default_app = "app"
[apps.app]
runtime = "js"
source = "$3"
${4:-}
TOML
  taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/$1.toml" >/dev/null 2>"$OUT/$1.err" & PIDS+=($!)
}

# js_others DIR PORT_BUN PORT_NODE [ENV...]: DIR/index.js under Bun.serve
# and under node:http (bench/js/node-adapter.mjs), with ENV (NAME=value);
# their output in $OUT/DIR-bun.log and DIR-node.log (Bun logs React's
# AbortError for each render wrk cuts off at the end of a round).
js_others() {
  (cd "$OUT" && exec env "${@:4}" APP="./$1/index.js" PORT="$2" taskset -c "$SERVER_CPU" "$BUN" bun-server.js >"$1-bun.log" 2>&1) & PIDS+=($!)
  (cd "$OUT" && exec env "${@:4}" APP="./$1/index.js" PORT="$3" taskset -c "$SERVER_CPU" node node-adapter.mjs >"$1-node.log" 2>&1) & PIDS+=($!)
}

# race TITLE PATH EXPECT NAME=PORT...: the last two are Bun and Node. Every
# server must answer PATH with 200 and the same body as Node, which
# contains EXPECT; then ROUNDS rounds, servers in turn. Prints requests/s,
# each bext server's ratio to Bun and to Node, and the medians.
race() {
  local title=$1 path=$2 expect=$3; shift 3
  local names=() ports=() s p
  for s in "$@"; do names+=("${s%%=*}"); ports+=("${s##*=}"); done
  local node=${ports[${#ports[@]}-1]}
  for p in "${ports[@]}"; do wait_up "$p" "$path"; done
  curl -sf "http://127.0.0.1:$node$path" > "$OUT/body.node"
  grep -qF "$expect" "$OUT/body.node" || { echo "Node's answer to $path lacks '$expect'"; exit 1; }
  for p in "${ports[@]}"; do
    curl -sf "http://127.0.0.1:$p$path" > "$OUT/body.$p" || { echo "port $p failed on $path"; exit 1; }
    cmp -s "$OUT/body.node" "$OUT/body.$p" || { echo "port $p answers $path with another body than Node:"; diff "$OUT/body.node" "$OUT/body.$p" | head; exit 1; }
    warm "$p" "$path"
  done
  echo
  echo "$title, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (req/s); bodies equal ($(wc -c < "$OUT/body.node") bytes)"
  : > "$OUT/race.txt"
  for r in $(seq 1 "$ROUNDS"); do
    local row=()
    for p in "${ports[@]}"; do row+=("$(checked_rps "$p" "$path")"); done
    echo "${row[*]}" >> "$OUT/race.txt"
  done
  python3 - "$OUT/race.txt" "${names[@]}" <<'PY'
import statistics, sys
pairs = [[float(x) for x in line.split()] for line in open(sys.argv[1])]
names = sys.argv[2:]
bext = names[:-2]
head = names + [f"{b}/{o}" for b in bext for o in ("bun", "node")]
def line(label, values):
    print(f"{label:<7}" + "".join(f"{v:>13}" for v in values))
def table(rows, fmt, ratio):
    line("round", head)
    ratios = []
    for i, row in enumerate(rows, 1):
        r = [round(ratio(row[j], row[k]), 3) for j in range(len(bext)) for k in (-2, -1)]
        ratios.append(r)
        line(str(i), [format(v, fmt) for v in row] + r)
    line("median", [format(statistics.median(c), fmt) for c in zip(*rows)] + [round(statistics.median(c), 3) for c in zip(*ratios)])
print("requests/s; ratios: bext's requests/s over the other's")
table([p[0::2] for p in pairs], ",.0f", lambda b, o: b / o)
print("CPU µs per request (the server's user + system time); ratios: the other's over bext's")
table([p[1::2] for p in pairs], ",.1f", lambda b, o: o / b)
PY
}

if [[ $PARTS == *react* ]]; then
  mkdir -p "$OUT/react"
  cp examples/apps/react-ssr/dist/index.js "$OUT/react/index.js"
  js_bext react-threads 19100 react
  js_bext react-shared 19101 react 'isolate = { mode = "shared" }'
  js_bext react-inline 19102 react 'isolate = { mode = "inline" }'
  js_others react 19103 19104
  race "React SSR page (examples/apps/react-ssr, renderToReadableStream)" "/?delay=0" "<li>cortado</li>" \
    threads=19100 shared=19101 inline=19102 bun=19103 node=19104
  cleanup; PIDS=()
fi

if [[ $PARTS == *fetch* ]]; then
  # The upstream: nginx on the client's core, a 1 KiB file, keep-alive.
  UPSTREAM=127.0.0.1:19119
  mkdir -p "$OUT/fetch" "$OUT/nginx/www"
  cp bench/js/fetch.js "$OUT/fetch/index.js"
  head -c 1024 /dev/zero | tr '\0' 'u' > "$OUT/nginx/www/1k.txt"
  cat > "$OUT/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 300s; keepalive_requests 1000000;
  client_body_temp_path $PWD/$OUT/nginx; proxy_temp_path $PWD/$OUT/nginx;
  fastcgi_temp_path $PWD/$OUT/nginx; uwsgi_temp_path $PWD/$OUT/nginx; scgi_temp_path $PWD/$OUT/nginx;
  server { listen $UPSTREAM; root $PWD/$OUT/nginx/www; default_type text/plain; }
}
NGINX
  taskset -c "$CLIENT_CPU" nginx -c "$PWD/$OUT/nginx/nginx.conf" -e "$PWD/$OUT/nginx/error.log" & PIDS+=($!)
  # max_concurrent above the connections: bext's default (16 fetches in
  # flight per app) would refuse some in inline mode; Bun and Node have none.
  allow="fetch = { allow = [\"$UPSTREAM\"], max_concurrent = 256 }"
  js_bext fetch-threads 19110 fetch "env = { UPSTREAM = \"http://$UPSTREAM/1k.txt\" }
isolate = { $allow }"
  js_bext fetch-shared 19111 fetch "env = { UPSTREAM = \"http://$UPSTREAM/1k.txt\" }
isolate = { mode = \"shared\", $allow }"
  js_bext fetch-inline 19112 fetch "env = { UPSTREAM = \"http://$UPSTREAM/1k.txt\" }
isolate = { mode = \"inline\", $allow }"
  js_others fetch 19113 19114 UPSTREAM="http://$UPSTREAM/1k.txt"
  race "fetch-heavy handler (bench/js/fetch.js: one fetch of a 1 KiB file from nginx per request)" / uuuuuuuu \
    threads=19110 shared=19111 inline=19112 bun=19113 node=19114
  cleanup; PIDS=()
fi
