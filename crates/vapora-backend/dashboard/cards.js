// One task's card: its content rebuilt from the task (title, tags, the
// streamed output, error or result, action buttons), its place in its
// status's column, and keyboard focus kept across a rebuild.
import { state, CARD_OUTPUT_CHARS, canWrite } from './state.js';
import { el, clear } from './dom.js';
import { fmtInt, fmtUsd, tail } from './format.js';
import { insertSorted, scheduleCounts } from './columns.js';

export function placeCard(card, status) {
  const list = state.lists.get(status);
  if (!list || card.parentElement === list) return;
  keepFocus(card, () => insertSorted(list, card));
  scheduleCounts();
}

// Rebuilds a card and moves it to its task's column (unless a move of
// it is in flight, which places it when the server answers).
export function refreshCard(card, task) {
  keepFocus(card, () => {
    fillCard(card, task);
    if (!state.pending.has(task.id)) placeCard(card, task.status);
  });
}

// Runs `change` on a card; if focus was inside, puts it back on the
// same control (or the card's title) so keyboard users do not lose it.
function keepFocus(card, change) {
  const active = document.activeElement;
  if (!active || !card.contains(active)) {
    change();
    return;
  }
  const action = active.dataset ? active.dataset.action : null;
  change();
  if (active.isConnected && card.contains(active)) {
    if (document.activeElement !== active) active.focus({ preventScroll: true });
    return;
  }
  const again = (action && card.querySelector('[data-action="' + action + '"]')) || card.querySelector('.card-open');
  if (again) again.focus({ preventScroll: true });
}

export function createCard(task) {
  const card = el('li', 'card');
  card.dataset.testid = 'card';
  card.dataset.taskId = task.id;
  card.draggable = canWrite();
  fillCard(card, task);
  state.cards.set(task.id, card);
  return card;
}

function addButton(parent, action, label, extraClass, taskTitle) {
  const b = el('button', 'btn btn-small' + (extraClass ? ' ' + extraClass : ''), label);
  b.type = 'button';
  b.dataset.action = action;
  b.dataset.testid = action;
  b.setAttribute('aria-label', label + ': ' + taskTitle);
  parent.appendChild(b);
}

// (Re)builds a card's content from the task: a handful of nodes.
function fillCard(card, task) {
  card.dataset.status = task.status;
  card.classList.toggle('pending', state.pending.has(task.id));
  clear(card);
  const open = el('button', 'card-open', task.title);
  open.type = 'button';
  open.dataset.action = 'open';
  open.dataset.testid = 'card-title';
  open.title = 'Open the task panel';
  card.appendChild(open);

  const meta = el('div', 'card-meta');
  meta.appendChild(el('span', 'tag tag-role', task.role));
  if (task.priority !== 'medium') meta.appendChild(el('span', 'tag tag-' + task.priority, task.priority));
  if (task.requires_approval) meta.appendChild(el('span', 'tag tag-approval', 'approval'));
  if (task.attempt > 1) meta.appendChild(el('span', 'tag', 'attempt ' + task.attempt));
  const waitingOn = task.waiting_on || [];
  if (waitingOn.length) {
    const tag = el('span', 'tag tag-waiting', 'waits on ' + waitingOn.length);
    tag.dataset.testid = 'card-waiting-on';
    tag.title = 'Waits for tasks ' + waitingOn.join(', ');
    meta.appendChild(tag);
  }
  if (task.assigned_agent && (task.status === 'running' || task.status === 'queued')) {
    meta.appendChild(el('span', 'tag tag-agent', task.assigned_agent));
  }
  card.appendChild(meta);

  if (task.status === 'running') {
    const out = el('pre', 'card-output');
    out.dataset.testid = 'card-output';
    const p = state.progress.get(task.id);
    out.textContent = p && p.attempt === task.attempt ? tail(p.text, CARD_OUTPUT_CHARS) : '';
    if (!out.textContent) out.classList.add('empty');
    card.appendChild(out);
  } else if (task.status === 'failed' && task.error) {
    const err = el('p', 'card-error', tail(task.error, 240));
    err.dataset.testid = 'card-error';
    card.appendChild(err);
  } else if (task.result && (task.status === 'done' || task.status === 'review')) {
    const r = task.result;
    const line = el('p', 'card-result', r.provider + '/' + r.model + ' · ' + fmtInt(r.tokens_in + r.tokens_out) + ' tok · ' + fmtUsd(r.cost_usd));
    card.appendChild(line);
  }

  if (!canWrite()) return; // a viewer key: look, don't touch
  const actions = el('div', 'card-actions');
  if (task.status === 'review') addButton(actions, 'approve', 'Approve', 'btn-primary', task.title);
  if (task.status === 'failed') addButton(actions, 'retry', 'Retry', null, task.title);
  if (['todo', 'queued', 'running', 'review'].includes(task.status)) addButton(actions, 'cancel', 'Cancel', 'btn-danger-ghost', task.title);
  if (actions.firstChild) card.appendChild(actions);
}
