// Decoding the page's embedded data: one JSON header whose typed arrays are base64 of
// zlib-deflated bytes ("blocks"), inflated by the browser's own DecompressionStream, so
// neither a server nor a decompression library is needed. A block with s: 1 holds its
// bytes grouped by their place in the value; kind h2 is half floats times the scale x.

const TYPES = {
  u1: Uint8Array,
  u2: Uint16Array,
  u4: Uint32Array,
  i4: Int32Array,
  f4: Float32Array,
  h2: Uint16Array,
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

function decode(ref, buf) {
  if (ref.t === 'json') return JSON.parse(new TextDecoder().decode(buf));
  const Type = TYPES[ref.t];
  let bytes = new Uint8Array(buf);
  if (ref.s) bytes = unshuffle(bytes, Type.BYTES_PER_ELEMENT);
  const values = new Type(bytes.buffer);
  if (ref.t !== 'h2') return values;
  const table = halfTable();
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = table[values[i]] * ref.x;
  return out;
}

const cache = new Map();

// The browser decodes the base64 (a data: URL, read without the network) and inflates it.
async function inflate(b64) {
  const res = await fetch(`data:application/octet-stream;base64,${b64}`);
  return new Response(res.body.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer();
}

// A block reference {b: index, t: type}: the typed array, or for t === "json" the value.
export async function block(header, ref) {
  if (!ref) return null;
  if (cache.has(ref.b)) return cache.get(ref.b);
  const promise = inflate(header.blocks[ref.b]).then((buf) => decode(ref, buf));
  cache.set(ref.b, promise);
  return promise;
}

export function readHeader() {
  return JSON.parse(document.getElementById('cnnatlas-data').textContent);
}
