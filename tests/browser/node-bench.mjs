// Times the npm package's CPU entry in Node (the same V8 as Chromium, without its 0.1 ms
// clock): mean ms of 3,000 reranks after 50, per case of a browser fixture, with the history
// as columns and (unless --columns-only) as event objects. For profiles, run it under
// `node --cpu-prof` on a package built with `ENCORE_WASM_NAMES=1 bash wasm/build.sh`.
//
//   node tests/browser/node-bench.mjs target/wasm-pkg /tmp/bfx-sasrec [--columns-only]
//
// The fixture comes from `encore bench ... --browser-fixture DIR`.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { toColumns } from './columns.mjs';

const [pkg, fixture, ...flags] = process.argv.slice(2);
if (!pkg || !fixture) {
  console.error('usage: node tests/browser/node-bench.mjs PACKAGE_DIR FIXTURE_DIR [--columns-only]');
  process.exit(2);
}
const columnsOnly = flags.includes('--columns-only');
const entry = path.resolve(pkg, 'cpu', 'encore_wasm.js');
const { default: init, Reranker } = await import(pathToFileURL(entry).href);
await init({ module_or_path: fs.readFileSync(path.resolve(pkg, 'cpu', 'encore_wasm_bg.wasm')) });
const bytes = new Uint8Array(fs.readFileSync(path.join(fixture, 'model.encore')));
const cases = JSON.parse(fs.readFileSync(path.join(fixture, 'cases.json'), 'utf8'));
const reranker = await Reranker.load(bytes, 'cpu');

async function meanMs(history, candidates, c) {
  for (let i = 0; i < 50; i++) await reranker.rerank(history, candidates, c.surface, c.options);
  const n = 3000;
  const t = performance.now();
  for (let i = 0; i < n; i++) await reranker.rerank(history, candidates, c.surface, c.options);
  return (performance.now() - t) / n;
}

for (const c of cases) {
  const candidates = Uint32Array.from(c.candidates);
  const columns = await meanMs(toColumns(c.events), candidates, c);
  const objects = columnsOnly ? null : await meanMs(c.events, candidates, c);
  console.log(
    `history ${c.events.length}, ${c.candidates.length} candidates: columns ${columns.toFixed(3)} ms` +
      (objects === null ? '' : `, objects ${objects.toFixed(3)} ms`),
  );
}
