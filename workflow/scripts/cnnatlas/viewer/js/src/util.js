// Small helpers of the atlas page. Every string from the data reaches the DOM through
// textContent or an attribute, never through innerHTML.

export function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  if (text !== null) e.textContent = String(text);
  return e;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function option(select, value, text = value) {
  const o = el('option', { value }, text);
  select.appendChild(o);
  return o;
}

export function fmt(v, digits = 3) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

// A number to `digits` significant digits, trailing zeros dropped (12.3, 0.0457, 1.2e+3).
export function sig(v, digits = 3) {
  return typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(digits))) : '–';
}

// Min and max by a loop: Math.min.apply on a million values overflows the call stack.
// finite: of the finite values only (no copy of them is made).
export function extent(values, finite = false) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (finite && !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

export function csvField(v) {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// 256 colours of viridis (matplotlib's), for numbers: the static figures' colour scale.
const VIRIDIS_STOPS = [
  [0.267, 0.005, 0.329],
  [0.283, 0.141, 0.458],
  [0.254, 0.265, 0.53],
  [0.207, 0.372, 0.553],
  [0.164, 0.471, 0.558],
  [0.128, 0.567, 0.551],
  [0.135, 0.659, 0.518],
  [0.267, 0.749, 0.441],
  [0.478, 0.821, 0.318],
  [0.741, 0.873, 0.15],
  [0.993, 0.906, 0.144],
];

export function viridis(n = 256) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = (i / (n - 1)) * (VIRIDIS_STOPS.length - 1);
    const k = Math.min(Math.floor(t), VIRIDIS_STOPS.length - 2);
    const f = t - k;
    const c = VIRIDIS_STOPS[k].map((a, j) => a + f * (VIRIDIS_STOPS[k + 1][j] - a));
    out.push(`#${c.map((v) => Math.round(v * 255).toString(16).padStart(2, '0')).join('')}`);
  }
  return out;
}

// Marker glyphs of matplotlib's o s ^ D v P X (plots.MARKERS) for the legend.
export const GLYPHS = ['●', '■', '▲', '◆', '▼', '✚', '✖'];
