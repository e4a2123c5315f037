// The page's shared state: what it knows of the server (projects, tasks,
// agents), the board's elements, and the timers and flags that keep async
// work in order. Also the constants more than one module needs, and
// whether the signed-in key may change things. Imports nothing.

export const STATUSES = ['todo', 'waiting', 'queued', 'running', 'review', 'done', 'failed', 'cancelled'];
export const LABELS = {
  todo: 'To do', waiting: 'Waiting', queued: 'Queued', running: 'Running', review: 'Review',
  done: 'Done', failed: 'Failed', cancelled: 'Cancelled',
};
// The roles of a fresh deployment (vapora-shared DEFAULT_ROLES); the
// agents' own roles replace them once the agent list is in.
const DEFAULT_ROLES = ['architect', 'developer', 'reviewer', 'tester', 'documenter', 'devops', 'security', 'project-manager'];
export const PAGE = 500; // the API's largest page
export const CARD_OUTPUT_CHARS = 600; // streamed text kept on a card

export const state = {
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

// Whether the signed-in key may change things (a viewer key may not).
export function canWrite() {
  return !!state.me && state.me.role !== 'viewer';
}
