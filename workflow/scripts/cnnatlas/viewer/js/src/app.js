// The atlas page: every 2-D map of a run in one WebGL scatter plot (regl-scatterplot).
// Menus pick the map; the side panel shows its metrics, the legend, the hovered and the
// pinned image; a lasso, a box or a search selects points into an image grid. The view
// lives in the URL hash. Data strings only ever reach the DOM as text.

import createScatterplot from 'regl-scatterplot';
import { Rows, block, readHeader } from './data.js';
import { GLYPHS, clear, csvField, el, extent, fmt, option, sig, viridis } from './util.js';

const H = readHeader();
const N = H.n;
const $ = (id) => document.getElementById(id);
const GRID_MAX = 400; // thumbnails drawn in the selection grid; counts cover every point

const state = {
  model: null, ckpt: null, layer: null, method: null, variant: null, colour: 'label',
  hidden: new Set(), selection: [], pin: -1, query: '', tool: 'pan', view: '', filters: {},
  contours: false, clusters: false,
};
const live = {
  map: null, xy: null, norm: null, points: null, run: null, mode: null, drawn: false,
  neighbours: null, mapNeighbours: null, lasso: null, restoring: false, drawing: Promise.resolve(),
  queue: Promise.resolve(), press: null, boxes: 0, hover: -1, grid: null, down: null,
};
// paths: read by the part (Rows), as a point is shown; every part once a search needs them
let classes; let paths; let labels; let meta = {};

// ---- data ------------------------------------------------------------------------------

function mapsWhere(f) {
  return H.maps.filter((m) => Object.entries(f).every(([k, v]) => v == null || m[k] === v));
}
const variantOf = (m) => m.variant;
const unique = (xs) => [...new Set(xs)];

async function loadRun(model, ckpt) {
  const r = H.runs[`${model}/${ckpt}`];
  const [pred, predOut, confidence, correct] = await Promise.all(
    [r.pred, r.pred_out, r.confidence, r.correct].map((b) => block(H, b)),
  );
  // the top-k of a point is read with the part of the table that holds it
  const topkIds = new Rows(H, r.topk_ids, r.k);
  const topkProbs = new Rows(H, r.topk_probs, r.k);
  // pred is the dataset class (colours, legend); predOut and topkIds index names, the
  // model outputs' own names (an output of no dataset class included)
  const names = Object.keys(r.scores || {});
  const values = await Promise.all(names.map((name) => block(H, r.scores[name])));
  const scores = Object.fromEntries(names.map((name, j) => [name, values[j]]));
  return { pred, predOut, confidence, correct, topkIds, topkProbs, scores, names: r.names, k: r.k };
}

// Coordinates scaled into [-1, 1] with the aspect kept (regl-scatterplot draws in NDC).
function normalise(xy) {
  let [x0, x1] = [Infinity, -Infinity];
  let [y0, y1] = [Infinity, -Infinity];
  for (let i = 0; i < N; i++) {
    const x = xy[2 * i]; const y = xy[2 * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x;
    if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const s = (Math.max(x1 - x0, y1 - y0) / 2) * 1.05 || 1;
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, s };
}
const toGl = (n, x, y) => [(x - n.cx) / n.s, (y - n.cy) / n.s];
const toData = (n, gx, gy) => [gx * n.s + n.cx, gy * n.s + n.cy];

// ---- colour modes ----------------------------------------------------------------------

function modes() {
  const out = ['label', 'pred', 'correct', 'confidence'];
  return out.concat(Object.keys(live.run ? live.run.scores : {}), Object.keys(H.metadata));
}

// The per-image numbers of the shown checkpoint the page colours and filters by:
// confidence, the predictions' scores (loss, entropy, margin) and numeric metadata.
function numericFields() {
  const out = ['confidence', ...Object.keys(live.run.scores)];
  for (const [name, m] of Object.entries(meta)) if (m.kind === 'number') out.push(name);
  return out;
}

function valuesOf(name) {
  if (name === 'confidence') return live.run.confidence;
  if (live.run.scores[name]) return live.run.scores[name];
  return meta[name] && meta[name].kind === 'number' ? meta[name].values : null;
}

function colourMode(name) {
  const run = live.run;
  if (name === 'label' || name === 'pred') {
    return { kind: 'category', names: classes, colours: H.class_colours,
      codes: name === 'label' ? labels : run.pred, shapes: true };
  }
  if (name === 'correct') {
    const codes = new Uint8Array(N);
    for (let i = 0; i < N; i++) codes[i] = run.correct[i] ? 0 : 1;
    return { kind: 'category', names: H.correct_names, colours: H.correct_colours, codes };
  }
  if (name === 'confidence') return { kind: 'number', values: run.confidence };
  if (run.scores[name]) return { kind: 'number', values: run.scores[name] };
  const m = meta[name];
  if (m.kind === 'number') return { kind: 'number', values: m.values };
  return { kind: 'category', names: m.names, colours: m.colours, codes: m.codes };
}

// ---- the plot --------------------------------------------------------------------------

const canvas = $('atlas-canvas');
const overlay = $('atlas-overlay');
const pointSize = Math.max(1.5, Math.min(8, 160 / Math.sqrt(N)));
// Dark mode follows the system setting; the points keep their colours.
const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');
const background = () => (darkQuery.matches ? '#161616' : '#ffffff');
const ink = () => (darkQuery.matches ? '#ffffff' : '#000000');
const scatterplot = createScatterplot({
  canvas,
  pointSize,
  pointSizeSelected: 1,
  pointOutlineWidth: 1,
  backgroundColor: background(),
  pointColorHover: '#000000',
  opacityInactiveScale: N > 2000 ? 0.25 : 0.4,
  // Above some thousands of points overlapping discs hide each other: opacity then follows
  // the local density and the zoom, so dense clusters read as density, not as a blob.
  opacityBy: N > 20000 ? 'density' : null,
  lassoMinDelay: 5,
  lassoMinDist: 2,
  lassoColor: '#d62728',
  deselectOnDblClick: false,
  syncEvents: true,
  // the spatial index (for the lasso) built in the page: handing a million points to a
  // worker costs the page more than building it
  spatialIndexUseWorker: false,
});

function pointsFor(mode) {
  const pts = new Array(N);
  let lo = 0; let span = 1;
  if (mode.kind === 'number') {
    const [a, b] = extent(mode.values);
    lo = Number.isFinite(a) ? a : 0;
    span = Number.isFinite(b - a) && b > a ? b - a : 1;
  }
  const xy = live.xy;
  for (let i = 0; i < N; i++) {
    const [gx, gy] = toGl(live.norm, xy[2 * i], xy[2 * i + 1]);
    let v;
    if (mode.kind === 'number') {
      const raw = mode.values[i];
      v = Number.isFinite(raw) ? Math.min(0.999999, Math.max(0, (raw - lo) / span)) : 0;
    } else v = mode.codes[i];
    const shape = mode.shapes ? mode.codes[i] % GLYPHS.length : 0;
    pts[i] = [gx, gy, v, shape];
  }
  mode.range = [lo, lo + span];
  return pts;
}

// One draw at a time, in call order: regl-scatterplot ignores a draw while another runs,
// which left two quick legend clicks with the first click's points under the second's
// legend. Each queued draw reads the state when its turn comes.
function draw(transition = false) {
  const turn = live.queue.then(() => drawNow(transition));
  live.queue = turn.catch(() => {});
  return turn;
}

async function drawNow(transition) {
  const mode = colourMode(state.colour);
  live.mode = mode;
  scatterplot.set({
    colorBy: 'valueA',
    pointColor: mode.kind === 'number' ? viridis() : mode.colours,
  });
  live.points = pointsFor(mode);
  const visible = visibleIndices(mode);
  const opts = {
    zDataType: mode.kind === 'number' ? 'continuous' : 'categorical',
    wDataType: 'categorical',
    filter: visible.length < N ? visible : undefined,
  };
  if (transition && live.drawn) Object.assign(opts, { transition: true, transitionDuration: 700 });
  live.drawing = scatterplot.draw(live.points, opts);
  await live.drawing;
  // each call redraws every point (seconds at a million without a GPU): only when needed
  if (visible.length === N && live.filtered) scatterplot.unfilter({ preventEvent: true });
  live.filtered = visible.length < N;
  live.grid = pointGrid(live.points, visible);
  live.drawn = true;
  renderLegend();
  applySelection(state.selection, true);
  drawOverlay();
  await drawDensity();
}

// The points drawn: not in a hidden class, and inside every range filter.
function visibleIndices(mode) {
  const hide = mode.kind === 'category' && state.hidden.size > 0;
  const ranges = activeFilters();
  if (!hide && !ranges.length) return [...Array(N).keys()];
  const out = [];
  for (let i = 0; i < N; i++) {
    if (hide && state.hidden.has(mode.names[mode.codes[i]])) continue;
    if (inRanges(ranges, i)) out.push(i);
  }
  return out;
}

function activeFilters() {
  const out = [];
  for (const [name, [lo, hi]] of Object.entries(state.filters)) {
    const v = valuesOf(name);
    if (v) out.push([v, lo, hi]);
  }
  return out;
}

function inRanges(ranges, i) {
  for (const [v, lo, hi] of ranges) if (!(v[i] >= lo && v[i] <= hi)) return false;
  return true;
}

// ---- histograms and range filters ------------------------------------------------------
// One small histogram per number: grey, the points of the shown classes that pass the
// other filters; blue, those inside this one's range too; orange, the selected ones.
// Dragging across a histogram sets its range (the map keeps the points inside every
// range); a click without a drag clears it.
const BINS = 24;

// Each field's bins, what the other filters keep and its extent, computed once per state of
// the filters, hidden classes and checkpoint: a new selection only counts its own points.
function histograms() {
  const key = JSON.stringify([live.runKey, state.colour, [...state.hidden], state.filters]);
  if (live.histograms && live.histograms.key === key) return live.histograms.fields;
  const mode = live.mode;
  const hide = mode.kind === 'category' && state.hidden.size > 0;
  const names = numericFields();
  const ranges = activeFilters();
  const index = new Map(names.map((name, f) => [name, f]));
  const rangeField = Object.keys(state.filters).filter((name) => valuesOf(name)).map((name) => (index.has(name) ? index.get(name) : -1));
  // per point: how many ranges it fails (255: its class is hidden), and the last it fails
  const fails = new Uint8Array(N);
  const failed = new Int16Array(N);
  for (let i = 0; i < N; i++) {
    if (hide && state.hidden.has(mode.names[mode.codes[i]])) { fails[i] = 255; continue; }
    for (let r = 0; r < ranges.length; r++) {
      const [v, lo, hi] = ranges[r];
      if (!(v[i] >= lo && v[i] <= hi)) { fails[i]++; failed[i] = rangeField[r]; }
    }
  }
  const fields = [];
  names.forEach((name, f) => {
    const values = valuesOf(name);
    live.extents = live.extents && live.extents.run === live.runKey ? live.extents : { run: live.runKey };
    if (!(name in live.extents)) live.extents[name] = extent(values, true);
    const [lo, hi] = live.extents[name];
    if (!(hi >= lo)) return;
    const span = hi > lo ? hi - lo : 1;
    const range = state.filters[name];
    const base = new Uint32Array(BINS); const inside = new Uint32Array(BINS);
    const bins = new Int8Array(N).fill(-1);
    for (let i = 0; i < N; i++) {
      if (fails[i] && !(fails[i] === 1 && failed[i] === f)) continue;
      const v = values[i];
      if (!Number.isFinite(v)) continue;
      const b = Math.min(BINS - 1, Math.floor(((v - lo) / span) * BINS));
      bins[i] = b;
      base[b]++;
      if (!range || (v >= range[0] && v <= range[1])) inside[b]++;
    }
    fields.push({ name, lo, hi, span, range, base, inside, bins });
  });
  live.histograms = { key, fields };
  return fields;
}

function selectedBins(bins) {
  const sel = new Uint32Array(BINS);
  for (const i of state.selection) if (bins[i] >= 0) sel[bins[i]]++;
  return sel;
}

function renderFilters() {
  const box = clear($('atlas-filters'));
  if (!live.run || !live.mode) return;
  for (const { name, lo, hi, span, range, base, inside, bins } of histograms()) {
    const sel = selectedBins(bins);
    const row = el('div', { class: 'filter', 'data-field': name });
    const head = el('div', { class: 'filter-head' });
    head.appendChild(el('span', { class: 'filter-name' }, name));
    head.appendChild(el('span', { class: 'filter-range' }, range
      ? `${fmt(range[0])} … ${fmt(range[1])}` : `${fmt(lo)} … ${fmt(hi)}`));
    if (range) {
      const x = el('button', { class: 'filter-clear', title: 'remove this filter' }, 'clear');
      x.addEventListener('click', () => setFilter(name, null));
      head.appendChild(x);
    }
    row.appendChild(head);
    const c = el('canvas', { class: 'histogram', width: '240', height: '34' });
    row.appendChild(c);
    drawHistogram(c, base, inside, sel, range ? [(range[0] - lo) / span, (range[1] - lo) / span] : null);
    brush(c, (a, b) => setFilter(name, [lo + a * span, lo + b * span]), () => setFilter(name, null));
    box.appendChild(row);
  }
}

function drawHistogram(c, base, inside, sel, range) {
  const ctx = c.getContext('2d');
  const w = c.width; const h = c.height; const bw = w / BINS;
  let top = 1;
  for (const n of base) top = Math.max(top, n);
  ctx.clearRect(0, 0, w, h);
  const bars = (counts, colour) => {
    ctx.fillStyle = colour;
    counts.forEach((n, b) => {
      if (!n) return;
      // square-root heights: a bin of a few images still shows beside one of hundreds
      const bh = Math.max(1, Math.sqrt(n / top) * (h - 2));
      ctx.fillRect(b * bw + 0.5, h - bh, bw - 1, bh);
    });
  };
  bars(base, '#d0d0d0');
  bars(inside, '#4c78a8');
  bars(sel, '#f58518');
  if (range) {
    ctx.strokeStyle = '#000';
    ctx.strokeRect(range[0] * w + 0.5, 0.5, Math.max(1, (range[1] - range[0]) * w - 1), h - 1);
  }
}

// A drag across `c` reports its span as fractions of the width; a click clears.
function brush(c, onRange, onClear) {
  let from = null;
  const at = (e) => {
    const r = c.getBoundingClientRect();
    return Math.max(0, Math.min(1, (e.clientX - r.left) / r.width));
  };
  c.addEventListener('pointerdown', (e) => { from = at(e); c.setPointerCapture(e.pointerId); });
  c.addEventListener('pointerup', (e) => {
    if (from === null) return;
    const to = at(e);
    const a = Math.min(from, to); const b = Math.max(from, to);
    from = null;
    if ((b - a) * c.getBoundingClientRect().width < 3) onClear(); else onRange(a, b);
  });
}

function setFilter(name, range) {
  if (range) state.filters[name] = range.map((v) => Number(v.toPrecision(6)));
  else delete state.filters[name];
  draw().then(writeHash);
}

// ---- menus -----------------------------------------------------------------------------

function fill(id, values, current, label = (v) => v) {
  const s = clear($(id));
  for (const v of values) option(s, v, label(v));
  const value = values.includes(current) ? current : values[0];
  s.value = value;
  return value;
}

function syncMenus() {
  state.model = fill('atlas-model', unique(H.maps.map((m) => m.model)), state.model);
  const m1 = mapsWhere({ model: state.model });
  state.ckpt = fill('atlas-ckpt', unique(m1.map((m) => m.ckpt)), state.ckpt);
  const m2 = mapsWhere({ model: state.model, ckpt: state.ckpt });
  state.layer = fill('atlas-layer', unique(m2.map((m) => m.layer)), state.layer);
  const m3 = mapsWhere({ model: state.model, ckpt: state.ckpt, layer: state.layer });
  state.method = fill('atlas-method', unique(m3.map((m) => m.method)), state.method);
  const m4 = m3.filter((m) => m.method === state.method);
  state.variant = fill('atlas-variant', unique(m4.map(variantOf)), state.variant);
  return m4.find((m) => variantOf(m) === state.variant);
}

async function showMap({ transition = false } = {}) {
  const previous = live.map;
  const map = syncMenus();
  const runChanged = !live.run || live.runKey !== `${map.model}/${map.ckpt}`;
  const xy = block(H, map.xy); // read while the checkpoint's predictions are
  xy.catch(() => {});
  if (runChanged) {
    live.run = await loadRun(map.model, map.ckpt);
    live.runKey = `${map.model}/${map.ckpt}`;
  }
  // the colours include the checkpoint's scores, known once its predictions are read
  state.colour = fill('atlas-colour', modes(), state.colour);
  live.map = map;
  live.xy = await xy;
  // Aligned maps of one layer share one frame, so the points move only as much as they
  // moved between the checkpoints; other maps are framed on their own.
  live.norm = map.frame ? map.frame : normalise(live.xy);
  live.neighbours = null;
  live.mapNeighbours = null;
  const animate = transition && previous && previous.group && previous.group === map.group;
  // another map starts from the whole frame: the zoom of the last one means nothing here
  if (!animate && previous && previous !== map) scatterplot.reset();
  await draw(animate);
  renderMetrics(map);
  // only a pin shows the layer's neighbours: they are read after the points are drawn
  live.neighboursRead = new Promise((r) => { setTimeout(r, 0); }).then(() => readNeighbours(map));
  if (state.pin >= 0) await renderPin();
  writeHash();
}

// A point's feature-space neighbours are read with the part of the table that holds it.
async function readNeighbours(map) {
  const nb = H.neighbors[`${map.model}/${map.ckpt}/${map.layer}`];
  if (live.map !== map) return;
  live.neighbours = nb ? {
    k: nb.k, ids: new Rows(H, nb, nb.k), dist: nb.distances ? new Rows(H, nb.distances, nb.k) : null,
  } : null;
}

function renderMetrics(map) {
  const box = clear($('atlas-metrics'));
  box.appendChild(el('h3', {}, 'This map'));
  const dl = el('dl');
  const row = (k, v) => { dl.appendChild(el('dt', {}, k)); dl.appendChild(el('dd', {}, v)); };
  row('map', `${map.model} ${map.ckpt} ${map.layer}: ${map.method} ${map.variant}`);
  row('points', N.toLocaleString('en'));
  const m = map.metrics;
  if (m) {
    row('kNN accuracy, features', fmt(m.knn_features));
    row('kNN accuracy, map', fmt(m.knn_map));
    row('trustworthiness', fmt(m.trustworthiness));
    row('continuity', fmt(m.continuity));
    row('10-NN kept in the map', fmt(m.neighbor_preservation));
    row('seed stability', fmt(m.seed_stability));
    box.appendChild(dl);
    box.appendChild(el('p', { class: 'diagnosis', id: 'atlas-diagnosis' }, m.diagnosis));
  } else {
    box.appendChild(dl);
    box.appendChild(el('p', { class: 'diagnosis', id: 'atlas-diagnosis' },
      map.note || 'no metrics were computed for this map'));
  }
  // An aligned map's frame is shared by its checkpoints: one checkpoint's points may fill
  // a small part of it (an early PCA map, say) and look like one dot.
  const [w, h] = spread();
  if (map.frame && Math.max(w, h) < 0.2) {
    box.appendChild(el('p', { class: 'diagnosis', id: 'atlas-small' },
      `this checkpoint's points fill ${Math.round(100 * Math.max(w, h) / 2)}% of the frame the checkpoints share: press fit (or 0) to zoom to them`));
  }
}

// Width and height of the points in GL units (the frame is 2 wide).
function spread() {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const p of live.points || []) {
    if (p[0] < x0) x0 = p[0]; if (p[0] > x1) x1 = p[0];
    if (p[1] < y0) y0 = p[1]; if (p[1] > y1) y1 = p[1];
  }
  return [x1 - x0, y1 - y0];
}

// Zoom to the visible points (fit), or back to the whole frame when there are none.
function fitView() {
  const visible = live.mode ? visibleIndices(live.mode) : [];
  if (!visible.length) { scatterplot.reset(); writeHash(); return Promise.resolve(); }
  return scatterplot.zoomToPoints(visible, { padding: 0.1 }).then(writeHash);
}

// Box selection from the press to the release (regl-scatterplot's rectangle starts at
// the first pointer move after the press, and a fast drag lost the points it crossed).
function boxSelect(a, b) {
  const [x0, x1] = [Math.min(a[0], b[0]), Math.max(a[0], b[0])];
  const [y0, y1] = [Math.min(a[1], b[1]), Math.max(a[1], b[1])];
  const out = [];
  for (const i of visibleIndices(live.mode)) {
    const p = scatterplot.getScreenPosition(i);
    if (p && p[0] > x0 && p[0] < x1 && p[1] > y0 && p[1] < y1) out.push(i);
  }
  live.lasso = null;
  applySelection(out);
  live.boxes += 1;
  document.body.dataset.boxes = String(live.boxes);
}

function renderLegend() {
  const box = clear($('atlas-legend'));
  const mode = live.mode;
  box.appendChild(el('h3', {}, `colour: ${state.colour}`));
  if (mode.kind === 'number') {
    const bar = el('div', { class: 'colourbar' });
    bar.style.background = `linear-gradient(to right, ${viridis(11).join(',')})`;
    box.appendChild(bar);
    box.appendChild(el('div', { class: 'range' }, `${fmt(mode.range[0])} … ${fmt(mode.range[1])}`));
    return;
  }
  const counts = new Map();
  for (let i = 0; i < N; i++) counts.set(mode.codes[i], (counts.get(mode.codes[i]) || 0) + 1);
  const list = el('ul', { class: 'legend' });
  mode.names.forEach((name, k) => {
    if (!counts.has(k)) return;
    const li = el('li', { 'data-code': String(k) });
    if (state.hidden.has(name)) li.classList.add('hidden');
    const glyph = el('span', { class: 'glyph' }, mode.shapes ? GLYPHS[k % GLYPHS.length] : GLYPHS[0]);
    glyph.style.color = mode.colours[k % mode.colours.length];
    const label = el('span', { class: 'name', title: 'click: hide or show' }, name);
    const only = el('button', { class: 'only', title: 'show this one only' }, 'only');
    li.append(glyph, label, el('span', { class: 'count' }, String(counts.get(k))), only);
    label.addEventListener('click', () => toggleHidden(name));
    glyph.addEventListener('click', () => toggleHidden(name));
    only.addEventListener('click', () => isolate(name));
    list.appendChild(li);
  });
  box.appendChild(list);
  const all = el('button', { id: 'atlas-show-all' }, 'show all');
  all.addEventListener('click', () => { state.hidden.clear(); draw(); writeHash(); });
  box.appendChild(all);
}

function toggleHidden(name) {
  if (state.hidden.has(name)) state.hidden.delete(name); else state.hidden.add(name);
  draw().then(writeHash);
}

function isolate(name) {
  state.hidden = new Set(live.mode.names.filter((n) => n !== name));
  draw().then(writeHash);
}

// ---- hover -----------------------------------------------------------------------------

// What describe(i) reads by the part: its path and top-k.
function readPoint(i) {
  const run = live.run;
  return Promise.all([paths.load([i]), run.topkIds.load([i]), run.topkProbs.load([i])]);
}
const pointRead = (i) => paths.has(i) && live.run.topkIds.has(i) && live.run.topkProbs.has(i);

function describe(i) {
  const run = live.run;
  const topk = [];
  const ids = run.topkIds.get(i); const probs = run.topkProbs.get(i);
  for (let j = 0; j < run.k; j++) topk.push(`${run.names[ids[j]]} ${fmt(probs[j])}`);
  const lines = [
    paths.get(i),
    `image_id: ${i}`,
    `true: ${classes[labels[i]]}`,
    `pred: ${run.names[run.predOut[i]]}${run.correct[i] ? '' : '  (misclassified)'}`,
    `confidence: ${fmt(run.confidence[i])}`,
    `top-${run.k}: ${topk.join(', ')}`,
  ];
  for (const name of Object.keys(meta)) {
    const m = meta[name];
    lines.push(`${name}: ${m.kind === 'number' ? fmt(m.values[i], 4) : m.names[m.codes[i]]}`);
  }
  return lines.join('\n');
}

// A thumbnail cut from the shared sheets: a div showing one cell of a sheet as background.
// The sheet is loaded only when a thumbnail of it is first shown; if it cannot be loaded
// the cell says so (and which file it looked for) instead of staying blank.
const sheetState = new Map();
function thumbnail(i, zoom = H.thumbs ? H.thumbs.zoom : 1) {
  const T = H.thumbs;
  if (!T) return el('div', { class: 'thumb missing' }, 'no thumbnails in this run');
  const px = T.size * zoom;
  const sheet = Math.floor(i / T.per_sheet);
  const cell = i % T.per_sheet;
  const url = T.prefix + T.sheets[sheet];
  const div = el('div', { class: 'thumb', 'data-image-id': String(i) });
  div.style.width = `${px}px`;
  div.style.height = `${px}px`;
  const fail = () => {
    div.classList.add('missing');
    div.style.backgroundImage = 'none';
    div.textContent = `thumbnail sheet ${url} could not be loaded: keep the results folder's thumbnails/ beside this page`;
  };
  const show = () => {
    div.style.backgroundImage = `url("${encodeURI(url)}")`;
    div.style.backgroundSize = `${T.columns * px}px auto`;
    div.style.backgroundPosition = `${-(cell % T.columns) * px}px ${-Math.floor(cell / T.columns) * px}px`;
  };
  let st = sheetState.get(url);
  if (!st) {
    st = new Promise((resolve) => {
      const probe = new Image();
      probe.onload = () => resolve(true);
      probe.onerror = () => resolve(false);
      probe.src = encodeURI(url);
    });
    sheetState.set(url, st);
  }
  st.then((ok) => { if (ok) show(); else fail(); div.dataset.loaded = ok ? '1' : '0'; });
  return div;
}

// ---- hit test and hover ------------------------------------------------------------------
// regl-scatterplot colours a hovered point by redrawing every point (a tenth of a second
// at 100,000 points in a software renderer). The page finds the point under the cursor
// itself, in a grid of the drawn points, and marks it on a 2-D canvas above the WebGL one:
// hovering and pinning never redraw the points.

// Map (GL) coordinates to canvas pixels and back: regl-scatterplot's projection · view ·
// model, written out for a 2-D camera.
function transform() {
  const v = scatterplot.get('cameraView');
  const r = canvas.getBoundingClientRect();
  const ar = scatterplot.get('aspectRatio');
  const va = r.width / r.height;
  const t = {
    a: (v[0] * ar) / va, b: v[4] / va, c: v[12] / va,
    d: v[1] * ar, e: v[5], f: v[13], w: r.width, h: r.height,
  };
  t.det = t.a * t.e - t.b * t.d;
  return t;
}
const toScreen = (t, x, y) => [
  (t.w * (t.a * x + t.b * y + t.c + 1)) / 2,
  t.h * (0.5 - (t.d * x + t.e * y + t.f) / 2),
];
function fromScreen(t, sx, sy) {
  const u = (2 * sx) / t.w - 1 - t.c;
  const v = 1 - (2 * sy) / t.h - t.f;
  return [(t.e * u - t.b * v) / t.det, (t.a * v - t.d * u) / t.det];
}

// The drawn points bucketed into a square grid (a counting sort): a hit test reads the
// few cells around the cursor, at a million points too.
function pointGrid(points, visible) {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const i of visible) {
    const [x, y] = points[i];
    if (x < x0) x0 = x; if (x > x1) x1 = x;
    if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const g = Math.max(1, Math.min(1024, Math.round(Math.sqrt(visible.length / 2))));
  const sx = g / ((x1 - x0) || 1); const sy = g / ((y1 - y0) || 1);
  const n = visible.length;
  const cells = new Int32Array(n);
  const start = new Int32Array(g * g + 1);
  for (let k = 0; k < n; k++) {
    const p = points[visible[k]];
    const cx = Math.min(g - 1, Math.floor((p[0] - x0) * sx));
    const cy = Math.min(g - 1, Math.floor((p[1] - y0) * sy));
    cells[k] = cy * g + cx;
    start[cells[k] + 1]++;
  }
  for (let c = 0; c < g * g; c++) start[c + 1] += start[c];
  const fill = start.slice(0, g * g);
  const items = new Int32Array(n);
  for (let k = 0; k < n; k++) items[fill[cells[k]]++] = visible[k];
  return { g, x0, y0, sx, sy, start, items };
}

// The drawn point nearest to a canvas pixel, within `radius` pixels; -1 if none.
function pointAt(px, py, radius = Math.max(6, pointSize / 2 + 4)) {
  const grid = live.grid;
  if (!grid || !live.drawn) return -1;
  const t = transform();
  const [gx, gy] = fromScreen(t, px, py);
  const [ex, ey] = fromScreen(t, px + radius, py - radius);
  const rx = Math.abs(ex - gx); const ry = Math.abs(ey - gy);
  const clamp = (c) => Math.max(0, Math.min(grid.g - 1, c));
  const cx0 = clamp(Math.floor((gx - rx - grid.x0) * grid.sx));
  const cx1 = clamp(Math.floor((gx + rx - grid.x0) * grid.sx));
  const cy0 = clamp(Math.floor((gy - ry - grid.y0) * grid.sy));
  const cy1 = clamp(Math.floor((gy + ry - grid.y0) * grid.sy));
  let best = -1; let bestD = radius * radius;
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * grid.g + cx;
      for (let k = grid.start[c]; k < grid.start[c + 1]; k++) {
        const i = grid.items[k];
        const [sx, sy] = toScreen(t, live.points[i][0], live.points[i][1]);
        const d = (sx - px) ** 2 + (sy - py) ** 2;
        if (d < bestD || (d === bestD && i < best)) { bestD = d; best = i; }
      }
    }
  }
  return best;
}

const hoverLayer = $('atlas-hoverlayer');
const tooltip = $('atlas-tooltip');

function sizeLayer(layer) {
  const r = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(r.width * dpr); const h = Math.round(r.height * dpr);
  if (layer.width !== w || layer.height !== h) { layer.width = w; layer.height = h; }
  const ctx = layer.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, r.width, r.height);
  return ctx;
}

function ring(ctx, t, j, r, colour, width) {
  const [x, y] = toScreen(t, live.points[j][0], live.points[j][1]);
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.stroke();
}

// The hovered point: ringed on its layer, named in a tooltip at the cursor and described
// in the side panel.
function hover(i, at = null) {
  const ctx = sizeLayer(hoverLayer);
  if (i !== live.hover) tellPartner('hover', i);
  live.hover = i;
  if (i < 0 || !live.drawn) { tooltip.hidden = true; return; }
  ring(ctx, transform(), i, pointSize / 2 + 3, ink(), 2);
  if (at) {
    const run = live.run;
    tooltip.textContent = `${classes[labels[i]]} → ${run.names[run.predOut[i]]} ${fmt(run.confidence[i], 2)}`;
    tooltip.hidden = false;
    const r = canvas.getBoundingClientRect();
    tooltip.style.left = `${Math.min(at[0] + 12, r.width - tooltip.offsetWidth - 2)}px`;
    tooltip.style.top = `${Math.max(2, at[1] - tooltip.offsetHeight - 8)}px`;
  }
  if ($('atlas-hover').dataset.imageId !== String(i)) renderHover(i);
}

function renderHover(i) {
  const box = $('atlas-hover');
  if (!pointRead(i)) {
    readPoint(i).then(() => { if (live.hover === i) renderHover(i); });
    return;
  }
  const t0 = performance.now();
  clear(box);
  box.appendChild(thumbnail(i));
  box.appendChild(el('pre', { id: 'atlas-hover-text' }, describe(i)));
  box.dataset.imageId = String(i);
  box.dataset.ms = String(performance.now() - t0);
  box.dataset.shownAt = String(performance.now());
}

// ---- selection -------------------------------------------------------------------------

function applySelection(ids, quiet = false) {
  if (!quiet) tellPartner('select', ids);
  state.selection = ids;
  if (ids.length || scatterplot.get('selectedPoints').length) scatterplot.select(ids, { preventEvent: true });
  renderSelection();
  if (!quiet) writeHash();
}

// ---- confusion matrix ------------------------------------------------------------------
// True class (rows) by predicted class (columns) at the map's checkpoint. A click on a cell
// selects its images; a selection made on the map (lasso, box, search) shows its own
// counts. Above CM_MAX classes the classes with the most misclassified images are shown.
const CM_MAX = 20;

function confusion(ids) {
  const C = classes.length;
  const m = new Uint32Array(C * C);
  const pred = live.run.pred;
  if (ids) for (const i of ids) m[labels[i] * C + pred[i]]++;
  else for (let i = 0; i < N; i++) m[labels[i] * C + pred[i]]++;
  return m;
}

function confusionClasses(all) {
  const C = classes.length;
  const used = [];
  const wrong = new Float64Array(C);
  for (let t = 0; t < C; t++) {
    for (let q = 0; q < C; q++) {
      const n = all[t * C + q];
      if (n && t !== q) { wrong[t] += n; wrong[q] += n; }
    }
  }
  for (let k = 0; k < C; k++) {
    let n = 0;
    for (let j = 0; j < C; j++) n += all[k * C + j] + all[j * C + k];
    if (n) used.push(k);
  }
  if (used.length <= CM_MAX) return { shown: used, of: used.length };
  const top = [...used].sort((a, b) => wrong[b] - wrong[a] || a - b).slice(0, CM_MAX);
  return { shown: top.sort((a, b) => a - b), of: used.length };
}

function renderConfusion() {
  const box = clear($('atlas-confusion'));
  if (!live.run) return;
  const C = classes.length;
  if (!live.confusion || live.confusion.run !== live.runKey) live.confusion = { run: live.runKey, all: confusion(null) };
  const { all } = live.confusion;
  const fromCell = live.cell && live.cell.ids === state.selection;
  const scoped = state.selection.length > 0 && !fromCell;
  const m = scoped ? confusion(state.selection) : all;
  const { shown, of } = confusionClasses(all);
  let note = scoped
    ? `the ${state.selection.length.toLocaleString('en')} selected image${state.selection.length === 1 ? '' : 's'}`
    : `all ${N.toLocaleString('en')} images`;
  note += ` at ${live.map.ckpt}; rows: true class, columns: predicted; a click on a cell selects its images`;
  if (shown.length < of) note += `; the ${shown.length} of ${of} classes with the most misclassified images`;
  box.appendChild(el('p', { class: 'help', id: 'atlas-confusion-scope' }, note));
  const table = el('table', { id: 'atlas-confusion-table' });
  const head = el('tr');
  head.appendChild(el('th', {}, ''));
  for (const q of shown) {
    const th = el('th', { class: 'glyph', title: `predicted ${classes[q]}` }, GLYPHS[q % GLYPHS.length]);
    th.style.color = H.class_colours[q % H.class_colours.length];
    head.appendChild(th);
  }
  table.appendChild(head);
  let top = 1;
  for (const t of shown) for (const q of shown) top = Math.max(top, m[t * C + q]);
  for (const t of shown) {
    const tr = el('tr');
    const th = el('th', { class: 'name', title: `true ${classes[t]}` }, classes[t]);
    tr.appendChild(th);
    for (const q of shown) {
      const n = m[t * C + q];
      const td = el('td', { 'data-true': String(t), 'data-pred': String(q) }, n ? String(n) : '');
      td.title = `true ${classes[t]}, predicted ${classes[q]}: ${n}`;
      if (t === q) td.classList.add('diag');
      if (n) {
        const a = 0.12 + 0.6 * (n / top);
        td.style.background = t === q ? `rgba(60, 120, 200, ${a})` : `rgba(214, 39, 40, ${a})`;
        td.addEventListener('click', () => selectCell(t, q));
      }
      if (fromCell && live.cell.t === t && live.cell.q === q) td.classList.add('on');
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  box.appendChild(table);
}

function selectCell(t, q) {
  const pred = live.run.pred;
  const ids = visibleIndices(live.mode).filter((i) => labels[i] === t && pred[i] === q);
  live.cell = { t, q, ids };
  live.lasso = null;
  applySelection(ids);
}

function renderSelection() {
  renderConfusion();
  renderFilters();
  const t0 = performance.now();
  const ids = state.selection;
  const grid = clear($('atlas-grid'));
  const counts = clear($('atlas-counts'));
  $('atlas-selection').hidden = ids.length === 0;
  $('atlas-sel-summary').textContent = ids.length
    ? `${ids.length.toLocaleString('en')} selected${ids.length > GRID_MAX ? `: the first ${GRID_MAX} are shown` : ''}`
    : '';
  if (!ids.length) { $('atlas-selection').dataset.ms = '0'; return; }
  const run = live.run;
  const byClass = new Map();
  for (const i of ids) {
    const c = byClass.get(labels[i]) || { n: 0, wrong: 0 };
    c.n++; if (!run.correct[i]) c.wrong++;
    byClass.set(labels[i], c);
  }
  const head = el('tr');
  ['', 'class', 'selected', 'misclassified'].forEach((h) => head.appendChild(el('th', {}, h)));
  counts.appendChild(head);
  [...byClass.entries()].sort((a, b) => b[1].n - a[1].n).forEach(([k, c]) => {
    const tr = el('tr', { 'data-class': String(k) });
    const g = el('td', { class: 'glyph' }, GLYPHS[k % GLYPHS.length]);
    g.style.color = H.class_colours[k % H.class_colours.length];
    tr.append(g, el('td', {}, classes[k]), el('td', {}, String(c.n)), el('td', {}, String(c.wrong)));
    counts.appendChild(tr);
  });
  for (const i of ids.slice(0, GRID_MAX)) {
    const fig = el('figure', { 'data-image-id': String(i) });
    if (!run.correct[i]) fig.classList.add('wrong');
    fig.appendChild(thumbnail(i, 1));
    const caption = el('figcaption', {}, `${classes[labels[i]]} → ${run.names[run.predOut[i]]}`);
    fig.appendChild(caption);
    paths.load([i]).then(() => { caption.title = paths.get(i); });
    fig.addEventListener('click', () => pin(i));
    grid.appendChild(fig);
  }
  $('atlas-selection').dataset.ms = String(performance.now() - t0);
  $('atlas-selection').dataset.renderedAt = String(performance.now());
}

async function selectionCsv() {
  const run = live.run;
  await paths.load(state.selection);
  const rows = [['image_id', 'path', 'label', 'pred', 'confidence', 'x', 'y'].join(',')];
  for (const i of state.selection) {
    rows.push([i, paths.get(i), classes[labels[i]], run.names[run.predOut[i]], run.confidence[i],
      live.xy[2 * i], live.xy[2 * i + 1]].map(csvField).join(','));
  }
  return `${rows.join('\n')}\n`;
}

function copyIds() {
  const text = state.selection.join('\n');
  const area = $('atlas-ids');
  area.hidden = false;
  area.value = text;
  area.select();
  // The clipboard API needs a secure context, which file:// pages are not everywhere.
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
  $('atlas-copy-status').textContent = ok
    ? `${state.selection.length} image_ids copied`
    : 'copy them from the box (the browser refused the clipboard)';
}

// "explain these": a config snippet that makes the next run draw the selected images'
// feature maps, saliency maps and checks (explain.images.ids), for at most EXPLAIN_MAX.
const EXPLAIN_MAX = 32;

function explainSnippet(ids) {
  const some = ids.slice(0, EXPLAIN_MAX);
  const which = ids.length > some.length
    ? `the first ${some.length} of the ${ids.length} selected images`
    : `these ${some.length} images`;
  return [
    `# cnnatlas: explain ${which} (${live.map.model}, ${live.map.ckpt});`,
    '# put under the explain: section of your config (it replaces the automatic choice)',
    'explain:',
    '  images:',
    `    ids: [${some.join(', ')}]`,
    '',
  ].join('\n');
}

function copyExplain() {
  const area = $('atlas-ids');
  area.hidden = false;
  area.value = explainSnippet(state.selection);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
  const n = Math.min(EXPLAIN_MAX, state.selection.length);
  $('atlas-copy-status').textContent = ok
    ? `config snippet for ${n} images copied: add it to your config and rerun`
    : 'copy the config snippet from the box (the browser refused the clipboard)';
}

async function downloadCsv() {
  const blob = new Blob([await selectionCsv()], { type: 'text/csv' });
  const a = el('a', { href: URL.createObjectURL(blob), download: 'selection.csv' });
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ---- search ----------------------------------------------------------------------------

// A search reads every path first (all parts of the table).
async function searchAll(query) {
  if (query.trim()) await paths.all();
  return search(query);
}

function search(query) {
  state.query = query;
  const q = query.trim().toLowerCase();
  if (!q) { $('atlas-search-count').textContent = ''; return []; }
  const classHit = classes.map((c) => String(c).toLowerCase().includes(q));
  const metaHits = Object.entries(meta).map(([, m]) => (m.kind === 'category'
    ? { codes: m.codes, hit: m.names.map((n) => String(n).toLowerCase().includes(q)) }
    : { values: m.values }));
  const shown = new Uint8Array(N);
  for (const i of visibleIndices(live.mode)) shown[i] = 1;
  const out = [];
  const by = { 'class name': 0, path: 0, metadata: 0 };
  let hidden = 0;
  for (let i = 0; i < N; i++) {
    const c = classHit[labels[i]];
    const p = paths.get(i).toLowerCase().includes(q);
    let m = false;
    for (let j = 0; !m && j < metaHits.length; j++) {
      const h = metaHits[j];
      m = h.hit ? h.hit[h.codes[i]] : String(h.values[i]).includes(q);
    }
    if (!(c || p || m)) continue;
    // hidden classes are not drawn, so they are not selected either: counted apart
    if (!shown[i]) { hidden++; continue; }
    out.push(i);
    by['class name'] += c; by.path += p; by.metadata += m;
  }
  const why = Object.entries(by).filter(([, n]) => n).map(([k, n]) => `${n.toLocaleString('en')} by ${k}`);
  let text = `${out.length.toLocaleString('en')} match${out.length === 1 ? '' : 'es'}`;
  if (why.length) text += ` (${why.join(', ')})`;
  if (hidden) {
    const where = Object.keys(state.filters).length ? 'hidden by the legend or a filter' : 'in hidden classes';
    text += `; ${hidden.toLocaleString('en')} more ${where}`;
  }
  $('atlas-search-count').textContent = text;
  return out;
}

// ---- pin and neighbours ----------------------------------------------------------------

function mapNeighbours(i, k) {
  // Exact k nearest neighbours of point i in the map: one pass over the points.
  const xy = live.xy; const x = xy[2 * i]; const y = xy[2 * i + 1];
  const best = [];
  for (let j = 0; j < N; j++) {
    if (j === i) continue;
    const d = (xy[2 * j] - x) ** 2 + (xy[2 * j + 1] - y) ** 2;
    if (best.length < k || d < best[best.length - 1][0]) {
      best.push([d, j]);
      best.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      if (best.length > k) best.pop();
    }
  }
  return best.map((b) => b[1]);
}

function featureNeighbours(i) {
  const nb = live.neighbours;
  return nb ? Array.from(nb.ids.get(i)) : null;
}

function featureDistances(i) {
  const nb = live.neighbours;
  return nb && nb.dist ? Array.from(nb.dist.get(i)) : null;
}

// One column of the neighbour gallery: thumbnails with label → prediction and distance;
// `also` marks the images that are neighbours in the other space too. A click pins one.
function galleryColumn(title, ids, dists, also, alsoText) {
  const col = el('div', { class: 'gallery-col' });
  col.appendChild(el('h4', {}, title));
  const run = live.run;
  ids.forEach((j, r) => {
    const fig = el('figure', { 'data-image-id': String(j) });
    if (!run.correct[j]) fig.classList.add('wrong');
    if (also.has(j)) { fig.classList.add('also'); fig.title = alsoText; }
    fig.appendChild(thumbnail(j, 1));
    fig.appendChild(el('figcaption', {}, `${classes[labels[j]]} → ${run.names[run.predOut[j]]}`));
    fig.appendChild(el('figcaption', { class: 'dist' }, dists ? `d ${sig(dists[r])}` : `#${r + 1}`));
    fig.addEventListener('click', () => pin(j));
    col.appendChild(fig);
  });
  return col;
}

function mapDistance(i, j) {
  const xy = live.xy;
  return Math.hypot(xy[2 * i] - xy[2 * j], xy[2 * i + 1] - xy[2 * j + 1]);
}

function pin(i) {
  state.pin = i;
  writeHash();
  return renderPin();
}

// The pinned panel and the rings of its neighbours; #atlas-pin's data-pinned names the
// image once both are drawn.
async function renderPin() {
  const i = state.pin;
  if (live.neighboursRead) await live.neighboursRead;
  if (i >= 0) {
    const nb = live.neighbours;
    await Promise.all([readPoint(i), nb && nb.ids.load([i]), nb && nb.dist && nb.dist.load([i])]);
  }
  if (state.pin !== i) return;
  const box = clear($('atlas-pin'));
  delete box.dataset.pinned;
  if (i < 0) { drawOverlay(); return; }
  box.appendChild(el('h3', {}, 'Pinned'));
  box.appendChild(thumbnail(i));
  box.appendChild(el('pre', {}, describe(i)));
  const feats = featureNeighbours(i);
  if (feats) {
    const inMapList = mapNeighbours(i, feats.length);
    const inMap = new Set(inMapList);
    const shared = feats.filter((j) => inMap.has(j)).length;
    live.pinInfo = { feats, shared, inMap: inMapList };
    box.appendChild(el('p', { id: 'atlas-neighbour-count' },
      `${shared} of its ${feats.length} nearest neighbours in feature space are also among its ${feats.length} nearest in this map (ringed in orange).`));
    const gallery = el('div', { id: 'atlas-gallery' });
    gallery.append(
      galleryColumn('nearest in feature space', feats, featureDistances(i), inMap,
        'also among its nearest in this map'),
      galleryColumn('nearest in this map', inMapList, inMapList.map((j) => mapDistance(i, j)),
        new Set(feats), 'also among its nearest in feature space'),
    );
    box.appendChild(gallery);
    box.appendChild(el('p', { class: 'help' }, 'bold frame: a neighbour in both; d: Euclidean distance, to three significant digits, in the layer\'s features (left) and in the map (right)'));
  } else {
    live.pinInfo = { feats: [], shared: 0 };
    box.appendChild(el('p', {}, 'feature-space neighbours were not computed for this layer'));
  }
  const cam = (H.explain[live.runKey] || {})[String(i)];
  if (cam) {
    const img = el('img', { class: 'gradcam', alt: 'Grad-CAM of this image' });
    img.addEventListener('error', () => {
      img.replaceWith(el('p', { class: 'missing' }, `Grad-CAM image ${cam} could not be loaded: keep the results folder together`));
    });
    img.src = encodeURI(cam);
    box.appendChild(el('h4', {}, 'Grad-CAM (explain stage)'));
    box.appendChild(img);
  }
  const unpin = el('button', { id: 'atlas-unpin' }, 'unpin');
  unpin.addEventListener('click', () => { state.pin = -1; clear($('atlas-pin')); drawOverlay(); writeHash(); });
  box.appendChild(unpin);
  drawOverlay();
  box.dataset.pinned = String(i);
}

// ---- density contours and cluster labels --------------------------------------------------
// Computed by the atlas writer per map: each class's densest region (the contour holding
// half its mass) in the class's colour, and each dense region of all points labelled by
// its majority class and that class's share. Drawn on their own layer under the marks.
const densityLayer = $('atlas-density');

async function drawDensity() {
  const ctx = sizeLayer(densityLayer);
  const d = live.map && live.map.density;
  if (!d || !live.drawn || !(state.contours || state.clusters)) return;
  const t = transform();
  const [x0, y0, x1, y1] = d.box;
  const sx = (x1 - x0) / 65535; const sy = (y1 - y0) / 65535;
  const screenOf = (x, y) => {
    const [gx, gy] = toGl(live.norm, x, y);
    return toScreen(t, gx, gy);
  };
  const shown = (c) => !(live.mode.kind === 'category' && live.mode.codes === labels
    && state.hidden.has(classes[c]));
  if (state.contours) {
    const v = await block(H, d.lines);
    ctx.lineWidth = 1.5;
    for (const [c, first, count] of d.contours) {
      if (!shown(c)) continue;
      ctx.strokeStyle = H.class_colours[c % H.class_colours.length];
      ctx.beginPath();
      for (let k = 0; k < count; k++) {
        const j = 2 * (first + k);
        const [px, py] = screenOf(x0 + v[j] * sx, y0 + v[j + 1] * sy);
        if (k) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      }
      ctx.stroke();
    }
  }
  if (state.clusters) {
    ctx.font = 'bold 12px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.lineJoin = 'round';
    for (const c of d.clusters) {
      const [px, py] = screenOf(c.x, c.y);
      const text = `${classes[c.label]} · ${Math.round(100 * c.purity)}%`;
      ctx.lineWidth = 3;
      ctx.strokeStyle = 'rgba(255, 255, 255, 0.9)';
      ctx.strokeText(text, px, py);
      ctx.fillStyle = '#111';
      ctx.fillText(text, px, py);
    }
  }
  densityLayer.dataset.drawn = `${state.contours ? d.contours.length : 0},${state.clusters ? d.clusters.length : 0}`;
}

function drawOverlay() {
  const ctx = sizeLayer(overlay);
  if (state.pin < 0 || !live.drawn) return;
  const t = transform();
  for (const j of (live.pinInfo || {}).feats || []) ring(ctx, t, j, pointSize + 3, '#ff7f0e', 2);
  ring(ctx, t, state.pin, pointSize + 6, ink(), 2.5);
}

// ---- linked pages ------------------------------------------------------------------------
// Framed twice by compare.html, each page tells the other (through the parent) what the
// user hovers and selects, and shows what it is told: the same image_ids on both maps.
// Messages carry only image ids; anything else is ignored.
const framed = window.parent !== window;

function tellPartner(kind, value) {
  if (!framed || live.fromPartner) return;
  window.parent.postMessage({ cnnatlas: 1, kind, value }, '*');
}

function hearPartner(e) {
  const d = e.data;
  if (e.source !== window.parent || !d || d.cnnatlas !== 1 || !live.drawn) return;
  const id = (v) => Number.isInteger(v) && v >= 0 && v < N;
  live.fromPartner = true;
  try {
    if (d.kind === 'hover' && (d.value === -1 || id(d.value))) {
      hover(d.value);
    } else if (d.kind === 'select' && Array.isArray(d.value) && d.value.every(id)) {
      live.lasso = null;
      applySelection(d.value.slice());
    }
  } finally {
    live.fromPartner = false;
  }
}

// ---- export ----------------------------------------------------------------------------
// The view as the user sees it: PNG (the points, contours, labels and pin marks as
// pixels) or SVG (each point in view a vector mark in its colour and marker, up to
// SVG_MAX; above, the points as one embedded picture under vector marks).
const SVG_MAX = 50000;

function download(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
}

function viewPicture() {
  const pixels = scatterplot.export();
  const out = document.createElement('canvas');
  out.width = pixels.width;
  out.height = pixels.height;
  const ctx = out.getContext('2d');
  ctx.putImageData(pixels, 0, 0);
  return { out, ctx };
}

function exportPng() {
  const { out, ctx } = viewPicture();
  for (const layer of [densityLayer, overlay]) ctx.drawImage(layer, 0, 0, out.width, out.height);
  out.toBlob((blob) => download(blob, 'atlas-view.png'), 'image/png');
}

const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

// SVG path of marker `shape` (plots.MARKERS order: o s ^ D v P X) of radius r at (x, y).
function markPath(shape, x, y, r) {
  const f = (v) => v.toFixed(2);
  const poly = (pts) => `M${pts.map(([a, b]) => `${f(x + a * r)},${f(y + b * r)}`).join('L')}Z`;
  switch (shape) {
    case 1: return poly([[-0.9, -0.9], [0.9, -0.9], [0.9, 0.9], [-0.9, 0.9]]);
    case 2: return poly([[0, -1], [0.9, 0.7], [-0.9, 0.7]]);
    case 3: return poly([[0, -1.1], [1.1, 0], [0, 1.1], [-1.1, 0]]);
    case 4: return poly([[0, 1], [0.9, -0.7], [-0.9, -0.7]]);
    case 5: return poly([[-0.33, -1], [0.33, -1], [0.33, -0.33], [1, -0.33], [1, 0.33], [0.33, 0.33],
      [0.33, 1], [-0.33, 1], [-0.33, 0.33], [-1, 0.33], [-1, -0.33], [-0.33, -0.33]]);
    case 6: {
      const c = 0.7071;
      const rot = ([a, b]) => [(a - b) * c, (a + b) * c];
      return poly([[-0.33, -1], [0.33, -1], [0.33, -0.33], [1, -0.33], [1, 0.33], [0.33, 0.33],
        [0.33, 1], [-0.33, 1], [-0.33, 0.33], [-1, 0.33], [-1, -0.33], [-0.33, -0.33]].map(rot));
    }
    default: return `M${f(x - r)},${f(y)}a${f(r)},${f(r)} 0 1,0 ${f(2 * r)},0a${f(r)},${f(r)} 0 1,0 ${f(-2 * r)},0Z`;
  }
}

function pointColour(mode, i) {
  if (mode.kind === 'category') return mode.colours[mode.codes[i] % mode.colours.length];
  const [lo, hi] = mode.range;
  const v = mode.values[i];
  const ramp = viridis();
  const t = Number.isFinite(v) ? Math.min(1, Math.max(0, (v - lo) / (hi - lo || 1))) : 0;
  return ramp[Math.min(255, Math.floor(t * 255))];
}

function exportSvg() {
  const t = transform();
  const mode = live.mode;
  const inView = [];
  for (const i of visibleIndices(mode)) {
    const [x, y] = toScreen(t, live.points[i][0], live.points[i][1]);
    if (x >= 0 && y >= 0 && x <= t.w && y <= t.h) inView.push([i, x, y]);
  }
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${t.w}" height="${t.h}" viewBox="0 0 ${t.w} ${t.h}">`,
    `<title>${esc(`${live.map.model} ${live.map.ckpt} ${live.map.layer}: ${live.map.method} ${live.map.variant}, colour ${state.colour}`)}</title>`,
    `<rect width="100%" height="100%" fill="${background()}"/>`,
  ];
  const r = pointSize / 2;
  if (inView.length <= SVG_MAX) {
    parts.push('<g id="points" stroke="none">');
    for (const [i, x, y] of inView) {
      const shape = mode.shapes ? mode.codes[i] % GLYPHS.length : 0;
      parts.push(`<path data-image-id="${i}" fill="${pointColour(mode, i)}" d="${markPath(shape, x, y, r)}"/>`);
    }
    parts.push('</g>');
  } else {
    const { out } = viewPicture();
    parts.push(`<image id="points" width="${t.w}" height="${t.h}" href="${out.toDataURL('image/png')}"/>`);
  }
  const d = live.map.density;
  if (d && state.clusters) {
    for (const c of d.clusters) {
      const [gx, gy] = toGl(live.norm, c.x, c.y);
      const [x, y] = toScreen(t, gx, gy);
      parts.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="middle" font-family="sans-serif" font-size="12" font-weight="bold" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(`${classes[c.label]} · ${Math.round(100 * c.purity)}%`)}</text>`);
    }
  }
  if (state.pin >= 0) {
    const ring = (j, rr, colour) => {
      const [x, y] = toScreen(t, live.points[j][0], live.points[j][1]);
      parts.push(`<circle cx="${x.toFixed(2)}" cy="${y.toFixed(2)}" r="${rr}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    };
    for (const j of (live.pinInfo || {}).feats || []) ring(j, pointSize + 3, '#ff7f0e');
    ring(state.pin, pointSize + 6, '#000000');
  }
  parts.push('</svg>\n');
  download(new Blob([parts.join('\n')], { type: 'image/svg+xml' }), 'atlas-view.svg');
  return inView.length;
}

function zoomToSelection() {
  if (!state.selection.length) return Promise.resolve();
  return scatterplot.zoomToPoints(state.selection, { padding: 0.1 }).then(writeHash);
}

// ---- keyboard ----------------------------------------------------------------------------
const KEYS = [
  ['?', 'show or hide this help'],
  ['0', 'fit: zoom to the visible points'],
  ['r', 'reset: the whole frame'],
  ['s', 'zoom to the selection'],
  ['p / l / b', 'pan, lasso or box tool'],
  ['c', 'contours on or off'],
  ['k', 'cluster labels on or off'],
  ['/', 'search'],
  ['Escape', 'clear the selection and unpin'],
];

function renderHelp() {
  const table = clear($('atlas-help-keys'));
  for (const [k, what] of KEYS) {
    const tr = el('tr');
    const key = el('td');
    key.appendChild(el('kbd', {}, k));
    tr.append(key, el('td', {}, what));
    table.appendChild(tr);
  }
}

function onKey(e) {
  if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName) || e.ctrlKey || e.metaKey || e.altKey) {
    if (e.key === 'Escape') document.activeElement.blur();
    return;
  }
  const toggle = (key) => {
    state[key] = !state[key];
    $(`atlas-${key}`).checked = state[key];
    drawDensity().then(writeHash);
  };
  const act = {
    '?': () => { $('atlas-help').hidden = !$('atlas-help').hidden; },
    0: () => fitView(),
    r: () => { scatterplot.reset(); writeHash(); },
    s: () => zoomToSelection(),
    p: () => setTool('pan'),
    l: () => setTool('lasso'),
    b: () => setTool('box'),
    c: () => toggle('contours'),
    k: () => toggle('clusters'),
    '/': () => $('atlas-search').focus(),
    Escape: () => {
      $('atlas-help').hidden = true;
      applySelection([]);
      if (state.pin >= 0) { state.pin = -1; clear($('atlas-pin')); drawOverlay(); writeHash(); }
    },
  }[e.key];
  if (act) { e.preventDefault(); act(); }
}

// ---- URL hash --------------------------------------------------------------------------

// The zoom and centre as 'x,y,distance' in the map's frame; none for the whole frame.
function viewOf() {
  const [x, y] = scatterplot.get('cameraTarget');
  const d = scatterplot.get('cameraDistance');
  if (Math.abs(x) < 1e-6 && Math.abs(y) < 1e-6 && Math.abs(d - 1) < 1e-6) return '';
  return [x, y, d].map((a) => Number(a.toPrecision(6))).join(',');
}

function setView(text) {
  const v = (text || '').split(',').map(Number);
  if (v.length !== 3 || !v.every(Number.isFinite) || !(v[2] > 0)) return;
  scatterplot.set({ cameraTarget: [v[0], v[1]], cameraDistance: v[2] });
}

// A pan or zoom fires many view events: the address follows once the view rests.
let viewTimer = 0;
function writeHashSoon() {
  clearTimeout(viewTimer);
  viewTimer = setTimeout(writeHash, 150);
}

function writeHash() {
  if (live.restoring) return;
  const p = new URLSearchParams();
  for (const k of ['model', 'ckpt', 'layer', 'method', 'variant', 'colour']) p.set(k, state[k]);
  if (state.hidden.size) p.set('hide', JSON.stringify([...state.hidden]));
  if (Object.keys(state.filters).length) p.set('filter', JSON.stringify(state.filters));
  const layers = ['contours', 'clusters'].filter((k) => state[k]);
  if (layers.length) p.set('layers', layers.join(','));
  if (state.query) p.set('q', state.query);
  if (state.pin >= 0) p.set('pin', String(state.pin));
  const v = viewOf();
  if (v) p.set('view', v);
  // Long selections are kept out of the address: browsers cut URLs of some MB.
  if (state.selection.length && state.selection.length <= 5000) p.set('sel', state.selection.join('.'));
  history.replaceState(null, '', `#${p.toString()}`);
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of ['model', 'ckpt', 'layer', 'method', 'variant', 'colour']) {
    if (p.has(k)) state[k] = p.get(k);
  }
  try { state.hidden = new Set(p.has('hide') ? JSON.parse(p.get('hide')) : []); } catch (e) { state.hidden = new Set(); }
  try {
    const f = p.has('filter') ? JSON.parse(p.get('filter')) : {};
    state.filters = Object.fromEntries(Object.entries(f).filter(([, r]) => Array.isArray(r)
      && r.length === 2 && r.every(Number.isFinite)));
  } catch (e) { state.filters = {}; }
  state.query = p.get('q') || '';
  const layers = (p.get('layers') || '').split(',');
  state.contours = layers.includes('contours');
  state.clusters = layers.includes('clusters');
  $('atlas-contours').checked = state.contours;
  $('atlas-clusters').checked = state.clusters;
  state.pin = p.has('pin') ? Number(p.get('pin')) : -1;
  state.view = p.get('view') || '';
  if (!(state.pin >= 0 && state.pin < N)) state.pin = -1;
  state.selection = p.has('sel') ? p.get('sel').split('.').map(Number).filter((i) => i >= 0 && i < N) : [];
}

async function restore() {
  live.restoring = true;
  readHash();
  $('atlas-search').value = state.query;
  await showMap();
  setView(state.view);
  if (state.query && !state.selection.length) state.selection = await searchAll(state.query);
  else if (state.query) await searchAll(state.query);
  applySelection(state.selection, true);
  if (state.pin >= 0) await renderPin();
  else { clear($('atlas-pin')); drawOverlay(); }
  live.restoring = false;
  writeHash();
}

// ---- wiring ----------------------------------------------------------------------------

function setTool(tool) {
  state.tool = tool;
  scatterplot.set({ mouseMode: tool === 'pan' ? 'panZoom' : 'lasso', lassoType: tool === 'box' ? 'rectangle' : 'freeform' });
  document.querySelectorAll('[data-tool]').forEach((b) => b.classList.toggle('on', b.dataset.tool === tool));
}

// Pointer events that would make regl-scatterplot redraw every point go to the page's
// own hit test instead: a move with no button pressed hovers, a click that did not move
// pins. Drags (pan, lasso, box) and the wheel stay regl-scatterplot's. It is kept from
// hovering by never learning that the pointer is over its canvas.
function wireHover() {
  const plot = $('atlas-plot');
  let telling = false;
  const outside = () => { telling = true; canvas.dispatchEvent(new MouseEvent('mouseleave')); telling = false; };
  outside();
  // (its mouseleave handler redraws every point too)
  const keep = (e) => { if (e.target === canvas && !telling) e.stopPropagation(); };
  plot.addEventListener('mouseenter', keep, true);
  plot.addEventListener('mouseleave', keep, true);
  window.addEventListener('blur', outside);
  plot.addEventListener('mouseleave', (e) => { if (e.target === plot) hover(-1); });
  window.addEventListener('mousemove', (e) => {
    if (e.target !== canvas || e.buttons !== 0) return;
    const r = canvas.getBoundingClientRect();
    const at = [e.clientX - r.left, e.clientY - r.top];
    hover(pointAt(...at), at);
  }, true);
  canvas.addEventListener('mousedown', (e) => {
    live.down = [e.clientX, e.clientY];
    hover(-1);
  }, true);
  plot.addEventListener('click', (e) => {
    if (e.target !== canvas || !live.down) return;
    const moved = Math.hypot(e.clientX - live.down[0], e.clientY - live.down[1]);
    const r = canvas.getBoundingClientRect();
    const i = moved < 2 ? pointAt(e.clientX - r.left, e.clientY - r.top) : -1;
    if (i < 0) return;
    e.stopPropagation();
    pin(i);
  }, true);
}

function wire() {
  const menu = (id, key, opts) => $(id).addEventListener('change', (e) => {
    state[key] = e.target.value;
    if (key === 'colour') state.hidden.clear();
    showMap(opts);
  });
  menu('atlas-model', 'model');
  menu('atlas-ckpt', 'ckpt', { transition: true });
  menu('atlas-layer', 'layer');
  menu('atlas-method', 'method');
  menu('atlas-variant', 'variant');
  menu('atlas-colour', 'colour');
  document.querySelectorAll('[data-tool]').forEach((b) => b.addEventListener('click', () => setTool(b.dataset.tool)));
  // regl-scatterplot reports a lasso and a click on a point alike, as 'select'. With
  // syncEvents a lasso's 'select' arrives between lassoStart and lassoEnd; a click on a
  // point pins it instead (and the click that ends a lasso is ignored).
  let lassoing = false;
  let lassoEndedAt = -Infinity;
  scatterplot.subscribe('lassoStart', () => { lassoing = true; });
  scatterplot.subscribe('lassoEnd', ({ coordinates }) => {
    lassoing = false;
    lassoEndedAt = performance.now();
    live.lasso = coordinates.map(([gx, gy]) => toData(live.norm, gx, gy));
  });
  scatterplot.subscribe('select', ({ points }) => {
    if (lassoing) {
      applySelection([...points].sort((a, b) => a - b));
      return;
    }
    if (points.length === 1 && performance.now() - lassoEndedAt > 300) pin(points[0]);
    scatterplot.select(state.selection, { preventEvent: true });
  });
  wireHover();
  scatterplot.subscribe('deselect', () => { if (!live.restoring) applySelection([]); });
  // box: the press and the release are the corners, whatever the pointer did between
  canvas.addEventListener('pointerdown', (e) => {
    const r = canvas.getBoundingClientRect();
    live.press = state.tool === 'box' && e.button === 0 ? [e.clientX - r.left, e.clientY - r.top] : null;
  }, true);
  window.addEventListener('pointerup', (e) => {
    if (!live.press || state.tool !== 'box') return;
    const r = canvas.getBoundingClientRect();
    const a = live.press; const b = [e.clientX - r.left, e.clientY - r.top];
    live.press = null;
    // after regl-scatterplot's own handling of the same release, which it reports first
    if (Math.abs(a[0] - b[0]) > 2 && Math.abs(a[1] - b[1]) > 2) setTimeout(() => boxSelect(a, b), 0);
  }, true);
  $('atlas-fit').addEventListener('click', () => fitView());
  for (const key of ['contours', 'clusters']) {
    $(`atlas-${key}`).addEventListener('change', (e) => {
      state[key] = e.target.checked;
      drawDensity().then(writeHash);
    });
  }
  canvas.addEventListener('dblclick', () => { if (state.tool === 'pan') fitView(); });
  window.addEventListener('keydown', onKey);
  $('atlas-help-button').addEventListener('click', () => { $('atlas-help').hidden = !$('atlas-help').hidden; });
  $('atlas-help-close').addEventListener('click', () => { $('atlas-help').hidden = true; });
  $('atlas-png').addEventListener('click', exportPng);
  $('atlas-svg').addEventListener('click', exportSvg);
  $('atlas-zoom-sel').addEventListener('click', zoomToSelection);
  darkQuery.addEventListener('change', () => { scatterplot.set({ backgroundColor: background() }); });
  renderHelp();
  scatterplot.subscribe('view', () => {
    drawOverlay();
    drawDensity();
    if (live.hover >= 0) hover(live.hover);
    writeHashSoon();
  });
  $('atlas-search').addEventListener('input', async (e) => {
    const query = e.target.value;
    const hits = await searchAll(query);
    if (e.target.value !== query) return; // a later input searches again
    live.lasso = null;
    applySelection(hits);
  });
  $('atlas-copy').addEventListener('click', copyIds);
  $('atlas-explain').addEventListener('click', copyExplain);
  $('atlas-csv').addEventListener('click', downloadCsv);
  $('atlas-clear').addEventListener('click', () => { $('atlas-search').value = ''; state.query = ''; search(''); applySelection([]); });
  window.addEventListener('hashchange', () => { if (!live.restoring) restore(); });
  window.addEventListener('message', hearPartner);
  window.addEventListener('resize', () => { drawOverlay(); drawDensity(); hover(-1); });
  // When the last pointer was released: the benchmark times a lasso from it to the grid.
  window.addEventListener('pointerup', () => { window.cnnatlas.pointerUpAt = performance.now(); }, true);
}

// What the tests and the benchmark read; not needed by a user.
window.cnnatlas = {
  state, live, scatterplot,
  settled: () => live.queue,
  selection: () => [...state.selection],
  lasso: () => live.lasso,
  highlighted: () => ((state.pin >= 0 && live.pinInfo) ? [...live.pinInfo.feats] : []),
  // each histogram's extent and bin counts: kept by the other filters, inside its range too, selected
  histograms: () => histograms().map((h) => ({
    name: h.name, extent: [h.lo, h.hi], base: [...h.base], inside: [...h.inside], selected: [...selectedBins(h.bins)],
  })),
  // the image whose pinned panel and neighbour rings are drawn (-1: none)
  pinned: () => Number($('atlas-pin').dataset.pinned ?? -1),
  hover: (i, at = null) => hover(i, at),
  exportSvg,
  explainSnippet,
  pointAt: (x, y) => {
    const r = canvas.getBoundingClientRect();
    return pointAt(x - r.left, y - r.top);
  },
  // The page's own projection of point i (page pixels), beside regl-scatterplot's.
  project: (i) => {
    const r = canvas.getBoundingClientRect();
    const [x, y] = toScreen(transform(), live.points[i][0], live.points[i][1]);
    return [r.left + x, r.top + y];
  },
  sharedNeighbours: () => (live.pinInfo ? live.pinInfo.shared : null),
  screen: (i) => {
    const p = scatterplot.getScreenPosition(i);
    const r = canvas.getBoundingClientRect();
    return [r.left + p[0], r.top + p[1]];
  },
  // Screen positions (page pixels) of every point, flat [x0, y0, x1, y1, ...].
  screenAll: () => {
    const r = canvas.getBoundingClientRect();
    const out = new Array(2 * N);
    for (let i = 0; i < N; i++) {
      const p = scatterplot.getScreenPosition(i);
      out[2 * i] = r.left + p[0];
      out[2 * i + 1] = r.top + p[1];
    }
    return out;
  },
};

// Starts reading every block the first map needs at once (the map the address names, or
// the first), so that loading, decoding and inflating them overlap; each is read once.
function prefetch() {
  const p = new URLSearchParams(window.location.hash.slice(1));
  const map = mapsWhere({ model: p.get('model'), ckpt: p.get('ckpt'), layer: p.get('layer') })[0] || H.maps[0];
  const r = H.runs[`${map.model}/${map.ckpt}`];
  const refs = [H.classes, H.labels, map.xy, r.pred, r.pred_out, r.confidence, r.correct,
    ...Object.values(r.scores || {}), ...Object.values(H.metadata).map((m) => m.values || m.codes)];
  for (const ref of refs) block(H, ref).catch(() => {}); // an error shows where it is awaited
}

async function main() {
  const t0 = performance.now();
  prefetch();
  [classes, labels] = await Promise.all([block(H, H.classes), block(H, H.labels)]);
  paths = new Rows(H, H.paths);
  const entries = Object.entries(H.metadata);
  const values = await Promise.all(entries.map(([, m]) => block(H, m.values || m.codes)));
  entries.forEach(([name, m], j) => {
    meta[name] = m.kind === 'number'
      ? { kind: 'number', values: values[j] }
      : { kind: 'category', names: m.names, colours: m.colours, codes: values[j] };
  });
  document.title = H.title;
  $('atlas-title').textContent = H.title;
  const links = $('atlas-links');
  $('atlas-links-box').hidden = H.links.length === 0;
  $('atlas-links-box').querySelector('summary').textContent = `other pages (${H.links.length})`;
  for (const l of H.links) {
    links.appendChild(el('a', { href: encodeURI(l.href) }, l.label));
    links.appendChild(document.createTextNode(' '));
  }
  wire();
  setTool('pan');
  await restore();
  document.body.dataset.firstRenderMs = String(performance.now() - t0);
  document.body.dataset.readyAt = String(performance.now());
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  $('atlas-status').textContent = `the atlas could not be drawn: ${e && e.message ? e.message : e}`;
  throw e;
});
