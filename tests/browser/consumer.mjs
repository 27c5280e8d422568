// Runs the consumer app (tests/npm-consumer, installed and built in --app by
// tests/tests/npm_package.rs) in headless Chromium: its main page, then a page whose
// navigator has no WebGPU. Prints one JSON object {main, withoutWebGpu}.
//
//   node tests/browser/consumer.mjs --app <built app dir>
import fs from 'node:fs';
import path from 'node:path';
import { option, withPage } from './chromium.mjs';

const app = path.resolve(option('--app') || '');
if (!fs.existsSync(path.join(app, 'index.html'))) { console.error(`--app ${app} has no index.html`); process.exit(2); }

async function run(page, origin, fn) {
  await page.goto(`${origin}/index.html`);
  await page.waitForFunction(() => window.consumerReady === true);
  return page.evaluate((name) => window[name](), fn);
}

let out;
try {
  out = await withPage([['/', app]], async (page, origin) => {
    const main = await run(page, origin, 'runConsumer');
    const bare = await page.context().newPage();
    await bare.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    const withoutWebGpu = await run(bare, origin, 'runWithoutWebGpu');
    return { main, withoutWebGpu };
  });
} catch (e) {
  out = { error: String(e && e.stack || e) };
}
// Exit once stdout has taken the whole line: a pipe holds 64 KiB, and an exit right after a
// larger write cuts it off.
process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(out.error ? 1 : 0));
