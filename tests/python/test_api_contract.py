"""Schemathesis against the OpenAPI documents the backend and the gateway serve.

Started by scripts/test with both binaries built. Each service runs as a real
process on a free port (the backend on embedded `mem://` storage with a
freshly generated admin key, the gateway on the built-in echo provider with a
generated gateway key); schemathesis generates requests from the served
document and checks every answer:

- not_a_server_error: no 5xx;
- status_code_conformance: the status is one the document lists;
- content_type_conformance: the Content-Type is the documented one;
- response_schema_conformance: the body matches the documented schema.

The backend's Server-Sent Events feed (`stream_events`) is left out: a
well-formed request opens a stream that never ends.

The backend run is also stateful: the document's links (a created project's
id into the project, board and task routes, a created task's id into the
task routes) let schemathesis chain calls on resources that exist.

Each binary's `healthcheck` subcommand (what a container health check
runs) must pass while its service runs and fail once it is gone. Then each
service gets SIGTERM and must exit 0 with no WARN or ERROR line after it. Prints 'schemathesis: N cases …' and exits non-zero on any failure
or when fewer than MIN_CASES cases ran. SCHEMATHESIS_EXAMPLES sets the
examples per operation (default 100).
"""
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile

from local_processes import free_port, start, start_echo_gateway

BACKEND = os.environ.get("VAPORA_BACKEND_BIN", "target/debug/vapora-backend")
GATEWAY = os.environ.get("VAPORA_GATEWAY_BIN", "target/debug/vapora-llm-gateway")
LOG_DIR = os.environ.get("VAPORA_TEST_LOG_DIR", "target/tmp")
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "st")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "100"))
MIN_CASES = 1000

def start_backend(workdir, log):
    port = free_port()
    key = f"vk_{secrets.token_hex(8)}_{secrets.token_hex(32)}"
    env = dict(os.environ, VAPORA_HOST="127.0.0.1", VAPORA_PORT=str(port), VAPORA_DATABASE_URL="mem://",
               VAPORA_ADMIN_KEY=key, VAPORA_LLM_PROVIDER="echo", RUST_LOG="info", NO_COLOR="1")
    url = f"http://127.0.0.1:{port}"
    proc = start([os.path.abspath(BACKEND)], env, url + "/ready", "the backend",
                 cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    return proc, url, key


def start_gateway(workdir, log):
    return start_echo_gateway(GATEWAY, workdir, log_level="info", stdout=log, stderr=subprocess.STDOUT)


def schemathesis(name, url, key, extra=()):
    """Runs schemathesis; returns (passed, cases)."""
    argv = [SCHEMATHESIS, "run", url + "/api-docs/openapi.json", "--experimental=openapi-3.1",
            "--checks", CHECKS, "--hypothesis-max-examples", str(EXAMPLES),
            "--hypothesis-database=none", "--no-color", "-H", f"Authorization: Bearer {key}", *extra]
    # Hypothesis keeps caches in the working directory unless told otherwise.
    env = dict(os.environ, HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(LOG_DIR, "hypothesis"))
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    # schemathesis redacts Authorization in what it prints.
    # From the first failure or error on; just the summary when all passed.
    out = result.stdout
    start_at = min((i for i in (out.find("= ERRORS ="), out.find("= FAILURES ="), out.find("= SUMMARY =")) if i >= 0),
                   default=0)
    print(f"--- schemathesis against the {name} ---")
    print(out[start_at:][:12000], result.stderr[-2000:], sep="\n")
    cases = [int(n) for n in re.findall(r"not_a_server_error\s+\d+ / (\d+) passed", result.stdout)]
    return result.returncode == 0, sum(cases)


def healthcheck(binary, env):
    """Whether `binary healthcheck` (what a container health check runs) exits 0."""
    return subprocess.run([os.path.abspath(binary), "healthcheck"], env=dict(os.environ, **env),
                          capture_output=True).returncode == 0


def stop(proc, log_path, name):
    """SIGTERM; the process must exit 0 with no WARN or ERROR line after it."""
    with open(log_path) as f:
        before = len(f.read())
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    with open(log_path) as f:
        after = f.read()[before:]
    noisy = [line for line in after.splitlines() if re.search(r"\b(WARN|ERROR)\b", line)]
    if code != 0 or noisy:
        print(f"the {name} did not stop cleanly: exit {code}", *noisy, sep="\n")
        return False
    return True


def main():
    os.makedirs(LOG_DIR, exist_ok=True)
    ok, total = True, 0
    with tempfile.TemporaryDirectory() as workdir:
        for name, starter, extra, binary, port_setting in [
            # The SSE feed answers a well-formed request with a stream that
            # never ends, which schemathesis would wait on forever; its
            # errors and its stream are tested in tests/api/event_resume.rs
            # and access.rs.
            ("backend", start_backend, ["--stateful=links", "--exclude-operation-id", "stream_events"],
             BACKEND, "VAPORA_PORT"),
            ("gateway", start_gateway, [], GATEWAY, "VAPORA_GATEWAY_ADDR"),
        ]:
            log_path = os.path.join(LOG_DIR, f"schemathesis-{name}.log")
            with open(log_path, "w") as log:
                proc, url, key = starter(workdir, log)
                port = url.rsplit(":", 1)[1]
                probe = {port_setting: port if port_setting == "VAPORA_PORT" else f"127.0.0.1:{port}"}
                try:
                    passed, cases = schemathesis(name, url, key, extra)
                    if not healthcheck(binary, probe):
                        print(f"`{name} healthcheck` failed while the {name} ran")
                        passed = False
                finally:
                    stopped = stop(proc, log_path, name)
            if healthcheck(binary, probe):
                print(f"`{name} healthcheck` passed with the {name} stopped")
                stopped = False
            ok = ok and passed and stopped
            total += cases
            print(f"{name}: {cases} cases, {'passed' if passed else 'FAILED'}")
    if total < MIN_CASES:
        print(f"only {total} cases ran; at least {MIN_CASES} are needed")
        ok = False
    print(f"schemathesis: {total} cases, checks {CHECKS}: {'all passed' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
