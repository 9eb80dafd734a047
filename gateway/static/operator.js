// Switchyard's operator dashboard: reads the gateway's live stream (GET /v1/admin/live)
// and shows every model's versions, weights, live figures, charts and audit trail, with
// the rollout actions of the admin API. Plain DOM code, no framework; text from the
// gateway only ever goes in through textContent / text nodes.
'use strict';

// The key lives in this tab's sessionStorage only, as on the main page.
const KEY_STORAGE = 'switchyard.operatorKey';
// Snapshots kept per model for the charts (at one a second, two minutes).
const HISTORY = 120;
// Reconnecting after a drop: the first wait, doubled after each failure up to the last.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;
const SVG = 'http://www.w3.org/2000/svg';
const CHART_WIDTH = 240;
const CHART_HEIGHT = 56;
const SERIES_CLASSES = 6;

const ui = {
  form: document.getElementById('connect-form'),
  apiKey: document.getElementById('api-key'),
  connect: document.getElementById('connect'),
  disconnect: document.getElementById('disconnect'),
  connection: document.getElementById('connection'),
  error: document.getElementById('error'),
  actionStatus: document.getElementById('action-status'),
  updated: document.getElementById('updated'),
  models: document.getElementById('models'),
  dialog: document.getElementById('confirm'),
  dialogTitle: document.getElementById('confirm-title'),
  dialogMessage: document.getElementById('confirm-message'),
  dialogWeightField: document.getElementById('confirm-weight-field'),
  dialogWeight: document.getElementById('confirm-weight'),
  dialogReason: document.getElementById('confirm-reason'),
};

// The stream in use: its number (a late event of an older one is dropped) and its abort.
let streamNumber = 0;
let stream = null;
let retryTimer = null;
let backoffMs = BACKOFF_FIRST_MS;
// Per model: its section's parts, and its rolling history of figures.
const sections = new Map();
const histories = new Map();

// ---- small helpers -----------------------------------------------------------------

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function percent(share, digits = 1) {
  return `${(share * 100).toFixed(digits)}%`;
}

function ms(value) {
  return typeof value === 'number' ? `${value.toFixed(value < 10 ? 1 : 0)} ms` : '–';
}

function number(value, digits = 3) {
  return typeof value === 'number' ? String(Number(value.toPrecision(digits))) : '–';
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

function setConnection(text) {
  ui.connection.textContent = text;
}

function showError(message, requestId) {
  ui.error.replaceChildren(make('strong', null, 'Error: '), document.createTextNode(message));
  if (requestId) ui.error.append(make('span', 'request-id', ` (request ${requestId})`));
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

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
    showError(`the gateway answered HTTP ${response.status}.`);
  }
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
    render(parsed);
  } else if (type === 'error' && parsed && parsed.error) {
    setConnection(`Live; the gateway says: ${parsed.error.message}`);
  }
}

// ---- rendering a snapshot ----------------------------------------------------------

function render(snapshot) {
  ui.updated.textContent =
    `Updated ${clock(snapshot.at)} · routing revision ${snapshot.routing_revision}` +
    ` · every ${snapshot.push_s} s and at each change`;
  const placeholder = ui.models.querySelector('.placeholder');
  if (placeholder) placeholder.remove();
  const seen = new Set();
  for (const model of snapshot.models || []) {
    seen.add(model.model);
    remember(model, snapshot.at);
    renderModel(model);
  }
  for (const [name, parts] of sections) {
    if (!seen.has(name)) {
      parts.root.remove();
      sections.delete(name);
      histories.delete(name);
    }
  }
  if (sections.size === 0) {
    ui.models.replaceChildren(make('p', 'placeholder', 'No model is hosted or routed now.'));
  }
}

function sectionOf(name) {
  let parts = sections.get(name);
  if (parts) return parts;
  const root = make('section', 'panel model');
  root.dataset.model = name;
  const head = make('div', 'model-head');
  const title = make('h2', null, name);
  const meta = make('p', 'model-meta');
  head.append(title, meta);
  const actions = make('div', 'actions');
  const versions = make('table', 'versions');
  const figures = make('table', 'figures');
  const charts = make('div', 'charts');
  const audit = make('ol', 'audit');
  root.append(
    head,
    actions,
    make('h3', null, 'Versions'),
    versions,
    make('h3', null, 'Live figures (the window of every replica)'),
    figures,
    charts,
    make('h3', null, 'Audit trail (newest first)'),
    audit,
  );
  ui.models.append(root);
  parts = { root, meta, actions, actionsDrawn: null, shown: null, versions, figures, charts, audit };
  sections.set(name, parts);
  return parts;
}

function routes(model) {
  if (model.rollout && Array.isArray(model.rollout.versions)) return model.rollout.versions;
  // Without a table: each version the backends host, once (several may host it).
  const hosted = new Map();
  for (const v of model.hosted || []) {
    if (!hosted.has(v.version)) {
      hosted.set(v.version, { version: v.version, state: v.default ? 'default' : 'hosted', weight: null });
    }
  }
  return [...hosted.values()];
}

function renderModel(model) {
  const parts = sectionOf(model.model);
  parts.shown = model; // for the actions' current values
  const rollout = model.rollout;
  const meta = [model.service || 'no backend hosts it now'];
  if (rollout) meta.push(`table revision ${rollout.revision}`);
  else meta.push('no routing table: callers get the default version');
  parts.meta.replaceChildren(document.createTextNode(meta.join(' · ')));
  if (rollout && rollout.paused) parts.meta.append(' ', make('span', 'badge paused', 'paused'));
  if (model.shadow && model.shadow.version) {
    const share = typeof model.shadow.share === 'number' ? ` (${percent(model.shadow.share, 0)})` : '';
    parts.meta.append(' ', make('span', 'badge shadow', `shadow: ${model.shadow.version}${share}`));
  }
  renderActions(parts, model);
  renderVersions(parts.versions, model);
  renderFigures(parts.figures, model);
  renderCharts(parts.charts, model);
  renderAudit(parts.audit, model.audit || []);
}

function renderVersions(table, model) {
  const list = routes(model);
  const canaryWeight = list
    .filter((r) => r.state === 'canary')
    .reduce((sum, r) => sum + (r.weight || 0), 0);
  const hosted = new Map((model.hosted || []).map((v) => [v.version, v]));
  const head = make('tr');
  for (const title of ['Version', 'State', 'Weight', 'Backends', 'Guardrails']) {
    const cell = make('th', null, title);
    cell.scope = 'col';
    head.append(cell);
  }
  const thead = make('thead');
  thead.append(head);
  const body = make('tbody');
  for (const route of list) {
    const row = make('tr', `state-${String(route.state).replace(/[^a-z]/g, '')}`);
    row.dataset.version = route.version;
    row.dataset.state = route.state;
    let weight = '–';
    if (route.state === 'canary') weight = `${number(route.weight)}%`;
    else if (route.state === 'stable') weight = `${number(100 - canaryWeight)}% (the rest)`;
    const host = hosted.get(route.version);
    const verdict = (model.guardrails || {})[route.version] || '';
    row.append(
      make('td', 'version', route.version),
      make('td', 'state', route.state),
      make('td', 'weight number', weight),
      make('td', 'hosted', host ? host.status : 'not hosted'),
      make('td', 'verdict', verdict),
    );
    body.append(row);
  }
  table.replaceChildren(thead, body);
}

// The versions shown side by side: the table's, then any other with figures.
function columns(model) {
  const names = routes(model).map((r) => r.version);
  for (const name of Object.keys(model.live || {})) if (!names.includes(name)) names.push(name);
  if (model.shadow && model.shadow.version && !names.includes(model.shadow.version)) {
    names.push(model.shadow.version);
  }
  return names;
}

function labelShares(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return '–';
  return entries.map(([label, share]) => `${label} ${percent(share, 0)}`).join(' · ');
}

function agreementText(agreement) {
  if (!agreement) return '–';
  const parts = [];
  const value = typeof agreement.value === 'number' ? number(agreement.value) : '–';
  const range =
    typeof agreement.low === 'number' && typeof agreement.high === 'number'
      ? ` [${number(agreement.low)}, ${number(agreement.high)}]`
      : '';
  parts.push(`${agreement.kind || 'agreement'} ${value}${range} over ${agreement.n ?? 0}`);
  if (agreement.failed) parts.push(`${agreement.failed} failed`);
  if (agreement.dropped) parts.push(`${agreement.dropped} dropped`);
  if (typeof agreement.shadow_latency_ms === 'number') {
    parts.push(`latency ${ms(agreement.shadow_latency_ms)} vs ${ms(agreement.stable_latency_ms)}`);
  }
  return parts.join(' · ');
}

function experimentText(result) {
  let text;
  if (result.kind === 'labels') text = labelShares(result.shares);
  else {
    const range = typeof result.low === 'number' ? ` [${number(result.low)}, ${number(result.high)}]` : '';
    text = `${number(result.estimate)}${range}`;
  }
  text += ` (n ${result.n})`;
  if (result.comparison) text += ` · p ${number(result.comparison.p_value, 2)}`;
  if (result.baseline) text += ' · baseline';
  return text;
}

function renderFigures(table, model) {
  const names = columns(model);
  const live = model.live || {};
  const head = make('tr');
  const corner = make('th', null, 'Figure');
  corner.scope = 'col';
  head.append(corner);
  for (const name of names) {
    const cell = make('th', null, name);
    cell.scope = 'col';
    head.append(cell);
  }
  const thead = make('thead');
  thead.append(head);
  const body = make('tbody');
  const row = (metric, title, valueOf) => {
    const tr = make('tr');
    tr.dataset.metric = metric;
    const th = make('th', null, title);
    th.scope = 'row';
    tr.append(th);
    for (const name of names) {
      const cell = make('td', 'number', valueOf(name, live[name]));
      cell.dataset.version = name;
      tr.append(cell);
    }
    body.append(tr);
  };
  const of = (f, pick) => (f ? pick(f) : '–');
  row('requests', 'Requests (pinned)', (_, f) => of(f, (x) => `${x.requests} (${x.pinned || 0})`));
  row('errors', 'Errors', (_, f) =>
    of(f, (x) => {
      const codes = Object.entries(x.errors_by_code || {}).map(([c, n]) => `${c}: ${n}`);
      const rate = `${x.errors} (${percent(x.error_rate)})`;
      return codes.length ? `${rate} · ${codes.join(', ')}` : rate;
    }),
  );
  for (const q of ['p50', 'p95', 'p99']) {
    row(`latency-${q}`, `Latency ${q}`, (_, f) => of(f, (x) => ms((x.latency_ms || {})[q])));
  }
  for (const q of ['p50', 'p95']) {
    row(`ttft-${q}`, `Time to first token ${q}`, (_, f) => of(f, (x) => ms((x.ttft_ms || {})[q])));
  }
  row('labels', 'Label shares', (_, f) => of(f, (x) => labelShares(x.labels)));
  row('guardrails', 'Guardrails', (name) => (model.guardrails || {})[name] || '–');
  if (model.shadow && model.shadow.version) {
    row('shadow', 'Shadow agreement with stable', (name) =>
      name === model.shadow.version ? agreementText(model.shadow.agreement) : '–',
    );
  }
  const results = (model.experiments && model.experiments.results) || [];
  for (const kind of ['rate', 'mean', 'labels']) {
    const ofKind = results.filter((r) => r.kind === kind);
    if (!ofKind.length) continue;
    row(`experiment-${kind}`, `Outcomes (${kind})`, (name) => {
      const found = ofKind.find((r) => r.version === name);
      return found ? experimentText(found) : '–';
    });
  }
  table.replaceChildren(thead, body);
}

// ---- charts: the last snapshots of each version, as small SVG lines -------------------

const CHARTS = [
  { metric: 'requests', title: 'Requests in the window', pick: (f) => f.requests },
  { metric: 'error-rate', title: 'Error rate', pick: (f) => f.error_rate },
  { metric: 'p95', title: 'Latency p95 (ms)', pick: (f) => (f.latency_ms || {}).p95 },
];

function remember(model, at) {
  let kept = histories.get(model.model);
  if (!kept) {
    kept = [];
    histories.set(model.model, kept);
  }
  kept.push({ at, live: model.live || {} });
  if (kept.length > HISTORY) kept.splice(0, kept.length - HISTORY);
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function renderCharts(box, model) {
  const kept = histories.get(model.model) || [];
  const names = columns(model);
  const figures = [];
  for (const chart of CHARTS) {
    const series = names.map((name) =>
      kept.map((entry) => {
        const f = entry.live[name];
        const value = f ? chart.pick(f) : null;
        return typeof value === 'number' ? value : null;
      }),
    );
    const values = series.flat().filter((v) => v !== null);
    const top = values.length ? Math.max(...values) : 0;
    const figure = make('figure', 'chart');
    figure.dataset.metric = chart.metric;
    const drawing = svg('svg', {
      viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      role: 'img',
      'aria-label': `${chart.title}, last ${kept.length} snapshots`,
    });
    drawing.append(svg('rect', { class: 'frame', x: 0, y: 0, width: CHART_WIDTH, height: CHART_HEIGHT }));
    const step = HISTORY > 1 ? CHART_WIDTH / (HISTORY - 1) : CHART_WIDTH;
    const offset = HISTORY - kept.length;
    series.forEach((points, index) => {
      const drawn = [];
      points.forEach((value, i) => {
        if (value === null) return;
        const x = (offset + i) * step;
        const y = CHART_HEIGHT - 3 - (top > 0 ? (value / top) * (CHART_HEIGHT - 6) : 0);
        drawn.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      });
      if (!drawn.length) return;
      const line = svg('polyline', { class: `series series-${index % SERIES_CLASSES}`, points: drawn.join(' ') });
      line.dataset.version = names[index];
      drawing.append(line);
    });
    const caption = make('figcaption');
    caption.append(make('span', 'chart-title', `${chart.title} (top ${number(top)})`));
    names.forEach((name, index) => {
      caption.append(' ', make('span', `legend series-${index % SERIES_CLASSES}`, name));
    });
    figure.append(drawing, caption);
    figures.push(figure);
  }
  box.replaceChildren(...figures);
}

function renderAudit(list, entries) {
  if (!entries.length) {
    list.replaceChildren(make('li', 'placeholder', 'No changes yet.'));
    return;
  }
  list.replaceChildren(
    ...entries.map((entry) => {
      const item = make('li', 'audit-entry');
      item.dataset.action = entry.action;
      item.append(
        make('time', 'audit-time', clock(entry.at)),
        ' ',
        make('span', 'audit-actor', entry.actor),
        ' ',
        make('strong', 'audit-action', entry.action),
      );
      if (entry.reason) item.append(': ', make('span', 'audit-reason', entry.reason));
      return item;
    }),
  );
}

// ---- actions: the rollout routes of the admin API, each confirmed first -------------

function renderActions(parts, model) {
  const rollout = model.rollout;
  const canaries = rollout ? rollout.versions.filter((v) => v.state === 'canary') : [];
  const drawn = JSON.stringify([!!rollout, rollout && rollout.paused, canaries.map((c) => [c.version, c.weight])]);
  // Drawn again only when they change, so a button is not replaced under the pointer.
  if (parts.actionsDrawn === drawn) return;
  parts.actionsDrawn = drawn;
  if (!rollout) {
    parts.actions.replaceChildren(
      make('p', 'hint', 'Start a canary with POST /v1/admin/rollouts/{model}/start to roll a version out.'),
    );
    return;
  }
  const name = model.model;
  const button = (action, text, version, className) => {
    const node = make('button', className || 'secondary', text);
    node.type = 'button';
    node.dataset.action = action;
    if (version) node.dataset.version = version;
    node.addEventListener('click', () => act(name, action, version, node));
    return node;
  };
  const buttons = [
    rollout.paused
      ? button('resume', 'Resume automatic steps')
      : button('pause', 'Pause automatic steps'),
  ];
  for (const canary of canaries) {
    buttons.push(
      button('weight', `Set weight of ${canary.version}…`, canary.version),
      button('promote', `Promote ${canary.version}`, canary.version),
      button('rollback', `Roll back ${canary.version}`, canary.version, 'danger'),
    );
  }
  parts.actions.replaceChildren(...buttons);
}

const ACTIONS = {
  pause: { title: 'Pause', says: (m) => `Pause the automatic steps of ${m}'s canaries?` },
  resume: { title: 'Resume', says: (m) => `Resume the automatic steps of ${m}'s canaries?` },
  weight: { title: 'Set weight', says: (m, v) => `Set the share of callers ${m} ${v} takes.` },
  promote: {
    title: 'Promote',
    says: (m, v) => `Make ${v} the stable version of ${m}? The old stable version is deprecated.`,
  },
  rollback: {
    title: 'Roll back',
    says: (m, v) => `Send every caller of ${m} ${v} back to the stable version?`,
  },
};

// The dialog's answer: null when cancelled, else the reason and (for weight) the weight.
function confirmAction(action, model, version, currentWeight) {
  const spec = ACTIONS[action];
  ui.dialogTitle.textContent = `${spec.title}: ${model}${version ? ` ${version}` : ''}`;
  ui.dialogMessage.textContent = spec.says(model, version);
  ui.dialogWeightField.hidden = action !== 'weight';
  ui.dialogWeight.value = currentWeight === null || currentWeight === undefined ? '' : String(currentWeight);
  ui.dialogReason.value = '';
  return new Promise((resolve) => {
    const closed = () => {
      ui.dialog.removeEventListener('close', closed);
      if (ui.dialog.returnValue !== 'ok') {
        resolve(null);
        return;
      }
      resolve({ reason: ui.dialogReason.value.trim(), weight: Number.parseFloat(ui.dialogWeight.value) });
    };
    ui.dialog.addEventListener('close', closed);
    ui.dialog.returnValue = 'cancel';
    ui.dialog.showModal();
    (action === 'weight' ? ui.dialogWeight : ui.dialogReason).focus();
  });
}

async function act(model, action, version, button) {
  const current = sections.get(model);
  const canary = version ? findRoute(model, version) : null;
  const answer = await confirmAction(action, model, version, canary ? canary.weight : null);
  if (answer === null) return;
  const body = { reason: answer.reason };
  if (version) body.version = version;
  if (action === 'weight') {
    if (!Number.isFinite(answer.weight)) {
      showError('enter a weight from 0 to 100.');
      return;
    }
    body.weight = answer.weight;
  }
  button.disabled = true;
  ui.actionStatus.textContent = `${ACTIONS[action].title}: ${model}…`;
  try {
    const response = await fetch(`/v1/admin/rollouts/${encodeURIComponent(model)}/${action}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authorization() },
      body: JSON.stringify(body),
    });
    const reply = await readJson(response);
    if (!response.ok) {
      reportHttpError(response, reply);
      ui.actionStatus.textContent = `${ACTIONS[action].title}: ${model} failed`;
      return;
    }
    clearError();
    ui.actionStatus.textContent = `${ACTIONS[action].title}: ${model} done`;
  } catch (error) {
    showError(`could not reach the gateway (${error.message}).`);
  } finally {
    if (current && current.root.contains(button)) button.disabled = false;
  }
}

// The route of a version as the last snapshot showed it.
function findRoute(model, version) {
  const parts = sections.get(model);
  const rollout = parts && parts.shown ? parts.shown.rollout : null;
  return rollout ? rollout.versions.find((v) => v.version === version) || null : null;
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

ui.apiKey.addEventListener('input', saveKey);
ui.apiKey.addEventListener('change', saveKey);

restoreKey();
if (apiKey() !== '') connect();
