#!/usr/bin/env bash
# Workflow benchmark, release build: stage-to-stage latency of `feature`
# runs started at 100 runs/s against a backend on its defaults (embedded
# SurrealKV, in-process agents) and an instant fake LLM. Prints a markdown
# report; docs/benchmarks.md holds the output of a run.
#   bench/workflows.sh > /tmp/workflows.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vapora-backend --bin vapora-backend --example workflow_bench
exec target/release/examples/workflow_bench
