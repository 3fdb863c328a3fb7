// Bundles src/app.js with regl-scatterplot into ../atlas.bundle.js (one minified file)
// and writes the licences of every bundled package into ../atlas.bundle.LICENSES.txt.
//
// regl-scatterplot draws every point as a disc; the static figures give class k the
// marker plots.MARKERS[k % 7]. The plugin below patches its point shaders (and fails the
// build if the code it patches has changed): the vertex shader hands the point's second
// value (valueB, the marker index) to the fragment shader, which cuts the marker's shape.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const VS_VARYING = 'varying float finalPointSize;\n\nvoid main() {\n  vec4 state';
const VS_COLOR = '  color = texture2D(colorTex, colorTexIndex);\n\n  // Retrieve point size';
const FS_OLD = `  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float sdf = length(c) * finalPointSize;`;
const FS_NEW = `  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float shape = floor(shapeCode + 0.5);
  vec2 a = abs(c);
  float r = length(c);
  if (shape == 1.0) r = max(a.x, a.y) * 1.12;
  else if (shape == 2.0) r = max(c.y / 0.6, a.x * 1.739 - c.y);
  else if (shape == 3.0) r = (a.x + a.y) * 0.85;
  else if (shape == 4.0) r = max(-c.y / 0.6, a.x * 1.739 + c.y);
  else if (shape == 5.0) r = min(max(3.0 * a.x, a.y), max(a.x, 3.0 * a.y));
  else if (shape == 6.0) {
    vec2 u = abs(vec2(c.x + c.y, c.x - c.y)) * 0.7071;
    r = min(max(3.0 * u.x, u.y), max(u.x, 3.0 * u.y)) * 1.1;
  }
  float sdf = r * finalPointSize;`;

function replaceOnce(text, from, to, what) {
  const n = text.split(from).length - 1;
  if (n < 1) throw new Error(`regl-scatterplot changed: ${what} not found; update build.mjs`);
  return text.split(from).join(to);
}

const markers = {
  name: 'markers',
  setup(b) {
    b.onLoad({ filter: /regl-scatterplot\.esm\.js$/ }, (args) => {
      let js = readFileSync(args.path, 'utf8');
      const fsStart = js.indexOf('const FRAGMENT_SHADER$1 = `');
      const vsStart = js.indexOf('const createVertexShader = (globalState) => `');
      if (fsStart < 0 || vsStart < fsStart) throw new Error('regl-scatterplot changed: point shaders not found');
      let fs = js.slice(fsStart, vsStart);
      let vs = js.slice(vsStart);
      fs = replaceOnce(fs, 'varying float finalPointSize;', 'varying float finalPointSize;\nvarying float shapeCode;', 'fragment varying');
      fs = replaceOnce(fs, FS_OLD, FS_NEW, 'fragment body');
      const vsEnd = vs.indexOf('`;') + 2;
      let shader = vs.slice(0, vsEnd);
      shader = replaceOnce(shader, VS_VARYING, 'varying float finalPointSize;\nvarying float shapeCode;\n\nvoid main() {\n  vec4 state', 'vertex varying');
      shader = replaceOnce(shader, VS_COLOR, '  color = texture2D(colorTex, colorTexIndex);\n  shapeCode = state.w;\n\n  // Retrieve point size', 'vertex colour');
      js = js.slice(0, fsStart) + fs + shader + vs.slice(vsEnd);
      return { contents: js, loader: 'js' };
    });
  },
};

const here = dirname(new URL(import.meta.url).pathname);
const result = await build({
  entryPoints: [join(here, 'src/app.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome100', 'firefox113', 'safari16.4'],
  legalComments: 'none',
  metafile: true,
  write: false,
  plugins: [markers],
});
let code = result.outputFiles[0].text;
// The bundle is inlined into a <script> element: no "</script" may end it early.
code = code.replace(/<\/script/gi, '<\\/script');
writeFileSync(join(here, '../atlas.bundle.js'), code);

// regl-scatterplot's dist inlines its own dependencies, so the licences are those of every
// production package in the lockfile, plus the notices inlined in its dist file.
const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
const packages = new Set(
  Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev)
    .map(([path]) => path.slice('node_modules/'.length)),
);
let licences = 'Licences of the packages bundled into atlas.bundle.js (the page\'s own code: MIT, cnnatlas).\n';
for (const name of [...packages].sort()) {
  const dir = join(here, 'node_modules', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'LICENCE'].map((f) => join(dir, f))
    .find((f) => { try { readFileSync(f); return true; } catch { return false; } });
  licences += `\n${'='.repeat(78)}\n${name} ${pkg.version} (${pkg.license})\n${'='.repeat(78)}\n`;
  licences += file ? readFileSync(file, 'utf8') : `no licence file in the package; its package.json says ${pkg.license}\n`;
}
const dist = readFileSync(join(here, 'node_modules/regl-scatterplot/dist/regl-scatterplot.esm.js'), 'utf8');
const notices = dist.split('\n').filter((l) => /@license|@copyright|Copyright \(c\)|The MIT License/.test(l));
licences += `\n${'='.repeat(78)}\nnotices inlined in regl-scatterplot's dist file\n${'='.repeat(78)}\n${notices.map((l) => l.trim()).join('\n')}\n`;
writeFileSync(join(here, '../atlas.bundle.LICENSES.txt'), licences);
console.log(`atlas.bundle.js: ${code.length} bytes; packages: ${[...packages].sort().join(', ')}`);
