// Switchyard's page: sends the text to the gateway's API and shows the answer.
// Plain DOM code, no framework; user text only ever goes in through textContent / text nodes.
'use strict';

const SAMPLES = {
  classify: 'The update fixed every crash I had; the app is fast again.',
  ner: 'Ada Lovelace worked with Charles Babbage in London.',
  summarize:
    'The city council met on Tuesday to discuss the new bicycle lanes. After a long debate, ' +
    'members voted to build twelve kilometres of protected lanes by next summer. Shop owners ' +
    'on the main street worried about losing parking, while cycling groups said the lanes ' +
    'would make the daily commute safer for thousands of people.',
};

const ENTITY_NAMES = {
  PER: 'person',
  LOC: 'location',
  ORG: 'organisation',
  MISC: 'miscellaneous',
};

// The API key lives in this tab's sessionStorage only: gone when the tab closes, never
// shared with other tabs, never put in a URL.
const KEY_STORAGE = 'switchyard.apiKey';

const ui = {
  form: document.getElementById('form'),
  apiKey: document.getElementById('api-key'),
  text: document.getElementById('text'),
  model: document.getElementById('model'),
  maxTokensField: document.getElementById('max-new-tokens-field'),
  maxTokens: document.getElementById('max-new-tokens'),
  run: document.getElementById('run'),
  stop: document.getElementById('stop'),
  status: document.getElementById('status'),
  error: document.getElementById('error'),
  result: document.getElementById('result'),
  version: document.getElementById('version'),
};

// The run in progress: its number (a late answer of an older run is dropped), and what
// stops it (the fetch's AbortController or the summary's EventSource).
let runNumber = 0;
let active = null;

// ---- small DOM helpers -------------------------------------------------------------

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A label safe to use in a class name (labels come from the model's configuration).
function classToken(label) {
  return String(label).replace(/[^A-Za-z0-9_-]/g, '_');
}

function percent(score) {
  return `${(score * 100).toFixed(1)}%`;
}

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(message, requestId) {
  ui.error.replaceChildren(make('strong', null, 'Error: '), document.createTextNode(message));
  if (requestId) {
    ui.error.append(make('span', 'request-id', ` (request ${requestId})`));
  }
  ui.error.hidden = false;
}

function clearOutput() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  ui.result.replaceChildren();
  ui.version.textContent = '';
}

function setBusy(busy) {
  ui.run.disabled = busy;
  ui.stop.hidden = !busy;
  ui.result.setAttribute('aria-busy', busy ? 'true' : 'false');
}

function showVersion(answer) {
  if (answer && answer.model && answer.version) {
    ui.version.textContent = `Answered by ${answer.model} ${answer.version}`;
  }
}

// ---- the API key ------------------------------------------------------------------

function apiKey() {
  return ui.apiKey.value.trim();
}

// Storage may be unavailable (a locked-down browser): the key then lasts until reload.
function saveKey() {
  try {
    const key = apiKey();
    if (key) {
      sessionStorage.setItem(KEY_STORAGE, key);
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
  } catch {
    // nothing to do: the field still holds the key
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

function authorization(key) {
  return { Authorization: `Bearer ${key}` };
}

// ---- errors ------------------------------------------------------------------------

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// The gateway's error envelope {"error": {"code", "message", "request_id"}} as a sentence.
function reportHttpError(response, body) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (error && typeof error.message === 'string') {
    const code = error.code ? `${error.code}, ` : '';
    showError(`${error.message} (${code}HTTP ${response.status})`, error.request_id);
  } else {
    const reason = response.statusText ? ` ${response.statusText}` : '';
    showError(`the gateway answered HTTP ${response.status}${reason}.`);
  }
}

// ---- classifier and NER: one JSON request ------------------------------------------

async function predict(kind, text, run, key) {
  const controller = new AbortController();
  active = { stop: () => controller.abort() };
  setBusy(true);
  setStatus('Running…');
  try {
    const response = await fetch(`/v1/${kind}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        ...authorization(key),
      },
      body: JSON.stringify({ text }),
      signal: controller.signal,
    });
    const body = await readJson(response);
    if (run !== runNumber) return;
    if (!response.ok) {
      reportHttpError(response, body);
      setStatus('error');
      return;
    }
    const result = body && Array.isArray(body.results) ? body.results[0] : null;
    if (!result) {
      showError('the gateway sent an answer without results.');
      setStatus('error');
      return;
    }
    if (kind === 'classify') {
      renderLabels(result.labels || []);
    } else {
      renderEntities(text, result.entities || []);
    }
    showVersion(body);
    setStatus('done');
  } catch (error) {
    if (run !== runNumber || error.name === 'AbortError') return;
    showError(`could not reach the gateway (${error.message}).`);
    setStatus('error');
  } finally {
    if (run === runNumber) {
      active = null;
      setBusy(false);
    }
  }
}

function renderLabels(labels) {
  const list = make('ol', 'labels');
  list.setAttribute('aria-label', 'Labels, best first');
  labels.forEach(({ label, score }, position) => {
    const row = make('li', `label-row label-${classToken(label)}`);
    if (position === 0) row.classList.add('top');
    const name = make('span', 'label-name', label);
    const track = make('div', 'bar-track');
    track.setAttribute('role', 'meter');
    track.setAttribute('aria-label', `${label} score`);
    track.setAttribute('aria-valuemin', '0');
    track.setAttribute('aria-valuemax', '100');
    track.setAttribute('aria-valuenow', (score * 100).toFixed(1));
    const bar = make('div', 'bar');
    bar.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
    track.append(bar);
    row.append(name, track, make('span', 'label-score', percent(score)));
    list.append(row);
  });
  ui.result.replaceChildren(list);
}

// Entity offsets count Unicode code points (as Python does); JavaScript strings count
// UTF-16 code units, in which an emoji takes two. Array.from splits a string into code
// points, so slicing that array uses the API's offsets as they are.
function renderEntities(text, entities) {
  const points = Array.from(text);
  const spans = entities
    .filter(
      (e) =>
        Number.isInteger(e.start) &&
        Number.isInteger(e.end) &&
        e.start >= 0 &&
        e.start < e.end &&
        e.end <= points.length,
    )
    .sort((a, b) => a.start - b.start || b.end - a.end);

  const marked = make('p', 'ner-text');
  const shown = [];
  let cursor = 0;
  for (const entity of spans) {
    if (entity.start < cursor) continue; // overlaps the previous entity
    if (entity.start > cursor) {
      marked.append(document.createTextNode(points.slice(cursor, entity.start).join('')));
    }
    const label = String(entity.label);
    const name = ENTITY_NAMES[label] || label;
    const mark = make('mark', `entity entity-${classToken(label)}`);
    mark.textContent = points.slice(entity.start, entity.end).join('');
    mark.dataset.label = label; // shown as a small tag by the style sheet
    mark.title = `${name}, ${percent(entity.score)}`;
    marked.append(mark);
    shown.push({ entity, text: mark.textContent, name });
    cursor = entity.end;
  }
  if (cursor < points.length) {
    marked.append(document.createTextNode(points.slice(cursor).join('')));
  }

  if (shown.length === 0) {
    ui.result.replaceChildren(marked, make('p', 'placeholder', 'No entities found.'));
    return;
  }
  const table = make('table', 'entities');
  table.append(make('caption', null, 'Entities found'));
  const head = make('tr');
  for (const title of ['Text', 'Type', 'Score']) {
    const cell = make('th', null, title);
    cell.scope = 'col';
    head.append(cell);
  }
  const thead = make('thead');
  thead.append(head);
  table.append(thead);
  const body = make('tbody');
  for (const { entity, text: entityText, name } of shown) {
    const row = make('tr');
    const type = make('td');
    type.append(make('span', `tag entity-${classToken(entity.label)}`, entity.label), ` ${name}`);
    row.append(make('td', null, entityText), type, make('td', 'number', percent(entity.score)));
    body.append(row);
  }
  table.append(body);
  ui.result.replaceChildren(marked, table);
}

// ---- summarizer: Server-Sent Events ------------------------------------------------

function summaryView() {
  const summary = make('p', 'summary');
  summary.id = 'summary';
  summary.setAttribute('aria-live', 'off'); // read once done, not word by word

  const facts = make('dl', 'facts');
  const add = (term, id) => {
    const value = make('dd', null, '–');
    value.id = id;
    facts.append(make('dt', null, term), value);
    return value;
  };
  const view = {
    summary,
    ttft: add('Time to first token (in the browser)', 'ttft'),
    serverTtft: add('Time to first token (on the server)', 'usage-server-ttft'),
    promptTokens: add('Prompt tokens', 'usage-prompt-tokens'),
    generatedTokens: add('Generated tokens', 'usage-generated-tokens'),
    generation: add('Generation time', 'usage-generation'),
    finishReason: add('Finish reason', 'usage-finish-reason'),
  };
  ui.result.replaceChildren(make('h3', 'subhead', 'Summary'), summary, facts);
  return view;
}

// EventSource cannot send headers, and the key must not go in a URL: the page trades the
// key (in a header) for a single-use stream token, then opens the stream with that.
async function summarize(text, run, key) {
  const params = new URLSearchParams({ text });
  const maxTokens = Number.parseInt(ui.maxTokens.value, 10);
  if (Number.isInteger(maxTokens) && maxTokens > 0) {
    params.set('max_new_tokens', String(maxTokens));
  }
  // The browser's time to first token counts from Run: the token exchange is part of it.
  const started = performance.now();
  const controller = new AbortController();
  active = { stop: () => controller.abort() };
  setBusy(true);
  setStatus('Connecting…');

  const fail = (message, status = 'error') => {
    if (message) showError(message);
    active = null;
    setBusy(false);
    setStatus(status);
  };

  let streamToken = null;
  try {
    const response = await fetch('/v1/summarize/stream-token', {
      method: 'POST',
      headers: { Accept: 'application/json', ...authorization(key) },
      signal: controller.signal,
    });
    const body = await readJson(response);
    if (run !== runNumber) return;
    if (!response.ok) {
      reportHttpError(response, body);
      fail();
      return;
    }
    streamToken = body && typeof body.stream_token === 'string' ? body.stream_token : null;
  } catch (error) {
    if (run !== runNumber || error.name === 'AbortError') return;
    fail(`could not reach the gateway (${error.message}).`);
    return;
  }
  if (!streamToken) {
    fail('the gateway sent no stream token.');
    return;
  }
  openStream(params, streamToken, started, run, key);
}

// A dropped connection is no reason to stop: EventSource reconnects by itself with the
// same URL and the last event's id as Last-Event-ID, and the gateway resumes the same
// summary right after that event (the stream token stays good for resuming its stream),
// so the tokens that follow are appended where the others stopped.
function openStream(params, streamToken, started, run, key) {
  const query = new URLSearchParams(params);
  query.set('stream_token', streamToken);
  const view = summaryView();
  const source = new EventSource(`/v1/summarize/stream?${query}`);
  let tokens = 0;
  let ended = false;

  // Closing by hand stops EventSource for good: after the summary's last event (`done` or
  // `error`), on Stop, or once the gateway refused the stream.
  const end = (status) => {
    ended = true;
    source.close();
    view.summary.setAttribute('aria-live', 'polite');
    if (run === runNumber) {
      active = null;
      setBusy(false);
      setStatus(status);
    }
  };
  active = { stop: () => end('stopped') };

  source.addEventListener('open', () => {
    if (ended) return;
    setStatus(tokens > 0 ? 'Streaming…' : 'Connecting…');
  });

  source.addEventListener('token', (event) => {
    if (ended) return;
    const data = JSON.parse(event.data);
    if (tokens === 0) {
      view.ttft.textContent = `${Math.round(performance.now() - started)} ms`;
      setStatus('Streaming…');
    }
    tokens += 1;
    view.summary.append(document.createTextNode(data.text));
  });

  source.addEventListener('done', (event) => {
    if (ended) return;
    const data = JSON.parse(event.data);
    const usage = data.usage || {};
    view.serverTtft.textContent = `${Math.round(usage.time_to_first_token_ms)} ms`;
    view.promptTokens.textContent = String(usage.prompt_tokens);
    view.generatedTokens.textContent = String(usage.generated_tokens);
    view.generation.textContent = `${Math.round(usage.generation_ms)} ms`;
    view.finishReason.textContent = usage.finish_reason;
    showVersion(data);
    end('done');
  });

  // One listener sees both the server's `error` events (MessageEvents with the error
  // envelope as data) and the browser's own connection errors (plain Events).
  source.addEventListener('error', (event) => {
    if (ended) return;
    if (event instanceof MessageEvent && typeof event.data === 'string') {
      let error = null;
      try {
        error = JSON.parse(event.data).error;
      } catch {
        // not JSON: reported below
      }
      end('error');
      showError(error && error.message ? error.message : 'the summary failed.', error?.request_id);
      return;
    }
    if (source.readyState === EventSource.CONNECTING) {
      setStatus('Reconnecting…'); // the connection dropped: EventSource reconnects soon
      return;
    }
    // CLOSED: the gateway refused the stream (or its resume) with an HTTP status.
    end('error');
    if (tokens > 0) {
      showError('the connection to the gateway was lost before the summary was done.');
    } else {
      explainRefusedStream(params, run, key);
    }
  });
}

// EventSource tells nothing about why a stream did not open. Asking once more with fetch
// reads the gateway's answer: an error's status and message, shown as they are. The stream
// token was spent by the first attempt (single-use, even when refused), so this asks with
// the API key in a header, as fetch can: the same request from the same caller.
async function explainRefusedStream(params, run, key) {
  const controller = new AbortController();
  showError('the summary stream could not be opened.');
  try {
    const response = await fetch(`/v1/summarize/stream?${params}`, {
      headers: { Accept: 'text/event-stream', ...authorization(key) },
      signal: controller.signal,
    });
    if (run !== runNumber) return;
    if (!response.ok) {
      reportHttpError(response, await readJson(response));
      return;
    }
    showError('the summary stream closed before it started; please run it again.');
  } catch (error) {
    if (run !== runNumber || error.name === 'AbortError') return;
    showError(`could not reach the gateway (${error.message}).`);
  } finally {
    controller.abort(); // never read a stream that did open: stop its summary at once
  }
}

// ---- wiring ------------------------------------------------------------------------

function stopActive() {
  if (active) {
    const { stop } = active;
    active = null;
    stop();
  }
}

function run() {
  stopActive();
  runNumber += 1;
  clearOutput();
  const text = ui.text.value;
  if (text.trim() === '') {
    showError('enter some text first.');
    setStatus('error');
    setBusy(false);
    ui.text.focus();
    return;
  }
  const key = apiKey();
  if (key === '') {
    // Not worth a round trip: the gateway answers 401 to every model request without a key.
    showError('enter an API key first (sy_…): every model request needs one.');
    setStatus('error');
    setBusy(false);
    ui.apiKey.focus();
    return;
  }
  saveKey();
  const kind = ui.model.value;
  if (kind === 'summarize') {
    summarize(text, runNumber, key);
  } else {
    predict(kind, text, runNumber, key);
  }
}

function modelChanged() {
  const kind = ui.model.value;
  ui.maxTokensField.hidden = kind !== 'summarize';
  // Swap in the new model's sample text, unless the text is the user's own.
  const current = ui.text.value.trim();
  if (current === '' || Object.values(SAMPLES).includes(current)) {
    ui.text.value = SAMPLES[kind] || '';
  }
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  run();
});

ui.stop.addEventListener('click', () => {
  runNumber += 1;
  stopActive();
  setBusy(false);
  setStatus('stopped');
});

ui.model.addEventListener('change', modelChanged);

// Saved as it is typed or pasted, not only on blur: a reload right after still finds it.
ui.apiKey.addEventListener('input', saveKey);
ui.apiKey.addEventListener('change', saveKey);

ui.text.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (!ui.run.disabled) run();
  }
});

restoreKey();
modelChanged();
