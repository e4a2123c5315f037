// The agents panel: every registered agent with its state, roles, load
// and counts, from the API (on every poll) and agent.updated events. The
// roles the agents have become the New task form's choices.
import { state, PAGE } from './state.js';
import { $, el, clear } from './dom.js';
import { fmtInt, fmtTime } from './format.js';
import { api, q } from './http.js';
import { showError } from './toast.js';

export async function refreshAgents() {
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

export function upsertAgent(agent) {
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
