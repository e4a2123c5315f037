// The cost panel: the open project's spend per role and its budgets, read
// again a second after tasks change status, and on every poll.
import { state } from './state.js';
import { $, el, clear } from './dom.js';
import { fmtInt, fmtTime, fmtUsd } from './format.js';
import { api, q } from './http.js';

export function scheduleCosts() {
  clearTimeout(state.costTimer);
  state.costTimer = setTimeout(refreshCosts, 1000);
}

export async function refreshCosts() {
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
