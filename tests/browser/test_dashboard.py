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
    (6d) the task panel's Reject, with a comment, sends a result in review
    back: it runs again as attempt 2 and the panel shows the comment;
    (6e) a task created depending on a `todo` task sits in the Waiting
    column, tagged with what it waits on, and runs once that task is
    dragged to queued and done;
 7. the agents panel lists the in-process agents (and the cost panel the
    spend per role and the configured budget);
 8. at a 390 px wide viewport: no horizontal overflow, a card appears and
    moves live, a drag, an illegal drag, a cancel;
 9. no console error or warning and no page error during the whole run (the
    only console lines allowed are Chromium's own "Failed to load resource:
    … 409" for the illegal moves this test makes on purpose, and "… 422" for
    the workflow it starts with an input too long on purpose, each matched
    to its request);
10. a board of 1,000 tasks renders in under a second, measured in the page
    from choosing the project to all 1,000 cards in the DOM;
11. screenshots of the board at 1280 and 390 px: target/screenshots/;
12. the backend stops on SIGTERM with exit 0 and no WARN or ERROR line in
    its whole log;
13. workflows: (13a) the Start workflow form lists the templates with one
    labelled field per input and shows the server's refusal in the form;
    (13b) a `feature` run started from it is drawn as a graph: design |
    implement, test | review, with an arrow per dependency; (13c) its
    stages change status live as the echo provider answers each, the
    review stage is approved in the task panel and the run shows done;
    (13d) a failed stage's Retry runs it again;
14. at 390 px, with the keyboard alone: a run started from the form and
    cancelled from the panel, its graph top to bottom, no horizontal
    overflow; screenshots of the panel at both widths.

Run from the workspace root, with the backend built:

    VAPORA_BACKEND_BIN=target/debug/vapora-backend target/test-venv/bin/python tests/browser/test_dashboard.py

Needs the `playwright` package in the venv (`target/test-venv/bin/pip install
playwright`) and Chromium at /usr/bin/chromium (CHROMIUM_BIN overrides); it never
downloads a browser. With VAPORA_DASHBOARD_DIR set, the backend serves the
dashboard files from that directory instead of the copies compiled in.
Prints one line per check passed; exits non-zero on the first failure.

The harness (the backend process and REST helpers) is in harness.py, the
browser tab in dashboard_page.py, the checks in live_checks.py,
task_checks.py, page_checks.py and workflow_checks.py; this file runs them
in order.
"""
import os
import secrets
import signal
import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

from dashboard_page import Page, open_pages
from harness import CHROMIUM, CHROMIUM_ARGS, ROOT, Backend, Failure, check, ok, passed
from live_checks import live_run, reconnect_resumes, resync_reloads, streamed_output
from page_checks import agents_and_cost, big_board, console_clean, narrow_layout
from task_checks import (approve, cancel_running, dependent_waits, drag_to_queue, illegal_drag, keyboard_move,
                         reject_with_comment, retry_failed, task_panel)
from workflow_checks import cancel_run_by_keyboard, feature_run, retry_stage


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
    reject_with_comment(wide, backend, project["id"], "6d")
    dependent_waits(wide, backend, project["id"], "6e")
    retry_failed(wide, backend, project["id"], "6c")
    agents_and_cost(wide, backend, 7)
    feature_run(wide, backend, project["id"], provoked, "1280px")
    retry_stage(wide, backend, project["id"], "1280px")
    wide.page.evaluate("() => window.scrollTo(0, 0)")
    shot_wide = wide.screenshot("board-1280.png")

    # ---- 390 px ----
    narrow_project = backend.project(f"Narrow test {secrets.token_hex(2)}")
    narrow = Page(browser, backend, 390, 844, console)
    narrow.sign_in()
    # Switch projects faster than a feed can open: each switch closes a
    # socket still in its handshake, which must not show as a failed
    # connection in the console (check 9).
    narrow.page.evaluate("""async ([a, b]) => {
        const select = document.querySelector('[data-testid=project-select]');
        for (const pause of [0, 1, 2, 5, 10, 20]) {
            for (const id of [a, b]) {
                select.value = id;
                select.dispatchEvent(new Event('change'));
                await new Promise((done) => setTimeout(done, pause));
            }
        }
    }""", [project["id"], narrow_project["id"]])
    narrow.wait_board(narrow_project["id"])
    narrow_layout(narrow)
    task390, marker390 = live_run(narrow, backend, narrow_project["id"], "8a", "390px")
    streamed_output(narrow, task390, marker390, "8b", "390px")
    todo = backend.task(narrow_project["id"], "Never to be done directly", "", dispatch=False)
    narrow.wait_card(todo["id"], "todo")
    illegal_drag(narrow, backend, todo, "done", "8c", "390px", provoked)
    drag_to_queue(narrow, backend, narrow_project["id"], "8d", "390px")
    cancel_running(narrow, backend, narrow_project["id"], "8e", "390px")
    cancel_run_by_keyboard(narrow, backend, narrow_project["id"], "390px")
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
