#!/usr/bin/env bash
# make lambda-build: the one build that deploys. `sam build` (aws-sam-cli, with cargo-lambda from
# PyPI, which brings zig) cross-builds every function of template.yaml for Lambda's arm64
# provided.al2023 runtime into .aws-sam/build/<LogicalId>/bootstrap, next to the template
# `sam deploy` ships (.aws-sam/build/template.yaml). CI checks and ships these same files.
# Build parameters (beta features, no cache, parallel) are in samconfig.toml's [default.build].
source "$(dirname "$0")/lib.sh"
source "$ROOT/scripts/sam-env.sh"
ensure_sam_cli
ensure_cargo_lambda
cd "$ROOT"
started=$(date +%s)
"$SAM" build --beta-features "$@"
echo "sam build finished in $(( $(date +%s) - started )) s"
