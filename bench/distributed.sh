#!/usr/bin/env bash
# Distributed benchmark, release builds, everything on this machine:
# nats-server, vapora-backend, two vapora-agent-server, an instant fake LLM.
# Prints a markdown report; docs/benchmarks.md holds the output of a run.
#   bench/distributed.sh > /tmp/distributed.md
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nats-server >/dev/null; then
  # The same server the tests use (scripts/test installs it there).
  export PATH="$PWD/target/test-venv/bin:$PATH"
fi
cargo build --release -q -p vapora-backend --bin vapora-backend --example distributed_bench \
  -p vapora-agents --bin vapora-agent-server
exec target/release/examples/distributed_bench
