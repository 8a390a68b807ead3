# Sourced by scripts/lambda-build.sh, lint-deploy.sh and sam.sh: the deploy tools, pinned, each in a
# virtualenv of its own under .local/ (the SAM CLI pins an older boto3, so it shares nothing with
# the project's venv). Needs nothing from scripts/lib.sh (which sets dummy AWS credentials): the
# deploy jobs use it with real ones.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local}"
declare -F log >/dev/null || log() { printf '==> %s\n' "$*" >&2; }
#   ensure_sam_cli      aws-sam-cli and cfn-lint in .local/sam-venv; sets SAM
#   ensure_cargo_lambda cargo-lambda (brings zig) in .local/lambda-venv, put on PATH for `sam build`
SAM_CLI_VERSION="${SAM_CLI_VERSION:-1.170.0}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
SAM_VENV="$LOCAL_DIR/sam-venv"
LAMBDA_VENV="$LOCAL_DIR/lambda-venv"
export SAM_CLI_TELEMETRY=0

ensure_sam_cli() {
  SAM="$SAM_VENV/bin/sam"
  CFN_LINT="$SAM_VENV/bin/cfn-lint"
  if [ -x "$SAM" ] && [ -f "$SAM_VENV/.sam-$SAM_CLI_VERSION-cfn-lint-$CFN_LINT_VERSION" ]; then return; fi
  log "installing aws-sam-cli==$SAM_CLI_VERSION and cfn-lint==$CFN_LINT_VERSION into .local/sam-venv"
  mkdir -p "$LOCAL_DIR"
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  touch "$SAM_VENV/.sam-$SAM_CLI_VERSION-cfn-lint-$CFN_LINT_VERSION"
}

ensure_cargo_lambda() {
  if [ ! -x "$LAMBDA_VENV/bin/cargo-lambda" ] || [ ! -f "$LAMBDA_VENV/.cargo-lambda-$CARGO_LAMBDA_VERSION" ]; then
    log "installing cargo-lambda==$CARGO_LAMBDA_VERSION (PyPI, brings zig) into .local/lambda-venv"
    mkdir -p "$LOCAL_DIR"
    python3 -m venv "$LAMBDA_VENV"
    "$LAMBDA_VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
    touch "$LAMBDA_VENV/.cargo-lambda-$CARGO_LAMBDA_VERSION"
  fi
  # `sam build` finds cargo-lambda (and the zig it brings) on PATH.
  export PATH="$LAMBDA_VENV/bin:$PATH"
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
}
