#!/usr/bin/env bash
# make dev: the whole API on http://127.0.0.1:$PORT with a local AWS endpoint on $AWS_PORT.
# Ctrl-C stops everything this script started.
source "$(dirname "$0")/lib.sh"

PORT="${PORT:-5001}"
AWS_PORT="${AWS_PORT:-5002}"

log "building the local gateway"
cargo build --quiet -p baatcheet-local --bin gateway --bin dev-token
start_moto; pids+=("$MOTO_PID")
PORT="$PORT" LOG_FORMAT="${LOG_FORMAT:-text}" "$ROOT/target/debug/gateway" &
pids+=("$!")
wait_for_port "$PORT" "gateway" 60
log "API:        http://127.0.0.1:$PORT   (try: curl http://127.0.0.1:$PORT/health)"
log "dev tokens: make token USER=user_alice ROLE=admin TIER=pro   (CLERK_* variables override the dev Clerk)"
log "Ctrl-C stops the API and the local AWS endpoint"
wait -n "${pids[@]}"
