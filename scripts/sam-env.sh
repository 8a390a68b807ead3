# Sourced by scripts/lambda-build.sh, lint-deploy.sh and sam.sh: the deploy tools, pinned, each in a
# virtualenv of its own under .local/ (the SAM CLI pins an older boto3, so it shares nothing with
# the project's venv). Needs nothing from scripts/lib.sh (which sets dummy AWS credentials): the
# deploy jobs use it with real ones.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local}"
declare -F log >/dev/null || log() { printf '==> %s\n' "$*" >&2; }
source "$ROOT/scripts/pip-venv.sh"
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
  pip_venv "$SAM_VENV" "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
}

ensure_cargo_lambda() {
  # cargo-lambda from PyPI brings zig, the cross-linker.
  pip_venv "$LAMBDA_VENV" "cargo-lambda==$CARGO_LAMBDA_VERSION"
  # `sam build` finds cargo-lambda (and the zig it brings) on PATH.
  export PATH="$LAMBDA_VENV/bin:$PATH"
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
}
