#!/usr/bin/env bash
# make test: starts a private local AWS endpoint on a free port and runs the whole test suite
# against it. Tests isolate themselves by table-name prefix, so they run in parallel.
source "$(dirname "$0")/lib.sh"

AWS_PORT="${AWS_PORT:-$(free_port)}"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

start_moto; pids+=("$MOTO_PID")
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
