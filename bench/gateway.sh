#!/usr/bin/env bash
# Gateway benchmarks, release builds, all on this machine: the same load sent
# straight to a fast local fake upstream and through vapora-llm-gateway, in
# the same run. Prints a markdown report. Needs wrk.
#   bench/gateway.sh > /tmp/gateway.md
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p vapora-llm-router --features test-support \
  --bin vapora-llm-gateway --example fake_upstream --example loadgen
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status"; }

target/release/examples/fake_upstream > "$WORK/upstream.url" &
for _ in $(seq 50); do [ -s "$WORK/upstream.url" ] && break; sleep 0.1; done
UPSTREAM=$(cat "$WORK/upstream.url")
export VAPORA_BENCH_GATEWAY_KEY="vgk_$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
KEY_HASH="sha256:$(printf %s "$VAPORA_BENCH_GATEWAY_KEY" | sha256sum | cut -d' ' -f1)"
cat > "$WORK/llm.toml" <<TOML
[providers.fake]
kind = "openai"
base_url = "$UPSTREAM"
max_concurrency = 1024
models = { m = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }
[routes.bench]
targets = ["fake/m"]
[routes.default]
targets = ["fake/m"]
[budgets."role:default"]
limit_usd = 1000000.0
period = "daily"
[gateway.keys.bench]
hash = "$KEY_HASH"
TOML
VAPORA_LLM_CONFIG="$WORK/llm.toml" VAPORA_GATEWAY_ADDR=127.0.0.1:18003 \
  VAPORA_GATEWAY_BUDGET_FILE="$WORK/budgets.json" RUST_LOG=warn target/release/vapora-llm-gateway &
GATEWAY=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18003/health >/dev/null && break; sleep 0.1; done

DIRECT="$UPSTREAM/chat/completions"
VIA="http://127.0.0.1:18003/v1/chat/completions"
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }

echo "# Gateway run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
echo
echo "- gateway RSS idle: $(rss_mb $GATEWAY) MiB"
# Warm both paths (connection pools, allocator).
target/release/examples/loadgen "$DIRECT" 500 2 >/dev/null
target/release/examples/loadgen "$VIA" 500 2 >/dev/null
echo
echo "## Fixed rate, 1,000 req/s for 20 s (open loop, \`loadgen URL 1000 20\`)"
echo
echo "| path | sent | errors | p50 | p90 | p99 | max |"
echo "|---|---|---|---|---|---|---|"
D=$(target/release/examples/loadgen "$DIRECT" 1000 20)
G=$(target/release/examples/loadgen "$VIA" 1000 20)
G_RSS=$(rss_mb $GATEWAY)
for pair in "direct to the fake upstream|$D" "through the gateway|$G"; do
  name=${pair%%|*}; line=${pair#*|}
  echo "| $name | $(echo "$line" | field sent) | $(echo "$line" | field errors) | $(echo "$line" | field p50_us) µs | $(echo "$line" | field p90_us) µs | $(echo "$line" | field p99_us) µs | $(echo "$line" | field max_us) µs |"
done
echo
echo "Added by the gateway: p50 $(( $(echo "$G" | field p50_us) - $(echo "$D" | field p50_us) )) µs, p99 $(( $(echo "$G" | field p99_us) - $(echo "$D" | field p99_us) )) µs."
echo "Gateway RSS right after this load: ${G_RSS} MiB."
echo
echo "## Maximum throughput (\`wrk -t2 -c64 -d10s -s bench/chat.lua\`)"
echo
echo "| path | req/s | p50 | p99 |"
echo "|---|---|---|---|"
summ() { awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%s | %s | %s", rps, p50, p99}'; }
AUTH="Authorization: Bearer $VAPORA_BENCH_GATEWAY_KEY"
DW=$(wrk -t2 -c64 -d10s --latency -H "$AUTH" -s bench/chat.lua "$DIRECT" | summ)
GW=$(wrk -t2 -c64 -d10s --latency -H "$AUTH" -s bench/chat.lua "$VIA" | summ)
echo "| direct to the fake upstream | $DW |"
echo "| through the gateway | $GW |"
echo
echo "Gateway/direct throughput: $(awk -v g="${GW%% *}" -v d="${DW%% *}" 'BEGIN {printf "%.2f", g/d}'). Gateway RSS after max load: $(rss_mb $GATEWAY) MiB."
