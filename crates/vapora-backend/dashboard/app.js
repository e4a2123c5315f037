// Vapora dashboard: a live board of one project's tasks, over the REST API
// and the event WebSocket. Plain DOM, no dependencies, no build step; the
// page's CSP forbids inline scripts and styles, so everything is wired in
// these modules. This one is the entry point: it hands the modules below
// what they must call back (a refused key signs out, a deleted project
// opens another), wires the page's own controls, and starts.
import { state } from './state.js';
import { $ } from './dom.js';
import { onKeyRefused } from './http.js';
import { hideError } from './toast.js';
import { buildColumns } from './columns.js';
import { wireBoard, wirePanel, openPanel } from './task-actions.js';
import { wireDialogs, renderRoleOptions } from './dialogs.js';
import { refreshAgents } from './agents.js';
import { refreshCosts } from './costs.js';
import { wireWorkflows } from './workflows.js';
import { onProjectDeleted } from './live.js';
import { signIn, signOut, selectProject, removeProject, storedKey } from './session.js';

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
  onKeyRefused(signOut);
  onProjectDeleted(removeProject);
  buildColumns();
  wireChrome();
  wireBoard();
  wirePanel();
  wireDialogs();
  wireWorkflows({ openTask: openPanel });
  renderRoleOptions();
  const key = storedKey();
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
