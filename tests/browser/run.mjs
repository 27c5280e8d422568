// Runs the wasm package in headless Chromium (Debian's /usr/bin/chromium, WebGPU enabled) and
// prints one JSON object with what the page computed.
//
//   node tests/browser/run.mjs --pkg <wasm pkg dir> --fixture <dir with model.encore, cases.json> [--bench N [--backends cpu,webgpu] [--window-step S]]
//
// With --faults: the lost WebGPU device, the caller's exceptions and the load figures
// (window.runFaults). Without --bench: every case on WebGPU and on CPU, the attention-kernel self-check, sessions,
// int8 weights, the bad-input rejections and 10,000 reranks' memory. With --bench N: cold start,
// then N timed reranks and N session appends of every case per backend (--backends: which, default both;
// --window-step: the rerankers' windowStep load option, default 1). With --cold N: N cold starts
// (cold.html, a fresh browser each; --overlap: the weights fetched while the module loads), and
// their median.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { option, withPage } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(option('--pkg') || '');
const fixture = path.resolve(option('--fixture') || '');
const bench = option('--bench');
const faults = process.argv.includes('--faults');
const cold = option('--cold');
const backends = (option('--backends') || 'webgpu,cpu').split(',');
const windowStep = Number(option('--window-step') || 1);
for (const [name, dir] of [['--pkg', pkg], ['--fixture', fixture]]) {
  if (!fs.existsSync(dir)) { console.error(`${name} ${dir} does not exist`); process.exit(2); }
}

if (cold) {
  const overlap = process.argv.includes('--overlap') ? '?overlap=1' : '';
  const runs = [];
  for (let i = 0; i < Number(cold); i++) {
    runs.push(await withPage([['/pkg/', pkg], ['/fixture/', fixture], ['/', here]], async (page, origin) => {
      await page.goto(`${origin}/cold.html${overlap}`);
      await page.waitForFunction(() => window.coldResult || window.coldError);
      const err = await page.evaluate(() => window.coldError);
      if (err) throw new Error(err);
      return page.evaluate(() => window.coldResult);
    }));
  }
  const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  const keys = ['importMs', 'moduleMs', 'fetchMs', 'loadMs', 'firstRerankMs', 'totalMs'];
  const out = { runs: runs.map((r) => Object.fromEntries(keys.map((k) => [k, Math.round(r[k] * 10) / 10]))), median: Object.fromEntries(keys.map((k) => [k, median(k)])), browser: runs[0].browser, crossOriginIsolated: runs[0].crossOriginIsolated, modelBytes: runs[0].modelBytes };
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
} else {
let out;
try {
  out = await withPage([['/pkg/', pkg], ['/fixture/', fixture], ['/', here]], async (page, origin) => {
    await page.goto(`${origin}/harness.html`);
    await page.waitForFunction(() => window.harnessReady === true || window.harnessError);
    const err = await page.evaluate(() => window.harnessError);
    if (err) throw new Error(err);
    if (faults) return page.evaluate(() => window.runFaults());
    return bench ? page.evaluate(([n, b, w]) => window.runBench(n, b, w), [Number(bench), backends, windowStep]) : page.evaluate(() => window.runHarness());
  });
} catch (e) {
  out = { error: String(e && e.stack || e) };
}
// Exit once stdout has taken the whole line: a pipe holds 64 KiB, and an exit right after a
// larger write cuts it off.
process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(out.error ? 1 : 0));
}
