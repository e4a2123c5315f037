"""Checks of the board following the server live: a task moving through
its statuses without a reload (2, 8a), a running card's streamed output
(3, 8b), and the WebSocket coming back after an outage, resumed with
`since` (2c) or read anew after `resync` (2d).
"""
import concurrent.futures
import secrets

from harness import EVENT_WINDOW, check, ok, words


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
