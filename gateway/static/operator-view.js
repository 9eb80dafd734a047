// The operator dashboard's view of a snapshot: per model, its versions and weights, live
// figures side by side, charts, audit trail and the buttons of the rollout actions.
// Text from the gateway only ever goes in through textContent / text nodes.
import { forget, remember, renderCharts } from './operator-charts.js';
import { clock, make, ms, number, percent } from './operator-dom.js';

const updated = document.getElementById('updated');
const models = document.getElementById('models');

// Per model: its section's parts, and the snapshot of it last shown.
const sections = new Map();

// onAction(model, action, version, button) runs when an action's button is pressed.
export function render(snapshot, onAction) {
  updated.textContent =
    `Updated ${clock(snapshot.at)} · routing revision ${snapshot.routing_revision}` +
    ` · every ${snapshot.push_s} s and at each change`;
  const placeholder = models.querySelector(':scope > .placeholder');
  if (placeholder) placeholder.remove();
  const seen = new Set();
  for (const model of snapshot.models || []) {
    seen.add(model.model);
    remember(model, snapshot.at);
    renderModel(model, onAction);
  }
  for (const [name, parts] of sections) {
    if (!seen.has(name)) {
      parts.root.remove();
      sections.delete(name);
      forget(name);
    }
  }
  if (sections.size === 0) {
    models.replaceChildren(make('p', 'placeholder', 'No model is hosted or routed now.'));
  }
}

// A version's route (state, weight) as the last snapshot showed it.
export function shownRoute(model, version) {
  const parts = sections.get(model);
  const rollout = parts && parts.shown ? parts.shown.rollout : null;
  return rollout ? rollout.versions.find((v) => v.version === version) || null : null;
}

function sectionOf(name) {
  let parts = sections.get(name);
  if (parts) return parts;
  const root = make('section', 'panel model');
  root.dataset.model = name;
  const head = make('div', 'model-head');
  const meta = make('p', 'model-meta');
  head.append(make('h2', null, name), meta);
  parts = {
    root,
    meta,
    actions: make('div', 'actions'),
    actionsDrawn: null,
    shown: null,
    versions: make('table', 'versions'),
    figures: make('table', 'figures'),
    charts: make('div', 'charts'),
    audit: make('ol', 'audit'),
  };
  root.append(
    head,
    parts.actions,
    make('h3', null, 'Versions'),
    parts.versions,
    make('h3', null, 'Live figures (the window of every replica)'),
    parts.figures,
    parts.charts,
    make('h3', null, 'Audit trail (newest first)'),
    parts.audit,
  );
  models.append(root);
  sections.set(name, parts);
  return parts;
}

// The table's routes; without a table, each version the backends host, once (several
// backends may host it).
function routes(model) {
  if (model.rollout && Array.isArray(model.rollout.versions)) return model.rollout.versions;
  const hosted = new Map();
  for (const v of model.hosted || []) {
    if (!hosted.has(v.version)) {
      hosted.set(v.version, { version: v.version, state: v.default ? 'default' : 'hosted', weight: null });
    }
  }
  return [...hosted.values()];
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

function renderModel(model, onAction) {
  const parts = sectionOf(model.model);
  parts.shown = model;
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
  renderActions(parts, model, onAction);
  renderVersions(parts.versions, model);
  renderFigures(parts.figures, model);
  renderCharts(parts.charts, model, columns(model));
  renderAudit(parts.audit, model.audit || []);
}

function headRow(titles) {
  const row = make('tr');
  for (const title of titles) {
    const cell = make('th', null, title);
    cell.scope = 'col';
    row.append(cell);
  }
  const head = make('thead');
  head.append(row);
  return head;
}

function renderVersions(table, model) {
  const list = routes(model);
  const canaryWeight = list
    .filter((r) => r.state === 'canary')
    .reduce((sum, r) => sum + (r.weight || 0), 0);
  const hosted = new Map((model.hosted || []).map((v) => [v.version, v]));
  const body = make('tbody');
  for (const route of list) {
    const row = make('tr', `state-${String(route.state).replace(/[^a-z]/g, '')}`);
    row.dataset.version = route.version;
    row.dataset.state = route.state;
    let weight = '–';
    if (route.state === 'canary') weight = `${number(route.weight)}%`;
    else if (route.state === 'stable') weight = `${number(100 - canaryWeight)}% (the rest)`;
    const host = hosted.get(route.version);
    row.append(
      make('td', 'version', route.version),
      make('td', 'state', route.state),
      make('td', 'weight number', weight),
      make('td', 'hosted', host ? host.status : 'not hosted'),
      make('td', 'verdict', (model.guardrails || {})[route.version] || ''),
    );
    body.append(row);
  }
  table.replaceChildren(headRow(['Version', 'State', 'Weight', 'Backends', 'Guardrails']), body);
}

function labelShares(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return '–';
  return entries.map(([label, share]) => `${label} ${percent(share, 0)}`).join(' · ');
}

function agreementText(agreement) {
  if (!agreement) return '–';
  const value = typeof agreement.value === 'number' ? number(agreement.value) : '–';
  const range =
    typeof agreement.low === 'number' && typeof agreement.high === 'number'
      ? ` [${number(agreement.low)}, ${number(agreement.high)}]`
      : '';
  const parts = [`${agreement.kind || 'agreement'} ${value}${range} over ${agreement.n ?? 0}`];
  if (agreement.failed) parts.push(`${agreement.failed} failed`);
  if (agreement.dropped) parts.push(`${agreement.dropped} dropped`);
  if (typeof agreement.shadow_latency_ms === 'number') {
    parts.push(`latency ${ms(agreement.shadow_latency_ms)} vs ${ms(agreement.stable_latency_ms)}`);
  }
  return parts.join(' · ');
}

function experimentText(result) {
  let text;
  if (result.kind === 'labels') {
    text = labelShares(result.shares);
  } else {
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
  for (const q of ['p50', 'p95', 'p99']) {
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
  table.replaceChildren(headRow(['Figure', ...names]), body);
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

function renderActions(parts, model, onAction) {
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
  const button = (action, text, version, className) => {
    const node = make('button', className || 'secondary', text);
    node.type = 'button';
    node.dataset.action = action;
    if (version) node.dataset.version = version;
    node.addEventListener('click', () => onAction(model.model, action, version, node));
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
