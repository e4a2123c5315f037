// Calls to the REST API with the signed-in key: JSON in and out, failures
// as ApiError with the server's own message, and query strings. A key the
// server refuses (401) signs the page out, through the handler app.js sets
// with onKeyRefused, so that this module depends on nothing above it.
import { state } from './state.js';

let refused = () => {};

// What to do when the server refuses the signed-in key: sign out, saying
// why. The live feed reports the refusals it gets here too.
export function onKeyRefused(handler) {
  refused = handler;
}

export function keyRefused(message) {
  refused(message);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body, key) {
  const headers = { Accept: 'application/json', Authorization: 'Bearer ' + (key || state.key) };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'Cannot reach the server (' + e.message + ')');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!response.ok) {
    const detail = data && data.error;
    const message = (detail && detail.message) || (response.status + ' ' + response.statusText);
    const error = new ApiError(response.status, (detail && detail.code) || 'http_' + response.status, message);
    if (response.status === 401 && !key) keyRefused('The server refused the API key: ' + message);
    throw error;
  }
  return data;
}

// A query string of the parameters that have a value.
export const q = (params) => Object.entries(params)
  .filter(([, v]) => v !== undefined && v !== null)
  .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
  .join('&');
