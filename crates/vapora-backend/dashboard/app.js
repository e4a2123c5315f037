// Vapora dashboard: a live board of one project's tasks, over the REST API
// and the event WebSocket. Plain DOM, no dependencies, no build step; the
// page's CSP forbids inline scripts and styles, so everything is wired here.
'use strict';

(() => {
  const STATUSES = ['todo', 'queued', 'running', 'review', 'done', 'failed', 'cancelled'];
  const LABELS = {
    todo: 'To do', queued: 'Queued', running: 'Running', review: 'Review',
    done: 'Done', failed: 'Failed', cancelled: 'Cancelled',
  };
  // The roles of a fresh deployment (vapora-shared DEFAULT_ROLES); the
  // agents' own roles replace them once the agent list is in.
  const DEFAULT_ROLES = ['architect', 'developer', 'reviewer', 'tester', 'documenter', 'devops', 'security', 'project-manager'];
  const KEY_STORAGE = 'vapora.apiKey';
  const PROJECT_STORAGE = 'vapora.projectId';
  const PAGE = 500; // the API's largest page
  const CARD_OUTPUT_CHARS = 600; // streamed text kept on a card
  const LIVE_OUTPUT_CHARS = 200000; // streamed text kept per task for the panel
  const TOAST_MS = 10000;
  const AGENT_POLL_MS = 15000; // agents, costs and the project list

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    me: null,
    projects: new Map(), // id -> project
    projectId: null,
    tasks: new Map(), // id -> task, as last known
    cards: new Map(), // id -> card element
    lists: new Map(), // status -> the column's card list element
    counts: new Map(), // status -> count element
    progress: new Map(), // task id -> {attempt, next, text}
    pending: new Set(), // task ids with a move in flight
    agents: new Map(),
    roles: DEFAULT_ROLES.slice(),
    generation: 0, // bumped on every project switch; stale async work checks it
    lastSeq: null,
    boardLoaded: false,
    boardLoading: false,
    boardAgain: false,
    ws: null,
    wsOpenedAt: 0,
    wsFirst: false,
    wsResumed: false,
    wsFailures: 0,
    wsTimer: 0,
    openTaskId: null,
    historyCursor: null,
    costTimer: 0,
    historyTimer: 0,
    agentTimer: 0,
    countsQueued: false,
    dragId: null,
  };

  // ---- HTTP -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body, key) {
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + (key || state.key) };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the server (' + e.message + ')');
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const detail = data && data.error;
      const message = (detail && detail.message) || (response.status + ' ' + response.statusText);
      const error = new ApiError(response.status, (detail && detail.code) || 'http_' + response.status, message);
      if (response.status === 401 && !key) signOut('The server refused the API key: ' + message);
      throw error;
    }
    return data;
  }

  const q = (params) => Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
    .join('&');

  // ---- small DOM helpers --------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // Today's times as a time of day; older ones with their date.
  function fmtTime(value) {
    if (!value) return '—';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    if (d.toDateString() === new Date().toDateString()) return d.toLocaleTimeString();
    return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
  }

  function fmtInt(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '—';
  }

  function fmtUsd(n) {
    if (typeof n !== 'number') return '—';
    if (n !== 0 && Math.abs(n) < 0.01) return '$' + n.toFixed(6);
    return '$' + n.toFixed(4);
  }

  // RFC 3339 times with any number of fractional digits, as a string that
  // sorts like the instant (all of them are UTC, "Z").
  function timeKey(value) {
    if (!value) return '';
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
    if (!m || (m[3] !== 'Z' && m[3] !== '+00:00')) {
      const t = Date.parse(value);
      return Number.isNaN(t) ? value : new Date(t).toISOString().slice(0, 19) + '.' + String(t % 1000).padStart(3, '0').padEnd(9, '0');
    }
    return m[1] + '.' + (m[2] || '').padEnd(9, '0').slice(0, 9);
  }

  // Whether `next` is at least as new as `current` (the same task).
  function isNewer(next, current) {
    if (!current) return true;
    if ((next.attempt || 0) !== (current.attempt || 0)) return (next.attempt || 0) > (current.attempt || 0);
    return timeKey(next.updated_at) >= timeKey(current.updated_at);
  }

  // ---- toast --------------------------------------------------------------

  let toastTimer = 0;
  function showError(message) {
    const toast = $('toast');
    $('toast-text').textContent = message;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(hideError, TOAST_MS);
  }

  function hideError() {
    clearTimeout(toastTimer);
    $('toast').hidden = true;
  }

  // ---- sign-in ------------------------------------------------------------

  async function signIn(key) {
    const me = await api('GET', '/api/v1/me', undefined, key);
    state.key = key;
    state.me = me;
    try { sessionStorage.setItem(KEY_STORAGE, key); } catch (_) { /* storage off: this tab only */ }
    $('whoami').textContent = (me.name ? me.name + ' · ' : '') + me.role;
    $('signin').hidden = true;
    $('topbar-main').hidden = false;
    $('app').hidden = false;
    const writer = me.role !== 'viewer';
    $('new-task').disabled = !writer;
    $('new-project').disabled = !writer;
    document.body.dataset.role = me.role;
    try {
      await loadProjects();
    } catch (e) {
      if (!state.key) return; // refused: signed out already
      showError('Could not list the projects: ' + e.message);
    }
    refreshAgents();
    clearInterval(state.agentTimer);
    state.agentTimer = setInterval(() => {
      refreshAgents();
      refreshCosts();
      refreshProjects();
    }, AGENT_POLL_MS);
  }

  function signOut(message) {
    state.key = null;
    state.me = null;
    try { sessionStorage.removeItem(KEY_STORAGE); } catch (_) { /* nothing kept */ }
    clearInterval(state.agentTimer);
    closeSocket();
    state.generation++;
    state.projectId = null;
    resetBoard();
    $('app').hidden = true;
    $('topbar-main').hidden = true;
    $('signin').hidden = false;
    const err = $('signin-error');
    err.textContent = message || '';
    err.hidden = !message;
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    $('key-input').value = '';
    $('key-input').focus();
  }

  // ---- projects -----------------------------------------------------------

  async function fetchProjects() {
    const projects = [];
    let cursor;
    do {
      const page = await api('GET', '/api/v1/projects?' + q({ limit: PAGE, cursor }));
      projects.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return projects;
  }

  // The live feed only carries the open project's events: other projects
  // (made elsewhere) come in with this, every poll.
  async function refreshProjects() {
    if (!state.key) return;
    try {
      const projects = await fetchProjects();
      const ids = new Set(projects.map((p) => p.id));
      let changed = projects.length !== state.projects.size;
      for (const p of projects) {
        const known = state.projects.get(p.id);
        if (!known || known.name !== p.name) changed = true;
        state.projects.set(p.id, p);
      }
      for (const id of [...state.projects.keys()]) if (!ids.has(id)) state.projects.delete(id);
      if (changed && document.activeElement !== $('project-select')) renderProjectOptions();
    } catch (_) {
      /* the next poll tries again; a refused key has signed out */
    }
  }

  async function loadProjects() {
    const projects = await fetchProjects();
    state.projects.clear();
    for (const p of projects) state.projects.set(p.id, p);
    renderProjectOptions();
    const fromHash = new URLSearchParams(location.hash.slice(1)).get('project');
    let stored = null;
    try { stored = sessionStorage.getItem(PROJECT_STORAGE); } catch (_) { /* none */ }
    const wanted = [fromHash, stored, projects.length ? projects[0].id : null].find((id) => id && state.projects.has(id));
    selectProject(wanted || null);
  }

  function renderProjectOptions() {
    const select = $('project-select');
    clear(select);
    const sorted = [...state.projects.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const p of sorted) {
      const option = el('option', null, p.name);
      option.value = p.id;
      select.appendChild(option);
    }
    select.disabled = sorted.length === 0;
    if (state.projectId) select.value = state.projectId;
    $('no-projects').hidden = sorted.length > 0;
    $('new-task').disabled = !state.me || state.me.role === 'viewer' || sorted.length === 0;
  }

  function upsertProject(project) {
    const known = state.projects.get(project.id);
    state.projects.set(project.id, project);
    if (!known || known.name !== project.name) renderProjectOptions();
  }

  function selectProject(id) {
    if (id === state.projectId && state.boardLoaded) return;
    state.generation++;
    closeSocket();
    resetBoard();
    state.projectId = id;
    $('project-select').value = id || '';
    $('no-projects').hidden = !!id || state.projects.size > 0;
    if (!id) return;
    try { sessionStorage.setItem(PROJECT_STORAGE, id); } catch (_) { /* fine */ }
    const hash = '#project=' + encodeURIComponent(id);
    if (location.hash !== hash) history.replaceState(null, '', hash);
    const p = state.projects.get(id);
    document.title = (p ? p.name + ' · ' : '') + 'Vapora dashboard';
    // Subscribe first, then read the board: nothing published in between
    // is missed. If the socket cannot open, the board loads anyway.
    state.lastSeq = null;
    connect();
    const generation = state.generation;
    setTimeout(() => {
      if (generation === state.generation && !state.boardLoaded && !state.boardLoading) loadBoard();
    }, 1500);
  }

  // ---- board --------------------------------------------------------------

  function buildColumns() {
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

  function resetBoard() {
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
    const dialog = $('task-dialog');
    if (dialog.open) dialog.close();
  }

  async function loadBoard() {
    if (!state.projectId) return;
    if (state.boardLoading) {
      state.boardAgain = true;
      return;
    }
    const generation = state.generation;
    const projectId = state.projectId;
    state.boardLoading = true;
    $('board').dataset.loaded = 'false';
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
  function upsertTask(task) {
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

  // Keeps each column in id order, which is creation order (UUIDv7).
  function insertSorted(list, card) {
    const id = card.dataset.taskId;
    let before = null;
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (node.dataset.taskId < id) break;
      before = node;
    }
    list.insertBefore(card, before);
  }

  function placeCard(card, status) {
    const list = state.lists.get(status);
    if (!list || card.parentElement === list) return;
    keepFocus(card, () => insertSorted(list, card));
    scheduleCounts();
  }

  // Rebuilds a card and moves it to its task's column (unless a move of
  // it is in flight, which places it when the server answers).
  function refreshCard(card, task) {
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

  function canWrite() {
    return !!state.me && state.me.role !== 'viewer';
  }

  function createCard(task) {
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

  function tail(text, n) {
    return text.length > n ? '…' + text.slice(text.length - n) : text;
  }

  function scheduleCounts() {
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

  // ---- streamed output ---------------------------------------------------

  function onProgress(data) {
    if (!data || data.project_id !== state.projectId) return;
    let p = state.progress.get(data.task_id);
    if (!p || p.attempt !== data.attempt) {
      if (p && p.attempt > data.attempt) return; // a chunk of an older attempt
      p = { attempt: data.attempt, next: 0, text: '' };
      state.progress.set(data.task_id, p);
    }
    if (typeof data.seq === 'number') {
      if (data.seq < p.next) return; // seen already (a replay)
      p.next = data.seq + 1;
    }
    p.text += data.chunk;
    if (p.text.length > LIVE_OUTPUT_CHARS) p.text = p.text.slice(p.text.length - LIVE_OUTPUT_CHARS);
    const task = state.tasks.get(data.task_id);
    const card = state.cards.get(data.task_id);
    if (card && task && task.status === 'running' && task.attempt === data.attempt) {
      const out = card.querySelector('.card-output');
      if (out) {
        out.textContent = tail(p.text, CARD_OUTPUT_CHARS);
        out.classList.remove('empty');
        out.scrollTop = out.scrollHeight;
      }
    }
    if (state.openTaskId === data.task_id) renderLive();
  }

  // ---- moves and actions -----------------------------------------------

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

  // ---- board interactions (delegated) ----------------------------------

  function cardOf(node) {
    return node && node.closest ? node.closest('.card') : null;
  }

  function wireBoard() {
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

  // ---- task panel ---------------------------------------------------------

  function openPanel(id) {
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

  function fact(dl, name, value, testid) {
    const dt = el('dt', null, name);
    const dd = el('dd', null, value === undefined || value === null || value === '' ? '—' : String(value));
    if (testid) dd.dataset.testid = testid;
    dl.append(dt, dd);
  }

  function renderPanel() {
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
      if (status === task.status) continue;
      const option = el('option', null, LABELS[status]);
      option.value = status;
      select.appendChild(option);
    }
    if (previous && previous !== task.status) select.value = previous;
    const writer = canWrite();
    select.disabled = !writer;
    $('move-button').disabled = !writer || state.pending.has(task.id);
    $('panel-approve').hidden = task.status !== 'review';
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

  function renderLive() {
    const task = state.tasks.get(state.openTaskId);
    const p = task && state.progress.get(task.id);
    const show = !!(task && p && p.attempt === task.attempt && (task.status === 'running' || !task.result));
    $('task-live-section').hidden = !show;
    const live = $('task-live');
    live.textContent = show ? p.text : '';
    if (show) live.scrollTop = live.scrollHeight;
  }

  function scheduleHistory() {
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(() => loadHistory(true), 300);
  }

  async function loadHistory(fresh) {
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

  function wirePanel() {
    const dialog = $('task-dialog');
    dialog.addEventListener('close', () => {
      const id = state.openTaskId;
      state.openTaskId = null;
      const card = id && state.cards.get(id);
      const open = card && card.querySelector('.card-open');
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
    $('history-more').addEventListener('click', () => loadHistory(false));
  }

  // ---- dialogs: new task, new project ----------------------------------

  function wireDialogs() {
    for (const button of document.querySelectorAll('dialog [data-close]')) {
      button.addEventListener('click', () => button.closest('dialog').close());
    }
    $('new-task').addEventListener('click', () => {
      if (!state.projectId) return;
      renderRoleOptions();
      $('new-task-error').hidden = true;
      $('new-task-dialog').showModal();
      $('nt-title').focus();
    });
    $('new-task-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const form = event.target;
      const title = $('nt-title').value;
      const err = $('new-task-error');
      if (!title.trim()) {
        err.textContent = 'A title is required.';
        err.hidden = false;
        $('nt-title').focus();
        return;
      }
      const body = {
        project_id: state.projectId,
        title,
        description: $('nt-description').value,
        role: $('nt-role').value,
        priority: $('nt-priority').value,
        requires_approval: $('nt-approval').checked,
        dispatch: form.querySelector('input[name=dispatch]:checked').value === 'true',
      };
      const submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const task = await api('POST', '/api/v1/tasks', body);
        upsertTask(task);
        $('nt-title').value = '';
        $('nt-description').value = '';
        err.hidden = true;
        $('new-task-dialog').close();
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    $('new-project').addEventListener('click', () => {
      $('project-error').hidden = true;
      $('project-dialog').showModal();
      $('np-name').focus();
    });
    $('project-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const err = $('project-error');
      const name = $('np-name').value;
      if (!name.trim()) {
        err.textContent = 'A name is required.';
        err.hidden = false;
        $('np-name').focus();
        return;
      }
      const submit = event.target.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const project = await api('POST', '/api/v1/projects', { name, description: $('np-description').value });
        upsertProject(project);
        $('np-name').value = '';
        $('np-description').value = '';
        $('project-dialog').close();
        selectProject(project.id);
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
  }

  function renderRoleOptions() {
    const select = $('nt-role');
    const previous = select.value || 'developer';
    clear(select);
    for (const role of state.roles) {
      const option = el('option', null, role);
      option.value = role;
      select.appendChild(option);
    }
    select.value = state.roles.includes(previous) ? previous : state.roles[0];
  }

  // ---- agents -------------------------------------------------------------

  async function refreshAgents() {
    if (!state.key) return;
    try {
      const agents = [];
      let cursor;
      do {
        const page = await api('GET', '/api/v1/agents?' + q({ limit: PAGE, cursor }));
        agents.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      state.agents.clear();
      for (const a of agents) state.agents.set(a.id, a);
      renderAgents();
    } catch (e) {
      if (e.status !== 401) showError('Could not list the agents: ' + e.message);
    }
  }

  function upsertAgent(agent) {
    state.agents.set(agent.id, agent);
    renderAgents();
  }

  let agentsQueued = false;
  function renderAgents() {
    if (agentsQueued) return;
    agentsQueued = true;
    requestAnimationFrame(() => {
      agentsQueued = false;
      const body = $('agents-body');
      clear(body);
      const agents = [...state.agents.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const roles = new Set();
      for (const a of agents) {
        const agentRoles = a.roles && a.roles.length ? a.roles : [a.role];
        agentRoles.forEach((r) => roles.add(r));
        const online = a.status !== 'offline';
        const tr = el('tr');
        tr.dataset.testid = 'agent';
        tr.dataset.agentId = a.id;
        tr.dataset.status = a.status;
        const name = el('td', 'mono', a.id);
        const st = el('td');
        const pill = el('span', 'agent-state ' + (online ? 'online' : 'offline'), online ? (a.status === 'busy' ? 'online · busy' : 'online · idle') : 'offline');
        st.appendChild(pill);
        tr.append(
          name, st,
          el('td', null, agentRoles.join(', ')),
          el('td', 'num', a.capacity ? a.load + ' / ' + a.capacity : String(a.load || 0)),
          el('td', 'num', fmtInt(a.tasks_completed)),
          el('td', 'num', fmtInt(a.tasks_failed)),
          el('td', null, a.location + (a.version ? ' · ' + a.version : '')),
          el('td', null, fmtTime(a.last_seen)),
        );
        body.appendChild(tr);
      }
      $('agents-empty').hidden = agents.length > 0;
      if (roles.size) {
        state.roles = [...roles].sort();
      }
    });
  }

  // ---- cost ---------------------------------------------------------------

  function scheduleCosts() {
    clearTimeout(state.costTimer);
    state.costTimer = setTimeout(refreshCosts, 1000);
  }

  async function refreshCosts() {
    const projectId = state.projectId;
    if (!projectId || !state.key) return;
    const errorLine = $('cost-error');
    try {
      const data = await api('GET', '/api/v1/budgets?' + q({ project_id: projectId }));
      if (projectId !== state.projectId) return;
      errorLine.hidden = true;
      renderSpend(data.spend || []);
      renderBudgets(data.budgets || []);
    } catch (e) {
      if (projectId !== state.projectId) return;
      errorLine.textContent = 'Cost data unavailable: ' + e.message;
      errorLine.hidden = false;
    }
  }

  function renderSpend(spend) {
    const body = $('spend-body');
    const foot = $('spend-foot');
    clear(body);
    clear(foot);
    const total = { tasks: 0, tokens_in: 0, tokens_out: 0, cost_usd: 0 };
    for (const s of spend) {
      const tr = el('tr');
      tr.dataset.testid = 'spend';
      tr.dataset.role = s.role;
      tr.append(el('td', null, s.role), el('td', 'num', fmtInt(s.tasks)), el('td', 'num', fmtInt(s.tokens_in)),
        el('td', 'num', fmtInt(s.tokens_out)), el('td', 'num', fmtUsd(s.cost_usd)));
      body.appendChild(tr);
      for (const k of Object.keys(total)) total[k] += s[k] || 0;
    }
    if (!spend.length) {
      const tr = el('tr');
      const td = el('td', 'muted', 'Nothing spent yet.');
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    const tr = el('tr');
    tr.append(el('th', null, 'Total'), el('td', 'num', fmtInt(total.tasks)), el('td', 'num', fmtInt(total.tokens_in)),
      el('td', 'num', fmtInt(total.tokens_out)), el('td', 'num', fmtUsd(total.cost_usd)));
    tr.firstChild.scope = 'row';
    foot.appendChild(tr);
  }

  function renderBudgets(budgets) {
    const box = $('budgets');
    clear(box);
    if (!budgets.length) {
      box.appendChild(el('p', 'muted', 'No budgets configured.'));
      return;
    }
    for (const b of budgets) {
      const item = el('div', 'budget');
      item.dataset.testid = 'budget';
      item.dataset.key = b.key;
      const used = (b.spent_usd || 0) + (b.reserved_usd || 0);
      const head = el('div', 'budget-head');
      head.append(el('strong', null, b.key), el('span', null, fmtUsd(b.spent_usd) + ' of ' + fmtUsd(b.limit_usd) + (b.reserved_usd ? ' (+' + fmtUsd(b.reserved_usd) + ' reserved)' : '')));
      const meter = el('meter');
      meter.min = 0;
      meter.max = b.limit_usd > 0 ? b.limit_usd : 1;
      meter.value = Math.min(used, meter.max);
      meter.low = meter.max * 0.7;
      meter.high = meter.max * 0.9;
      meter.optimum = 0;
      meter.setAttribute('aria-label', 'Budget ' + b.key + ' used');
      const exhausted = describeExhausted(b.on_exhausted);
      const foot = el('div', 'budget-foot muted small', (b.period || '') + (b.period_end ? ' · resets ' + fmtTime(b.period_end) : '') + (exhausted ? ' · when exhausted: ' + exhausted : ''));
      item.append(head, meter, foot);
      box.appendChild(item);
    }
  }

  // `{"action":"reject"}` or `{"action":"downgrade","route":"cheap"}`.
  function describeExhausted(value) {
    if (value === undefined || value === null) return '';
    if (typeof value === 'string') return value;
    if (value.action === 'reject') return 'reject calls';
    if (value.action === 'downgrade') return 'downgrade to route ' + (value.route || '?');
    return JSON.stringify(value);
  }

  // ---- live events ----------------------------------------------------------

  function setConnection(stateName, text) {
    const c = $('connection');
    c.dataset.state = stateName;
    c.textContent = text;
  }

  function closeSocket() {
    clearTimeout(state.wsTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, 'switching'); } catch (_) { /* closed */ }
    }
    setConnection('closed', 'offline');
  }

  function connect() {
    clearTimeout(state.wsTimer);
    if (!state.key || !state.projectId) return;
    const generation = state.generation;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = { project_id: state.projectId };
    if (state.lastSeq !== null) params.since = state.lastSeq;
    let ws;
    try {
      ws = new WebSocket(scheme + '//' + location.host + '/api/v1/ws?' + q(params), ['vapora.v1', state.key]);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.wsOpenedAt = 0;
    state.wsFirst = true;
    state.wsResumed = state.lastSeq !== null;
    setConnection('connecting', 'connecting…');
    ws.onopen = () => {
      if (state.ws !== ws) return;
      state.wsOpenedAt = Date.now();
      setConnection('open', 'live');
      // Without a sequence number to resume from, what happened while
      // disconnected is unknown: read the board again.
      if (!state.boardLoaded || state.lastSeq === null) loadBoard();
    };
    ws.onmessage = (event) => {
      if (state.ws !== ws || generation !== state.generation) return;
      handleMessage(event.data);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (event.code === 1008) {
        signOut('The server closed the live feed: ' + (event.reason || 'the API key is no longer valid'));
        return;
      }
      // A connection that lasted resets the backoff; one the server keeps
      // dropping right away does not.
      if (state.wsOpenedAt && Date.now() - state.wsOpenedAt > 5000) state.wsFailures = 0;
      setConnection('closed', 'reconnecting…');
      if (!state.boardLoaded && !state.boardLoading) loadBoard();
      scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function scheduleReconnect() {
    clearTimeout(state.wsTimer);
    if (!state.key || !state.projectId) return;
    const base = Math.min(30000, 500 * 2 ** Math.min(state.wsFailures, 6));
    state.wsFailures++;
    const generation = state.generation;
    state.wsTimer = setTimeout(() => {
      if (generation === state.generation) connect();
    }, base / 2 + Math.random() * base / 2);
  }

  function handleMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (_) { return; }
    if (!msg || typeof msg !== 'object') return;
    const first = state.wsFirst;
    state.wsFirst = false;
    if (typeof msg.seq === 'number') {
      // Resuming after N, the server only sends what comes after N; an
      // older number means it restarted and counts anew: start over.
      const restarted = first && state.wsResumed && state.lastSeq !== null && msg.seq <= state.lastSeq;
      state.lastSeq = msg.seq;
      if (restarted) {
        state.progress.clear();
        loadBoard();
      }
    }
    const data = msg.data;
    switch (msg.type) {
      case 'task.created':
      case 'task.updated':
        upsertTask(data);
        break;
      case 'task.progress':
        onProgress(data);
        break;
      case 'agent.updated':
        if (data && data.id) upsertAgent(data);
        break;
      case 'project.created':
      case 'project.updated':
        if (data && data.id) upsertProject(data);
        break;
      case 'project.deleted':
        if (data && data.id) removeProject(data.id);
        break;
      case 'resync':
        // Some events after our `since` are gone: read the board as it is
        // now, and go on from this event's number.
        state.progress.clear();
        loadBoard();
        break;
      default:
        break; // unknown types are for newer dashboards
    }
  }

  function removeProject(id) {
    state.projects.delete(id);
    renderProjectOptions();
    if (state.projectId === id) {
      showError('This project was deleted.');
      const next = state.projects.keys().next();
      selectProject(next.done ? null : next.value);
    }
  }

  // ---- start ----------------------------------------------------------------

  function wireChrome() {
    $('signin-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const key = $('key-input').value.trim();
      const err = $('signin-error');
      if (!key) return;
      const submit = event.target.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        await signIn(key);
        $('key-input').value = '';
        err.hidden = true;
      } catch (e) {
        err.textContent = e.status === 401 ? 'That key was refused: ' + e.message : e.message;
        err.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    $('sign-out').addEventListener('click', () => signOut());
    $('project-select').addEventListener('change', (event) => selectProject(event.target.value));
    $('toast-close').addEventListener('click', hideError);
    $('agents-refresh').addEventListener('click', refreshAgents);
    $('cost-refresh').addEventListener('click', refreshCosts);
    window.addEventListener('hashchange', () => {
      const id = new URLSearchParams(location.hash.slice(1)).get('project');
      if (id && id !== state.projectId && state.projects.has(id)) selectProject(id);
    });
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !$('toast').hidden && !document.querySelector('dialog[open]')) hideError();
    });
  }

  async function start() {
    buildColumns();
    wireChrome();
    wireBoard();
    wirePanel();
    wireDialogs();
    renderRoleOptions();
    let key = null;
    try { key = sessionStorage.getItem(KEY_STORAGE); } catch (_) { /* none */ }
    if (key) {
      try {
        await signIn(key);
        return;
      } catch (e) {
        signOut(e.status === 401 ? 'Please sign in again: ' + e.message : e.message);
        return;
      }
    }
    signOut();
  }

  // Test and debugging hook: what the page knows, read-only.
  window.vapora = Object.freeze({
    taskCount: () => state.tasks.size,
    lastSeq: () => state.lastSeq,
    boardLoaded: () => state.boardLoaded,
  });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
