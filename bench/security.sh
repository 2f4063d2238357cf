#!/usr/bin/env bash
# Security plugins' cost on the server, all in one run on this machine:
# a static 1 KiB file served with no plugin, with the waf (block mode,
# every rule), and with all three security plugins: waf, gateway (a per-IP
# rate limit high enough never to refuse, CORS, security headers) and
# authn (an HS256 JWT on every request), with browser-like requests (user
# agent, cookies, referer, query arguments, a bearer token).
#
#   bench/security.sh                     # 10 s rounds, 3 rounds
#   DURATION=5 ROUNDS=2 bench/security.sh
#   BASELINE=/path/to/older/bext bench/security.sh
#                                         # also the older build, plugin-free and with all
#                                         # three, in the same rounds: new/old ratios
#
# Needs wrk. The server is pinned to CPU 0, wrk to CPU 1; one bext worker.
# For the inspection itself, per request: cargo bench -p bext-plugin-waf
source "$(dirname "$0")/common.sh"
OUT=bench/out/security
need wrk taskset curl python3

# BEXT=path/to/bext runs another build (e.g. `cargo build --profile
# profiling` for perf); KEEP=1 leaves the three servers running afterwards.
if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT
wait_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1$2" && return; sleep 0.1; done; echo "port $1 did not come up"; exit 1; }

TARGET="/index.html?page=2&sort=price&utm_source=newsletter"
TOKEN=$(bench_jwt)
HEADERS=("${BROWSER_HEADERS[@]}" -H "Authorization: Bearer $TOKEN")
rps() { # port [pid] -> requests/s; with a pid, its CPU µs per request goes to $OUT/cpu.<port>
  local before after out
  [ -n "${2:-}" ] && before=$(cpu_ns "$2")
  out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${HEADERS[@]}" "http://127.0.0.1:$1$TARGET")
  if [ -n "${2:-}" ]; then
    after=$(cpu_ns "$2")
    awk -v a="$after" -v b="$before" '/requests in/ {printf "%.3f\n", (a - b) / $1 / 1000}' <<<"$out" >> "$OUT/cpu.$1"
  fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
warm() { taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "${HEADERS[@]}" "http://127.0.0.1:$1$TARGET" >/dev/null; }

mk() { # name port waf-enabled gateway-enabled authn-enabled [binary]
  security_site "$OUT/$1" "$2" "$3" "$4" "$5"
  taskset -c "$SERVER_CPU" "${6:-$BEXT}" serve --config "$OUT/$1/platform.toml" >/dev/null 2>"$OUT/$1.err" & PIDS+=($!)
}
mk off 19190 false false false
mk waf 19191 true false false
mk all 19192 true true true
PORTS=(19190 19191 19192)
if [ -n "${BASELINE:-}" ]; then
  mk old-off 19193 false false false "$BASELINE"
  mk old-all 19194 true true true "$BASELINE"
  PORTS+=(19193 19194)
fi
for p in "${PORTS[@]}"; do wait_up $p /index.html; warm $p; done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:19191/?q=%27%20OR%201=1--")" = 403 ] || { echo "the waf is not blocking"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:19192/index.html")" = 401 ] || { echo "authn is not on"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "${HEADERS[@]}" "http://127.0.0.1:19192$TARGET")" = 200 ] || { echo "the benchmark request is refused"; exit 1; }

echo "static 1 KiB file, browser-like requests, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (req/s)"
printf "%-6s %10s %10s %10s %8s %8s %10s\n" round off waf all-three waf/off all/off "+us all"
WAF_RATIOS=(); ALL_RATIOS=(); NEW_OFF=(); NEW_ALL=()
for r in $(seq 1 "$ROUNDS"); do
  a=$(rps 19190 "${PIDS[0]}"); b=$(rps 19191 "${PIDS[1]}"); c=$(rps 19192 "${PIDS[2]}")
  if [ -n "${BASELINE:-}" ]; then
    d=$(rps 19193); e=$(rps 19194)
    NEW_OFF+=("$(python3 -c "print(round($a/$d,3))")"); NEW_ALL+=("$(python3 -c "print(round($c/$e,3))")")
    printf "%-6s baseline: off %10s all %10s   new/old: off %s all %s\n" "$r" "$d" "$e" "${NEW_OFF[-1]}" "${NEW_ALL[-1]}"
  fi
  WAF_RATIOS+=("$(python3 -c "print(round($b/$a,3))")"); ALL_RATIOS+=("$(python3 -c "print(round($c/$a,3))")")
  printf "%-6s %10s %10s %10s %8s %8s %10s\n" "$r" "$a" "$b" "$c" \
    "${WAF_RATIOS[-1]}" "${ALL_RATIOS[-1]}" "$(python3 -c "print(round(1e6/$c-1e6/$a,2))")"
done
# This machine's noise moves single rounds by 10% or more: the medians of
# many short rounds are the figures to quote.
median() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
echo "median waf/off $(median "${WAF_RATIOS[@]}"), median all/off $(median "${ALL_RATIOS[@]}")"
# The same as capacity: server CPU per request, off over on (1.0 = free).
python3 - "$OUT" <<'PY'
import statistics, sys
cpu = {p: [float(x) for x in open(f"{sys.argv[1]}/cpu.{p}")] for p in (19190, 19191, 19192)}
off, waf, all3 = (statistics.median(cpu[p]) for p in (19190, 19191, 19192))
waf_r = statistics.median(o / w for o, w in zip(cpu[19190], cpu[19191]))
all_r = statistics.median(o / a for o, a in zip(cpu[19190], cpu[19192]))
print(f"server CPU per request (median): off {off:.2f} us, waf {waf:.2f} us, all three {all3:.2f} us; "
      f"capacity waf/off {waf_r:.3f}, all/off {all_r:.3f}")
PY
if [ -n "${BASELINE:-}" ]; then
  echo "median new/old: plugin-free $(median "${NEW_OFF[@]}"), all three $(median "${NEW_ALL[@]}")"
fi
