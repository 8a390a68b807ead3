#!/usr/bin/env bash
# scripts/put-secret.sh STAGE FILE (make put-secret STAGE=staging FILE=secret.json): FILE is one
# JSON object with every field (docs/deploy.md, "The secrets"); each function's secret of the stack
# baatcheet-STAGE gets its own fields only: ChatSecret CLERK_SECRET_KEY, CLERK_JWT_KEY and
# providers, WebhookSecret CLERK_WEBHOOK_SECRET (the split local/src/dev_secret.rs SECRETS makes for
# the local stack). Checks the file's shape first; prints field names and errors, never a value.
# Uses your AWS CLI credentials and region (AWS_PROFILE, AWS_REGION; default eu-west-1 as
# samconfig.toml).
set -euo pipefail
STAGE="${1:-}"
FILE="${2:-}"
case "$STAGE" in
  staging | prod) ;;
  *) echo "usage: $0 staging|prod FILE.json" >&2; exit 2 ;;
esac
[ -f "$FILE" ] || { echo "$0: $FILE is not a file" >&2; exit 2; }
command -v aws >/dev/null || { echo "$0: the AWS CLI (aws) is required" >&2; exit 2; }
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-west-1}}"
STACK="baatcheet-$STAGE"

if [ -n "$(find "$FILE" -perm /077)" ]; then
  echo "warning: $FILE is readable by other users (chmod 600 it)" >&2
fi

# The shape the functions read (shared/src/secrets.rs, shared/src/auth, functions/webhook,
# functions/chat/src/providers/catalog.rs). Messages name fields, never values.
python3 - "$FILE" <<'PY'
import json, sys
path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
except json.JSONDecodeError as e:
    sys.exit(f"{path}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})")
if not isinstance(doc, dict):
    sys.exit(f"{path}: must be a JSON object, not a {type(doc).__name__}")
errors, notes = [], []
known = {"CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET", "CLERK_JWT_KEY", "providers"}
for k in sorted(set(doc) - known):
    notes.append(f"field {k} is not read by any function")
for k in ("CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET", "CLERK_JWT_KEY"):
    if k in doc and not isinstance(doc[k], str):
        errors.append(f"{k} must be a string")
if not isinstance(doc.get("CLERK_SECRET_KEY"), str) or not doc["CLERK_SECRET_KEY"].startswith("sk_"):
    errors.append("CLERK_SECRET_KEY (sk_live_... / sk_test_...) is required: the JWKS and the admin's Clerk calls use it")
if not isinstance(doc.get("CLERK_WEBHOOK_SECRET"), str) or not doc["CLERK_WEBHOOK_SECRET"].startswith("whsec_"):
    errors.append("CLERK_WEBHOOK_SECRET (whsec_...) is required: the webhook refuses every delivery without it")
if "CLERK_JWT_KEY" in doc and "BEGIN PUBLIC KEY" not in str(doc["CLERK_JWT_KEY"]):
    errors.append("CLERK_JWT_KEY, when given, is the instance's PEM public key (-----BEGIN PUBLIC KEY-----)")
providers = doc.get("providers")
if not isinstance(providers, list) or not providers:
    errors.append("providers must be a non-empty list: chat has no model without one")
else:
    for i, p in enumerate(providers):
        where = f"providers[{i}]"
        if not isinstance(p, dict):
            errors.append(f"{where} must be an object")
            continue
        for k in sorted(set(p) - {"name", "base_url", "api_keys", "models"}):
            errors.append(f"{where}.{k} is not a provider field")
        if not isinstance(p.get("name"), str) or not p["name"]:
            errors.append(f"{where}.name is required")
        if not isinstance(p.get("base_url"), str) or not p["base_url"].startswith("https://"):
            errors.append(f"{where}.base_url must be an https:// URL")
        keys = p.get("api_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            errors.append(f"{where}.api_keys must be a list of non-empty strings")
        models = p.get("models")
        if not isinstance(models, list) or not models:
            errors.append(f"{where}.models must be a non-empty list")
        else:
            fields = {"id", "upstream_id", "context_length", "chat", "vision", "audio"}
            for j, m in enumerate(models):
                if not isinstance(m, dict) or not isinstance(m.get("id"), str) or not m["id"]:
                    errors.append(f"{where}.models[{j}] needs an id")
                elif set(m) - fields:
                    errors.append(f"{where}.models[{j}] has unknown fields {sorted(set(m) - fields)}")
for n in notes:
    print(f"note: {n}", file=sys.stderr)
if errors:
    sys.exit(f"{path}:\n  " + "\n  ".join(errors))
print(f"{path}: fields {', '.join(sorted(doc))}; {len(providers)} provider(s)", file=sys.stderr)
PY

# Each secret's part, written to files only this user can read, removed on exit.
PARTS=$(mktemp -d)
trap 'rm -rf "$PARTS"' EXIT
chmod 700 "$PARTS"
python3 - "$FILE" "$PARTS" <<'PY'
import json, os, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
secrets = {
    "ChatSecret": ("CLERK_SECRET_KEY", "CLERK_JWT_KEY", "providers"),
    "WebhookSecret": ("CLERK_WEBHOOK_SECRET",),
}
for name, fields in secrets.items():
    part = {k: doc[k] for k in fields if k in doc}
    path = os.path.join(sys.argv[2], name + ".json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(part, f)
    print(f"{name}: fields {', '.join(sorted(part))}", file=sys.stderr)
PY

for LOGICAL in ChatSecret WebhookSecret; do
  SECRET_ID=$(aws cloudformation describe-stack-resource --region "$REGION" --stack-name "$STACK" \
    --logical-resource-id "$LOGICAL" --query StackResourceDetail.PhysicalResourceId --output text)
  VERSION=$(aws secretsmanager put-secret-value --region "$REGION" --secret-id "$SECRET_ID" \
    --secret-string "file://$PARTS/$LOGICAL.json" --query VersionId --output text)
  echo "put a new value (version $VERSION) in $STACK's $LOGICAL ($SECRET_ID)"
done
echo "the functions read it at their next cold start (or when their cached copy expires); check: curl \$API_URL/health"
