#!/usr/bin/env bash
# make bench-limits: DynamoDB calls and latency per rate-limit decision against a private local
# AWS endpoint, and the 64-way concurrency check. BENCH_N sets the requests per row (default 300).
source "$(dirname "$0")/lib.sh"

AWS_PORT="${AWS_PORT:-$(free_port)}"

cargo build --quiet -p baatcheet-tools --bin limiter-bench
start_moto; pids+=("$MOTO_PID")
"$ROOT/target/debug/limiter-bench"
