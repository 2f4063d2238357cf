#!/usr/bin/env bash
# The gateway's in-memory rate-limit store, as instructions per decision
# counted by callgrind (a figure this shared machine's load does not move,
# where the divan bench's nanoseconds move by half): the `store_decision`
# bench of plugins/gateway/benches/limiter.rs (10,000 IPv4 clients, 100,000
# decisions: 10,000 first sights, 90,000 known keys), the inclusive count
# of `MemoryStore::check` divided by its calls.
#
#   bench/gateway-instructions.sh
#
# Needs valgrind. Builds the bench (`cargo bench --no-run`, optimised).
source "$(dirname "$0")/common.sh"
OUT=bench/out/gateway-instructions
need valgrind callgrind_annotate
mkdir -p "$OUT"

bin=$(cargo bench -q -p bext-plugin-gateway --bench limiter --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "limiter" and m.get("executable"):
        print(m["executable"])')
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$bin" --bench store_decision >/dev/null 2>"$OUT/valgrind.err"

# In the callers' tree, check's line (`<Ir> (..)  *  ...check`) follows
# the line of its caller, the bench's loop (`<Ir> (..)  < ... (<calls>x)`):
# the inclusive total and the calls give the mean.
callgrind_annotate --inclusive=yes --tree=caller "$OUT/cg.out" 2>/dev/null | python3 -c '
import re, sys
prev = ""
for line in sys.stdin:
    if re.search(r"\*\s+.*as bext_plugin_gateway::gcra::RateStore>::check", line):
        m = re.match(r"\s*([\d,]+) .*\(([\d,]+)x\)", prev)
        if m:
            ir, calls = (int(g.replace(",", "")) for g in m.groups())
            print(f"MemoryStore::check: {ir:,} instructions, {calls:,} decisions: {ir / calls:.0f} a decision")
            sys.exit(0)
    prev = line
sys.exit("no MemoryStore::check in the profile")
'
