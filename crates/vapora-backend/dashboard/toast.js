// The error message bar: one message at a time, shown for ten seconds or
// until dismissed.
import { $ } from './dom.js';

const TOAST_MS = 10000;

let toastTimer = 0;
export function showError(message) {
  const toast = $('toast');
  $('toast-text').textContent = message;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideError, TOAST_MS);
}

export function hideError() {
  clearTimeout(toastTimer);
  $('toast').hidden = true;
}
