// The New task and New project dialogs: their forms, checked here and
// sent to the API; a new task shows on the board at once, a new project
// is opened.
import { state } from './state.js';
import { $, el, clear } from './dom.js';
import { api } from './http.js';
import { upsertTask } from './board.js';
import { upsertProject } from './projects.js';
import { selectProject } from './session.js';

export function wireDialogs() {
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
    const timeout = $('nt-timeout').value.trim();
    if (timeout) body.timeout_secs = Number(timeout);
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

export function renderRoleOptions() {
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
