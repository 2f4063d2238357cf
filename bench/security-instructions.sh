#!/usr/bin/env bash
# The security plugins' cost as instructions per request on the real
# server, counted by callgrind (a figure this shared machine's load does
# not move, where bench/security.sh's req/s ratios move by ±10%): the
# static 1 KiB file and browser-like request (bearer JWT included) of
# bench/security.sh, one connection at a time, with no plugin, the waf
# alone, and all three (waf, gateway, authn), each in its own server.
#
#   bench/security-instructions.sh
#   BEXT=/path/to/bext bench/security-instructions.sh
#   DURATION=4 bench/security-instructions.sh
#   CG_PORT=19081 bench/security-instructions.sh  (ports CG_PORT..+2, for runs side by side)
#
# Prints instructions per request, the ratios waf/off and all/off, and
# where the extra instructions go (callgrind's inclusive count of each
# plugin's hooks and the pipeline's dispatch, per request). Builds
# `--profile profiling`; `callgrind_annotate --inclusive=yes
# bench/out/security-instructions/<name>/cg.out.1` shows the rest.
# Needs valgrind, wrk, curl and python3.
source "$(dirname "$0")/common.sh"
OUT=bench/out/security-instructions
need valgrind callgrind_control callgrind_annotate wrk curl python3
DURATION=${DURATION:-6}
PORT=${CG_PORT:-18491}

if [ -z "${BEXT:-}" ]; then cargo build --profile profiling -q -p bext; BEXT=$PWD/target/profiling/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"
WRK_ARGS=("${BROWSER_HEADERS[@]}" -H "Authorization: Bearer $(bench_jwt)")
URL_PATH="/index.html?page=2&sort=price&utm_source=newsletter"

count() { # name port waf gateway authn -> instructions per request
  local dir="$OUT/$1"
  security_site "$dir" "$2" "$3" "$4" "$5"
  CG_URL="http://127.0.0.1:$2$URL_PATH"
  callgrind_count "$dir/cg.out" cg_curl_ready cg_wrk_all_ok "$BEXT" serve --config "$dir/platform.toml"
  if [ -e "$OUT/refused" ]; then cat "$OUT/refused" >&2; exit 1; fi
}

# Requests the count divides by, for the breakdown below.
requests() { # cg.out.1 instructions-per-request -> requests
  local total
  total=$(callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  echo $((total / $2))
}

# Every counted answer must be a 200 (a refused request is cheaper):
# wrk's count of other answers stops the script.
cg_wrk_all_ok() { # seconds -> requests done
  local out
  out=$(wrk -t1 -c1 -d"$1s" "${WRK_ARGS[@]}" "$CG_URL")
  if grep -q "Non-2xx" <<<"$out"; then echo "$CG_URL: $(grep Non-2xx <<<"$out")" > "$OUT/refused"; fi
  awk '/requests in/ {print $1}' <<<"$out"
}

off=$(count off "$PORT" false false false)
waf=$(count waf $((PORT + 1)) true false false)
all=$(count all $((PORT + 2)) true true true)
printf "instructions per request: off %s, waf %s, all three %s\n" "$off" "$waf" "$all"
python3 -c "print(f'waf/off {$waf/$off:.3f} (+{100*($waf/$off-1):.1f}%), all/off {$all/$off:.3f} (+{100*($all/$off-1):.1f}%)')"

# Where the extra instructions go: inclusive counts per request of the
# plugins' hooks and the kernel's dispatch around them.
breakdown() { # name instructions-per-request
  local cg="$OUT/$1/cg.out.1" n
  n=$(requests "$cg" "$2")
  echo "-- $1: inclusive instructions per request"
  callgrind_annotate --inclusive=yes --threshold=100 "$cg" 2>/dev/null |
    grep -E 'bext_plugin_(waf|gateway|authn)::[a-z_:]*(on_request|on_response|judge|inspect|decide|verify)|bext::pipeline::run::[a-z_]+' |
    awk -v n="$n" '{gsub(",","",$1); if ($1 / n >= 20) printf "%8d  %s\n", $1 / n, $0}' | cut -c1-170 | head -20
}
breakdown waf "$waf"
breakdown all "$all"
