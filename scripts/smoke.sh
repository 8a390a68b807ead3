#!/usr/bin/env bash
# make smoke API_URL=... [TOKEN=...]: the post-deploy checks staging and production run, and that
# `make test` runs against the local gateway. Exits non-zero on the first failed check.
#
# Deployed stages never use a stored token (a Clerk session token lives 60 s): with TOKEN empty and
# CLERK_SECRET_KEY set, a fresh one is minted through Clerk's Backend API for the dedicated smoke
# user right before the authenticated check (docs/deploy.md, "Smoke tests"):
#   CLERK_SMOKE_USER_ID     creates a session for that user (POST /v1/sessions: Clerk development
#                           instances only), mints its token, and revokes the session at exit;
#   CLERK_SMOKE_SESSION_ID  mints a token of that existing session of the smoke user
#                           (POST /v1/sessions/{id}/tokens, any instance, e.g. production).
set -euo pipefail
API_URL="${API_URL:?API_URL is required, e.g. make smoke API_URL=https://abc.execute-api.eu-west-1.amazonaws.com/staging}"
API_URL="${API_URL%/}"
TOKEN="${TOKEN:-}"
CLERK_API_URL="${CLERK_API_URL:-https://api.clerk.com}"
failed=0

# POST to Clerk's Backend API; prints the response body. The secret key goes in a header read from
# a file descriptor, so it is never on a command line.
clerk_post() { # path, json body
  curl -sS --fail-with-body --max-time 15 -X POST "$CLERK_API_URL$1" \
    -H @<(printf 'Authorization: Bearer %s\n' "$CLERK_SECRET_KEY") \
    -H 'Content-Type: application/json' -d "$2"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

minted_session=""
revoke_minted_session() {
  if [ -n "$minted_session" ]; then
    clerk_post "/v1/sessions/$minted_session/revoke" '{}' >/dev/null 2>&1 || echo "warning: could not revoke smoke session $minted_session" >&2
  fi
}
trap revoke_minted_session EXIT

# Sets TOKEN to a fresh session token of the smoke user (empty if Clerk is not configured here).
mint_token() {
  [ -n "${CLERK_SECRET_KEY:-}" ] || return 0
  local session="${CLERK_SMOKE_SESSION_ID:-}"
  if [ -z "$session" ] && [ -n "${CLERK_SMOKE_USER_ID:-}" ]; then
    if [ -z "$minted_session" ]; then
      minted_session=$(clerk_post /v1/sessions "{\"user_id\":\"$CLERK_SMOKE_USER_ID\"}" | json_field id) || {
        echo "FAIL  could not create a Clerk session for the smoke user (POST /v1/sessions works on development instances only)" >&2
        failed=1
        return 0
      }
    fi
    session="$minted_session"
  fi
  [ -n "$session" ] || return 0
  TOKEN=$(clerk_post "/v1/sessions/$session/tokens" '{}' | json_field jwt) || {
    echo "FAIL  could not mint a session token for the smoke user's session" >&2
    failed=1
    TOKEN=""
    return 0
  }
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::add-mask::$TOKEN"; fi
}

check() { # name, expected status, curl args...
  local name=$1 want=$2; shift 2
  local got
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$@") || got="000"
  if [ "$got" = "$want" ]; then
    printf 'ok    %-40s %s\n' "$name" "$got"
  else
    printf 'FAIL  %-40s got %s, want %s\n' "$name" "$got" "$want"
    failed=1
  fi
}

check "GET /live" 200 "$API_URL/live"
check "GET /ready" 200 "$API_URL/ready"
check "GET /health" 200 "$API_URL/health"
check "GET /api/v1/health/metrics" 200 "$API_URL/api/v1/health/metrics"
check "GET /nowhere is 404" 404 "$API_URL/nowhere-$$"
if [ "${SMOKE_DOCS:-1}" = 1 ]; then
  check "GET /api/docs.json" 200 "$API_URL/api/docs.json"
fi
if [ "${SMOKE_CHAT:-1}" = 1 ]; then
  check "GET /api/v1/conversations without token" 401 "$API_URL/api/v1/conversations"
  if [ -z "$TOKEN" ]; then mint_token; fi
  if [ -n "$TOKEN" ]; then
    check "GET /api/v1/conversations with token" 200 -H "Authorization: Bearer $TOKEN" "$API_URL/api/v1/conversations"
  fi
fi
exit $failed
