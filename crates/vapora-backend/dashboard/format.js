// Text for display: times, ages, counts, US dollars, and the end of a long
// text; and a sort key for the server's timestamps.

// Today's times as a time of day; older ones with their date.
export function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  if (d.toDateString() === new Date().toDateString()) return d.toLocaleTimeString();
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

// How long ago: "just now", "5 min ago", "3 h ago", "2 d ago".
export function fmtAge(value, now = Date.now()) {
  const t = Date.parse(value);
  if (Number.isNaN(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return 'just now';
  if (s < 3600) return Math.max(1, Math.round(s / 60)) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

// RFC 3339 times with any number of fractional digits, as a string that
// sorts like the instant (all of them are UTC, "Z").
export function timeKey(value) {
  if (!value) return '';
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m || (m[3] !== 'Z' && m[3] !== '+00:00')) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? value : new Date(t).toISOString().slice(0, 19) + '.' + String(t % 1000).padStart(3, '0').padEnd(9, '0');
  }
  return m[1] + '.' + (m[2] || '').padEnd(9, '0').slice(0, 9);
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
