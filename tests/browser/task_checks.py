"""Checks of what a user does to tasks: the task panel (2b), dragging a
card to run it (4, 8d) and an illegal drag (5, 8c), the New task form and a
move with the keyboard alone (4b), the Cancel (6, 8e), Approve (6b), Reject
(6d) and Retry (6c) buttons, a dependent waiting for its dependency (6e).
"""
import secrets

from harness import check, ok, words


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


def dependent_waits(page, backend, project_id, number):
    first = backend.task(project_id, "Upstream task", words(4), dispatch=False)
    second = backend.task(project_id, "Downstream task", words(4), depends_on=[first["id"]])
    page.wait_card(second["id"], "waiting")
    tag = page.js("(id) => { const t = document.querySelector(`[data-task-id='${id}'] [data-testid=card-waiting-on]`);"
                  " return t ? t.textContent : null; }", second["id"])
    check(tag == "waits on 1", f"the waiting card's tag: {tag!r}")
    page.drag(first["id"], "queued")
    page.wait_card(second["id"], "done", timeout=60)
    stored = backend.ok("GET", f"/api/v1/tasks/{second['id']}")
    check(stored["upstream"][0]["task_id"] == first["id"], f"the dependent's upstream: {stored['upstream']}")
    statuses = dedupe(s.split("@")[0] for s in page.seen(second["id"]))
    check(statuses[0] == "waiting", f"the dependent's statuses: {statuses}")
    ok(number, f"a task depending on a todo card waited in its column until that card was dragged and done: "
               f"{' → '.join(statuses)}")


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


def reject_with_comment(page, backend, project_id, number):
    task = backend.task(project_id, "Rejected task", words(5), requires_approval=True)
    page.wait_card(task["id"], "review", timeout=40)
    page.page.click(f'[data-testid=card][data-task-id="{task["id"]}"] [data-testid=card-title]')
    page.page.wait_for_selector("[data-testid=task-panel][open]")
    page.page.fill("[data-testid=reject-comment]", "Shorter, please.")
    page.page.click("[data-testid=panel-reject]")
    page.wait("the rejected task to run again and wait in review as attempt 2", lambda: (
        lambda t: t["attempt"] == 2 and t["status"] == "review")(backend.ok("GET", f"/api/v1/tasks/{task['id']}")))
    page.wait_card(task["id"], "review", timeout=15)
    stored = backend.ok("GET", f"/api/v1/tasks/{task['id']}")
    check(stored["rejection"]["comment"] == "Shorter, please.", f"stored rejection: {stored.get('rejection')}")
    page.wait("the panel to show the rejection", lambda: page.js(
        "() => document.querySelector('[data-testid=task-facts]').textContent.includes('Shorter, please.')"))
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("[data-testid=task-panel]", state="hidden")
    statuses = dedupe(s.split("@")[0] for s in page.seen(task["id"]))
    ok(number, f"the panel's Reject sent a result back with a comment; it ran again as attempt 2: {' → '.join(statuses)}")


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
