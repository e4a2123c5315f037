// The board's columns: one per task status, each a list of cards in
// creation order, with a count of them that follows the list.
import { state, STATUSES, LABELS } from './state.js';
import { $, el } from './dom.js';

export function buildColumns() {
  const board = $('board');
  const fragment = document.createDocumentFragment();
  for (const status of STATUSES) {
    const column = el('section', 'column');
    column.dataset.testid = 'column';
    column.dataset.status = status;
    column.setAttribute('aria-labelledby', 'col-title-' + status);
    const head = el('header', 'column-head');
    const title = el('h3', 'column-title', LABELS[status]);
    title.id = 'col-title-' + status;
    const count = el('span', 'count', '0');
    count.dataset.testid = 'count';
    count.setAttribute('aria-label', '0 tasks');
    head.append(title, count);
    const list = el('ol', 'cards');
    list.dataset.testid = 'column-cards';
    list.dataset.status = status;
    list.setAttribute('aria-labelledby', 'col-title-' + status);
    column.append(head, list);
    fragment.appendChild(column);
    state.lists.set(status, list);
    state.counts.set(status, count);
  }
  board.appendChild(fragment);
}

// Keeps each column in id order, which is creation order (UUIDv7).
export function insertSorted(list, card) {
  const id = card.dataset.taskId;
  let before = null;
  for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
    if (node.dataset.taskId < id) break;
    before = node;
  }
  list.insertBefore(card, before);
}

export function scheduleCounts() {
  if (state.countsQueued) return;
  state.countsQueued = true;
  requestAnimationFrame(() => {
    state.countsQueued = false;
    for (const status of STATUSES) {
      const list = state.lists.get(status);
      const n = list ? list.childElementCount : 0;
      const count = state.counts.get(status);
      if (count && count.textContent !== String(n)) {
        count.textContent = String(n);
        count.setAttribute('aria-label', n + (n === 1 ? ' task' : ' tasks'));
      }
    }
  });
}
