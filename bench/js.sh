#!/usr/bin/env bash
# JavaScript benchmark, all in one run on this machine:
#
# 1. a hello-world JS app: bext (QuickJS isolates, on an isolate thread
#    and inline on the HTTP worker) vs Bun (Bun.serve) vs Node (node:http),
#    requests/s and ratios;
# 2. the per-request cost of a plugin: none, a built-in (request-id), a
#    dynamic Rust plugin (rust-hello, .so) and a JS plugin (bench/js/plugin.js,
#    on an isolate thread and inline), each setting one request and one
#    response header, in front of a static file.
#
#   bench/js.sh                       # 10 s rounds, 3 rounds
#   DURATION=5 ROUNDS=2 bench/js.sh
#   PARTS=plugins bench/js.sh         # only part 2 (PARTS=app: only part 1)
#   BEXT=/path/to/bext PARTS=app bench/js.sh
#                                     # a binary copied out of target/ (say,
#                                     # the profiling build: release code)
#
# Needs wrk, node and npm (Bun comes from the npm registry into bench/out).
# Servers are pinned to CPU 0, wrk to CPU 1; every server gets one core.
source "$(dirname "$0")/common.sh"
OUT=bench/out/js
need wrk node npm taskset curl

if [ -z "${BEXT:-}" ]; then
  cargo build --release -q -p bext -p bext-plugin-rust-hello
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

PARTS=${PARTS:-app,plugins}

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
[[ $PARTS == *plugins* ]] || exit 0
LIB=$PWD/target/release/libbext_plugin_rust_hello.so
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
