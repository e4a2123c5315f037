// The Workflows panel: the open project's workflow runs (template, status,
// age), newest first, read with the board and kept live by the feed's
// workflow.* events; the chosen run's inputs, its Cancel run button and
// its stages as a graph (workflow-graph.js: a stage opens its task in the
// task panel, where a stage waiting for approval is approved or rejected;
// a failed stage has Retry); and the Start workflow form: a template, and
// one field per input it declares. Older versions of a run than the one
// shown are ignored, as for tasks.
import { state, PAGE, canWrite } from './state.js';
import { $, el, clear } from './dom.js';
import { fmtAge, fmtTime, timeKey } from './format.js';
import { api, q } from './http.js';
import { showError } from './toast.js';
import { renderGraph, stageDepths } from './workflow-graph.js';

export const RUN_LABELS = {
  running: 'Running', awaiting_approval: 'Awaiting approval', failed: 'Failed', done: 'Done', cancelled: 'Cancelled',
};
const AGE_MS = 30000; // how often the "5 min ago" texts are redone
const INPUT_SHOWN_CHARS = 200; // of an input's value, in the run's facts

const runs = new Map(); // id -> run, as last known (the open project's only)
let selectedId = null; // the run shown in the graph
let chosen = false; // picked by the user (else the newest is shown)
let loading = false;
let again = false;
let renderQueued = false;
let templates = null; // as last read
const typed = new Map(); // input name -> text typed in the form, across template changes
let openTask = () => {};

const finished = (status) => status === 'done' || status === 'cancelled';

// Whether `next` is at least as new as `current` (the same run): a
// finished run never goes back, else the later `updated_at` wins.
function isNewer(next, current) {
  if (!current) return true;
  if (finished(current.status) && !finished(next.status)) return false;
  return timeKey(next.updated_at) >= timeKey(current.updated_at);
}

// `handlers.openTask(taskId, returnFocusTo)` opens the task panel
// (task-actions.js's, handed in by app.js).
export function wireWorkflows(handlers) {
  openTask = handlers.openTask;
  $('start-workflow').addEventListener('click', openForm);
  $('workflows-refresh').addEventListener('click', loadRuns);
  $('wf-template').addEventListener('change', renderInputs);
  $('workflow-form').addEventListener('submit', submitForm);
  setInterval(refreshAges, AGE_MS);
  render();
}

export function resetRuns() {
  runs.clear();
  selectedId = null;
  chosen = false;
  loading = false;
  again = false;
  $('workflows-panel').dataset.loaded = 'false';
  render();
}

// Every run of the open project, page after page.
export async function loadRuns() {
  if (!state.projectId || !state.key) return;
  if (loading) {
    again = true;
    return;
  }
  loading = true;
  const generation = state.generation;
  const projectId = state.projectId;
  try {
    const items = [];
    let cursor;
    do {
      const page = await api('GET', '/api/v1/workflows?' + q({ project_id: projectId, limit: PAGE, cursor }));
      if (generation !== state.generation) return;
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    for (const run of items) if (isNewer(run, runs.get(run.id))) runs.set(run.id, run);
    $('workflows-panel').dataset.loaded = 'true';
    render();
  } catch (e) {
    if (generation === state.generation && e.status !== 401) showError('Could not list the workflow runs: ' + e.message);
  } finally {
    if (generation === state.generation) {
      loading = false;
      if (again) {
        again = false;
        loadRuns();
      }
    }
  }
}

// A new version of a run (an event, or an answer of the API).
export function upsertRun(run) {
  if (!run || run.project_id !== state.projectId) return;
  if (!isNewer(run, runs.get(run.id))) return;
  runs.set(run.id, run);
  scheduleRender();
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function statusPill(status) {
  const pill = el('span', 'status-pill', RUN_LABELS[status] || status);
  pill.dataset.status = status;
  pill.dataset.testid = 'wf-run-status';
  return pill;
}

function render() {
  const sorted = [...runs.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  if (!runs.has(selectedId) || !chosen) selectedId = sorted.length ? sorted[0].id : null;
  const list = $('wf-runs');
  keepFocus(list, () => {
    clear(list);
    for (const run of sorted) list.appendChild(runItem(run));
  });
  $('wf-empty').hidden = sorted.length > 0;
  $('start-workflow').disabled = !canWrite() || !state.projectId;
  renderDetail();
}

function runItem(run) {
  const item = el('li');
  const button = el('button', 'wf-run');
  button.type = 'button';
  button.dataset.testid = 'wf-run';
  button.dataset.runId = run.id;
  button.dataset.status = run.status;
  button.dataset.focusKey = 'run:' + run.id;
  button.setAttribute('aria-pressed', String(run.id === selectedId));
  const top = el('span', 'wf-run-top');
  top.append(el('span', 'wf-run-template', run.template), statusPill(run.status));
  button.appendChild(top);
  const first = Object.values(run.inputs || {})[0];
  if (first) button.appendChild(el('span', 'wf-run-input', first.length > 80 ? first.slice(0, 80) + '…' : first));
  const age = el('span', 'wf-run-age', 'started ' + fmtAge(run.created_at));
  age.dataset.created = run.created_at;
  button.appendChild(age);
  button.addEventListener('click', () => {
    selectedId = run.id;
    chosen = true;
    render();
  });
  item.appendChild(button);
  return item;
}

function fact(dl, name, value) {
  dl.append(el('dt', null, name), el('dd', null, value));
}

function renderDetail() {
  const box = $('wf-detail');
  const run = runs.get(selectedId);
  const fallback = () => $('wf-runs').querySelector('[aria-pressed=true]');
  keepFocus(box, () => {
    clear(box);
    box.hidden = !run;
    if (!run) return;
    box.dataset.runId = run.id;
    box.dataset.status = run.status;
    const head = el('div', 'wf-detail-head');
    const title = el('h3', 'wf-detail-title', run.template);
    head.append(title, statusPill(run.status));
    if (!finished(run.status) && canWrite()) {
      const cancel = el('button', 'btn btn-small btn-danger-ghost wf-cancel', 'Cancel run');
      cancel.type = 'button';
      cancel.dataset.testid = 'wf-cancel';
      cancel.dataset.focusKey = 'cancel';
      cancel.setAttribute('aria-label', 'Cancel this ' + run.template + ' run');
      cancel.addEventListener('click', () => cancelRun(run.id));
      head.appendChild(cancel);
    }
    box.appendChild(head);

    const facts = el('dl', 'facts wf-facts');
    for (const [name, value] of Object.entries(run.inputs || {})) {
      fact(facts, name, value.length > INPUT_SHOWN_CHARS ? value.slice(0, INPUT_SHOWN_CHARS) + '…' : value || '—');
    }
    fact(facts, 'Started', fmtTime(run.created_at));
    if (run.finished_at) fact(facts, 'Finished', fmtTime(run.finished_at));
    box.appendChild(facts);

    if (run.status === 'awaiting_approval') {
      box.appendChild(el('p', 'wf-hint', 'A stage waits for approval: open it to approve or reject its result.'));
    }
    renderGraph(box, run, {
      open: (stage) => openTask(stage.task_id, () => box.querySelector(focusSelector('stage:' + stage.name))),
      retry: canWrite() ? (stage) => retryStage(run.id, stage.name) : null,
    });
  }, fallback);
}

const focusSelector = (key) => '[data-focus-key="' + CSS.escape(key) + '"]';

// Runs `rebuild` on `container`; if focus was on one of its controls, puts
// it back on the control with the same key after (a Retry that is gone:
// its stage; else `fallback()`), so keyboard users keep their place.
function keepFocus(container, rebuild, fallback) {
  const active = document.activeElement;
  const key = active && container.contains(active) && active.dataset ? active.dataset.focusKey : null;
  rebuild();
  if (!key || active.isConnected) return;
  let again = container.querySelector(focusSelector(key));
  if (!again && key.startsWith('retry:')) again = container.querySelector(focusSelector('stage:' + key.slice(6)));
  if (!again && fallback) again = fallback();
  if (again) again.focus({ preventScroll: true });
}

function refreshAges() {
  for (const age of document.querySelectorAll('#wf-runs [data-created]')) {
    age.textContent = 'started ' + fmtAge(age.dataset.created);
  }
}

// Cancel run and Retry: one request at a time for each. The button stays
// enabled (disabling it would drop keyboard focus); a repeat is ignored.
const busy = new Set();

async function runAction(key, path) {
  if (busy.has(key)) return;
  busy.add(key);
  try {
    upsertRun(await api('POST', path));
  } catch (e) {
    showError(e.message);
  } finally {
    busy.delete(key);
  }
}

function cancelRun(id) {
  runAction('cancel:' + id, '/api/v1/workflows/' + encodeURIComponent(id) + '/cancel');
}

function retryStage(id, stage) {
  runAction('retry:' + id + ':' + stage,
    '/api/v1/workflows/' + encodeURIComponent(id) + '/stages/' + encodeURIComponent(stage) + '/retry');
}

// ---- the Start workflow form ----

async function openForm() {
  if (!state.projectId) return;
  const err = $('workflow-error');
  err.hidden = true;
  renderTemplateOptions();
  const dialog = $('workflow-dialog');
  dialog.showModal();
  $('wf-template').focus();
  // Read every time: an admin may have added one since.
  try {
    templates = await api('GET', '/api/v1/workflow-templates');
    renderTemplateOptions();
    // The first read: the choice was disabled while it loaded.
    const active = document.activeElement;
    if (dialog.open && (!active || !dialog.contains(active) || active.matches('[data-close]'))) $('wf-template').focus();
  } catch (e) {
    if (!templates) {
      err.textContent = 'Could not read the workflow templates: ' + e.message;
      err.hidden = false;
    }
  }
}

function renderTemplateOptions() {
  const select = $('wf-template');
  const previous = select.value;
  const hadFocus = document.activeElement === select;
  clear(select);
  if (!templates) {
    select.appendChild(el('option', null, 'Loading…'));
    select.disabled = true;
  } else {
    for (const t of templates) {
      const option = el('option', null, t.name);
      option.value = t.name;
      select.appendChild(option);
    }
    select.disabled = templates.length === 0;
    if (templates.some((t) => t.name === previous)) select.value = previous;
  }
  if (hadFocus && !select.disabled) select.focus();
  $('wf-submit').disabled = !templates || templates.length === 0;
  renderInputs();
}

function renderInputs() {
  const box = $('wf-inputs');
  for (const field of box.querySelectorAll('[data-input]')) typed.set(field.dataset.input, field.value);
  clear(box);
  const template = (templates || []).find((t) => t.name === $('wf-template').value);
  $('wf-template-description').textContent = template ? template.description : '';
  $('wf-template-stages').textContent = template ? 'Stages: ' + stageSummary(template.stages) : '';
  if (!template) return;
  template.inputs.forEach((name, i) => {
    const id = 'wf-input-' + i;
    const label = el('label', null, name);
    label.htmlFor = id;
    const field = el('textarea');
    field.id = id;
    field.name = name;
    field.rows = 2;
    field.dataset.testid = 'wf-input';
    field.dataset.input = name;
    field.value = typed.get(name) || '';
    box.append(label, field);
  });
  if (!template.inputs.length) box.appendChild(el('p', 'muted small', 'This template takes no inputs.'));
}

// "design → implement, test → review (approval)"
function stageSummary(stages) {
  const depths = stageDepths(stages);
  const columns = [];
  for (const s of stages) {
    const d = depths.get(s.name);
    (columns[d] || (columns[d] = [])).push(s.name + (s.requires_approval ? ' (approval)' : ''));
  }
  return columns.filter(Boolean).map((names) => names.join(', ')).join(' → ');
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.target;
  const err = $('workflow-error');
  const template = $('wf-template').value;
  if (!templates || !template) {
    err.textContent = 'Choose a template.';
    err.hidden = false;
    return;
  }
  const inputs = {};
  for (const field of $('wf-inputs').querySelectorAll('[data-input]')) inputs[field.dataset.input] = field.value;
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  try {
    const run = await api('POST', '/api/v1/workflows', { project_id: state.projectId, template, inputs });
    for (const field of $('wf-inputs').querySelectorAll('[data-input]')) field.value = '';
    typed.clear();
    err.hidden = true;
    upsertRun(run);
    selectedId = run.id;
    chosen = true;
    render();
    $('workflow-dialog').close();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  } finally {
    submit.disabled = false;
  }
}
