#!/usr/bin/env bash
# The process topology under load (release builds, everything on this
# machine): two backends on a SurrealDB server against one backend on
# embedded SurrealKV, in the same run. Prints a markdown report;
# docs/benchmarks.md holds the output of a run.
#   bench/topology.sh > /tmp/topology.md
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER_BIN="$(scripts/nats-server)"
VAPORA_SURREAL_BIN="$(scripts/surrealdb-server)"
export NATS_SERVER_BIN VAPORA_SURREAL_BIN
cargo build --release -q -p vapora-backend --bin vapora-backend --example topology_bench -p vapora-agents --bin vapora-agent-server \
  -p vapora-llm-router --bin vapora-llm-gateway
exec target/release/examples/topology_bench
