// Streamed output: the model's text as it arrives (task.progress events),
// kept per task for its latest attempt, shown on the running card and in
// the task panel.
import { state, CARD_OUTPUT_CHARS } from './state.js';
import { tail } from './format.js';
import { renderLive } from './panel.js';

const LIVE_OUTPUT_CHARS = 200000; // streamed text kept per task for the panel

export function onProgress(data) {
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
