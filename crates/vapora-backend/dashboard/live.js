// The live feed: the open project's event WebSocket, reconnected with
// backoff and resumed with `since` (the board is read again only when the
// server cannot replay what was missed: `resync`, or a restart), and each
// event applied to the page.
import { state } from './state.js';
import { $ } from './dom.js';
import { q, keyRefused } from './http.js';
import { loadBoard, upsertTask } from './board.js';
import { onProgress } from './output.js';
import { upsertAgent } from './agents.js';
import { upsertProject } from './projects.js';
import { upsertRun } from './workflows.js';

let projectDeleted = () => {};

// What to do when a project is deleted (app.js sets it: opening another
// project opens a new feed, so it is not this module's to do).
export function onProjectDeleted(handler) {
  projectDeleted = handler;
}

function setConnection(stateName, text) {
  const c = $('connection');
  c.dataset.state = stateName;
  c.textContent = text;
}

export function closeSocket() {
  clearTimeout(state.wsTimer);
  const ws = state.ws;
  state.ws = null;
  if (ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.CONNECTING) {
      // Closing a socket still in its handshake makes the browser report a
      // failed connection; let it open, then close it quietly.
      ws.onopen = () => ws.close(1000, 'switching');
    } else {
      ws.onopen = null;
      try { ws.close(1000, 'switching'); } catch (_) { /* closed */ }
    }
  }
  setConnection('closed', 'offline');
}

export function connect() {
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
      keyRefused('The server closed the live feed: ' + (event.reason || 'the API key is no longer valid'));
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
    case 'workflow.created':
    case 'workflow.updated':
    case 'workflow.finished':
      if (data && data.id) upsertRun(data);
      break;
    case 'project.deleted':
      if (data && data.id) projectDeleted(data.id);
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
