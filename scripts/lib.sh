# Shared by the project's scripts: install the local tools into .local/ and start the local AWS
# endpoint. Everything comes from the package registries; nothing is installed by hand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$ROOT/.local"
VENV="$LOCAL_DIR/venv"
MOTO_VERSION="${MOTO_VERSION:-5.2.1}"

# Dummy credentials and a region: the SDK needs them, the local endpoint ignores them.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_EC2_METADATA_DISABLED=true

# Background processes a script starts (append their pids); all are stopped when the script exits
# or is interrupted, so Ctrl-C in `make dev` leaves nothing running.
pids=()
stop_children() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_children INT TERM EXIT

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
source "$ROOT/scripts/pip-venv.sh"

# moto's server mode (DynamoDB + Secrets Manager) in a project virtualenv.
ensure_moto() {
  pip_venv "$VENV" "moto[server]==$MOTO_VERSION"
}

# AWS's SAM translator (the library inside `sam`), pinned, in the same virtualenv: local/sam/translate.py
# renders template.yaml as a deploy creates it. Sets SAM_TEMPLATE_JSON to that output (CloudFormation
# JSON), which the local stack and the template tests read.
SAM_TRANSLATOR_VERSION="${SAM_TRANSLATOR_VERSION:-1.115.0}"
translate_template() {
  ensure_moto
  pip_venv "$VENV" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
  export SAM_TEMPLATE_JSON="$LOCAL_DIR/sam/template.json"
  mkdir -p "$LOCAL_DIR/sam"
  "$VENV/bin/python" "$ROOT/local/sam/translate.py" "$ROOT/template.yaml" "$SAM_TEMPLATE_JSON"
}

# The API stage's name in the translated template (the first path segment of every URL).
stage_name() {
  python3 - "$SAM_TEMPLATE_JSON" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
name = next(r["Properties"]["StageName"] for r in d["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage")
if isinstance(name, dict):
    name = d["Parameters"][name["Ref"]]["Default"]
print(name)
PY
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # port, what, seconds
  local port=$1 what=$2 tries=$(( ${3:-30} * 10 ))
  for _ in $(seq "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$what did not start on port $port" >&2
  return 1
}

# Starts moto on $AWS_PORT in the background; sets MOTO_PID and AWS_ENDPOINT_URL.
start_moto() {
  ensure_moto
  local logfile="$LOCAL_DIR/moto-$AWS_PORT.log"
  # moto_server with requests serialised, so conditional writes are atomic as in DynamoDB.
  "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$AWS_PORT" >"$logfile" 2>&1 &
  MOTO_PID=$!
  wait_for_port "$AWS_PORT" "moto_server (log: $logfile)" 30
  export AWS_ENDPOINT_URL="http://127.0.0.1:$AWS_PORT"
  log "local AWS endpoint (DynamoDB, Secrets Manager): $AWS_ENDPOINT_URL"
}

# Starts the fake OpenAI-compatible provider (tests/support/bin/fake_upstream.rs, built as
# target/debug/fake-upstream) on a free port and exports PROVIDERS_FILE, the `providers` list the
# gateway puts into its local secret. $1 names its files in .local/ (fake-upstream-$1.log).
# FAKE_UPSTREAM_TOKEN_DELAY_MS / FAKE_UPSTREAM_FIRST_TOKEN_MS pace its answers.
start_fake_upstream() {
  local name=$1 port
  port="${FAKE_UPSTREAM_PORT:-$(free_port)}"
  export PROVIDERS_FILE="$LOCAL_DIR/fake-providers-$name.json"
  rm -f "$PROVIDERS_FILE"
  FAKE_UPSTREAM_PORT="$port" FAKE_UPSTREAM_PROVIDERS_FILE="$PROVIDERS_FILE" \
    "${FAKE_UPSTREAM_BIN:-$ROOT/target/debug/fake-upstream}" >"$LOCAL_DIR/fake-upstream-$name.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 300); do [ -s "$PROVIDERS_FILE" ] && break; sleep 0.1; done
  [ -s "$PROVIDERS_FILE" ] || { echo "the fake provider did not start (log: .local/fake-upstream-$name.log)" >&2; exit 1; }
  FAKE_UPSTREAM_URL="http://127.0.0.1:$port/v1"
}

# The API docs checked from outside (scripts/docs-check.sh): schemathesis (PyPI) in a virtualenv
# of its own, Debian's chromium, and playwright-core (npm) to drive it.
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
SCHEMATHESIS_VENV="$LOCAL_DIR/schemathesis-venv"
PLAYWRIGHT_CORE_VERSION="${PLAYWRIGHT_CORE_VERSION:-1.65.1}"

ensure_schemathesis() {
  pip_venv "$SCHEMATHESIS_VENV" "schemathesis==$SCHEMATHESIS_VERSION"
}

# Sets CHROMIUM: $CHROMIUM when given (e.g. CI's preinstalled Chrome), else Debian's chromium,
# installed with apt-get when missing.
ensure_chromium() {
  if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then return; fi
  if ! command -v chromium >/dev/null; then
    log "installing chromium (Debian)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; }
  fi
  CHROMIUM="$(command -v chromium)"
  export CHROMIUM
}

# Sets PLAYWRIGHT_MODULE. playwright-core drives an installed browser; it downloads none.
ensure_playwright_core() {
  PLAYWRIGHT_MODULE="$LOCAL_DIR/npm/node_modules/playwright-core/index.mjs"
  export PLAYWRIGHT_MODULE
  if [ -f "$PLAYWRIGHT_MODULE" ] \
    && grep -q "\"version\": \"$PLAYWRIGHT_CORE_VERSION\"" "$LOCAL_DIR/npm/node_modules/playwright-core/package.json"; then
    return
  fi
  log "installing playwright-core@$PLAYWRIGHT_CORE_VERSION (npm) into .local/npm"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --prefix "$LOCAL_DIR/npm" \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null
}

# Clerk's own verifiers (@clerk/backend, npm) and Svix's Standard Webhooks signer, the references of
# the differential tests (tests/clerk_differential.rs, tests/svix_differential.rs): pinned in
# tests/clerk/package.json and its package-lock.json, installed with `npm ci` into
# tests/clerk/node_modules when missing or another version.
ensure_clerk_backend() {
  local dir="$ROOT/tests/clerk"
  # Installed already when every dependency package.json pins is there at its version.
  if node -e '
    const dir = process.argv[1];
    for (const [name, want] of Object.entries(require(`${dir}/package.json`).dependencies)) {
      try { if (require(`${dir}/node_modules/${name}/package.json`).version !== want) process.exit(1); }
      catch { process.exit(1); }
    }' "$dir"; then return; fi
  log "installing Clerk's verifiers and the Standard Webhooks signer (npm ci, tests/clerk/package-lock.json) for the differential tests"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
}

# Artillery (npm) for the load tests (scripts/load.sh), pinned, into .local/artillery; no global
# install. 2.0.21 is the last release that runs on Node 18/20 (later ones need Node >= 22.13).
# Telemetry off, here and in every run; no browser download for its Playwright engine (unused).
ARTILLERY_VERSION="${ARTILLERY_VERSION:-2.0.21}"
ARTILLERY_DIR="$LOCAL_DIR/artillery"
export ARTILLERY_DIR ARTILLERY_DISABLE_TELEMETRY=true

ensure_artillery() {
  ARTILLERY="$ARTILLERY_DIR/node_modules/.bin/artillery"
  if [ -x "$ARTILLERY" ] \
    && grep -q "\"version\": \"$ARTILLERY_VERSION\"" "$ARTILLERY_DIR/node_modules/artillery/package.json"; then
    return
  fi
  log "installing artillery@$ARTILLERY_VERSION (npm) into .local/artillery (about 600 MB)"
  mkdir -p "$ARTILLERY_DIR"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --loglevel=error --no-audit --no-fund --prefix "$ARTILLERY_DIR" \
    "artillery@$ARTILLERY_VERSION" >/dev/null
  [ -x "$ARTILLERY" ] || { echo "artillery was not installed into $ARTILLERY_DIR" >&2; return 1; }
}
