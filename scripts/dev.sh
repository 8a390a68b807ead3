#!/usr/bin/env bash
# make dev: the whole API on http://127.0.0.1:$PORT/<stage> as AWS runs it (the REST API that the
# SAM translator renders from template.yaml, in front of each function's binary under a Lambda
# Runtime API), with a local AWS endpoint on $AWS_PORT. Ctrl-C stops everything this script started.
source "$(dirname "$0")/lib.sh"

PORT="${PORT:-5001}"
AWS_PORT="${AWS_PORT:-5002}"

log "building the functions, the local gateway and the fake LLM provider"
cargo build --quiet -p health -p webhook -p chat -p docs -p baatcheet-local -p baatcheet-tests --bins
start_moto; pids+=("$MOTO_PID")
translate_template

# Chat providers: PROVIDERS_JSON or PROVIDERS_FILE (a real OpenAI-compatible API), else the fake one,
# which answers offline by echoing the message word by word.
if [ -z "${PROVIDERS_JSON:-}" ] && [ -z "${PROVIDERS_FILE:-}" ]; then
  start_fake_upstream "$PORT"
  log "chat provider: the fake one on $FAKE_UPSTREAM_URL (PROVIDERS_FILE or PROVIDERS_JSON for a real one)"
else
  log "chat providers from ${PROVIDERS_JSON:+PROVIDERS_JSON}${PROVIDERS_FILE:+PROVIDERS_FILE=$PROVIDERS_FILE}"
fi

PORT="$PORT" LOG_FORMAT="${LOG_FORMAT:-text}" "$ROOT/target/debug/gateway" &
pids+=("$!")
wait_for_port "$PORT" "gateway" 60
API="http://127.0.0.1:$PORT/$(stage_name)"
log "API:        $API   (try: curl $API/health)"
log "dev tokens: make token USER=user_alice ROLE=admin TIER=pro   (CLERK_* variables override the dev Clerk)"
log "chat:       TOKEN=\$(make -s token) && curl -N -H \"Authorization: Bearer \$TOKEN\" -H 'Content-Type: application/json' -d '{\"message\":\"Salaam!\"}' $API/api/v1/chat/completions"
log "Ctrl-C stops the API and the local AWS endpoint"
wait -n "${pids[@]}"
