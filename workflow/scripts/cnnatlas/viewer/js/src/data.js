// Decoding the page's embedded data: one JSON header whose typed arrays are base64 of
// zlib-deflated bytes ("blocks"), inflated by the browser's own DecompressionStream, so
// neither a server nor a decompression library is needed.

const TYPES = {
  u1: Uint8Array,
  u2: Uint16Array,
  u4: Uint32Array,
  i4: Int32Array,
  f4: Float32Array,
};

const cache = new Map();

async function inflate(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Response(stream).arrayBuffer();
}

// A block reference {b: index, t: type}: the typed array, or for t === "json" the value.
export async function block(header, ref) {
  if (!ref) return null;
  if (cache.has(ref.b)) return cache.get(ref.b);
  const promise = inflate(header.blocks[ref.b]).then((buf) => {
    if (ref.t === 'json') return JSON.parse(new TextDecoder().decode(buf));
    return new TYPES[ref.t](buf);
  });
  cache.set(ref.b, promise);
  return promise;
}

export function readHeader() {
  return JSON.parse(document.getElementById('cnnatlas-data').textContent);
}
