// What a user does to tasks, on the board and in the task panel: open a
// card's panel, move a task (drag and drop, or the panel's Move to),
// approve, reject (with a comment), retry or cancel it. A moved card waits in its target column
// until the server answers, and goes back if the move is refused. The
// panel opens from elsewhere too (a workflow stage), and gives focus back
// there when it closes.
import { state } from './state.js';
import { $, clear } from './dom.js';
import { api } from './http.js';
import { showError } from './toast.js';
import { upsertTask } from './board.js';
import { placeCard } from './cards.js';
import { renderPanel, loadHistory } from './panel.js';

async function moveTask(id, to) {
  const task = state.tasks.get(id);
  const card = state.cards.get(id);
  if (!task || !card || task.status === to || state.pending.has(id)) return;
  // Shown in the target column while the server decides; put back on refusal.
  state.pending.add(id);
  card.classList.add('pending');
  placeCard(card, to);
  if (state.openTaskId === id) renderPanel();
  try {
    const updated = await api('PATCH', '/api/v1/tasks/' + encodeURIComponent(id), { status: to });
    state.pending.delete(id);
    card.classList.remove('pending');
    upsertTask(updated);
    placeCard(card, state.tasks.get(id).status);
  } catch (e) {
    state.pending.delete(id);
    card.classList.remove('pending');
    const now = state.tasks.get(id);
    if (now) placeCard(card, now.status);
    if (state.openTaskId === id) renderPanel();
    showError(e.message);
  }
}

async function taskAction(id, action) {
  const task = state.tasks.get(id);
  if (!task) return;
  try {
    const updated = await api('POST', '/api/v1/tasks/' + encodeURIComponent(id) + '/' + action);
    upsertTask(updated);
  } catch (e) {
    showError(e.message);
  }
}

async function rejectTask(id, comment) {
  try {
    const updated = await api('POST', '/api/v1/tasks/' + encodeURIComponent(id) + '/reject', { comment });
    $('reject-comment').value = '';
    upsertTask(updated);
  } catch (e) {
    showError(e.message);
  }
}

// The board's clicks and drags, handled once for all its cards.
function cardOf(node) {
  return node && node.closest ? node.closest('.card') : null;
}

export function wireBoard() {
  const board = $('board');
  board.addEventListener('click', (event) => {
    const card = cardOf(event.target);
    if (!card) return;
    const id = card.dataset.taskId;
    const button = event.target.closest('button[data-action]');
    const action = button ? button.dataset.action : 'open';
    if (action === 'open') openPanel(id);
    else taskAction(id, action);
  });
  board.addEventListener('dragstart', (event) => {
    const card = cardOf(event.target);
    if (!card) return;
    state.dragId = card.dataset.taskId;
    event.dataTransfer.effectAllowed = 'move';
    event.dataTransfer.setData('text/plain', card.dataset.taskId);
    card.classList.add('dragging');
    board.classList.add('drag-active');
  });
  board.addEventListener('dragend', (event) => {
    const card = cardOf(event.target);
    if (card) card.classList.remove('dragging');
    state.dragId = null;
    board.classList.remove('drag-active');
    for (const c of board.querySelectorAll('.column.drop-target')) c.classList.remove('drop-target');
  });
  board.addEventListener('dragover', (event) => {
    const column = event.target.closest && event.target.closest('.column');
    if (!column || !state.dragId) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'move';
    if (!column.classList.contains('drop-target')) {
      for (const c of board.querySelectorAll('.column.drop-target')) c.classList.remove('drop-target');
      column.classList.add('drop-target');
    }
  });
  board.addEventListener('dragleave', (event) => {
    const column = event.target.closest && event.target.closest('.column');
    if (column && !column.contains(event.relatedTarget)) column.classList.remove('drop-target');
  });
  board.addEventListener('drop', (event) => {
    const column = event.target.closest && event.target.closest('.column');
    if (!column) return;
    event.preventDefault();
    column.classList.remove('drop-target');
    const id = event.dataTransfer.getData('text/plain') || state.dragId;
    state.dragId = null;
    if (id && state.tasks.has(id)) moveTask(id, column.dataset.status);
  });
}

// Where focus goes when the panel closes, if not to the task's card: a
// function that finds that control again (it may have been redrawn).
let returnFocus = null;

export function openPanel(id, returnTo) {
  returnFocus = returnTo || null;
  state.openTaskId = id;
  state.historyCursor = null;
  clear($('history-body'));
  clear($('stale-body'));
  renderPanel();
  const dialog = $('task-dialog');
  if (!dialog.open) dialog.showModal();
  loadHistory(true);
  // The card's copy may lag (a board page); read the task itself too.
  const generation = state.generation;
  api('GET', '/api/v1/tasks/' + encodeURIComponent(id)).then((task) => {
    if (generation === state.generation) upsertTask(task);
  }, (e) => showError('Could not read the task: ' + e.message));
}

export function wirePanel() {
  const dialog = $('task-dialog');
  dialog.addEventListener('close', () => {
    const id = state.openTaskId;
    state.openTaskId = null;
    const back = returnFocus ? returnFocus() : null;
    returnFocus = null;
    const card = id && state.cards.get(id);
    const open = back || (card && card.querySelector('.card-open'));
    if (open) open.focus({ preventScroll: false });
  });
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close(); // the backdrop
  });
  $('move-button').addEventListener('click', () => {
    const id = state.openTaskId;
    const to = $('move-select').value;
    if (id && to) moveTask(id, to);
  });
  for (const b of ['panel-approve', 'panel-retry', 'panel-cancel']) {
    $(b).addEventListener('click', () => {
      if (state.openTaskId) taskAction(state.openTaskId, $(b).dataset.action);
    });
  }
  $('reject-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const comment = $('reject-comment').value.trim();
    if (state.openTaskId && comment) rejectTask(state.openTaskId, comment);
  });
  $('history-more').addEventListener('click', () => loadHistory(false));
}
