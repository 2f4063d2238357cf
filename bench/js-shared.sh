#!/usr/bin/env bash
# The shared JS pool (`isolate.mode = "shared"`) against the other isolate
# modes, on the two goals of issue 25's "Many apps on one instance":
#
# 1. hot: one hello-world app, the only one with traffic. Instructions per
#    request counted by callgrind (one connection, so no batching changes
#    the count; valgrind runs one thread at a time, so this is the work
#    done, not the hand-offs' waiting) and requests/s with wrk, the modes
#    taking turns in each round (server on SERVER_CPU, wrk on CLIENT_CPU).
# 2. loop: APPS hello-world apps and one app whose handler loops until its
#    `timeout` (2 s). The p50/p99 of one well-behaved app under wrk, alone,
#    then while LOOPS clients keep a looping request in flight each
#    (the issue's test: inline mode moved every app's p99 from 1 ms to
#    106 ms). Server and wrk are not pinned: the looping threads compete
#    for the cores as they would in production.
#
#   bench/js-shared.sh                    # both parts
#   PARTS=loop DURATION=5 bench/js-shared.sh
#   BEXT=target/debug/bext bench/js-shared.sh
#
# Every server has [platform] workers = 2 and, shared, js_threads = 2.
# Needs wrk, curl, valgrind.
source "$(dirname "$0")/common.sh"
need wrk curl valgrind callgrind_control taskset
OUT=bench/out/js-shared
PARTS=${PARTS:-hot,loop}
APPS=${APPS:-8}
LOOPS=${LOOPS:-4}
if [ -z "${BEXT:-}" ]; then
  cargo build --release -q -p bext
  BEXT=$PWD/target/release/bext
fi
rm -rf "$OUT"; mkdir -p "$OUT/hello" "$OUT/loop"
cp bench/js/hello.js "$OUT/hello/index.js"
cat > "$OUT/loop/index.js" <<'JS'
export default { fetch() { for (;;) {} } };
JS

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_up() { for _ in $(seq 1 300); do curl -sf -o /dev/null -H "Host: $2" "http://127.0.0.1:$1/" && return; sleep 0.1; done; echo "port $1 did not come up"; exit 1; }

# platform FILE PORT ISOLATE [APPS]: hello apps h1..hN (and `spin`) with
# the isolate table ISOLATE.
platform() {
  local file=$1 port=$2 isolate=$3 n=${4:-1}
  {
    printf '[platform]\nlisten = "127.0.0.1:%s"\naccess_log = false\nwatch = false\nworkers = 2\njs_threads = 2\n' "$port"
    for i in $(seq 1 "$n"); do
      printf '\n[apps.h%s]\nruntime = "js"\nsource = "hello"\ndomains = ["h%s.test"]\nisolate = { %s }\n' "$i" "$i" "$isolate"
    done
    printf '\n[apps.spin]\nruntime = "js"\nsource = "loop"\ndomains = ["spin.test"]\nisolate = { %s, timeout = "2s" }\n' "$isolate"
  } > "$file"
}

MODES=(threads shared inline)
isolate_of() { case $1 in threads) echo 'mode = "threads"' ;; shared) echo 'mode = "shared"' ;; inline) echo 'mode = "inline"' ;; esac; }

# ---- 1. a hot app
if [[ $PARTS == *hot* ]]; then
  port=19190
  for mode in "${MODES[@]}"; do
    platform "$OUT/hot-$mode.toml" "$port" "$(isolate_of "$mode")"
    WRK_ARGS=(-H "Host: h1.test")
    ipr=$(callgrind_per_request "$OUT/hot-$mode.cg" "http://127.0.0.1:$port/" "$BEXT" serve --config "$OUT/hot-$mode.toml")
    echo "hot, $mode: $ipr instructions per request"
    port=$((port + 1))
  done
  for mode in "${MODES[@]}"; do
    taskset -c "$SERVER_CPU" "$BEXT" serve --config "$OUT/hot-$mode.toml" >/dev/null 2>"$OUT/hot-$mode.err" & PIDS+=($!)
  done
  for p in 19190 19191 19192; do wait_up "$p" h1.test; done
  for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for i in 0 1 2; do
      r=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Host: h1.test" "http://127.0.0.1:$((19190 + i))/" | awk '/Requests\/sec/ {print $2}')
      line="$line ${MODES[$i]} $r req/s;"
    done
    echo "hot, $line"
  done
  cleanup; PIDS=()
fi

# ---- 2. one app loops, the others are measured
# latency PORT: p50 and p99 (ms) of h1 under wrk.
latency() {
  wrk -t1 -c8 -d"${DURATION}s" --latency -H "Host: h1.test" "http://127.0.0.1:$1/" |
    awk '/^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} END {print p50 " / " p99}'
}
if [[ $PARTS == *loop* ]]; then
  port=19195
  for mode in "${MODES[@]}"; do
    platform "$OUT/loop-$mode.toml" "$port" "$(isolate_of "$mode")" "$APPS"
    "$BEXT" serve --config "$OUT/loop-$mode.toml" >/dev/null 2>"$OUT/loop-$mode.err" & PIDS+=($!)
    wait_up "$port" h1.test
    for i in $(seq 1 "$APPS"); do curl -s -o /dev/null -H "Host: h$i.test" "http://127.0.0.1:$port/"; done
    alone=$(latency "$port")
    loopers=()
    for _ in $(seq 1 "$LOOPS"); do
      (while :; do curl -s -o /dev/null -H "Host: spin.test" "http://127.0.0.1:$port/"; done) & loopers+=($!)
    done
    sleep 1
    looping=$(latency "$port")
    for l in "${loopers[@]}"; do kill "$l" 2>/dev/null || true; done
    wait "${loopers[@]}" 2>/dev/null || true
    echo "loop, $mode: h1 p50 / p99 alone $alone; while $LOOPS requests loop in another app $looping"
    cleanup; PIDS=()
    port=$((port + 1))
  done
fi
