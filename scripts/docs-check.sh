#!/usr/bin/env bash
# The API docs checked from outside, against a running API (`make test` runs it against a local
# gateway; `make docs-check API_URL=...` against any):
#  1. schemathesis over every operation of $API_URL/api/docs.json, a bounded number of examples
#     each: no 5xx, and status codes, content types, headers and bodies as documented;
#  2. Swagger UI at $API_URL/api/docs in headless chromium: every operation rendered, Authorize
#     takes a Clerk bearer token, Try it out reaches the API, no console error, no CSP violation.
# TOKEN (optional) is a dev token (`make token`): schemathesis sends it on every request and the
# browser tries a secured operation with it.
source "$(dirname "$0")/lib.sh"

API_URL="${API_URL:?API_URL is required, e.g. API_URL=http://127.0.0.1:5001 scripts/docs-check.sh}"
API_URL="${API_URL%/}"
TOKEN="${TOKEN:-}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}"

ensure_schemathesis
auth=()
if [ -n "$TOKEN" ]; then auth=(--header "Authorization: Bearer $TOKEN"); fi
log "schemathesis: every operation of $API_URL/api/docs.json, up to $MAX_EXAMPLES examples each"
# The include filter also selects GET /api/docs.json, which schemathesis otherwise leaves out as
# the operation serving the document. Run from .local/, where schemathesis keeps its cache of
# failures to replay.
cd "$LOCAL_DIR"
"$SCHEMATHESIS_VENV/bin/schemathesis" run "$API_URL/api/docs.json" \
  --include-path-regex '^/' \
  --checks "$CHECKS" \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 15 \
  --wait-for-schema 30 \
  --report junit --report-dir "$LOCAL_DIR/reports" \
  "${auth[@]}"

ensure_chromium
ensure_playwright_core
log "Swagger UI in headless chromium ($CHROMIUM)"
node "$ROOT/scripts/docs-browser.mjs" "$API_URL" "$TOKEN"
