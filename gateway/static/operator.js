// Switchyard's operator dashboard: reads the gateway's live stream (GET /v1/admin/live)
// and shows each snapshot (operator-view.js), with the rollout actions of the admin API
// (operator-actions.js). Plain DOM code, no framework.
import { act } from './operator-actions.js';
import { clearError, readJson, reportHttpError, showError } from './operator-dom.js';
import { render } from './operator-view.js';

// The key lives in this tab's sessionStorage only, as on the main page.
const KEY_STORAGE = 'switchyard.operatorKey';
// Reconnecting after a drop: the first wait, doubled after each failure up to the last.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;

const ui = {
  form: document.getElementById('connect-form'),
  apiKey: document.getElementById('api-key'),
  disconnect: document.getElementById('disconnect'),
  connection: document.getElementById('connection'),
};

// The stream in use: its number (a late event of an older one is dropped) and its abort.
let streamNumber = 0;
let stream = null;
let retryTimer = null;
let backoffMs = BACKOFF_FIRST_MS;

function setConnection(text) {
  ui.connection.textContent = text;
}

// ---- the API key -------------------------------------------------------------------

function apiKey() {
  return ui.apiKey.value.trim();
}

function saveKey() {
  try {
    const key = apiKey();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage unavailable: the field still holds the key until reload
  }
}

function restoreKey() {
  try {
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) ui.apiKey.value = key;
  } catch {
    // as above
  }
}

function authorization() {
  return { Authorization: `Bearer ${apiKey()}` };
}

// ---- the stream --------------------------------------------------------------------

// EventSource cannot send the key in a header, and the key must not go in a URL: the
// stream is read with fetch, and its Server-Sent Events parsed here.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let type = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(type || 'message', data.join('\n'));
      type = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return; // a comment: the gateway's keep-alive
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    // A CR at the end may be the first half of a CRLF: keep it for the next chunk.
    const held = buffer.endsWith('\r') ? '\r' : '';
    const lines = buffer.slice(0, buffer.length - held.length).split(/\r\n|\r|\n/);
    buffer = lines.pop() + held;
    lines.forEach(line);
  }
}

function stopStream() {
  streamNumber += 1;
  if (retryTimer !== null) {
    clearTimeout(retryTimer);
    retryTimer = null;
  }
  if (stream) {
    stream.abort();
    stream = null;
  }
}

function scheduleReconnect(why) {
  const wait = backoffMs;
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  setConnection(`${why}; reconnecting in ${(wait / 1000).toFixed(1)} s…`);
  retryTimer = setTimeout(() => {
    retryTimer = null;
    connect();
  }, wait);
}

async function connect() {
  stopStream();
  if (apiKey() === '') {
    showError('enter an operator API key first (sy_…).');
    setConnection('Not connected');
    ui.apiKey.focus();
    return;
  }
  saveKey();
  const number = streamNumber;
  const controller = new AbortController();
  stream = controller;
  ui.disconnect.hidden = false;
  setConnection('Connecting…');
  try {
    const response = await fetch('/v1/admin/live', {
      headers: { Accept: 'text/event-stream', ...authorization() },
      cache: 'no-store',
      signal: controller.signal,
    });
    if (number !== streamNumber) return;
    if (!response.ok) {
      reportHttpError(response, await readJson(response));
      if (response.status === 401 || response.status === 403) {
        // The same key would be refused again: wait for another one.
        stream = null;
        ui.disconnect.hidden = true;
        setConnection('Refused');
        return;
      }
      scheduleReconnect(`the gateway answered HTTP ${response.status}`);
      return;
    }
    clearError();
    setConnection('Live');
    await readEvents(response, (type, data) => {
      if (number === streamNumber) onEvent(type, data);
    });
    if (number === streamNumber) scheduleReconnect('the stream ended');
  } catch (error) {
    if (number !== streamNumber || error.name === 'AbortError') return;
    scheduleReconnect('the connection was lost');
  }
}

function onAction(model, action, version, button) {
  act(model, action, version, button, authorization);
}

function onEvent(type, data) {
  let parsed = null;
  try {
    parsed = JSON.parse(data);
  } catch {
    return;
  }
  if (type === 'snapshot') {
    backoffMs = BACKOFF_FIRST_MS;
    setConnection('Live');
    render(parsed, onAction);
  } else if (type === 'error' && parsed && parsed.error) {
    setConnection(`Live; the gateway says: ${parsed.error.message}`);
  }
}

// ---- wiring ------------------------------------------------------------------------

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  clearError();
  backoffMs = BACKOFF_FIRST_MS;
  connect();
});

ui.disconnect.addEventListener('click', () => {
  stopStream();
  ui.disconnect.hidden = true;
  setConnection('Not connected');
});

// Saved as it is typed or pasted, as on the main page.
ui.apiKey.addEventListener('input', saveKey);
ui.apiKey.addEventListener('change', saveKey);

restoreKey();
if (apiKey() !== '') connect();
