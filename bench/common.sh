# Shared by the load benchmarks (sourced): run from the repository root,
# the settings every script takes from the environment, and a check for
# the tools a script needs.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# need TOOL...: stop with a clear message unless every tool is installed.
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install nginx-light wrk; node and npm for bench/js.sh)"; exit 1; }
  done
}

# A browser's request headers (user agent, accept, language, cookies,
# referer): what security.sh and instructions.sh send, each adding its own
# Authorization.
BROWSER_HEADERS=(
  -H "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
  -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
  -H "Accept-Language: en-US,en;q=0.9"
  -H "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"
  -H "Referer: https://shop.example.com/category/shoes?color=red"
)

# callgrind_per_request CG_FILE URL COMMAND...: runs COMMAND (a server)
# under callgrind, warms it with wrk, counts what it executes for DURATION
# seconds of one connection's requests to URL (with the wrk arguments in
# the WRK_ARGS array, headers say) and prints instructions per request.
# The server's output goes to CG_FILE.log.
callgrind_per_request() {
  local cg=$1 url=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" "$@" >"$cg.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -s -o /dev/null "$url" && break; sleep 0.2; done
  wrk -t1 -c1 -d2s "${WRK_ARGS[@]}" "$url" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  local n total
  n=$(wrk -t1 -c1 -d"${DURATION}s" "${WRK_ARGS[@]}" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  echo $((total / n))
}
