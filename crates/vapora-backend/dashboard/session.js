// The session: signing in with an API key (checked with /me, kept in this
// tab's sessionStorage), signing out, the polls while signed in, and which
// project is open: named in the address (#project=), its live feed
// subscribed and its board read.
import { state } from './state.js';
import { $ } from './dom.js';
import { api } from './http.js';
import { showError } from './toast.js';
import { fetchProjects, refreshProjects, renderProjectOptions } from './projects.js';
import { resetBoard, loadBoard } from './board.js';
import { connect, closeSocket } from './live.js';
import { refreshAgents } from './agents.js';
import { refreshCosts } from './costs.js';

const KEY_STORAGE = 'vapora.apiKey';
const PROJECT_STORAGE = 'vapora.projectId';
const AGENT_POLL_MS = 15000; // agents, costs and the project list

// The key this tab signed in with before (a reload), if any.
export function storedKey() {
  let key = null;
  try { key = sessionStorage.getItem(KEY_STORAGE); } catch (_) { /* none */ }
  return key;
}

export async function signIn(key) {
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

export function signOut(message) {
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

export function selectProject(id) {
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

export function removeProject(id) {
  state.projects.delete(id);
  renderProjectOptions();
  if (state.projectId === id) {
    showError('This project was deleted.');
    const next = state.projects.keys().next();
    selectProject(next.done ? null : next.value);
  }
}
