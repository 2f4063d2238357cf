#!/usr/bin/env bash
# The cold build cost of rustls' two crypto providers: a scratch crate that
# depends on the workspace's rustls with ring, and one with aws-lc-rs, each
# built from nothing in release (its own target directory, the lock file's
# versions), timed, with cargo's per-crate timings of the provider's build
# (aws-lc-sys compiles AWS-LC's C sources with cc; ring has a little C and
# assembly). The other half of the choice, the speed, is bench/tls.sh.
#
#   bench/provider-build.sh
source "$(dirname "$0")/common.sh"
need cargo python3
OUT=$PWD/bench/out/provider-build
rm -rf "$OUT"
version=$(awk '/^name = "rustls"$/ {getline; print $3}' Cargo.lock | tr -d '"' | head -1)
for provider in ring aws_lc_rs; do
  dir=$OUT/$provider
  mkdir -p "$dir/src"
  echo 'fn main() {}' > "$dir/src/main.rs"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "cold-$provider"
version = "0.1.0"
edition = "2021"
publish = false
[dependencies]
rustls = { version = "=$version", default-features = false, features = ["$provider", "std", "tls12"] }
[workspace]
TOML
  echo "rustls $version with $provider, cold release build; load: $(uptime | sed 's/.*load average: //')"
  start=$(date +%s.%N)
  (cd "$dir" && cargo build --release -q --timings)
  end=$(date +%s.%N)
  python3 - "$dir" "$start" "$end" <<'PY'
import glob, json, re, sys
d, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
html = open(sorted(glob.glob(f"{d}/target/cargo-timings/cargo-timing-*.html"))[-1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S).group(1))
slow = ", ".join(f"{u['name']}{u.get('target', '')} {u['duration']:.1f} s" for u in units if u["duration"] >= 2)
print(f"  {end - start:.0f} s wall; crates over 2 s: {slow}")
PY
done
