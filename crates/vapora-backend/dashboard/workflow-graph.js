// A workflow run's stages drawn as a graph: one column per dependency
// depth (the stages with no dependency first, then those that wait only
// for them, and so on), each stage a button coloured by its task's status
// that opens the task, and an SVG arrow from every stage to each stage
// that depends on it. The arrows are drawn over the laid-out buttons, so
// the same graph reads left to right on a wide screen and top to bottom on
// a narrow one (where CSS turns the columns into rows). SVG made with DOM
// calls, styled by classes only (the page's CSP allows no inline style).
import { LABELS } from './state.js';
import { el } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

let observer = null; // the shown graph's: one graph at a time

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  return node;
}

// Each stage's depth: 0 without dependencies, else one more than its
// deepest dependency (an unknown dependency or a cycle counts as none).
export function stageDepths(stages) {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const depth = new Map();
  const visiting = new Set();
  const of = (name) => {
    if (depth.has(name)) return depth.get(name);
    const stage = byName.get(name);
    if (!stage || visiting.has(name)) return -1;
    visiting.add(name);
    const d = 1 + Math.max(-1, ...(stage.depends_on || []).map(of));
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const s of stages) of(s.name);
  return depth;
}

// Builds the graph of `run` into `box` (emptied first). `actions.open(stage)`
// runs when a stage is chosen; `actions.retry(stage)`, when given, adds a
// Retry button under each failed stage.
export function renderGraph(box, run, actions) {
  const depths = stageDepths(run.stages);
  const columns = [];
  for (const stage of run.stages) {
    const d = depths.get(stage.name);
    (columns[d] || (columns[d] = [])).push(stage);
  }

  const graph = el('div', 'wf-graph');
  graph.dataset.testid = 'wf-graph';
  graph.dataset.runId = run.id;
  const edges = svg('svg', { class: 'wf-edges', 'aria-hidden': 'true' });
  const defs = svg('defs');
  for (const kind of ['', '-done']) {
    const marker = svg('marker', {
      id: 'wf-arrow' + kind, viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, markerUnits: 'userSpaceOnUse', orient: 'auto',
    });
    marker.appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'wf-arrow-head' + kind }));
    defs.appendChild(marker);
  }
  edges.appendChild(defs);
  graph.appendChild(edges);

  const list = el('ol', 'wf-columns');
  list.setAttribute('aria-label', 'Stages of this run, in the order they run');
  columns.forEach((stages, depth) => {
    if (!stages) return;
    const column = el('li', 'wf-column');
    column.dataset.testid = 'wf-column';
    column.dataset.depth = String(depth);
    column.setAttribute('aria-label', 'Step ' + (depth + 1));
    const inColumn = el('ul', 'wf-column-stages');
    for (const stage of stages) inColumn.appendChild(stageNode(stage, actions));
    column.appendChild(inColumn);
    list.appendChild(column);
  });
  graph.appendChild(list);
  // Scrolls sideways, inside the panel, when there are many steps.
  const scroll = el('div', 'wf-scroll');
  scroll.appendChild(graph);
  box.appendChild(scroll);

  const draw = () => drawEdges(graph, edges, run);
  // Laid out now (if shown); again whenever its size changes.
  draw();
  if (observer) observer.disconnect();
  observer = typeof ResizeObserver === 'function' ? new ResizeObserver(draw) : null;
  if (observer) observer.observe(graph);
  return graph;
}

function stageNode(stage, actions) {
  const node = el('li', 'wf-node');
  node.dataset.testid = 'wf-stage';
  node.dataset.stage = stage.name;
  node.dataset.status = stage.status;
  node.dataset.taskId = stage.task_id;
  const open = el('button', 'wf-stage-open');
  open.type = 'button';
  open.dataset.testid = 'wf-stage-open';
  open.dataset.status = stage.status;
  open.dataset.focusKey = 'stage:' + stage.name;
  open.title = 'Open the task of stage ' + stage.name;
  const name = el('span', 'wf-stage-name', stage.name);
  const role = el('span', 'wf-stage-role', stage.role);
  const status = el('span', 'wf-stage-status', LABELS[stage.status] || stage.status);
  status.dataset.testid = 'wf-stage-status';
  open.append(name, role, status);
  if (stage.requires_approval) open.appendChild(el('span', 'tag tag-approval', 'approval'));
  open.addEventListener('click', () => actions.open(stage));
  node.appendChild(open);
  if (stage.status === 'failed' && actions.retry) {
    const retry = el('button', 'btn btn-small wf-retry', 'Retry');
    retry.type = 'button';
    retry.dataset.testid = 'wf-retry';
    retry.dataset.focusKey = 'retry:' + stage.name;
    retry.setAttribute('aria-label', 'Retry stage ' + stage.name);
    retry.addEventListener('click', () => actions.retry(stage));
    node.appendChild(retry);
  }
  return node;
}

// One arrow per dependency, from the stage's button to its dependent's:
// side to side when the dependent sits to the right, else top to bottom.
function drawEdges(graph, edges, run) {
  if (!graph.isConnected) return;
  const origin = graph.getBoundingClientRect();
  if (!origin.width) return; // not shown: drawn when it is (ResizeObserver)
  for (const old of edges.querySelectorAll('.wf-edge')) old.remove();
  const boxes = new Map();
  for (const button of graph.querySelectorAll('.wf-node > .wf-stage-open')) {
    const r = button.getBoundingClientRect();
    boxes.set(button.parentElement.dataset.stage, {
      left: r.left - origin.left, right: r.right - origin.left,
      top: r.top - origin.top, bottom: r.bottom - origin.top,
    });
  }
  const statusOf = new Map(run.stages.map((s) => [s.name, s.status]));
  for (const stage of run.stages) {
    const to = boxes.get(stage.name);
    for (const dep of stage.depends_on || []) {
      const from = boxes.get(dep);
      if (!from || !to) continue;
      let d;
      if (to.left >= from.right - 1) {
        const x1 = from.right, y1 = (from.top + from.bottom) / 2;
        const x2 = to.left - 1, y2 = (to.top + to.bottom) / 2;
        const bend = Math.max(12, (x2 - x1) / 2);
        d = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
      } else {
        const x1 = (from.left + from.right) / 2, y1 = from.bottom;
        const x2 = (to.left + to.right) / 2, y2 = to.top - 1;
        const bend = Math.max(10, (y2 - y1) / 2);
        d = `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`;
      }
      const done = statusOf.get(dep) === 'done';
      const path = svg('path', { d, class: 'wf-edge' + (done ? ' wf-edge-done' : '') });
      path.dataset.testid = 'wf-edge';
      path.dataset.from = dep;
      path.dataset.to = stage.name;
      edges.appendChild(path);
    }
  }
}
