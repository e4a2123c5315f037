#!/usr/bin/env bash
# Backend benchmarks, release builds, all on this machine. Prints a markdown
# report; docs/benchmarks.md holds the output of a run. Needs wrk.
#   bench/run.sh > /tmp/report.md
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p vapora-backend --bin vapora-backend --example bare_health
BIN=target/release/vapora-backend
BARE=target/release/examples/bare_health
PORT=18001
BARE_PORT=18101
DATA=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DATA"' EXIT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
# wrk --latency summary -> "req/s p50 p99"
summarize() { awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} END {printf "%s %s %s %s\n", rps, p50, p99, (bad==""?0:bad)}'; }
run_wrk() { wrk -t2 -c"${CONNS:-100}" -d"${DURATION:-10s}" --latency -H "Authorization: Bearer ${KEY:-}" "$@" | summarize; }

start_backend() {
  VAPORA_PORT=$PORT VAPORA_DATABASE_URL="surrealkv://$DATA/db" VAPORA_LLM_PROVIDER=echo \
    VAPORA_ADMIN_KEY_FILE="$DATA/admin.key" VAPORA_RATE_LIMIT_PER_SEC=0 \
    VAPORA_ECHO_WORD_DELAY_MS=0 VAPORA_QUEUE_CAPACITY=1000000 RUST_LOG=warn "$BIN" >"$DATA/backend.log" 2>&1 &
  BACKEND=$!
  wait_up "http://127.0.0.1:$PORT/ready"
  KEY=$(cat "$DATA/admin.key")
}

echo "# Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -r)"
echo
start_backend
sleep 1
echo "- backend RSS idle: $(( $(rss_kb $BACKEND) / 1024 )) MiB"

PORT=$BARE_PORT "$BARE" &
BARE_PID=$!
wait_up "http://127.0.0.1:$BARE_PORT/health"
read -r b_rps b_p50 b_p99 _ < <(run_wrk "http://127.0.0.1:$BARE_PORT/health")
read -r h_rps h_p50 h_p99 _ < <(run_wrk "http://127.0.0.1:$PORT/health")
kill $BARE_PID
echo
echo "## GET /health, wrk -t2 -c100 -d10s"
echo
echo "| server | req/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| bare axum hello-world | $b_rps | $b_p50 | $b_p99 |"
echo "| vapora-backend | $h_rps | $h_p50 | $h_p99 |"
echo
echo "backend/bare throughput ratio: $(awk -v a="$h_rps" -v b="$b_rps" 'BEGIN {printf "%.2f", a/b}')"

PROJECT_ID=$(curl -sf -XPOST "http://127.0.0.1:$PORT/api/v1/projects" -H 'content-type: application/json' -H "Authorization: Bearer $KEY" \
  -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export PROJECT_ID
echo
echo "## POST /api/v1/tasks on surrealkv://, wrk -t2 -c100 -d10s"
echo
echo "| mode | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
read -r c_rps c_p50 c_p99 c_bad < <(DISPATCH=false run_wrk -s bench/create_task.lua "http://127.0.0.1:$PORT/api/v1/tasks")
echo "| store only (\`dispatch: false\`) | $c_rps | $c_p50 | $c_p99 | $c_bad |"
read -r d_rps d_p50 d_p99 d_bad < <(DISPATCH=true run_wrk -s bench/create_task.lua "http://127.0.0.1:$PORT/api/v1/tasks")
echo "| store + queue + run on in-process echo agents | $d_rps | $d_p50 | $d_p99 | $d_bad |"

echo
echo "- backend RSS after the create runs: $(( $(rss_kb $BACKEND) / 1024 )) MiB"
kill -TERM $BACKEND
wait $BACKEND && echo "- backend exit status after SIGTERM: 0"

# Listing: a fresh store with exactly 10,000 tasks over 10 projects.
rm -rf "$DATA/db"
start_backend
read -r PROJECT_ID MID < <(python3 - "$PORT" "$KEY" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base = f"http://127.0.0.1:{sys.argv[1]}/api/v1"
auth = {"authorization": f"Bearer {sys.argv[2]}"}
def get(path):
    return json.load(urllib.request.urlopen(urllib.request.Request(base + path, headers=auth)))
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json", **auth})
    return json.load(urllib.request.urlopen(req))
projects = [post("/projects", {"name": f"p{i}"})["id"] for i in range(10)]
def create(i):
    post("/tasks", {"project_id": projects[i % 10], "title": f"task {i}", "description": "x" * 200,
                    "role": "developer", "dispatch": False})
with ThreadPoolExecutor(16) as pool:
    list(pool.map(create, range(10_000)))
page = get("/tasks?limit=500&cursor=" + get("/tasks?limit=500")["items"][-1]["id"])
print(projects[0], page["items"][-1]["id"])
PY
)
TOTAL=10000
echo
echo "## GET /api/v1/tasks?limit=50 with $TOTAL tasks stored, wrk -t2 -d10s"
echo
echo "| page | connections | req/s | p50 | p99 |"
echo "|---|---|---|---|---|"
for conns in 4 100; do
  read -r l_rps l_p50 l_p99 _ < <(CONNS=$conns run_wrk "http://127.0.0.1:$PORT/api/v1/tasks?limit=50")
  echo "| first page | $conns | $l_rps | $l_p50 | $l_p99 |"
  read -r m_rps m_p50 m_p99 _ < <(CONNS=$conns run_wrk "http://127.0.0.1:$PORT/api/v1/tasks?limit=50&cursor=$MID")
  echo "| after a cursor (task 1,000) | $conns | $m_rps | $m_p50 | $m_p99 |"
  read -r f_rps f_p50 f_p99 _ < <(CONNS=$conns run_wrk "http://127.0.0.1:$PORT/api/v1/tasks?limit=50&project_id=$PROJECT_ID&status=todo")
  echo "| filtered by project (1,000 of them) and status | $conns | $f_rps | $f_p50 | $f_p99 |"
done
echo
echo "- backend RSS with $TOTAL tasks stored: $(( $(rss_kb $BACKEND) / 1024 )) MiB"
kill -TERM $BACKEND
wait $BACKEND && echo "- backend exit status after SIGTERM: 0"
