#!/usr/bin/env bash
# Instructions per WAF inspection, counted by callgrind in the
# `cargo bench -p bext-plugin-waf` binary (plugins/waf/benches/inspect.rs),
# so a busy machine does not change the figure. Each bench runs twice, for
# 1,000 and 6,000 iterations in one sample; the difference over 5,000 is
# the cost of one inspection, with setup and divan's start cancelled out.
#
#   bench/waf-inspect-instructions.sh [BENCH_BINARY]
#
# Without an argument it builds the bench binary of this tree. To compare
# two commits, build each tree's binary and pass it.
source "$(dirname "$0")/common.sh"
need valgrind python3

bin="${1:-}"
if [[ -z "$bin" ]]; then
  bin=$(cargo bench -p bext-plugin-waf --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="inspect" and m.get("executable"): print(m["executable"])' | tail -1)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# count BENCH ITERATIONS: total instructions of the process (BENCH is a
# name filter; each name here matches one bench).
count() {
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$bin" --bench "$1" \
    --sample-count 1 --sample-size "$2" >/dev/null 2>"$tmp/log"
  grep -oP 'Collected : \K\d+' "$tmp/log"
}

printf '%-26s %12s\n' bench instructions
for bench in benign_get_repeat benign_get_new_page benign_get_new_visitor benign_json_post sqli_attack crs_gate_new_page; do
  low=$(count "$bench" 1000)
  high=$(count "$bench" 6000)
  printf '%-26s %12d\n' "$bench" $(((high - low) / 5000))
done
