"""The web dashboard in a real browser: headless Chromium driven by Playwright.

Starts its own backend process (embedded `mem://` storage, a freshly
generated admin key, a free port, the echo provider with a per-word delay so
that a task stays `running` for a few seconds and streams its output), opens
the dashboard the backend serves at `/`, and checks, each one asserted:

 1. signing in with the admin key, and creating a project from the page;
 2. a task created over REST appears on the board and moves queued → running
    → done live, without a reload; (2b) its task panel shows the result,
    provider, model, tokens, cost and attempt history; (2c) after the
    WebSocket drops, the page reconnects with `since` and gets the event it
    missed replayed, without reading the board again; (2d) after an outage
    longer than the server's event window it gets `resync` and reads the
    board again;
 3. a running card shows the streamed output as it grows;
 4. a `todo` card dragged (HTML5 drag and drop) to `queued` runs to `done`;
    (4b) a task made with the page's New task form (To do) is moved with the
    keyboard alone: Tab to its card, Enter, Tab to "Move to", Enter; focus
    is visible on the way;
 5. an illegal drag (`done` → `running`) shows the server's own error
    message and the card stays in its column;
 6. the Cancel button of a running card ends it in `cancelled`; (6b) the
    Approve button moves a task that requires approval from review to done;
    (6c) a failed card shows its error and Retry runs it again (attempt 2);
 7. the agents panel lists the in-process agents (and the cost panel the
    spend per role and the configured budget);
 8. at a 390 px wide viewport: no horizontal overflow, a card appears and
    moves live, a drag, an illegal drag, a cancel;
 9. no console error or warning and no page error during the whole run (the
    only console lines allowed are Chromium's own "Failed to load resource:
    … 409" for the illegal moves this test makes on purpose, each matched to
    its request);
10. a board of 1,000 tasks renders in under a second, measured in the page
    from choosing the project to all 1,000 cards in the DOM;
11. screenshots of the board at 1280 and 390 px: target/screenshots/;
12. the backend stops on SIGTERM with exit 0 and no WARN or ERROR line in
    its whole log.

Run from the workspace root, with the backend built:

    VAPORA_BACKEND_BIN=target/debug/vapora-backend target/test-venv/bin/python tests/browser/test_dashboard.py

Needs the `playwright` package in the venv (`target/test-venv/bin/pip install
playwright`) and Chromium at /usr/bin/chromium (CHROMIUM_BIN overrides); it never
downloads a browser. With VAPORA_DASHBOARD_DIR set, the backend serves the
dashboard files from that directory instead of the copies compiled in.
Prints one line per check passed; exits non-zero on the first failure.
"""
import concurrent.futures
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from local_processes import free_port, start  # noqa: E402

from playwright.sync_api import sync_playwright  # noqa: E402

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
BIG_BOARD = 1000
RENDER_BUDGET_MS = 1000

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


# ---- the backend --------------------------------------------------------------


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


# ---- page helpers ---------------------------------------------------------------

CARD_STATE = """(id) => {
  const c = document.querySelector(`[data-testid=card][data-task-id="${id}"]`);
  if (!c) return null;
  const column = c.closest('[data-testid=column]');
  const out = c.querySelector('[data-testid=card-output]');
  return {status: c.dataset.status, column: column ? column.dataset.status : null,
          output: out ? out.textContent : null, pending: c.classList.contains('pending')};
}"""

# Records every status each card shows, as the DOM changes: a
# MutationObserver sees each change, however short (the `data-status` and
# column of the card, and the streamed output of a running card).
RECORDER = """() => {
  if (window.__recorder) return;
  window.__seen = {};
  window.__outputs = {};
  const note = (c) => {
    const id = c.dataset.taskId;
    const column = c.closest('[data-testid=column]');
    const entry = c.dataset.status + '@' + (column ? column.dataset.status : '?');
    const list = window.__seen[id] || (window.__seen[id] = []);
    if (list[list.length - 1] !== entry) list.push(entry);
    const out = c.querySelector('[data-testid=card-output]');
    if (out && c.dataset.status === 'running' && out.textContent) {
      const outs = window.__outputs[id] || (window.__outputs[id] = []);
      if (outs[outs.length - 1] !== out.textContent) outs.push(out.textContent);
    }
  };
  window.__recorder = new MutationObserver((records) => {
    const cards = new Set();
    for (const r of records) {
      const c = r.target.closest ? r.target.closest('[data-testid=card]') : r.target.parentElement && r.target.parentElement.closest('[data-testid=card]');
      if (c) cards.add(c);
      for (const n of r.addedNodes) if (n.dataset && n.dataset.testid === 'card') cards.add(n);
    }
    for (const c of cards) if (c.isConnected) note(c);
  });
  window.__recorder.observe(document.getElementById('board'),
    {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'], characterData: true});
  for (const c of document.querySelectorAll('[data-testid=card]')) note(c);
}"""


# Test instrumentation around the page's WebSockets: a handle on each (to
# drop one), the types of the messages each got, and an outage switch:
# while `window.__hold` is an array, new connections are stand-ins that
# never open, until `window.__release()` fails them (as a network would).
SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__hold = null;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      if (window.__hold) {
        const stand_in = {url, readyState: 0, onopen: null, onmessage: null, onclose: null, onerror: null,
                          close() { this.readyState = 3; }};
        window.__hold.push(stand_in);
        return stand_in;
      }
      super(url, protocols);
      const entry = {ws: this, url, t: Date.now(), types: []};
      this.addEventListener('message', (e) => { try { entry.types.push(JSON.parse(e.data).type); } catch (_) {} });
      window.__sockets.push(entry);
    }
  };
  window.__release = () => {
    const held = window.__hold || [];
    window.__hold = null;
    for (const s of held) { s.readyState = 3; if (s.onclose) s.onclose({code: 1006, reason: ''}); }
    return held.length;
  };
})();"""


open_pages = []


class Page:
    def __init__(self, browser, backend, width, height, console):
        self.backend = backend
        self.width = width
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        open_pages.append(self)
        tag = f"{width}px"
        self.page.on("console", lambda m: console.append((tag, m.type, m.text, (m.location or {}).get("url", ""))))
        self.page.on("pageerror", lambda e: console.append((tag, "pageerror", str(e), "")))
        self.board_reads = []
        self.page.on("request", lambda r: self.board_reads.append(r.url) if "/board" in r.url else None)
        self.context.add_init_script(SOCKETS)

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def wait(self, what, predicate, timeout=20.0, interval=0.05):
        """Polls `predicate()` until it returns something truthy."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise Failure(f"[{self.width}px] timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")

    def card(self, task_id):
        return self.js(CARD_STATE, task_id)

    def card_locator(self, task_id):
        return self.page.locator(f'[data-testid=card][data-task-id="{task_id}"]')

    def column_locator(self, status):
        return self.page.locator(f'[data-testid=column][data-status="{status}"]')

    def sign_in(self):
        response = self.page.goto(self.backend.url + "/")
        csp = response.headers.get("content-security-policy", "")
        check("script-src 'self'" in csp and "style-src 'self'" in csp,
              f"the dashboard is served without its Content-Security-Policy: {csp!r}")
        self.page.wait_for_selector("[data-testid=key-input]", state="visible")
        self.page.fill("[data-testid=key-input]", self.backend.key)
        self.page.click("[data-testid=signin-submit]")
        self.page.wait_for_selector("[data-testid=project-select]", state="visible")
        who = self.page.text_content("[data-testid=whoami]")
        check("admin" in who, f"[{self.width}px] signed in, but the page shows the role {who!r}")
        check(self.js("() => sessionStorage.getItem('vapora.apiKey')") == self.backend.key,
              "the key is not kept in sessionStorage")
        self.js(RECORDER)
        # A marker that a reload would wipe out.
        self.js("() => { window.__sameDocument = true; }")

    def wait_board(self, project_id):
        self.wait(f"the board of project {project_id} to load and go live", lambda: self.js(
            """(id) => document.querySelector('[data-testid=project-select]').value === id
                 && document.querySelector('[data-testid=board]').dataset.loaded === 'true'
                 && document.querySelector('[data-testid=connection]').dataset.state === 'open'""", project_id))

    def seen(self, task_id):
        return self.js("(id) => window.__seen[id] || []", task_id)

    def outputs(self, task_id):
        return self.js("(id) => window.__outputs[id] || []", task_id)

    def wait_card(self, task_id, status, timeout=30.0):
        """Waits for the card to show `status` and sit in that column."""
        def there():
            state = self.card(task_id)
            return state if state and state["status"] == status and state["column"] == status \
                and not state["pending"] else None
        return self.wait(f"card {task_id} to be {status!r} in the {status!r} column", there, timeout)

    def same_document(self):
        check(self.js("() => window.__sameDocument === true"), f"[{self.width}px] the page was reloaded")

    def error_text(self):
        return self.js("""() => { const t = document.querySelector('[data-testid=error]');
                                   return t && !t.hidden ? document.querySelector('[data-testid=error-text]').textContent : null; }""")

    def dismiss_error(self):
        if self.error_text():
            self.page.click("#toast-close")

    def drag(self, task_id, status):
        self.card_locator(task_id).drag_to(self.column_locator(status))

    def tab_to(self, selector, limit=80):
        """Presses Tab until `selector` has focus; asserts the focus is visible."""
        for presses in range(1, limit + 1):
            self.page.keyboard.press("Tab")
            if self.js("(s) => document.activeElement && document.activeElement.matches(s)", selector):
                visible = self.js("""() => { const e = document.activeElement; const st = getComputedStyle(e);
                                             return e.matches(':focus-visible') && st.outlineStyle !== 'none'
                                                    && parseFloat(st.outlineWidth) >= 2; }""")
                check(visible, f"[{self.width}px] {selector} has focus but no visible focus outline")
                return presses
        raise Failure(f"[{self.width}px] {selector} is not reachable with Tab ({limit} presses)")

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name)
        self.page.screenshot(path=path, full_page=True)
        return os.path.relpath(path, ROOT)


# ---- the checks -------------------------------------------------------------------


def live_run(page, backend, project_id, number, label):
    """A task created over REST appears and moves queued → running → done."""
    marker = f"stream-{secrets.token_hex(3)}"
    # The whole answer is streamed word by word: ~40 words at WORD_DELAY_MS.
    task = backend.task(project_id, f"Live task {label}", words(36, marker))
    page.wait(f"card {task['id']} to appear", lambda: page.card(task["id"]))
    page.wait_card(task["id"], "done", timeout=40)
    page.same_document()
    seen = page.seen(task["id"])
    statuses = [s.split("@")[0] for s in seen]
    check(all(s.split("@")[0] == s.split("@")[1] for s in seen),
          f"a card showed a status other than its column's: {seen}")
    check("running" in statuses, f"the card never showed 'running' (statuses seen: {statuses})")
    check(statuses[-1] == "done", f"the card did not end in 'done': {statuses}")
    order = [s for s in ["queued", "running", "done"] if s in statuses]
    check(order == sorted(order, key=statuses.index), f"statuses out of order: {statuses}")
    ok(number, f"[{label}] a task created over REST appeared and moved live without a reload: {' → '.join(statuses)}")
    return task, marker


def streamed_output(page, task, marker, number, label):
    outputs = page.outputs(task["id"])
    check(outputs, "no streamed output was shown on the running card")
    check(any(marker in o or "echo provider" in o for o in outputs),
          f"the running card's output is not the model's text: {outputs[-1][:200]!r}")
    lengths = sorted({len(o) for o in outputs})
    check(len(lengths) >= 3, f"the output did not grow as chunks arrived (lengths seen: {lengths})")
    final = backend_output = page.backend.ok("GET", f"/api/v1/tasks/{task['id']}")["result"]["output"]
    check(outputs[-1].lstrip("…") in final, "the streamed text is not part of the final output")
    ok(number, f"[{label}] the running card streamed its output: {len(outputs)} updates, "
               f"{lengths[0]} → {lengths[-1]} chars (final output {len(backend_output)} chars)")


def task_panel(page, backend, task, number):
    page.page.click(f'[data-testid=card][data-task-id="{task["id"]}"] [data-testid=card-title]')
    page.page.wait_for_selector("[data-testid=task-panel][open]")
    stored = backend.ok("GET", f"/api/v1/tasks/{task['id']}")
    result = stored["result"]

    def facts():
        return page.js("""() => {
          const get = (id) => { const e = document.querySelector(`[data-testid=${id}]`); return e ? e.textContent : null; };
          return {provider: get('result-provider'), model: get('result-model'), tin: get('result-tokens-in'),
                  tout: get('result-tokens-out'), cost: get('result-cost'), output: get('task-output'),
                  status: get('task-status'),
                  history: [...document.querySelectorAll('[data-testid=transition]')].map(r => r.textContent),
                  stale: document.querySelector('[data-testid=stale-reports]').textContent};
        }""")
    shown = page.wait("the task panel's result and history",
                      lambda: (lambda f: f if f["provider"] and len(f["history"]) >= 3 else None)(facts()))
    check(shown["provider"] == result["provider"], f"panel provider {shown['provider']!r} != {result['provider']!r}")
    check(shown["model"] == result["model"], f"panel model {shown['model']!r} != {result['model']!r}")
    check(shown["tin"].replace(",", "") == str(result["tokens_in"]), f"panel tokens in {shown['tin']!r} != {result['tokens_in']}")
    check(shown["tout"].replace(",", "") == str(result["tokens_out"]), f"panel tokens out {shown['tout']!r} != {result['tokens_out']}")
    check(result["cost_usd"] > 0 and shown["cost"].startswith("$") and float(shown["cost"][1:]) > 0,
          f"panel cost {shown['cost']!r} for cost_usd {result['cost_usd']}")
    check(shown["output"] == result["output"], "the panel does not show the result output")
    history = backend.ok("GET", f"/api/v1/tasks/{task['id']}/history")
    check(len(shown["history"]) == len(history["transitions"]),
          f"panel history {shown['history']} vs {len(history['transitions'])} transitions")
    check(any("Running" in h for h in shown["history"]) and "Done" in shown["history"][-1],
          f"history rows: {shown['history']}")
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("[data-testid=task-panel]", state="hidden")
    ok(number, f"task panel: provider {shown['provider']}, model {shown['model']}, tokens {shown['tin']}/{shown['tout']}, "
               f"cost {shown['cost']}, {len(shown['history'])} history rows, stale reports listed")


def drag_to_queue(page, backend, project_id, number, label):
    task = backend.task(project_id, f"Dragged task {label}", words(6), dispatch=False)
    page.wait_card(task["id"], "todo")
    page.drag(task["id"], "queued")
    page.wait_card(task["id"], "done", timeout=40)
    statuses = dedupe(s.split("@")[0] for s in page.seen(task["id"]))
    check(statuses[0] == "todo" and "done" == statuses[-1], f"statuses after the drag: {statuses}")
    check(backend.ok("GET", f"/api/v1/tasks/{task['id']}")["status"] == "done", "the server does not have it done")
    ok(number, f"[{label}] dragged a todo card to queued; it ran: {' → '.join(statuses)}")
    return task


def illegal_drag(page, backend, task, to, number, label, provoked):
    before = page.card(task["id"])
    page.dismiss_error()
    provoked.add(f"{backend.url}/api/v1/tasks/{task['id']}")
    page.drag(task["id"], to)
    shown = page.wait("the error toast", page.error_text)
    # The same move over REST: the server's own words.
    code, answer = backend.call("PATCH", f"/api/v1/tasks/{task['id']}", {"status": to})
    check(code in (409, 422), f"the server accepted {before['status']} → {to}: {code} {answer}")
    message = answer["error"]["message"]
    check(shown == message, f"the toast says {shown!r}, the server says {message!r}")
    after = page.wait_card(task["id"], before["status"], timeout=5)
    check(after["column"] == before["column"], f"the card moved from {before['column']} to {after['column']}")
    page.dismiss_error()
    ok(number, f"[{label}] illegal drag {before['status']} → {to} showed the server's error {message!r}; "
               f"the card stayed in {after['column']!r}")


def cancel_running(page, backend, project_id, number, label):
    task = backend.task(project_id, f"Cancelled task {label}", words(60), role="tester")
    page.wait_card(task["id"], "running", timeout=30)
    page.page.click(f'[data-testid=card][data-task-id="{task["id"]}"] [data-testid=cancel]')
    page.wait_card(task["id"], "cancelled", timeout=15)
    check(backend.ok("GET", f"/api/v1/tasks/{task['id']}")["status"] == "cancelled", "the server does not have it cancelled")
    statuses = dedupe(s.split("@")[0] for s in page.seen(task["id"]))
    ok(number, f"[{label}] the Cancel button stopped a running task: {' → '.join(statuses)}")


def outage(page, during):
    """Drops the page's WebSocket and holds reconnection while `during()`
    runs; returns (the sequence number the page had, the new connection)."""
    seq = page.js("() => window.vapora.lastSeq()")
    check(isinstance(seq, int), f"the page holds no event sequence number to resume from: {seq!r}")
    sockets_before = page.js("() => window.__sockets.length")
    page.js("() => { window.__hold = []; window.__sockets[window.__sockets.length - 1].ws.close(); }")
    page.wait("the page to notice the dropped connection", lambda: page.js(
        "() => document.querySelector('[data-testid=connection]').dataset.state !== 'open'"))
    during()
    page.js("() => window.__release()")
    page.wait("the connection to be live again", lambda: page.js(
        "() => document.querySelector('[data-testid=connection]').dataset.state === 'open'"), timeout=30)
    sockets = page.js("() => window.__sockets.map(s => ({url: s.url, types: s.types}))")[sockets_before:]
    check(len(sockets) == 1, f"expected one new WebSocket, got {sockets}")
    return seq, sockets[0]


def reconnect_resumes(page, backend, project_id, number):
    reads_before = len(page.board_reads)
    made = {}
    seq, socket = outage(page, lambda: made.update(
        task=backend.task(project_id, "Created while disconnected", "", dispatch=False)))
    task = made["task"]
    check(f"since={seq}" in socket["url"], f"the page reconnected without since={seq}: {socket['url']}")
    page.wait_card(task["id"], "todo", timeout=15)
    types = page.js("() => window.__sockets[window.__sockets.length - 1].types")
    check("resync" not in types and "task.created" in types, f"messages after reconnecting: {types}")
    check(len(page.board_reads) == reads_before,
          f"the page read the board again instead of resuming: {page.board_reads[reads_before:]}")
    page.same_document()
    ok(number, f"after the WebSocket dropped, the page reconnected with since={seq} and got the missed "
               f"task.created replayed (no board re-read)")
    return task


def resync_reloads(page, backend, project_id, number):
    """Away for longer than the server's event window: `resync`, then the board again."""
    scratch = backend.project(f"Scratch {secrets.token_hex(2)}")
    reads_before = len(page.board_reads)
    made = {}

    def busy():
        made["task"] = backend.task(project_id, "Created during a long outage", "", dispatch=False)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: backend.task(scratch["id"], f"Filler {i}", "", dispatch=False),
                          range(EVENT_WINDOW + 20)))
    seq, socket = outage(page, busy)
    check(f"since={seq}" in socket["url"], f"the page reconnected without since={seq}: {socket['url']}")
    page.wait_card(made["task"]["id"], "todo", timeout=15)
    types = page.js("() => window.__sockets[window.__sockets.length - 1].types")
    check(types[:1] == ["resync"], f"the server did not answer a lost since with resync first: {types[:5]}")
    check(len(page.board_reads) > reads_before, "the page did not read the board again after resync")
    page.same_document()
    ok(number, f"after an outage longer than the event window ({EVENT_WINDOW} events) the server sent resync; "
               f"the page read the board again and shows the task it missed")


def keyboard_move(page, backend, project_id, number):
    title = f"Keyboard task {secrets.token_hex(2)}"
    description = words(5)
    page.page.click("[data-testid=new-task]")
    page.page.fill("[data-testid=nt-title]", title)
    page.page.fill("[data-testid=nt-description]", description)
    page.page.select_option("[data-testid=nt-role]", "developer")
    page.page.select_option("[data-testid=nt-priority]", "high")
    page.page.check("[data-testid=nt-todo]")
    page.page.click("[data-testid=nt-submit]")
    task_id = page.wait("the new task's card", lambda: page.js(
        """(t) => { const b = [...document.querySelectorAll('[data-testid=card-title]')].find(e => e.textContent === t);
                  return b ? b.closest('[data-testid=card]').dataset.taskId : null; }""", title))
    stored = backend.ok("GET", f"/api/v1/tasks/{task_id}")
    check((stored["status"], stored["role"], stored["priority"], stored["description"], stored["project_id"])
          == ("todo", "developer", "high", description, project_id), f"the form made {stored}")
    page.wait_card(task_id, "todo")
    # Keyboard only from here: from the last control of the top bar, Tab to the card.
    page.page.focus("[data-testid=sign-out]")
    presses = page.tab_to(f'[data-testid=card][data-task-id="{task_id}"] [data-testid=card-title]')
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("[data-testid=task-panel][open]")
    page.tab_to("[data-testid=move-select]", 10)
    check(page.js("() => document.querySelector('[data-testid=move-select]').value") == "queued",
          "the Move to select does not offer queued first")
    page.tab_to("[data-testid=move-button]", 5)
    page.page.keyboard.press("Enter")
    page.wait_card(task_id, "done", timeout=40)
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("[data-testid=task-panel]", state="hidden")
    page.wait("closing the panel to return focus to the card", lambda: page.js(
        "(id) => !!document.activeElement.closest(`[data-task-id='${id}']`)", task_id), timeout=5)
    statuses = dedupe(s.split("@")[0] for s in page.seen(task_id))
    ok(number, f"made a task with the New task form (To do), then moved it with the keyboard alone "
               f"({presses} Tab to its card, Enter, Tab to Move to, Enter): {' → '.join(statuses)}")


def approve(page, backend, project_id, number, label):
    task = backend.task(project_id, f"Approval task {label}", words(5), requires_approval=True)
    page.wait_card(task["id"], "review", timeout=40)
    page.page.click(f'[data-testid=card][data-task-id="{task["id"]}"] [data-testid=approve]')
    page.wait_card(task["id"], "done", timeout=15)
    check(backend.ok("GET", f"/api/v1/tasks/{task['id']}")["status"] == "done", "the server does not have it done")
    statuses = dedupe(s.split("@")[0] for s in page.seen(task["id"]))
    ok(number, f"[{label}] the Approve button finished a task waiting for approval: {' → '.join(statuses)}")


def retry_failed(page, backend, project_id, number):
    task = backend.task(project_id, "Over budget", words(3), role="security")
    failed = page.wait_card(task["id"], "failed", timeout=30)
    error = page.js("(id) => document.querySelector(`[data-task-id='${id}'] [data-testid=card-error]`).textContent", task["id"])
    check("budget" in error, f"the failed card does not show the task's error: {error!r}")
    page.page.click(f'[data-testid=card][data-task-id="{task["id"]}"] [data-testid=retry]')
    page.wait("the retried task to fail again, as attempt 2", lambda: (lambda t: t["attempt"] == 2 and t["status"] == "failed")(
        backend.ok("GET", f"/api/v1/tasks/{task['id']}")))
    page.wait_card(task["id"], "failed", timeout=15)
    page.wait("the card to show attempt 2", lambda: page.js(
        "(id) => document.querySelector(`[data-task-id='${id}']`).textContent.includes('attempt 2')", task["id"]))
    statuses = dedupe(s.split("@")[0] for s in page.seen(task["id"]))
    ok(number, f"a failed card shows its error ({error[:40]!r}…); Retry ran it again as attempt 2: {' → '.join(statuses)}")


def dedupe(items):
    out = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def agents_and_cost(page, backend, number):
    agents = backend.ok("GET", "/api/v1/agents?limit=500")["items"]
    check(agents, "the backend lists no agents")
    rows = page.wait("agents in the agents panel", lambda: page.js(
        "() => [...document.querySelectorAll('[data-testid=agent]')].map(r => [r.dataset.agentId, r.dataset.status, r.textContent])"))
    listed = {r[0] for r in rows}
    check({a["id"] for a in agents} <= listed, f"panel lists {sorted(listed)}, the API {sorted(a['id'] for a in agents)}")
    check(any(r[1] in ("idle", "busy") and "online" in r[2] for r in rows), f"no agent shown online: {rows[:3]}")
    developer = next(r for r in rows if "developer" in r[2])
    # The cost panel: the developer tasks' spend, and the developer budget.
    page.page.click("[data-testid=cost-refresh]")
    spend = page.wait("the developer's spend in the cost panel", lambda: page.js(
        """() => { const r = document.querySelector('[data-testid=spend][data-role=developer]');
                   const b = document.querySelector('[data-testid=budget][data-key="role:developer"]');
                   return r && b ? [r.textContent, b.textContent] : null; }"""))
    check("$" in spend[0], f"spend row: {spend[0]!r}")
    ok(number, f"agents panel lists {len(rows)} agents (e.g. {developer[0]}: {developer[1]}); "
               f"cost panel shows developer spend and the role:developer budget")


def narrow_layout(page):
    overflow = page.js("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, f"the page is {overflow}px wider than the 390px viewport")


def big_board(page, backend, number, home_project):
    project = backend.project(f"Big board {secrets.token_hex(2)}")
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: backend.task(project["id"], f"Bulk task {i:04}", "", dispatch=False), range(BIG_BOARD)))
    created_in = time.time() - started
    # The page learns of the project (its picker) by reading the list again.
    page.page.reload()
    page.page.wait_for_selector("[data-testid=project-select]", state="visible")
    page.wait("the new project in the picker", lambda: page.js(
        "(id) => !!document.querySelector(`[data-testid=project-select] option[value='${id}']`)", project["id"]))
    page.wait_board(home_project)
    runs = []
    for _ in range(3):
        timing = page.js(SWITCH_AND_TIME, {"id": project["id"], "n": BIG_BOARD})
        page.wait_board(project["id"])
        counts = page.js("""() => ({cards: document.querySelectorAll('[data-testid=card]').length,
                                  todo: document.querySelectorAll('[data-testid=column][data-status=todo] [data-testid=card]').length,
                                  label: document.querySelector('[data-testid=column][data-status=todo] [data-testid=count]').textContent})""")
        check(counts["cards"] == BIG_BOARD and counts["todo"] == BIG_BOARD, f"the big board shows {counts}")
        runs.append(timing)
        print(f"  choosing the project → {BIG_BOARD} cards in the DOM: {timing['inDom']:.0f} ms "
              f"(last API response at {timing['api']:.0f} ms, painted at {timing['painted']:.0f} ms)", flush=True)
        # Back to the small board for the next run.
        page.js("(id) => { const s = document.querySelector('[data-testid=project-select]'); s.value = id; "
                "s.dispatchEvent(new Event('change', {bubbles: true})); }", home_project)
        page.wait_board(home_project)
    median = sorted(r["inDom"] for r in runs)[1]
    print(f"board with {BIG_BOARD} tasks rendered in {median:.0f} ms (median of 3: "
          f"{', '.join('%.0f' % r['inDom'] for r in runs)} ms; "
          f"the {BIG_BOARD} tasks took {created_in:.1f} s to create)", flush=True)
    check(median < RENDER_BUDGET_MS,
          f"the board with {BIG_BOARD} tasks took {median:.0f} ms to render (median; budget {RENDER_BUDGET_MS} ms)")
    # For the record: a cold load of the same board, from navigation start.
    page.js("(id) => history.replaceState(null, '', '#project=' + id)", project["id"])
    page.page.reload()
    cold = page.page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=card]').length >= n && performance.now()", arg=BIG_BOARD,
        polling="raf").json_value()
    page.wait_board(project["id"])
    ok(number, f"a board of {BIG_BOARD} tasks rendered in {median:.0f} ms (< {RENDER_BUDGET_MS} ms, median of 3) after "
               f"choosing the project; a full page load with it took {cold:.0f} ms; column count shows {counts['label']}")
    return project


# Chooses project `id` in the picker and times it, in the page: until all
# `n` cards are in the DOM, and until the next frame after that; also when
# the last API response (board, further pages) arrived.
SWITCH_AND_TIME = """async ({id, n}) => {
  performance.clearResourceTimings();
  const t0 = performance.now();
  const select = document.querySelector('[data-testid=project-select]');
  select.value = id;
  select.dispatchEvent(new Event('change', {bubbles: true}));
  await new Promise((resolve) => {
    const done = () => document.querySelectorAll('[data-testid=card]').length >= n;
    if (done()) return resolve();
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.getElementById('board'), {subtree: true, childList: true});
  });
  const inDom = performance.now() - t0;
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const painted = performance.now() - t0;
  const api = performance.getEntriesByType('resource')
    .filter((e) => /\/board|\/tasks\?/.test(e.name) && e.startTime >= t0)
    .reduce((latest, e) => Math.max(latest, e.responseEnd - t0), 0);
  return {inDom, painted, api};
}"""


def console_clean(console, provoked, number):
    allowed, bad = [], []
    for tag, kind, text, url in console:
        if kind not in ("error", "warning", "pageerror"):
            continue
        expected = (kind == "error" and url in provoked
                    and re.fullmatch(r"Failed to load resource: the server responded with a status of 409 \(Conflict\)", text))
        (allowed if expected else bad).append(f"[{tag}] {kind}: {text} {url}".strip())
    check(not bad, "console errors/warnings:\n" + "\n".join(bad[:30]))
    ok(number, f"no console errors or warnings across the run ({len(allowed)} expected network lines from Chromium for "
               f"the deliberately illegal moves)")


def main():
    started = time.time()
    console, provoked = [], set()
    source = os.environ.get("VAPORA_DASHBOARD_DIR")
    print(f"dashboard files: {'read from ' + source if source else 'the copies compiled into the binary'}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        backend = Backend(workdir)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    run_checks(browser, backend, console, provoked)
                except BaseException:
                    for page in open_pages:
                        try:
                            print(f"failure screenshot: {page.screenshot(f'failure-{page.width}.png')}", file=sys.stderr)
                        except Exception:  # the page may be gone
                            pass
                    print("console so far:", *(f"  [{t}] {k}: {x} {u}" for t, k, x, u in console), sep="\n",
                          file=sys.stderr)
                    raise
                finally:
                    browser.close()
            console_clean(console, provoked, 9)
        except BaseException:
            # Stop the backend, but report the first failure, not its exit.
            if backend.proc.poll() is None:
                backend.proc.send_signal(signal.SIGTERM)
                backend.proc.wait(timeout=30)
            print(f"backend log: {backend.log_path}", file=sys.stderr)
            raise
        backend.stop()
        ok(12, "the backend stopped on SIGTERM with exit 0 and no WARN or ERROR line")
    print(f"all {len(passed)} checks passed in {time.time() - started:.0f} s", flush=True)


def run_checks(browser, backend, console, provoked):
    # ---- 1280 px ----
    wide = Page(browser, backend, 1280, 900, console)
    wide.sign_in()
    name = f"Dashboard test {secrets.token_hex(2)}"
    wide.page.click("[data-testid=new-project]")
    wide.page.fill("[data-testid=project-name]", name)
    wide.page.click("[data-testid=project-create]")
    project = next(p for p in backend.ok("GET", "/api/v1/projects?limit=500")["items"] if p["name"] == name)
    wide.wait_board(project["id"])
    ok(1, f"signed in with the admin key and created project {name!r} from the page; its board is live")

    task, marker = live_run(wide, backend, project["id"], 2, "1280px")
    streamed_output(wide, task, marker, 3, "1280px")
    task_panel(wide, backend, task, "2b")
    reconnect_resumes(wide, backend, project["id"], "2c")
    resync_reloads(wide, backend, project["id"], "2d")
    drag_to_queue(wide, backend, project["id"], 4, "1280px")
    keyboard_move(wide, backend, project["id"], "4b")
    illegal_drag(wide, backend, task, "running", 5, "1280px", provoked)
    cancel_running(wide, backend, project["id"], 6, "1280px")
    approve(wide, backend, project["id"], "6b", "1280px")
    retry_failed(wide, backend, project["id"], "6c")
    agents_and_cost(wide, backend, 7)
    wide.page.evaluate("() => window.scrollTo(0, 0)")
    shot_wide = wide.screenshot("board-1280.png")

    # ---- 390 px ----
    narrow_project = backend.project(f"Narrow test {secrets.token_hex(2)}")
    narrow = Page(browser, backend, 390, 844, console)
    narrow.sign_in()
    narrow.page.select_option("[data-testid=project-select]", narrow_project["id"])
    narrow.wait_board(narrow_project["id"])
    narrow_layout(narrow)
    task390, marker390 = live_run(narrow, backend, narrow_project["id"], "8a", "390px")
    streamed_output(narrow, task390, marker390, "8b", "390px")
    todo = backend.task(narrow_project["id"], "Never to be done directly", "", dispatch=False)
    narrow.wait_card(todo["id"], "todo")
    illegal_drag(narrow, backend, todo, "done", "8c", "390px", provoked)
    drag_to_queue(narrow, backend, narrow_project["id"], "8d", "390px")
    cancel_running(narrow, backend, narrow_project["id"], "8e", "390px")
    narrow_layout(narrow)
    narrow.page.evaluate("() => window.scrollTo(0, 0)")
    shot_narrow = narrow.screenshot("board-390.png")
    ok(8, "the board checks passed at 390 px too (no horizontal overflow)")

    # ---- 1,000 tasks ----
    big_board(wide, backend, 10, project["id"])
    for path in (shot_wide, shot_narrow):
        check(os.path.getsize(os.path.join(ROOT, path)) > 10000, f"{path} looks empty")
    ok(11, f"screenshots: {shot_wide}, {shot_narrow}")
    wide.context.close()
    narrow.context.close()


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:  # a Playwright timeout, a lost connection, …
        import traceback
        traceback.print_exc()
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
