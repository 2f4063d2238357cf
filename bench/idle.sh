#!/usr/bin/env bash
# Memory per idle keep-alive connection, bext next to nginx, same run:
# N connections each send one GET for a 1 KiB file, read the answer, then
# idle; the server's resident memory is read WAIT seconds later (bext gives
# an idle connection's buffers back 3 s after its last answer and its pages
# to the system every 5 s, see vendor/hyper/BEXT-PATCH.md). HTTP/1.1 and
# HTTP/2 without TLS (h2c, prior knowledge).
#
#   bench/idle.sh                       # N=5000 WAIT=10
#   N=9000 WAIT=10 BEXT=/path/to/bext bench/idle.sh
#
# Needs nginx and python3. Loopback only.
source "$(dirname "$0")/common.sh"
need nginx python3
N=${N:-5000}
WAIT=${WAIT:-10}
OUT=bench/out/idle
BEXT_PORT=${BEXT_PORT:-18090}
NGINX_PORT=${NGINX_PORT:-18091}
ulimit -n $((N * 2 + 1000))

if [ -z "${BEXT:-}" ]; then cargo build --release -q -p bext; BEXT=$PWD/target/release/bext; fi
rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/manifests" "$OUT/nginx/logs"
head -c 1024 /dev/zero | tr '\0' x > "$OUT/www/index.html"
printf 'name: vhosts\n' > "$OUT/manifests/vhosts.yaml"
cat > "$OUT/platform.toml" <<TOML
[platform]
listen = "127.0.0.1:$BEXT_PORT"
access_log = false
watch = false
workers = 1
manifests = "manifests"
default_app = "site"
[platform.limits]
idle_timeout = "300s"
header_read_timeout = "300s"
max_connections = $((N + 1000))
max_connections_per_ip = 0
[apps.site]
source = "www"
TOML
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/logs/error.log warn;
worker_rlimit_nofile $((N * 2 + 1000));
events { worker_connections $((N + 1000)); }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$NGINX_PORT; root $PWD/$OUT/www; }
  server { listen 127.0.0.1:$((NGINX_PORT + 1)) http2; root $PWD/$OUT/www; }
}
CONF

measure() { # name pid port mode
  python3 - "$3" "$N" "$2" "$WAIT" "$4" "$1" <<'PY'
import resource, socket, struct, sys, time
port, n, pid, wait, mode, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6]
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, n + 1000))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
def frame(t, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", stream) + payload
if mode == "h1":
    req = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
else:  # h2c: preface, SETTINGS, GET /index.html (HPACK: static indexes and literals)
    req = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
           + frame(1, 5, 1, b"\x82\x86\x44\x0b/index.html\x41\x01x"))
time.sleep(0.5)
base = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
for s in socks:
    s.settimeout(10)
    got = 0
    while got < 1100:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    if mode == "h2c":
        s.sendall(frame(4, 1, 0, b""))
time.sleep(wait)
held = rss()
open_ = sum(1 for s in socks if s.fileno() >= 0)
print(f"{name:6} {mode:4} {open_} idle connections: {(held - base) / n:6.2f} KiB each ({base/1024:.1f} -> {held/1024:.1f} MiB)")
for s in socks:
    s.close()
PY
}

for mode in h1 h2c; do
  "$BEXT" serve --config "$OUT/platform.toml" >"$OUT/bext.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $BEXT_PORT))" 2>/dev/null && break; sleep 0.1; done
  measure bext "$pid" "$BEXT_PORT" "$mode"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx"
  sleep 0.5
  worker=$(pgrep -P "$(cat "$OUT/nginx/nginx.pid")" | head -1)
  port=$NGINX_PORT; [ "$mode" = h2c ] && port=$((NGINX_PORT + 1))
  measure nginx "$worker" "$port" "$mode"
  nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx" -s quit; sleep 0.5
done
