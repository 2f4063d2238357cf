#!/usr/bin/env bash
# Many JavaScript apps on one instance (issue 25, "Many apps on one
# instance"): N hello-world JS apps, each in its own directory, in the
# default threads mode. For each N it reports
#
# - the time from `bext serve` to /__bext/health answering (modules are
#   checked in the background once the server listens: in an isolate that
#   is then dropped, or by a check shared with an app of the same code; so
#   with DISTINCT=1 the RSS before traffic is read while checks still run);
# - RSS and OS threads before any traffic (no app has an isolate yet);
# - a cold app's first request: p50/p99 over COLD apps, one request each
#   (the isolate and its thread are started for it), and the same apps'
#   second request (warm) for comparison;
# - RSS and threads after touching TOUCH apps, and after they were all
#   evicted (`isolate = { idle_evict = IDLE_EVICT }`), with the time that
#   took.
#
#   bench/js-many.sh                  # N=1000 and N=10000
#   NS="500" COLD=100 bench/js-many.sh
#   BEXT=target/debug/bext bench/js-many.sh   # without a release build
#   DISTINCT=1 bench/js-many.sh       # every app's file differs (a comment)
#   MODE=shared bench/js-many.sh      # isolate.mode = "shared" (default: threads)
#   TOUCH=0 bench/js-many.sh          # skip the touch and eviction rounds
#   APP=examples/apps/react-ssr/dist/index.js bench/js-many.sh
#                                     # every app runs this file instead of
#                                     # bench/js/hello.js (a 220 KB bundle:
#                                     # what a cold isolate's module load costs)
#
# By default every app has the same file, byte for byte, as white-label
# apps built from one bundle do: they share one load check (docs/js-apps.md,
# "Many apps"). DISTINCT=1 gives each app a file of its own, so each is
# checked in an isolate.
#
# Needs curl. Latencies are one curl per request, so they include curl's
# connection setup on loopback.
source "$(dirname "$0")/common.sh"
need curl

NS=${NS:-"1000 10000"}
COLD=${COLD:-200}
TOUCH=${TOUCH:-1000}
IDLE_EVICT=${IDLE_EVICT:-10s}
DISTINCT=${DISTINCT:-0}
MODE=${MODE:-threads}
APP=${APP:-bench/js/hello.js}
PORT=${PORT:-19180}
OUT=bench/out/js-many
if [ -z "${BEXT:-}" ]; then
  cargo build --release -q -p bext
  BEXT=$PWD/target/release/bext
fi

PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT

# cpu_ms PID: the process's CPU time so far (user + system), in ms: a
# cost per request that moves far less with the machine's load than
# latencies do.
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / t)}' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
# percentile FILE P: the P-th percentile of the numbers in FILE (seconds), in ms.
percentile() {
  sort -n "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.2f", v[i] * 1000}'
}
# first_byte HOST...: one request to each host, time to first byte (s), one a line.
first_byte() {
  for h in "$@"; do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' -H "Host: $h" "http://127.0.0.1:$PORT/"
  done
}

for N in $NS; do
  rm -rf "$OUT"; mkdir -p "$OUT/apps"
  {
    printf '[platform]\nlisten = "127.0.0.1:%s"\naccess_log = false\nwatch = false\n' "$PORT"
    for i in $(seq 1 "$N"); do
      printf '\n[apps.a%s]\nruntime = "js"\nsource = "apps/a%s"\ndomains = ["a%s.many.test"]\nisolate = { idle_evict = "%s", mode = "%s" }\n' \
        "$i" "$i" "$i" "$IDLE_EVICT" "$MODE"
    done
  } > "$OUT/platform.toml"
  for i in $(seq 1 "$N"); do
    mkdir "$OUT/apps/a$i"; cp "$APP" "$OUT/apps/a$i/index.js"
    if [ "$DISTINCT" = 1 ]; then echo "// app a$i" >> "$OUT/apps/a$i/index.js"; fi
  done

  start=$(now_ms)
  "$BEXT" serve --config "$OUT/platform.toml" >/dev/null 2>"$OUT/bext.err" & PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/__bext/health"; do
    kill -0 "$PID" 2>/dev/null || { echo "bext exited:"; tail -5 "$OUT/bext.err"; exit 1; }
    sleep 0.01
  done
  up=$(( $(now_ms) - start ))
  sleep 1
  base_threads=$(threads "$PID")
  echo "N=$N: up in ${up} ms; before traffic: RSS $(rss_mb "$PID") MB, $base_threads threads"

  hosts=()
  for i in $(seq 1 "$COLD"); do hosts+=("a$(( (i * 7919) % N + 1 )).many.test"); done
  cpu0=$(cpu_ms "$PID")
  first_byte "${hosts[@]}" > "$OUT/cold.txt"
  cpu1=$(cpu_ms "$PID")
  first_byte "${hosts[@]}" > "$OUT/warm.txt"
  cpu2=$(cpu_ms "$PID")
  echo "N=$N: $COLD cold apps, first request p50 $(percentile "$OUT/cold.txt" 50) ms, p99 $(percentile "$OUT/cold.txt" 99) ms;" \
    "second request p50 $(percentile "$OUT/warm.txt" 50) ms, p99 $(percentile "$OUT/warm.txt" 99) ms;" \
    "server CPU per request: first $(( (cpu1 - cpu0) * 1000 / COLD )) us, second $(( (cpu2 - cpu1) * 1000 / COLD )) us"

  if [ "$TOUCH" = 0 ]; then # start, memory and cold requests only
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    continue
  fi
  touch_n=$(( TOUCH < N ? TOUCH : N ))
  seq 1 "$touch_n" | xargs -P 4 -I{} curl -s -o /dev/null -H "Host: a{}.many.test" "http://127.0.0.1:$PORT/"
  echo "N=$N: after touching $touch_n apps: RSS $(rss_mb "$PID") MB, $(threads "$PID") threads"

  idle_from=$(now_ms)
  until [ "$(threads "$PID")" -le "$base_threads" ]; do
    [ $(( $(now_ms) - idle_from )) -lt 120000 ] || { echo "not evicted within 120 s"; break; }
    sleep 0.2
  done
  echo "N=$N: evicted (idle_evict = $IDLE_EVICT) $(( $(now_ms) - idle_from )) ms after the last request: RSS $(rss_mb "$PID") MB, $(threads "$PID") threads"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
