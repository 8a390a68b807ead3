#!/usr/bin/env bash
# make load / make stress: an Artillery scenario (tools/load/*.yml) against the local stack, built
# in release: moto (DynamoDB + Secrets Manager), the fake OpenAI-compatible upstream streaming with
# a per-token delay, and the API as AWS runs it (the gateway in front of the release function
# binaries under a Lambda Runtime API, LAMBDA_MAX_INSTANCES per function, default 32). Prints
# Artillery's summary and a short block of figures; exits non-zero when the ensure thresholds fail.
#
#   scripts/load.sh tools/load/chat-load-test.yml
#
# LOAD_SCALE (default 1) multiplies every phase's duration (0.1: a 27 s run of the load test);
# LOAD_RATE (default 1) multiplies every arrival rate (for a machine that cannot take the script's).
# LOAD_USERS (default 500) distinct users get tokens from dev-token, tiers mixed 6:3:1
# free/pro/enterprise; per-user limits stay at their defaults. Only the per-IP global limit is
# raised (LOAD_GLOBAL_LIMIT): every virtual user comes from 127.0.0.1.
# LOAD_SHARDS (default 1): the rate-limit table on a second moto (0: one moto for everything).
# The fake upstream: LOAD_FIRST_TOKEN_MS (default 10) to the first token, then LOAD_CHUNKS
# (default 20) chunks LOAD_TOKEN_DELAY_MS (default 5) apart.
# API_URL=https://... runs the scenario against a deployed stage instead (no local stack; tokens
# from .local/load/tokens.csv and LIMIT_TOKEN must then be valid there).
source "$(dirname "$0")/lib.sh"

SCRIPT="${1:?usage: scripts/load.sh tools/load/<scenario>.yml}"
[ -f "$SCRIPT" ] || { echo "no such scenario: $SCRIPT" >&2; exit 2; }
NAME="$(basename "$SCRIPT" .yml)"
LOAD_SCALE="${LOAD_SCALE:-1}"
LOAD_RATE="${LOAD_RATE:-1}"
LOAD_USERS="${LOAD_USERS:-500}"
LOAD_GLOBAL_LIMIT="${LOAD_GLOBAL_LIMIT:-1000000/1h}"
LOAD_FIRST_TOKEN_MS="${LOAD_FIRST_TOKEN_MS:-10}"
LOAD_CHUNKS="${LOAD_CHUNKS:-20}"
LOAD_TOKEN_DELAY_MS="${LOAD_TOKEN_DELAY_MS:-5}"
LOAD_DIR="$LOCAL_DIR/load"
moto_logs=()
mkdir -p "$LOAD_DIR"

ensure_artillery

if [ -z "${API_URL:-}" ]; then
  PORT="${PORT:-$(free_port)}"
  AWS_PORT="${AWS_PORT:-$(free_port)}"
  log "release build: the functions, gateway, dev-token, fake-upstream (fat LTO; minutes on a cold cache)"
  cargo build --quiet --release -p health -p webhook -p chat -p docs --bins
  cargo build --quiet --release -p baatcheet-local -p baatcheet-tests -p baatcheet-tools --bin gateway --bin dev-token --bin fake-upstream --bin aws-shards
  # moto's TransactWriteItems copies whole tables for its rollback: MOTO_FAST (scripts/moto_server.py).
  # MOTO_STATS: moto's load and answer times per 10 s, summarised after the run.
  # moto serves one request at a time on one thread, and at the spike it is the one saturated
  # process while the machine has idle CPU: unless LOAD_SHARDS=0, the rate-limit table (a call
  # on nearly every request) has a moto of its own, behind aws-shards (tests/support/aws_shards.rs),
  # as DynamoDB spreads tables over servers. The API sees one endpoint either way.
  if [ "${LOAD_SHARDS:-1}" = 1 ]; then
    other_port() { local p; while p="$(free_port)"; [ "$p" = "$AWS_PORT" ]; do :; done; echo "$p"; }
    AWS_PORT="$(other_port)" MOTO_FAST=1 MOTO_STATS=1 start_moto; pids+=("$MOTO_PID"); main_url="$AWS_ENDPOINT_URL"
    moto_logs+=("main:$LOCAL_DIR/moto-${main_url##*:}.log")
    AWS_PORT="$(other_port)" MOTO_FAST=1 MOTO_STATS=1 start_moto; pids+=("$MOTO_PID"); limits_url="$AWS_ENDPOINT_URL"
    moto_logs+=("limits:$LOCAL_DIR/moto-${limits_url##*:}.log")
    limits_table="${TABLE_PREFIX:-local-}RateLimitsTable"
    "$ROOT/target/release/aws-shards" "$AWS_PORT" "$main_url" "$limits_url=$limits_table" >"$LOAD_DIR/aws-shards.log" 2>&1 &
    pids+=("$!")
    wait_for_port "$AWS_PORT" "aws-shards (log: $LOAD_DIR/aws-shards.log)" 30
    export AWS_ENDPOINT_URL="http://127.0.0.1:$AWS_PORT"
    log "local DynamoDB in two: $limits_table on $limits_url, the rest and Secrets Manager on $main_url"
  else
    MOTO_FAST=1 MOTO_STATS=1 start_moto; pids+=("$MOTO_PID")
    moto_logs+=("moto:$LOCAL_DIR/moto-$AWS_PORT.log")
  fi
  translate_template

  providers="$LOAD_DIR/providers-$PORT.json"
  rm -f "$providers"
  FAKE_UPSTREAM_PORT="$(free_port)" FAKE_UPSTREAM_PROVIDERS_FILE="$providers" \
    FAKE_UPSTREAM_FIRST_TOKEN_MS="$LOAD_FIRST_TOKEN_MS" FAKE_UPSTREAM_CHUNKS="$LOAD_CHUNKS" \
    FAKE_UPSTREAM_TOKEN_DELAY_MS="$LOAD_TOKEN_DELAY_MS" \
    "$ROOT/target/release/fake-upstream" >"$LOAD_DIR/fake-upstream.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 300); do [ -s "$providers" ] && break; sleep 0.1; done
  [ -s "$providers" ] || { echo "the fake upstream did not start (log: $LOAD_DIR/fake-upstream.log)" >&2; exit 1; }
  log "fake upstream: first token after ${LOAD_FIRST_TOKEN_MS} ms, then $LOAD_CHUNKS chunks ${LOAD_TOKEN_DELAY_MS} ms apart"

  # The API as AWS runs it: release function binaries, one process per concurrent invocation
  # (LAMBDA_MAX_INSTANCES per function at most, as a reserved concurrency would cap them).
  PORT="$PORT" PROVIDERS_FILE="$providers" RATE_LIMIT_GLOBAL="$LOAD_GLOBAL_LIMIT" AWS_LAMBDA_LOG_LEVEL=warn \
    LAMBDA_BINARIES="$ROOT/target/release" LAMBDA_MAX_INSTANCES="${LAMBDA_MAX_INSTANCES:-32}" \
    "$ROOT/target/release/gateway" >"$LOAD_DIR/gateway.log" 2>&1 &
  pids+=("$!")
  wait_for_port "$PORT" "gateway (log: $LOAD_DIR/gateway.log)" 60
  API_URL="http://127.0.0.1:$PORT/$(stage_name)"
  log "gateway (release functions under a Lambda Runtime API) on $API_URL; global per-IP limit $LOAD_GLOBAL_LIMIT, per-user limits at their defaults"

  # Distinct users, tiers mixed; dev-token syncs each one's tier to the users table through the
  # signed webhook, as Clerk would. Tokens outlive the longest run. Four at a time.
  log "minting tokens for $LOAD_USERS users (dev-token) into .local/load/tokens.csv"
  tokens="$LOAD_DIR/tokens.csv"
  : >"$LOAD_DIR/dev-token.log"
  started=$SECONDS
  # shellcheck disable=SC2016 # expanded by the sh that xargs runs
  mint='exec "$0" --user "$2" --tier "$3" --ttl 14400 --port "$1"'
  {
    echo token
    for i in $(seq 1 "$LOAD_USERS"); do
      case $((i % 10)) in
        [0-5]) tier=free ;;
        [6-8]) tier=pro ;;
        *) tier=enterprise ;;
      esac
      printf 'user_load%04d %s\n' "$i" "$tier"
    done | xargs -P 4 -n 2 sh -c "$mint" "$ROOT/target/release/dev-token" "$PORT" 2>>"$LOAD_DIR/dev-token.log"
  } >"$tokens.tmp"
  mv "$tokens.tmp" "$tokens"
  LIMIT_TOKEN="$(sh -c "$mint" "$ROOT/target/release/dev-token" "$PORT" user_load_over_limit free 2>>"$LOAD_DIR/dev-token.log")"
  export LIMIT_TOKEN
  if grep -q "could not sync" "$LOAD_DIR/dev-token.log"; then
    echo "dev-token could not sync some users (log: $LOAD_DIR/dev-token.log)" >&2
    exit 1
  fi
  log "$(($(wc -l <"$tokens") - 1)) tokens (6:3:1 free/pro/enterprise) + LIMIT_TOKEN (free) for chat_over_limit, in $((SECONDS - started)) s"
fi
export API_URL

scaled="$LOAD_DIR/$NAME.yml"
phases="$(node "$ROOT/tools/load/load.mjs" prepare "$SCRIPT" "$scaled" "$LOAD_SCALE" "$LOAD_RATE" "$LOAD_DIR/tokens.csv")"
log "scenario $SCRIPT, LOAD_SCALE=$LOAD_SCALE LOAD_RATE=$LOAD_RATE: $phases"

# Artillery's full output goes to a log; while it runs, one line per 10 s period is shown.
report="$LOAD_DIR/$NAME-report.json"
out="$LOAD_DIR/$NAME-artillery.log"
rm -f "$report"
progress() {
  awk '
    done { next }
    function flush() { if (period != "") printf "  %s  %s req/s  p99 %s ms  %s\n", period, rate, p99, codes; codes = ""; rate = "-"; p99 = "-"; inrt = 0 }
    /^Metrics for period to:/ { flush(); period = $5; next }
    /^All VUs finished/ { flush(); period = ""; done = 1; next }
    /^Phase (started|completed)/ { print "  " $0; next }
    /^http\.codes\./ { split($1, a, "."); sub(":", "", a[3]); codes = codes a[3] "=" $NF " "; next }
    /^http\.request_rate:/ { rate = $(NF); sub("/sec", "", rate); next }
    /^http\.response_time:/ { inrt = 1; next }
    inrt && /^  p99:/ { p99 = $NF; inrt = 0; next }
    /^[^ ]/ { inrt = 0 }
  ' >&2
}
log "artillery run against $API_URL (full output: $out)"
# CPU time the hypervisor gave to other guests while this one wanted it ("steal", /proc/stat): on
# a shared host it slows every process here alike, and the spike's tail with it.
steal() { awk '/^cpu /{print $9 + 0; exit}' /proc/stat 2>/dev/null || echo 0; }
steal_before="$(steal)"
started_at=$SECONDS
set +e
"$ARTILLERY" run --output "$report" "$scaled" 2>&1 | tee "$out" | progress
rc=${PIPESTATUS[0]}
set -e
steal_ticks=$(($(steal) - steal_before))

echo
sed -n '/^All VUs finished/,$p' "$out"
if [ -s "$report" ]; then
  echo
  echo "== $NAME (LOAD_SCALE=$LOAD_SCALE LOAD_RATE=$LOAD_RATE, $(date -u +%Y-%m-%d)) =="
  node "$ROOT/tools/load/load.mjs" summary "$report"
fi

# The limiter's DynamoDB calls over the run are in the local endpoint's figures below: each
# function instance is a process of its own, so no one instance's /health figures describe the run.
if [ -r /proc/stat ]; then
  hz="$(getconf CLK_TCK)" cpus="$(nproc)" secs=$((SECONDS - started_at))
  awk -v t="$steal_ticks" -v hz="$hz" -v n="$cpus" -v s="$secs" 'BEGIN {
    printf "host steal          %.1f CPU-seconds over the %d s run (%.1f %% of %d CPUs)\n", t / hz, s, s ? 100 * t / hz / (s * n) : 0, n }'
fi

# Local DynamoDB (one thread per server): how busy it was, and its slowest answers, per 10 s.
for entry in "${moto_logs[@]}"; do
  name="${entry%%:*}" file="${entry#*:}"
  grep -q '^moto-stats' "$file" 2>/dev/null || continue
  grep '^moto-stats' "$file" | cut -d' ' -f2- >"$LOAD_DIR/moto-stats-$name.log"
  echo "local DynamoDB ($name) busiest 10 s periods (all in .local/load/moto-stats-$name.log):"
  sort -t' ' -k5,5 -rn "$LOAD_DIR/moto-stats-$name.log" | head -3 | sed 's/^/                    /'
done

# Artillery exits 1 when a strict ensure check fails and 21 when only some requests failed their
# expectations (those count in the error-rate check, which passed).
case "$rc" in
  0) log "ensure thresholds met" ;;
  21) log "ensure thresholds met (some requests failed their expectations; they are in the error rate)" ;;
  *) log "ensure thresholds NOT met (artillery exited $rc)"; exit 1 ;;
esac
