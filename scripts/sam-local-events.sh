#!/usr/bin/env bash
# make sam-events: for `sam local invoke -e` / `sam local start-api` (they need Docker, which these
# machines lack). Writes every events/*.json to .local/sam/events/ with an Authorization header
# carrying a fresh dev session token (target/debug/dev-token, signed by the key `make dev` trusts),
# so authenticated routes answer as for a signed-in user. The token is never printed.
#   SAM_USER (user_dev), SAM_ROLE (user), SAM_TIER (free), SAM_TOKEN_TTL seconds (3600)
# With `make dev` running (PORT, default 5001), dev-token also syncs role and tier to its users table.
source "$(dirname "$0")/lib.sh"
PORT="${PORT:-5001}"
OUT="$LOCAL_DIR/sam/events"

cargo build --quiet -p baatcheet-local --bin dev-token
token=$("$ROOT/target/debug/dev-token" --user "${SAM_USER:-user_dev}" --role "${SAM_ROLE:-user}" \
  --tier "${SAM_TIER:-free}" --ttl "${SAM_TOKEN_TTL:-3600}" --port "$PORT")
mkdir -p "$OUT"
SAM_EVENT_TOKEN="$token" python3 - "$ROOT/events" "$OUT" <<'PY'
import json, os, pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
bearer = "Bearer " + os.environ["SAM_EVENT_TOKEN"]
n = 0
for path in sorted(src.glob("*.json")):
    event = json.loads(path.read_text(encoding="utf-8"))
    event.setdefault("headers", {})["Authorization"] = bearer
    event.setdefault("multiValueHeaders", {})["Authorization"] = [bearer]
    target = out / path.name
    target.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
    os.chmod(target, 0o600)
    n += 1
print(f"{n} events with a fresh dev token in {out}", file=sys.stderr)
PY
log "e.g. sam local invoke HealthFunction -e .local/sam/events/health.json --env-vars local/sam/env.json --docker-network host --region $AWS_REGION"
