"""The browser test's harness: where things are, the backend's
configuration, pass/fail reporting, and the backend itself (a process of
its own on a free port, with REST helpers that use the admin key).
"""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from local_processes import free_port, start  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# Paths from the environment are relative to where the test was started;
# everything else to the workspace root.
BACKEND = os.path.abspath(os.environ.get("VAPORA_BACKEND_BIN", os.path.join(ROOT, "target/debug/vapora-backend")))
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
LOG_DIR = os.path.abspath(os.environ.get("VAPORA_TEST_LOG_DIR", os.path.join(ROOT, "target/tmp")))
SHOTS = os.path.join(ROOT, "target/screenshots")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WORD_DELAY_MS = 120
EVENT_WINDOW = 300  # the backend's replay window, small enough to overrun on purpose

# The echo provider with prices (so results cost something) and a word
# delay; a budget for the developer role for the cost panel, and one that
# makes security tasks fail, for the Retry button.
LLM_CONFIG = f"""
[providers.echo]
kind = "echo"
echo_word_delay_ms = {WORD_DELAY_MS}
models = {{ "echo-1" = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }} }}

[routes.default]
targets = ["echo/echo-1"]

[budgets."role:developer"]
limit_usd = 1000.0
period = "daily"

# Next to nothing: every security task fails (budget exhausted), to retry.
[budgets."role:security"]
limit_usd = 0.0000001
period = "daily"
on_exhausted = {{ action = "reject" }}
"""

LOREM = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def words(n, marker=""):
    """A description of about n words (each costs WORD_DELAY_MS when streamed)."""
    return " ".join([marker] + [LOREM[i % len(LOREM)] for i in range(n)]).strip()


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


passed = []


def ok(number, text):
    passed.append(number)
    print(f"ok {number} - {text}", flush=True)


class Backend:
    def __init__(self, workdir):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, "browser-backend.log")
        self.log = open(self.log_path, "w")
        config = os.path.join(workdir, "llm.toml")
        with open(config, "w") as f:
            f.write(LLM_CONFIG)
        port = free_port()
        self.key = f"vk_{secrets.token_hex(8)}_{secrets.token_hex(32)}"
        env = dict(os.environ, VAPORA_HOST="127.0.0.1", VAPORA_PORT=str(port), VAPORA_DATABASE_URL="mem://",
                   VAPORA_ADMIN_KEY=self.key, VAPORA_LLM_CONFIG=config, VAPORA_EVENT_WINDOW=str(EVENT_WINDOW),
                   RUST_LOG="info", NO_COLOR="1")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = start([BACKEND], env, self.url + "/ready", "the backend",
                          cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)

    def call(self, method, path, body=None):
        """(status, JSON body) of one API request with the admin key."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw) if raw else None
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def ok(self, method, path, body=None, status=(200, 201)):
        code, answer = self.call(method, path, body)
        check(code in status, f"{method} {path} answered {code}: {answer}")
        return answer

    def project(self, name):
        return self.ok("POST", "/api/v1/projects", {"name": name, "description": "made by the browser test"})

    def task(self, project_id, title, description="", dispatch=True, role="developer", **extra):
        body = {"project_id": project_id, "title": title, "description": description, "role": role,
                "priority": "medium", "requires_approval": False, "dispatch": dispatch, **extra}
        return self.ok("POST", "/api/v1/tasks", body)

    def stop(self):
        """SIGTERM: exit 0, and no WARN or ERROR line anywhere in the log."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        with open(self.log_path) as f:
            noisy = [line for line in f.read().splitlines() if re.search(r"\b(WARN|ERROR)\b", line)]
        check(code == 0, f"the backend exited with {code} on SIGTERM (log: {self.log_path})")
        check(not noisy, "the backend logged WARN/ERROR lines:\n" + "\n".join(noisy[:20]))
