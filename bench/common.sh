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
