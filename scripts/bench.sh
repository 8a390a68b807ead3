#!/usr/bin/env bash
# make bench: release builds, then the figures for this machine — per function of template.yaml
# and kind of request: binary size, Lambda cold start and peak RSS under a local Runtime API, and
# the AWS calls each request makes; then the API as AWS runs it (release gateway in front of the
# release functions under a Lambda Runtime API): startup, idle RSS, /live and first-token latency
# (tools/bench_stack.py, STACK_RUNS each) and /live throughput (wrk -t2 -c8). Results are
# printed, not asserted. RUNS (cold starts per row, default 15),
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
cargo build --quiet --release "${bins[@]}" --bin gateway --bin lambda-coldstart --bin dev-token --bin fake-upstream
export FAKE_UPSTREAM_BIN="$ROOT/target/release/fake-upstream"
# 1,000 chat completions write 3,000 items: moto's whole-table copy per transaction would make
# the run take minutes and measure moto (scripts/moto_server.py).
MOTO_FAST=1 start_moto; pids+=("$MOTO_PID")

echo
echo "## Lambda functions (release, run under tests/support/runtime_api.rs; $RUNS cold starts per row)"
echo
"$ROOT/target/release/lambda-coldstart" --runs "$RUNS" --invocations "$INVOCATIONS"
echo
echo "## The same with X-Ray subsegments sent (AWS_XRAY_DAEMON_ADDRESS set; EMF metrics on in both)"
echo
"$ROOT/target/release/lambda-coldstart" --runs "$RUNS" --invocations "$INVOCATIONS" --xray

echo
echo "## The API as AWS runs it (release gateway in front of the release functions under a Lambda Runtime API)"
echo
translate_template
GW_PORT=$(free_port)
FAKE_UPSTREAM_TOKEN_DELAY_MS=0 FAKE_UPSTREAM_FIRST_TOKEN_MS=0 start_fake_upstream bench
python3 - "$ROOT/target/release/gateway" "$GW_PORT" "$(stage_name)" <<'PY'
import os, socket, subprocess, sys, time
binary, port, stage = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = dict(os.environ, PORT=str(port), AWS_LAMBDA_LOG_LEVEL="warn", TABLE_PREFIX="bench-",
           LAMBDA_BINARIES=os.path.dirname(binary), LAMBDA_MAX_INSTANCES="8")
t0 = time.perf_counter()
p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
req = f"GET /{stage}/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
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
print(f"| gateway start to first answered /live (tables + secret provisioned, health cold start) | {ready_ms:.0f} ms |")
print(f"| gateway RSS idle (the emulator alone; functions are processes of their own) | {int(rss)/1024:.1f} MB |")
open(os.environ.get("GW_PIDFILE", "/tmp/baatcheet-gw.pid"), "w").write(str(p.pid))
PY
pids+=("$(cat /tmp/baatcheet-gw.pid)")
API="http://127.0.0.1:$GW_PORT/$(stage_name)"
TOKEN=$("$ROOT/target/release/dev-token" --user user_bench --tier enterprise --port "$GW_PORT" 2>/dev/null)
echo
python3 "$ROOT/tools/bench_stack.py" "$API" "$TOKEN" "${STACK_RUNS:-200}"
echo
wrk -t2 -c8 -d"${WRK_SECONDS}s" --latency "$API/live" > "$LOCAL_DIR/wrk-live.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$LOCAL_DIR/wrk-live.txt")
p99=$(awk '$1=="99%" {print $2}' "$LOCAL_DIR/wrk-live.txt")
echo "| /live through the stack, wrk -t2 -c8 -d${WRK_SECONDS}s (8 health instances) | ${rps} req/s, p99 ${p99} |"
