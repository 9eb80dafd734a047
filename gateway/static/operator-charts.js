// The operator dashboard's charts: each model's last snapshots, kept in the page, drawn
// as small SVG lines, one per version.
import { make, number } from './operator-dom.js';

// Snapshots kept per model (at one a second, two minutes).
const HISTORY = 120;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 240;
const HEIGHT = 56;
const SERIES_CLASSES = 6;

const CHARTS = [
  { metric: 'requests', title: 'Requests in the window', pick: (f) => f.requests },
  { metric: 'error-rate', title: 'Error rate', pick: (f) => f.error_rate },
  { metric: 'p95', title: 'Latency p95 (ms)', pick: (f) => (f.latency_ms || {}).p95 },
  { metric: 'ttft-p95', title: 'Time to first token p95 (ms)', pick: (f) => (f.ttft_ms || {}).p95 },
];

const histories = new Map();

// Keep a model's live figures of one snapshot, dropping the oldest past HISTORY.
export function remember(model, at) {
  let kept = histories.get(model.model);
  if (!kept) {
    kept = [];
    histories.set(model.model, kept);
  }
  kept.push({ at, live: model.live || {} });
  if (kept.length > HISTORY) kept.splice(0, kept.length - HISTORY);
}

export function forget(name) {
  histories.delete(name);
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// One figure: a line per version (the newest snapshot at the right edge), its scale's top
// and a legend. A chart with no figures at all (no stream ever counted) is left out.
function chart(spec, kept, names) {
  const series = names.map((name) =>
    kept.map((entry) => {
      const figures = entry.live[name];
      const value = figures ? spec.pick(figures) : null;
      return typeof value === 'number' ? value : null;
    }),
  );
  const values = series.flat().filter((v) => v !== null);
  if (!values.length) return null;
  const top = Math.max(...values);
  const figure = make('figure', 'chart');
  figure.dataset.metric = spec.metric;
  const drawing = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: 'img',
    'aria-label': `${spec.title}, last ${kept.length} snapshots`,
  });
  drawing.append(svg('rect', { class: 'frame', x: 0, y: 0, width: WIDTH, height: HEIGHT }));
  const step = WIDTH / (HISTORY - 1);
  const offset = HISTORY - kept.length;
  series.forEach((points, index) => {
    const drawn = [];
    points.forEach((value, i) => {
      if (value === null) return;
      const x = (offset + i) * step;
      const y = HEIGHT - 3 - (top > 0 ? (value / top) * (HEIGHT - 6) : 0);
      drawn.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (!drawn.length) return;
    const line = svg('polyline', {
      class: `series series-${index % SERIES_CLASSES}`,
      points: drawn.join(' '),
    });
    line.dataset.version = names[index];
    drawing.append(line);
  });
  const caption = make('figcaption');
  caption.append(make('span', 'chart-title', `${spec.title} (top ${number(top)})`));
  names.forEach((name, index) => {
    caption.append(' ', make('span', `legend series-${index % SERIES_CLASSES}`, name));
  });
  figure.append(drawing, caption);
  return figure;
}

// The charts of a model, its versions (``names``) side by side.
export function renderCharts(box, model, names) {
  const kept = histories.get(model.model) || [];
  box.replaceChildren(...CHARTS.map((spec) => chart(spec, kept, names)).filter(Boolean));
}
