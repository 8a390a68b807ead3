#!/usr/bin/env bash
# make smoke API_URL=... [TOKEN=...]: the post-deploy checks staging and production run, and that
# `make test` runs against the local gateway. Exits non-zero on the first failed check.
set -euo pipefail
API_URL="${API_URL:?API_URL is required, e.g. make smoke API_URL=https://abc.execute-api.eu-west-1.amazonaws.com/staging}"
API_URL="${API_URL%/}"
TOKEN="${TOKEN:-}"
failed=0

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
  if [ -n "$TOKEN" ]; then
    check "GET /api/v1/conversations with token" 200 -H "Authorization: Bearer $TOKEN" "$API_URL/api/v1/conversations"
  fi
fi
exit $failed
