// Decoding the page's data: one JSON header whose typed arrays are base64 of
// zlib-deflated bytes ("blocks"), inflated by the browser's own DecompressionStream, so
// neither a server nor a decompression library is needed. A block with s: 1 holds its
// bytes grouped by their place in the value; kind h2 is half floats times the scale x;
// kind f3 is float32 less its lowest byte. A block is in the page (its base64) or in the
// sidecar folder ({src}: a script calling cnnatlasBlock(b, base64), loaded on first use:
// a <script src> loads from file://, where fetch cannot). A table read a row at a time
// comes in parts ({parts: [b, ...], rows}); `Rows` reads the parts holding given rows.

const TYPES = {
  u1: Uint8Array,
  u2: Uint16Array,
  u4: Uint32Array,
  i4: Int32Array,
  f4: Float32Array,
  h2: Uint16Array,
  f3: Float32Array,
};

let halves = null;
// float32 of every half-float bit pattern
function halfTable() {
  if (halves) return halves;
  halves = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 31;
    const f = h & 1023;
    if (e === 0) halves[h] = sign * f * 2 ** -24;
    else if (e === 31) halves[h] = f ? NaN : sign * Infinity;
    else halves[h] = sign * (1 + f / 1024) * 2 ** (e - 15);
  }
  return halves;
}

function unshuffle(bytes, width) {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  for (let j = 0; j < width; j++) {
    const plane = bytes.subarray(j * n, (j + 1) * n);
    for (let i = 0; i < n; i++) out[i * width + j] = plane[i];
  }
  return out;
}

// f3: three planes of each float32's high bytes; the lowest byte is zero
function unshuffle3(bytes) {
  const n = bytes.length / 3;
  const out = new Uint8Array(4 * n);
  for (let j = 0; j < 3; j++) {
    const plane = bytes.subarray(j * n, (j + 1) * n);
    for (let i = 0; i < n; i++) out[i * 4 + j + 1] = plane[i];
  }
  return out;
}

function decode(ref, buf) {
  if (ref.t === 'json') return JSON.parse(new TextDecoder().decode(buf));
  const Type = TYPES[ref.t];
  let bytes = new Uint8Array(buf);
  if (ref.t === 'f3') bytes = unshuffle3(bytes);
  else if (ref.s) bytes = unshuffle(bytes, Type.BYTES_PER_ELEMENT);
  const values = new Type(bytes.buffer);
  if (ref.t !== 'h2') return values;
  const table = halfTable();
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = table[values[i]] * ref.x;
  return out;
}

const cache = new Map();

// The browser decodes the base64 (natively where it can, else as a data: URL, read
// without the network) and inflates it.
async function inflate(b64) {
  const body = Uint8Array.fromBase64
    ? new Response(Uint8Array.fromBase64(b64)).body
    : (await fetch(`data:application/octet-stream;base64,${b64}`)).body;
  return new Response(body.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer();
}

// Sidecar blocks: each file calls cnnatlasBlock(b, base64) once loaded.
const waiting = new Map();
window.cnnatlasBlock = (b, b64) => {
  const w = waiting.get(b);
  if (w) { waiting.delete(b); w.resolve(b64); }
};

function loadScript(b, src) {
  return new Promise((resolve, reject) => {
    waiting.set(b, { resolve });
    const s = document.createElement('script');
    s.src = encodeURI(src);
    s.onload = () => {
      s.remove();
      if (waiting.has(b)) { waiting.delete(b); reject(new Error(`${src} holds no block ${b}`)); }
    };
    s.onerror = () => {
      s.remove();
      waiting.delete(b);
      reject(new Error(`${src} could not be loaded: keep the folder ${src.split('/')[0]} beside the page`));
    };
    document.head.appendChild(s);
  });
}

function one(header, b, ref) {
  if (cache.has(b)) return cache.get(b);
  const item = header.blocks[b];
  const text = typeof item === 'string' ? Promise.resolve(item) : loadScript(b, item.src);
  const promise = text.then(inflate).then((buf) => decode(ref, buf));
  cache.set(b, promise);
  return promise;
}

function concat(ref, parts) {
  if (ref.t === 'json') return parts.flat();
  const out = new parts[0].constructor(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// A block reference {b: index, t: type}: the typed array, or for t === "json" the value;
// a table in parts as one.
export async function block(header, ref) {
  if (!ref) return null;
  if (!ref.parts) return one(header, ref.b, ref);
  return concat(ref, await Promise.all(ref.parts.map((b) => one(header, b, ref))));
}

// A table of `width` values a row (a block or one in parts), read by the part: load(ids)
// reads the parts holding those rows, get(i) then gives row i (a value for width 1, else
// a typed array) and undefined for a row not loaded yet.
export class Rows {
  constructor(header, ref, width = 1) {
    this.header = header;
    this.ref = ref;
    this.width = width;
    this.rows = ref.parts ? ref.rows : Infinity;
    this.parts = new Map();
  }

  partOf(i) { return Math.floor(i / this.rows); }

  load(ids) {
    const want = [...new Set(Array.from(ids, (i) => this.partOf(i)))];
    return Promise.all(want.map((p) => {
      if (this.parts.has(p)) return this.parts.get(p);
      const b = this.ref.parts ? this.ref.parts[p] : this.ref.b;
      const promise = one(this.header, b, this.ref).then((v) => { this.parts.set(p, v); return v; });
      this.parts.set(p, promise);
      return promise;
    }));
  }

  get(i) {
    const part = this.parts.get(this.partOf(i));
    if (!part || part instanceof Promise) return undefined;
    const r = this.rows === Infinity ? i : i % this.rows;
    return this.width === 1 ? part[r] : part.subarray(r * this.width, (r + 1) * this.width);
  }

  has(i) { return this.get(i) !== undefined; }

  async all() {
    const n = this.ref.parts ? this.ref.parts.length : 1;
    await this.load(Array.from({ length: n }, (_, p) => (this.rows === Infinity ? 0 : p * this.rows)));
  }
}

export function readHeader() {
  return JSON.parse(document.getElementById('cnnatlas-data').textContent);
}
