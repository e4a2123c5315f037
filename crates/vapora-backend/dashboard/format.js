// Text for display: times, counts, US dollars, and the end of a long text.

// Today's times as a time of day; older ones with their date.
export function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  if (d.toDateString() === new Date().toDateString()) return d.toLocaleTimeString();
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function fmtInt(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '—';
}

export function fmtUsd(n) {
  if (typeof n !== 'number') return '—';
  if (n !== 0 && Math.abs(n) < 0.01) return '$' + n.toFixed(6);
  return '$' + n.toFixed(4);
}

// The last `n` characters of `text`, with an ellipsis if it was longer.
export function tail(text, n) {
  return text.length > n ? '…' + text.slice(text.length - n) : text;
}
