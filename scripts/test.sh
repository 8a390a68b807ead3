#!/usr/bin/env bash
# make test: starts a private local AWS endpoint on a free port, renders template.yaml as a deploy
# would (AWS's SAM translator), builds the function binaries, and runs the whole test suite against
# them (tests isolate themselves by table-name prefix, so they run in parallel); then the smoke
# checks (as staging and production run them) and the API docs checked from outside
# (scripts/docs-check.sh), against the API as AWS runs it: the gateway in front of the function
# binaries under a Lambda Runtime API.
source "$(dirname "$0")/lib.sh"

AWS_PORT="${AWS_PORT:-$(free_port)}"

start_moto; pids+=("$MOTO_PID")
log "template.yaml through AWS's SAM translator (what a deploy creates): \$SAM_TEMPLATE_JSON"
translate_template
log "MOTO_FAST (the local endpoint of make load and make bench) answers as stock moto: scripts/moto_fast_check"
"$VENV/bin/python" "$ROOT/scripts/moto_fast_check/check.py"
# moto answers one call at a time: a parallel suite must not mistake its queue for an outage.
export AWS_SDK_ATTEMPT_TIMEOUT_MS="${AWS_SDK_ATTEMPT_TIMEOUT_MS:-15000}"
export AWS_SDK_OPERATION_TIMEOUT_MS="${AWS_SDK_OPERATION_TIMEOUT_MS:-40000}"
# Clerk's verifier, run by the differential token test beside this API's.
ensure_clerk_backend
# The function binaries tests/deployed.rs and the gateway run as Lambda runs them.
cargo build -p health -p webhook -p chat -p docs --bins
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc

log "smoke checks (chat included, with a dev token) and the API docs checked from outside, against one local gateway"
cargo build --quiet -p baatcheet-local -p baatcheet-tests --bin gateway --bin dev-token --bin fake-upstream
GW_PORT=$(free_port)
# Chat through the fake provider, answering at once: the documented request schemas let
# schemathesis send completions the API accepts, and their answers are checked against the
# documented responses (without a provider every valid completion would be a 503).
unset PROVIDERS_JSON
FAKE_UPSTREAM_TOKEN_DELAY_MS=0 FAKE_UPSTREAM_FIRST_TOKEN_MS=0 start_fake_upstream smoke
# One client (this machine) sends schemathesis's hundreds of generated requests: the global limit
# and the smoke user's per-user limits are raised here (limits have their own tests), so the
# generated requests reach the logic behind the limited routes instead of their 429.
RATE_LIMIT_GLOBAL="100000/1h" RATE_LIMIT_CHAT_FREE="100000/1h" RATE_LIMIT_IMAGES="100000/1h" \
  RATE_LIMIT_AUDIO="100000/1h" RATE_LIMIT_AUDIO_SECONDS_FREE="10000000/1h" RATE_LIMIT_SEARCH="100000/1h" \
  PORT="$GW_PORT" TABLE_PREFIX="smoke-" AWS_LAMBDA_LOG_LEVEL=warn "$ROOT/target/debug/gateway" >"$LOCAL_DIR/smoke-gateway.log" 2>&1 &
pids+=("$!")
wait_for_port "$GW_PORT" "gateway (log: .local/smoke-gateway.log)" 60
# A dev session token the local gateway trusts (the dev key pair in .local/, as `make token`).
TOKEN=$("$ROOT/target/debug/dev-token" --user user_smoke --port "$GW_PORT" 2>/dev/null)
# The stage is part of the URL, as in API Gateway's invoke URL.
STAGE_URL="http://127.0.0.1:$GW_PORT/$(stage_name)"
API_URL="$STAGE_URL" TOKEN="$TOKEN" SMOKE_DOCS="${SMOKE_DOCS:-1}" SMOKE_CHAT="${SMOKE_CHAT:-1}" \
  "$ROOT/scripts/smoke.sh"
API_URL="$STAGE_URL" TOKEN="$TOKEN" "$ROOT/scripts/docs-check.sh"
