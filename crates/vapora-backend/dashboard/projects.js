// The project list and the project picker: every project the key can
// see, read page by page into state.projects and again on every poll (the
// live feed only carries the open project's events). Opening a project is
// session.js's.
import { state, PAGE } from './state.js';
import { $, el, clear } from './dom.js';
import { api, q } from './http.js';

export async function fetchProjects() {
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
export async function refreshProjects() {
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

export function renderProjectOptions() {
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

export function upsertProject(project) {
  const known = state.projects.get(project.id);
  state.projects.set(project.id, project);
  if (!known || known.name !== project.name) renderProjectOptions();
}
