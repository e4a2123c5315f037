// The open project's board: reading it (the first page of every column,
// then each column's further pages; its workflow runs alongside), and
// applying every new version of a task to what shows it: its card, the
// column counts, the task panel, the cost panel. Older versions than the
// one shown are ignored.
import { state, PAGE } from './state.js';
import { $, clear } from './dom.js';
import { api, q } from './http.js';
import { showError } from './toast.js';
import { timeKey } from './format.js';
import { upsertProject } from './projects.js';
import { insertSorted, scheduleCounts } from './columns.js';
import { createCard, refreshCard } from './cards.js';
import { renderPanel, scheduleHistory } from './panel.js';
import { refreshCosts, scheduleCosts } from './costs.js';
import { loadRuns, resetRuns } from './workflows.js';

export function resetBoard() {
  for (const list of state.lists.values()) clear(list);
  state.tasks.clear();
  state.cards.clear();
  state.progress.clear();
  state.pending.clear();
  state.boardLoaded = false;
  state.boardLoading = false;
  state.boardAgain = false;
  $('board').dataset.loaded = 'false';
  scheduleCounts();
  resetRuns();
  const dialog = $('task-dialog');
  if (dialog.open) dialog.close();
}

export async function loadBoard() {
  if (!state.projectId) return;
  if (state.boardLoading) {
    state.boardAgain = true;
    return;
  }
  const generation = state.generation;
  const projectId = state.projectId;
  state.boardLoading = true;
  $('board').dataset.loaded = 'false';
  loadRuns();
  try {
    const board = await api('GET', '/api/v1/projects/' + encodeURIComponent(projectId) + '/board?' + q({ limit: PAGE }));
    if (generation !== state.generation) return;
    if (board.project) upsertProject(board.project);
    // Ask for the columns' next pages first, then build this page's
    // cards while those requests are under way.
    const more = board.columns
      .filter((column) => column.next_cursor)
      .map((column) => loadColumn(projectId, column.status, column.next_cursor, generation));
    addTasks(board.columns.flatMap((column) => column.tasks));
    await Promise.all(more);
    if (generation !== state.generation) return;
    state.boardLoaded = true;
    $('board').dataset.loaded = 'true';
    refreshCosts();
  } catch (e) {
    if (generation === state.generation) showError('Could not load the board: ' + e.message);
  } finally {
    if (generation === state.generation) {
      state.boardLoading = false;
      if (state.boardAgain) {
        state.boardAgain = false;
        loadBoard();
      }
    }
  }
}

// The rest of one column, page after page.
async function loadColumn(projectId, status, cursor, generation) {
  while (cursor) {
    const page = await api('GET', '/api/v1/tasks?' + q({ project_id: projectId, status, cursor, limit: PAGE }));
    if (generation !== state.generation) return;
    addTasks(page.items);
    cursor = page.next_cursor;
  }
}

// Many tasks at once (a board page): new cards go into one fragment per
// column, appended in order; known ones are updated in place.
function addTasks(tasks) {
  const fragments = new Map();
  for (const task of tasks) {
    const known = state.tasks.get(task.id);
    if (known) {
      upsertTask(task);
      continue;
    }
    state.tasks.set(task.id, task);
    const card = createCard(task);
    const list = state.lists.get(task.status);
    if (!list) continue;
    const last = list.lastElementChild;
    if (last && last.dataset.taskId > task.id) {
      insertSorted(list, card); // an event got here first with a newer task
      continue;
    }
    let fragment = fragments.get(task.status);
    if (!fragment) fragments.set(task.status, (fragment = document.createDocumentFragment()));
    fragment.appendChild(card);
  }
  for (const [status, fragment] of fragments) state.lists.get(status).appendChild(fragment);
  scheduleCounts();
}

// Creates or updates one task's card; older versions than the one shown
// (a late reply, an event replayed after a board read) are ignored.
export function upsertTask(task) {
  if (!task || task.project_id !== state.projectId) return;
  const current = state.tasks.get(task.id);
  if (!isNewer(task, current)) return;
  state.tasks.set(task.id, task);
  let card = state.cards.get(task.id);
  if (!card) {
    card = createCard(task);
    const list = state.lists.get(task.status);
    if (list) insertSorted(list, card);
  } else {
    refreshCard(card, task);
  }
  if (task.status !== 'running') {
    const p = state.progress.get(task.id);
    if (p && p.attempt !== task.attempt) state.progress.delete(task.id);
  }
  scheduleCounts();
  if (state.openTaskId === task.id) {
    renderPanel();
    if (!current || current.status !== task.status) scheduleHistory();
  }
  // Spend changes when results come in; reservations while tasks run.
  if (current && current.status !== task.status && task.status !== 'todo' && task.status !== 'queued') scheduleCosts();
}

// Whether `next` is at least as new as `current` (the same task).
function isNewer(next, current) {
  if (!current) return true;
  if ((next.attempt || 0) !== (current.attempt || 0)) return (next.attempt || 0) > (current.attempt || 0);
  return timeKey(next.updated_at) >= timeKey(current.updated_at);
}
