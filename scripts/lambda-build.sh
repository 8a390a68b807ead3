#!/usr/bin/env bash
# make lambda-build: cargo lambda (PyPI, brings zig) cross-builds each function for Lambda's
# arm64 provided.al2023 runtime into target/lambda/<function>/bootstrap.
source "$(dirname "$0")/lib.sh"
LAMBDA_VENV="$LOCAL_DIR/lambda-venv"
if ! command -v cargo-lambda >/dev/null && [ ! -x "$LAMBDA_VENV/bin/cargo-lambda" ]; then
  log "installing cargo-lambda into .local/lambda-venv"
  python3 -m venv "$LAMBDA_VENV"
  "$LAMBDA_VENV/bin/pip" install --quiet --disable-pip-version-check cargo-lambda
fi
export PATH="$LAMBDA_VENV/bin:$PATH"
rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
args=()
for f in "$@"; do args+=(--bin "$f"); done
cargo lambda build --release --arm64 "${args[@]}"
