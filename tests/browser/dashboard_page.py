"""One browser tab on the dashboard, for the checks to drive: signing in,
waiting for the board and for cards, dragging, tabbing, screenshots; and
the instrumentation it puts in the page (every status each card showed,
the page's WebSockets and an outage switch). Console messages and page
errors go to the list the test keeps.
"""
import os
import time

from harness import ROOT, SHOTS, Failure, check

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
