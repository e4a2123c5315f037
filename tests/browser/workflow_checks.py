"""Checks of the Workflows panel: the Start workflow form (a server error
shown in the form, then a `feature` run started) and the run's stage graph
(13a); the graph's four stages in three columns with their arrows (13b);
the stages following the run live, the review stage approved in the task
panel, the run done (13c); Retry on a failed stage (13d); and at 390 px,
with the keyboard alone, a run started and cancelled from the panel (14).
"""
import os

from harness import ROOT, SHOTS, check, ok

FEATURE_STAGES = {"design": 0, "implement": 1, "test": 1, "review": 2}
FEATURE_EDGES = {("design", "implement"), ("design", "test"), ("implement", "review"), ("test", "review")}

# Records, for the run shown in the panel, every status the run and each of
# its stages showed, as the DOM changes (the graph is redrawn on every
# workflow.* event).
RECORDER = """() => {
  if (window.__wfRecorder) return;
  window.__wfSeen = {};
  const note = () => {
    const detail = document.getElementById('wf-detail');
    const id = detail.dataset.runId;
    if (!id || detail.hidden) return;
    const run = window.__wfSeen[id] || (window.__wfSeen[id] = {status: [], stages: {}});
    if (run.status[run.status.length - 1] !== detail.dataset.status) run.status.push(detail.dataset.status);
    for (const n of detail.querySelectorAll('[data-testid=wf-stage]')) {
      const list = run.stages[n.dataset.stage] || (run.stages[n.dataset.stage] = []);
      if (list[list.length - 1] !== n.dataset.status) list.push(n.dataset.status);
    }
  };
  window.__wfRecorder = new MutationObserver(note);
  window.__wfRecorder.observe(document.getElementById('wf-detail'),
    {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status', 'data-run-id', 'hidden']});
  note();
}"""

# What the graph of the shown run looks like: its columns (stage names by
# depth), each stage's status and box, its arrows, and the run's status.
GRAPH = """() => {
  const detail = document.getElementById('wf-detail');
  const graph = detail.querySelector('[data-testid=wf-graph]');
  if (detail.hidden || !graph) return null;
  const box = (e) => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  const columns = [...graph.querySelectorAll('[data-testid=wf-column]')].map((c) =>
    ({depth: Number(c.dataset.depth), stages: [...c.querySelectorAll('[data-testid=wf-stage]')].map((s) => s.dataset.stage)}));
  const stages = {};
  for (const s of graph.querySelectorAll('[data-testid=wf-stage]')) {
    const open = s.querySelector('[data-testid=wf-stage-open]');
    stages[s.dataset.stage] = {status: s.dataset.status, task: s.dataset.taskId, text: open.textContent,
                               box: box(open), retry: !!s.querySelector('[data-testid=wf-retry]')};
  }
  const edges = [...graph.querySelectorAll('[data-testid=wf-edge]')].map((p) => {
    const b = p.getBBox();
    return {from: p.dataset.from, to: p.dataset.to, d: p.getAttribute('d'), size: b.width + b.height,
            marker: getComputedStyle(p).markerEnd};
  });
  const item = document.querySelector(`[data-testid=wf-run][data-run-id="${detail.dataset.runId}"]`);
  return {run: detail.dataset.runId, status: detail.dataset.status, columns, stages, edges,
          listed: item ? item.dataset.status : null, listedText: item ? item.textContent : null,
          cancel: !!detail.querySelector('[data-testid=wf-cancel]')};
}"""


def graph(page):
    return page.js(GRAPH)


def seen(page, run_id):
    return page.js("(id) => window.__wfSeen[id] || {status: [], stages: {}}", run_id)


def wait_stage(page, stage, status, timeout=60.0):
    return page.wait(f"stage {stage!r} to show {status!r} in the graph", lambda: (
        lambda g: g if g and stage in g["stages"] and g["stages"][stage]["status"] == status else None)(graph(page)),
        timeout)


def wait_run(page, status, timeout=30.0):
    return page.wait(f"the run to show {status!r} in the panel and the list", lambda: (
        lambda g: g if g and g["status"] == status and g["listed"] == status else None)(graph(page)), timeout)


def element_shot(page, selector, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name)
    page.page.locator(selector).screenshot(path=path)
    check(os.path.getsize(path) > 5000, f"{name} looks empty")
    return os.path.relpath(path, ROOT)


def check_feature_graph(page, shown, label):
    """Four stages in three columns, implement and test in the same one,
    and an arrow drawn for each dependency."""
    columns = {c["depth"]: sorted(c["stages"]) for c in shown["columns"]}
    check(columns == {0: ["design"], 1: ["implement", "test"], 2: ["review"]},
          f"[{label}] the graph's columns: {columns}")
    check(set(shown["stages"]) == set(FEATURE_STAGES), f"[{label}] the graph's stages: {sorted(shown['stages'])}")
    roles = {"design": "architect", "implement": "developer", "test": "tester", "review": "reviewer"}
    for name, role in roles.items():
        text = shown["stages"][name]["text"]
        check(name in text and role in text, f"[{label}] stage {name} shows {text!r}, not its name and role")
    edges = {(e["from"], e["to"]) for e in shown["edges"]}
    check(edges == FEATURE_EDGES, f"[{label}] the graph's arrows: {sorted(edges)}")
    check(all(e["d"] and e["size"] > 0 and "wf-arrow" in e["marker"] for e in shown["edges"]),
          f"[{label}] an arrow is not drawn: {shown['edges']}")
    return columns


def feature_run(page, backend, project_id, provoked, label):
    """13a-13c, at 1280 px: a feature run from the form, its graph, live
    stages, the review approved in the task panel."""
    page.js(RECORDER)
    page.page.click("[data-testid=start-workflow]")
    page.page.wait_for_selector("#workflow-dialog[open]")
    page.wait("the feature template in the form", lambda: page.js(
        "() => { const s = document.querySelector('[data-testid=wf-template]');"
        " return !s.disabled && [...s.options].some(o => o.value === 'feature'); }"))
    page.page.select_option("[data-testid=wf-template]", "feature")
    fields = page.js("""() => [...document.querySelectorAll('[data-testid=wf-input]')].map((f) => {
        const label = document.querySelector(`label[for="${f.id}"]`);
        return [f.dataset.input, label ? label.textContent : null]; })""")
    template = next(t for t in backend.ok("GET", "/api/v1/workflow-templates") if t["name"] == "feature")
    check([f[0] for f in fields] == template["inputs"] and all(f[1] == f[0] for f in fields),
          f"the form's input fields {fields} are not the template's inputs {template['inputs']}, labelled")
    description = page.page.text_content("[data-testid=wf-template-description]")
    check(description == template["description"], f"the form describes the template as {description!r}")

    # A value the server refuses: its own message, in the form.
    too_long = "x" * (64 * 1024 + 1)
    provoked.add(f"{backend.url}/api/v1/workflows")
    page.page.fill("[data-testid=wf-input][data-input=feature]", too_long)
    page.page.click("[data-testid=wf-submit]")
    shown = page.wait("the form's error", lambda: page.js(
        "() => { const e = document.querySelector('[data-testid=workflow-error]'); return e.hidden ? null : e.textContent; }"))
    code, answer = backend.call("POST", "/api/v1/workflows",
                                {"project_id": project_id, "template": "feature", "inputs": {"feature": too_long}})
    check(400 <= code < 500 and shown == answer["error"]["message"],
          f"the form shows {shown!r}; the server answers {code} {answer}")
    check(page.js("() => document.getElementById('workflow-dialog').open"), "the form closed on an error")
    check(not backend.ok("GET", f"/api/v1/workflows?project_id={project_id}")["items"], "a refused run was started")
    ok("13a", f"[{label}] the Start workflow form offers the templates, one labelled field per input "
              f"({', '.join(f[0] for f in fields)}), and shows the server's refusal in the form: {shown[:70]!r}")

    feature = "Export the board as CSV"
    page.page.fill("[data-testid=wf-input][data-input=feature]", feature)
    page.page.click("[data-testid=wf-submit]")
    page.page.wait_for_selector("#workflow-dialog", state="hidden")
    runs = backend.ok("GET", f"/api/v1/workflows?project_id={project_id}")["items"]
    check(len(runs) == 1 and runs[0]["template"] == "feature" and runs[0]["inputs"] == {"feature": feature},
          f"the form started {runs}")
    run = runs[0]
    first = page.wait("the new run's graph", lambda: (
        lambda g: g if g and g["run"] == run["id"] and len(g["stages"]) == 4 else None)(graph(page)))
    columns = check_feature_graph(page, first, label)
    boxes = {name: s["box"] for name, s in first["stages"].items()}
    check(abs(boxes["implement"]["x"] - boxes["test"]["x"]) < 1 and boxes["implement"]["y"] != boxes["test"]["y"],
          f"implement and test are not one above the other in a column: {boxes}")
    check(boxes["design"]["x"] < boxes["implement"]["x"] < boxes["review"]["x"],
          f"the columns do not read left to right: {boxes}")
    check("feature" in first["listedText"] and feature in first["listedText"] and "started" in first["listedText"],
          f"the run's line in the list: {first['listedText']!r}")
    tasks = {s["name"]: s["task_id"] for s in run["stages"]}
    check(all(first["stages"][n]["task"] == tasks[n] for n in tasks), "the graph's stages are not the run's tasks")
    ok("13b", f"[{label}] started a feature run from the form; its graph: "
              f"{' | '.join(', '.join(c) for _, c in sorted(columns.items()))}, {len(first['edges'])} arrows")

    # Live: the stages move on their own, the review stops for approval.
    wait_stage(page, "review", "review", timeout=90)
    waiting = wait_run(page, "awaiting_approval")
    check(all(waiting["stages"][n]["status"] == "done" for n in ("design", "implement", "test")),
          f"stages while the review waits: {waiting['stages']}")
    shot = element_shot(page, "[data-testid=workflows-panel]", f"workflow-graph-{page.width}.png")
    page.page.click("[data-testid=wf-stage][data-stage=review] [data-testid=wf-stage-open]")
    page.page.wait_for_selector("[data-testid=task-panel][open]")
    page.wait("the task panel to show the review stage's task", lambda: page.js(
        "(id) => document.getElementById('task-id').textContent === id"
        " && document.querySelector('[data-testid=task-status]').dataset.status === 'review'", tasks["review"]))
    title = page.page.text_content("[data-testid=task-title]")
    check(title == f"Review: {feature}", f"the task panel shows {title!r}")
    page.page.click("[data-testid=panel-approve]")
    done = wait_run(page, "done")
    check(all(s["status"] == "done" for s in done["stages"].values()) and not done["cancel"],
          f"the run is done but shows {done['stages']} (cancel button: {done['cancel']})")
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("[data-testid=task-panel]", state="hidden")
    page.wait("focus back on the review stage", lambda: page.js(
        "() => document.activeElement && document.activeElement.dataset.focusKey === 'stage:review'"), timeout=5)
    page.same_document()
    stored = backend.ok("GET", f"/api/v1/workflows/{run['id']}")
    check(stored["status"] == "done" and stored["finished_at"], f"the server has the run {stored['status']}")
    history = seen(page, run["id"])
    for name in FEATURE_STAGES:
        statuses = history["stages"].get(name, [])
        check(len(statuses) >= 2 and statuses[-1] == "done", f"stage {name} showed {statuses}")
    check("running" in history["stages"]["design"] and history["stages"]["review"][0] == "waiting"
          and "review" in history["stages"]["review"], f"stages showed {history['stages']}")
    check(history["status"][0] == "running" and "awaiting_approval" in history["status"] and history["status"][-1] == "done",
          f"the run showed {history['status']}")
    ok("13c", f"[{label}] the stages followed the run live, without a reload "
              f"(design: {' → '.join(history['stages']['design'])}; review: {' → '.join(history['stages']['review'])}); "
              f"the review was approved in the task panel; run {' → '.join(history['status'])}; graph: {shot}")
    return run


def retry_stage(page, backend, project_id, label):
    """13d: a template whose only stage fails (the security role's budget is
    exhausted): the graph offers Retry, which runs it again."""
    name = "audit"
    if not any(t["name"] == name for t in backend.ok("GET", "/api/v1/workflow-templates")):
        backend.ok("POST", "/api/v1/workflow-templates", {
            "name": name, "description": "A security scan (fails in this test: no budget).", "inputs": ["target"],
            "stages": [{"name": "scan", "role": "security", "prompt": "Scan {{ inputs.target }}."}]})
    run = backend.ok("POST", "/api/v1/workflows", {"project_id": project_id, "template": name, "inputs": {"target": "x"}})
    page.wait("the new run in the list", lambda: page.js(
        "(id) => !!document.querySelector(`[data-testid=wf-run][data-run-id='${id}']`)", run["id"]))
    page.page.click(f'[data-testid=wf-run][data-run-id="{run["id"]}"]')
    failed = page.wait("the stage to fail and offer Retry", lambda: (
        lambda g: g if g and g["run"] == run["id"] and g["stages"]["scan"]["retry"] else None)(graph(page)), 30)
    check(failed["status"] == "failed", f"a run whose stage failed shows {failed['status']}")
    page.page.click("[data-testid=wf-stage][data-stage=scan] [data-testid=wf-retry]")
    task_id = run["stages"][0]["task_id"]
    page.wait("the retried stage to fail again, as attempt 2", lambda: (
        lambda t: t["attempt"] == 2 and t["status"] == "failed")(backend.ok("GET", f"/api/v1/tasks/{task_id}")), 30)
    again = page.wait("the graph to show the stage failed again, with Retry", lambda: (
        lambda g: g if g and g["stages"]["scan"]["status"] == "failed" and g["stages"]["scan"]["retry"]
        and g["status"] == "failed" else None)(graph(page)), 15)
    history = seen(page, run["id"])["stages"]["scan"]
    check(history[-1] == "failed", f"the stage showed {history}")
    ok("13d", f"[{label}] a failed stage offers Retry in the graph; it ran again as attempt 2 and failed again "
              f"(the stage showed {' → '.join(history)}; the run {again['status']})")


def cancel_run_by_keyboard(page, backend, project_id, label):
    """14, at 390 px: the form and Cancel run with the keyboard alone; the
    graph reads top to bottom without widening the page."""
    page.js(RECORDER)
    page.page.focus("[data-testid=start-workflow]")
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#workflow-dialog[open]")
    page.wait("the template list", lambda: page.js(
        "() => document.activeElement.id === 'wf-template' && !document.activeElement.disabled"))
    check(page.js("() => document.activeElement.value") == "feature", "the form does not offer the feature template first")
    page.tab_to("[data-testid=wf-input][data-input=feature]", 5)
    page.page.keyboard.type("Cancel me halfway")
    page.tab_to("[data-testid=wf-submit]", 5)
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#workflow-dialog", state="hidden")
    run = next(r for r in backend.ok("GET", f"/api/v1/workflows?project_id={project_id}")["items"]
               if r["inputs"].get("feature") == "Cancel me halfway")
    shown = page.wait("the new run's graph", lambda: (
        lambda g: g if g and g["run"] == run["id"] and len(g["stages"]) == 4 else None)(graph(page)))
    check_feature_graph(page, shown, label)
    boxes = {name: s["box"] for name, s in shown["stages"].items()}
    check(boxes["design"]["y"] < boxes["implement"]["y"] == boxes["test"]["y"] < boxes["review"]["y"]
          and abs(boxes["implement"]["x"] - boxes["test"]["x"]) > 1,
          f"at {page.width} px the graph does not read top to bottom, implement and test side by side: {boxes}")
    overflow = page.js("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, f"with the graph shown the page is {overflow}px wider than the viewport")
    wait_stage(page, "design", "running", timeout=20)
    shot = element_shot(page, "[data-testid=workflows-panel]", f"workflow-graph-{page.width}.png")
    page.page.focus(f'[data-testid=wf-run][data-run-id="{run["id"]}"]')
    page.tab_to("[data-testid=wf-cancel]", 5)
    page.page.keyboard.press("Enter")
    wait_run(page, "cancelled", timeout=15)
    # The run is cancelled with its first stage cancelled; the others follow.
    done = page.wait("every stage to show cancelled", lambda: (
        lambda g: g if all(s["status"] == "cancelled" for s in g["stages"].values()) else None)(graph(page)), 15)
    check(not done["cancel"], "a cancelled run still offers Cancel run")
    check(backend.ok("GET", f"/api/v1/workflows/{run['id']}")["status"] == "cancelled", "the server does not have it cancelled")
    page.wait("focus to stay in the panel", lambda: page.js(
        "(id) => document.activeElement && document.activeElement.dataset.runId === id", run["id"]), timeout=5)
    page.same_document()
    history = seen(page, run["id"])
    ok(14, f"[{label}] with the keyboard alone: started a run from the form and cancelled it from the panel "
           f"(design: {' → '.join(history['stages']['design'])}; run {' → '.join(history['status'])}); "
           f"the graph reads top to bottom, no horizontal overflow; graph: {shot}")
