#!/usr/bin/env bash
# Prints the chat function's figures: first-token overhead over the upstream's own, time to first
# byte, and RSS with many streams open. Starts a private local AWS endpoint like `make test`.
# BENCH_REQUESTS (default 200), BENCH_STREAMS (default 100); PROFILE=release for optimised code.
source "$(dirname "$0")/lib.sh"

AWS_PORT="${AWS_PORT:-$(free_port)}"
PROFILE="${PROFILE:-dev}"

start_moto; pids+=("$MOTO_PID")
cargo build --quiet --profile "$PROFILE" -p baatcheet-tools --bin chat-bench
dir=debug; [ "$PROFILE" = dev ] || dir="$PROFILE"
"$ROOT/target/$dir/chat-bench"
