#!/usr/bin/env bash
# Instructions per request of the hello-world JS app (bench/js/hello.js),
# counted by callgrind on the real server (a number the machine's load
# does not move): one connection at a time, in the default isolate mode
# (threads) and inline. valgrind runs one thread at a time, so this is
# the work done on the path worker -> isolate -> worker, not the waiting.
#
#   bench/js-instructions.sh                     # this checkout
#   BEXT=/path/to/bext bench/js-instructions.sh  # a binary copied out of target/
#   BASELINE=/path/to/older/bext bench/js-instructions.sh
#                                                # both, and new/old
#   MODES=threads bench/js-instructions.sh       # only some modes
#   POST=1 bench/js-instructions.sh              # a small POST (POST_BYTES,
#                                                # 256) read whole by
#                                                # bench/js/post.js instead
#
# Builds `--profile profiling` unless BEXT is given;
# `callgrind_annotate --inclusive=yes bench/out/js-instructions/<name>.cg.1`
# names the functions. Needs valgrind, wrk and curl.
source "$(dirname "$0")/common.sh"
need valgrind callgrind_control callgrind_annotate wrk curl
OUT=bench/out/js-instructions
DURATION=${DURATION:-8}
read -ra MODES <<< "${MODES:-threads inline}"
if [ -z "${BEXT:-}" ]; then cargo build --profile profiling -q -p bext; BEXT=$PWD/target/profiling/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/app"
WRK_ARGS=()
if [ -n "${POST:-}" ]; then
  cp bench/js/post.js "$OUT/app/index.js"
  head -c "${POST_BYTES:-256}" /dev/zero | tr '\0' z > "$OUT/body"
  cat > "$OUT/post.lua" <<LUA
local f = io.open("$OUT/body", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
LUA
  WRK_ARGS=(-s "$OUT/post.lua")
else
  cp bench/js/hello.js "$OUT/app/index.js"
fi

count() { # name binary port mode -> instructions per request
  cat > "$OUT/$1.toml" <<TOML
[platform]
listen = "127.0.0.1:$3"
access_log = false
watch = false
workers = 1
default_app = "hello"
[apps.hello]
runtime = "js"
source = "app"
isolate = { mode = "$4", workers = 1 }
TOML
  callgrind_per_request "$OUT/$1.cg" "http://127.0.0.1:$3/" "$2" serve --config "$OUT/$1.toml"
}

port=18491
for mode in "${MODES[@]}"; do
  new=$(count "$mode" "$BEXT" "$port" "$mode")
  echo "$mode: $new instructions per request ($BEXT)"
  if [ -n "${BASELINE:-}" ]; then
    old=$(count "$mode-old" "$BASELINE" $((port + 1)) "$mode")
    echo "$mode: $old instructions per request ($BASELINE)"
    python3 -c "print(f'$mode new/old instructions: {$new/$old:.3f}')"
  fi
  port=$((port + 2))
done
