#!/usr/bin/env bash
# make bench: release builds, then the figures for this machine — per function of template.yaml
# and kind of request: binary size, Lambda cold start and peak RSS under a local Runtime API, and
# the AWS calls each request makes; then local gateway startup, idle RSS and /live throughput
# (wrk -t2 -c64). Results are printed, not asserted. RUNS (cold starts per row, default 15),
# INVOCATIONS (warm invocations before the peak RSS is read, default 1000), WRK_SECONDS.
source "$(dirname "$0")/lib.sh"

AWS_PORT="${AWS_PORT:-$(free_port)}"
RUNS="${RUNS:-15}"
INVOCATIONS="${INVOCATIONS:-1000}"
WRK_SECONDS="${WRK_SECONDS:-10}"

if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian)"
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }) >/dev/null
fi

mapfile -t FUNCTIONS < <(sed -n 's/^ *Binary: *//p' "$ROOT/template.yaml")
bins=()
for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
log "release build of ${FUNCTIONS[*]}, the gateway and lambda-coldstart (fat LTO; several minutes on 2 cores)"
cargo build --quiet --release "${bins[@]}" --bin gateway --bin lambda-coldstart
# 1,000 chat completions write 3,000 items: moto's whole-table copy per transaction would make
# the run take minutes and measure moto (scripts/moto_server.py).
MOTO_FAST=1 start_moto; pids+=("$MOTO_PID")

echo
echo "## Lambda functions (release, run under tests/support/runtime_api.rs; $RUNS cold starts per row)"
echo
"$ROOT/target/release/lambda-coldstart" --runs "$RUNS" --invocations "$INVOCATIONS"

echo
echo "## Local gateway (release)"
echo
GW_PORT=$(free_port)
python3 - "$ROOT/target/release/gateway" "$GW_PORT" <<'PY'
import os, socket, subprocess, sys, time
binary, port = sys.argv[1], int(sys.argv[2])
env = dict(os.environ, PORT=str(port), AWS_LAMBDA_LOG_LEVEL="warn", TABLE_PREFIX="bench-")
t0 = time.perf_counter()
p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
req = b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(req)
        if s.recv(12).startswith(b"HTTP/1.1 200"):
            break
    except OSError:
        time.sleep(0.001)
ready_ms = (time.perf_counter() - t0) * 1000
time.sleep(1)
rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"| gateway start to first answered /live (tables + secret provisioned) | {ready_ms:.0f} ms |")
print(f"| gateway RSS idle | {int(rss)/1024:.1f} MB |")
open(os.environ.get("GW_PIDFILE", "/tmp/baatcheet-gw.pid"), "w").write(str(p.pid))
PY
pids+=("$(cat /tmp/baatcheet-gw.pid)")
wrk -t2 -c64 -d"${WRK_SECONDS}s" --latency "http://127.0.0.1:$GW_PORT/live" > "$LOCAL_DIR/wrk-live.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$LOCAL_DIR/wrk-live.txt")
p99=$(awk '$1=="99%" {print $2}' "$LOCAL_DIR/wrk-live.txt")
echo "| gateway /live, wrk -t2 -c64 -d${WRK_SECONDS}s | ${rps} req/s, p99 ${p99} |"
