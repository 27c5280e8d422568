// Shared by the browser scripts: serve directories over HTTP on 127.0.0.1 and run a function
// on a page of Debian's headless Chromium (WebGPU enabled), closing everything afterwards.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

// `roots`: [[url prefix, directory], …], first match wins. `run(page, origin, logs)` returns the
// result; console messages and page errors are collected in `logs`.
export async function withPage(roots, run) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [prefix, root] = roots.find(([p]) => url.startsWith(p));
    const file = path.join(root, url.slice(prefix.length));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); res.end(); return; }
    // Cross-origin isolated pages get a 5 µs `performance.now()` instead of 100 µs, which the
    // benchmarks need (every resource is same-origin, so nothing else changes).
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': fs.statSync(file).size,
      'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'encore-chromium-'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    ignoreDefaultArgs: true,
    args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', '--no-startup-window',
      '--enable-unsafe-webgpu'],
  });
  const logs = [];
  try {
    const page = await (await browser.newContext()).newPage();
    page.on('console', (m) => {
      logs.push(`[${m.type()}] ${m.text()}`);
      // ENCORE_BROWSER_LOG=1 streams the page's console to stderr (for a page that hangs).
      if (process.env.ENCORE_BROWSER_LOG) console.error(`[${m.type()}] ${m.text()}`);
    });
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
    page.setDefaultTimeout(600000);
    const out = await run(page, origin, logs);
    out.browser = browser.version();
    out.logs = logs.slice(-30);
    return out;
  } finally {
    await browser.close().catch(() => {});
    server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

// Command-line option `--name value`.
export function option(name) {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
