// The task panel's content: one task's status, facts, error, description,
// live output, result, attempt history and stale reports. Opening the
// panel and its buttons are task-actions.js's.
import { state, STATUSES, LABELS, canWrite } from './state.js';
import { $, el, clear } from './dom.js';
import { fmtTime, fmtInt, fmtUsd } from './format.js';
import { api, q } from './http.js';
import { showError } from './toast.js';

function fact(dl, name, value, testid) {
  const dt = el('dt', null, name);
  const dd = el('dd', null, value === undefined || value === null || value === '' ? '—' : String(value));
  if (testid) dd.dataset.testid = testid;
  dl.append(dt, dd);
}

export function renderPanel() {
  const task = state.tasks.get(state.openTaskId);
  if (!task) return;
  $('task-title').textContent = task.title;
  const pill = $('task-status');
  pill.textContent = LABELS[task.status] || task.status;
  pill.dataset.status = task.status;
  $('task-id').textContent = task.id;

  const select = $('move-select');
  const previous = select.value;
  clear(select);
  for (const status of STATUSES) {
    // `waiting` is the server's to set: a task moved to queued waits by
    // itself while its dependencies are unfinished.
    if (status === task.status || status === 'waiting') continue;
    const option = el('option', null, LABELS[status]);
    option.value = status;
    select.appendChild(option);
  }
  if (previous && previous !== task.status) select.value = previous;
  const writer = canWrite();
  select.disabled = !writer;
  $('move-button').disabled = !writer || state.pending.has(task.id);
  $('panel-approve').hidden = task.status !== 'review';
  $('reject-form').hidden = task.status !== 'review' || !canWrite();
  $('panel-retry').hidden = task.status !== 'failed';
  $('panel-cancel').hidden = !['todo', 'queued', 'running', 'review'].includes(task.status);
  for (const b of ['panel-approve', 'panel-retry', 'panel-cancel']) $(b).disabled = !writer;

  const facts = $('task-facts');
  clear(facts);
  fact(facts, 'Role', task.role);
  fact(facts, 'Priority', task.priority);
  fact(facts, 'Requires approval', task.requires_approval ? 'yes' : 'no');
  fact(facts, 'Attempt', task.attempt);
  fact(facts, 'Agent', task.assigned_agent);
  fact(facts, 'Created', fmtTime(task.created_at));
  fact(facts, 'Started', fmtTime(task.started_at));
  fact(facts, 'Finished', fmtTime(task.finished_at));
  if ((task.depends_on || []).length) {
    const titles = task.depends_on.map((id) => {
      const dep = state.tasks.get(id);
      const waiting = (task.waiting_on || []).includes(id) ? ' (waiting)' : '';
      return (dep ? dep.title : id) + waiting;
    });
    fact(facts, 'Depends on', titles.join(', '), 'task-depends-on');
  }
  if (task.rejection) {
    fact(facts, 'Last rejected', 'attempt ' + task.rejection.attempt + ': ' + task.rejection.comment);
  }

  $('task-error-section').hidden = !task.error;
  $('task-error').textContent = task.error || '';
  $('task-description-section').hidden = !task.description;
  $('task-description').textContent = task.description || '';

  const result = task.result;
  $('task-result-section').hidden = !result;
  const rf = $('task-result-facts');
  clear(rf);
  if (result) {
    fact(rf, 'Provider', result.provider, 'result-provider');
    fact(rf, 'Model', result.model, 'result-model');
    fact(rf, 'Tokens in', fmtInt(result.tokens_in), 'result-tokens-in');
    fact(rf, 'Tokens out', fmtInt(result.tokens_out), 'result-tokens-out');
    fact(rf, 'Cost', fmtUsd(result.cost_usd), 'result-cost');
    fact(rf, 'Provider calls', result.attempts);
    if (result.output_truncated) fact(rf, 'Output', 'truncated at the configured maximum');
    $('task-output').textContent = result.output;
  } else {
    $('task-output').textContent = '';
  }
  renderLive();
}

export function renderLive() {
  const task = state.tasks.get(state.openTaskId);
  const p = task && state.progress.get(task.id);
  const show = !!(task && p && p.attempt === task.attempt && (task.status === 'running' || !task.result));
  $('task-live-section').hidden = !show;
  const live = $('task-live');
  live.textContent = show ? p.text : '';
  if (show) live.scrollTop = live.scrollHeight;
}

export function scheduleHistory() {
  clearTimeout(state.historyTimer);
  state.historyTimer = setTimeout(() => loadHistory(true), 300);
}

export async function loadHistory(fresh) {
  const id = state.openTaskId;
  if (!id) return;
  const cursor = fresh ? undefined : state.historyCursor;
  try {
    const h = await api('GET', '/api/v1/tasks/' + encodeURIComponent(id) + '/history?' + q({ limit: 100, cursor }));
    if (state.openTaskId !== id) return;
    const body = $('history-body');
    if (fresh) clear(body);
    for (const t of h.transitions) {
      const tr = el('tr');
      tr.dataset.testid = 'transition';
      tr.append(
        el('td', null, fmtTime(t.at)),
        el('td', null, (t.from_status ? LABELS[t.from_status] || t.from_status : 'new') + ' → ' + (LABELS[t.to_status] || t.to_status)),
        el('td', 'num', String(t.attempt)),
        el('td', null, t.agent || '—'),
      );
      body.appendChild(tr);
    }
    state.historyCursor = h.next_cursor || null;
    $('history-more').hidden = !state.historyCursor;
    const stale = $('stale-body');
    clear(stale);
    if (!h.stale_reports.length) {
      const tr = el('tr');
      const td = el('td', 'muted', 'None');
      td.colSpan = 4;
      tr.appendChild(td);
      stale.appendChild(tr);
    }
    for (const s of h.stale_reports) {
      const tr = el('tr');
      tr.dataset.testid = 'stale-report';
      tr.append(el('td', null, fmtTime(s.at)), el('td', null, s.kind), el('td', 'num', String(s.attempt)), el('td', null, s.agent));
      stale.appendChild(tr);
    }
  } catch (e) {
    if (state.openTaskId === id) showError('Could not read the history: ' + e.message);
  }
}
