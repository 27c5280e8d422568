// Runs the wasm package in headless Chromium (Debian's /usr/bin/chromium, WebGPU enabled) and
// prints one JSON object with what the page computed.
//
//   node tests/browser/run.mjs --pkg <wasm pkg dir> --fixture <dir with model.encore, cases.json> [--bench N]
//
// Without --bench: every case on WebGPU and on CPU, the attention-kernel self-check, and the
// bad-input rejections. With --bench N: cold start, then N timed reranks and N session appends
// of every case per backend.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const pkg = path.resolve(opt('--pkg') || '');
const fixture = path.resolve(opt('--fixture') || '');
const bench = opt('--bench');
for (const [name, dir] of [['--pkg', pkg], ['--fixture', fixture]]) {
  if (!fs.existsSync(dir)) { console.error(`${name} ${dir} does not exist`); process.exit(2); }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const roots = [['/pkg/', pkg], ['/fixture/', fixture], ['/', here]];
const server = http.createServer((req, res) => {
  const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const [prefix, root] = roots.find(([p]) => url.startsWith(p));
  const file = path.join(root, url.slice(prefix.length));
  if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const port = server.address().port;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'encore-chromium-'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  ignoreDefaultArgs: true,
  args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', '--no-startup-window',
    '--enable-unsafe-webgpu'],
});
let out;
try {
  const page = await (await browser.newContext()).newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.setDefaultTimeout(600000);
  await page.goto(`http://127.0.0.1:${port}/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true || window.harnessError);
  const err = await page.evaluate(() => window.harnessError);
  if (err) throw new Error(err);
  out = bench ? await page.evaluate((n) => window.runBench(n), Number(bench)) : await page.evaluate(() => window.runHarness());
  out.browser = browser.version();
  out.logs = logs.slice(-30);
} catch (e) {
  out = { error: String(e && e.stack || e) };
} finally {
  await browser.close().catch(() => {});
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
