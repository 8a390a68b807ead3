#!/usr/bin/env bash
# scripts/sam.sh ARGS...: the pinned SAM CLI from .local/sam-venv (installed on first use), run from
# the repository root with your AWS credentials, e.g. `scripts/sam.sh deploy --config-env staging`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/sam-env.sh"
ensure_sam_cli
cd "$ROOT"
exec "$SAM" "$@"
