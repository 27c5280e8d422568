// Drives the web demo in headless Chromium the way a person would and prints one JSON object
// with what the page showed after each step.
//
//   node tests/browser/demo.mjs --site <dir with the demo page, pkg/ and assets/> [--no-webgpu]
//
// --no-webgpu: the page sees a browser without WebGPU (navigator.gpu removed before it loads).
import fs from 'node:fs';
import path from 'node:path';
import { option, withPage } from './chromium.mjs';

const site = path.resolve(option('--site') || '');
if (!fs.existsSync(path.join(site, 'index.html'))) { console.error(`--site ${site} has no index.html`); process.exit(2); }

const text = (page, id) => page.textContent(`#${id}`);
// Waits until #latency shows a new rerank (or an error) and returns it; a page that failed to
// load (status "failed: …") stops the run at once instead of waiting out the timeout.
async function nextRerank(page, before) {
  await page.waitForFunction((b) => {
    const t = document.getElementById('latency').textContent;
    const failed = document.getElementById('status').textContent.startsWith('failed');
    return failed || (t !== b && (t.includes(' ms on ') || t.startsWith('error')));
  }, before, { timeout: 180000 });
  const status = await text(page, 'status');
  if (status.startsWith('failed')) throw new Error(`the demo page failed to load: ${status}`);
  return text(page, 'latency');
}

let out;
try {
  out = await withPage([['/', site]], async (page, origin) => {
    if (process.argv.includes('--no-webgpu')) await page.addInitScript(() => { delete Navigator.prototype.gpu; });
    await page.goto(`${origin}/index.html`);
    const first = await nextRerank(page, '');
    const status = await text(page, 'status');
    await page.click('#catalog li:nth-child(3)');
    const afterClick = await nextRerank(page, first);
    const historyCount = await text(page, 'history-count');
    await page.click('#surfaces button:nth-child(3)');
    const afterSurface = await nextRerank(page, afterClick);
    const reranked = await page.$$eval('#after li', (els) => els.length);
    const pushed = await page.$$eval('#before li', (els) => els.length);
    const newReranked = await page.$$eval('#after li.new', (els) => els.length);
    const newPushed = await page.$$eval('#before li .new', (els) => els.length);
    const newInCatalog = await page.$$eval('#catalog li .new', (els) => els.length);
    // Watch a new title from the reranked list: the session keeps its vector for the history.
    const newTitle = await page.$eval('#after li.new', (el) => el.childNodes[1].textContent.trim());
    await page.click('#after li.new');
    const afterNewWatch = await nextRerank(page, afterSurface);
    const historyAfterNew = await text(page, 'history-count');
    const newestInHistory = await page.$eval('#history li', (el) => el.textContent);
    // The contextual ranker on the home tab: a search typed in, α moved to 0, then "more like
    // this" on the first result.
    await page.click('#surfaces button:nth-child(1)');
    const onHome = await nextRerank(page, afterNewWatch);
    // Choosing the task clears the list until a query is typed.
    await page.selectOption('#task', 'search');
    const query = await page.$eval('#catalog li:nth-child(5)', (el) => el.firstChild.textContent.trim().split(/\s+/)[0].slice(0, 4));
    await page.fill('#query', query);
    const afterQuery = await nextRerank(page, onHome);
    const queryResults = await page.$$eval('#after li', (els) => els.length);
    await page.$eval('#alpha', (el) => { el.value = '1'; el.dispatchEvent(new Event('input')); });
    const alphaOne = await nextRerank(page, afterQuery);
    const scoresAtAlpha1 = await page.$$eval('#after li .score', (els) => els.map((e) => e.textContent));
    await page.$eval('#alpha', (el) => { el.value = '0'; el.dispatchEvent(new Event('input')); });
    const afterAlpha = await nextRerank(page, alphaOne);
    const scoresAtAlpha0 = await page.$$eval('#after li .score', (els) => els.map((e) => e.textContent));
    await page.click('#after li:nth-child(1) .mlt');
    const afterMoreLikeThis = await nextRerank(page, afterAlpha);
    // A search for a new title's name: the server pushes it with its metadata, the ranker
    // matches the query against its name.
    await page.selectOption('#task', 'search');
    const backToSearch = await nextRerank(page, afterMoreLikeThis);
    await page.fill('#query', newTitle);
    // (The latency line may read as before: wait for the list to show the new title.)
    await page.waitForFunction((t) => [...document.querySelectorAll('#after li.new')].some((e) => e.childNodes[1].textContent.trim() === t), newTitle, { timeout: 180000 });
    const afterNewSearch = await text(page, 'latency');
    const newInSearch = await page.$$eval('#after li.new', (els) => els.map((e) => e.childNodes[1].textContent.trim()));
    const navigatorGpu = await page.evaluate(() => !!navigator.gpu);
    return { navigatorGpu, status, first, afterClick, historyCount, afterSurface, reranked, pushed, newReranked, newPushed, newInCatalog, afterNewWatch, historyAfterNew, newestInHistory, afterQuery, queryResults, afterAlpha, scoresAtAlpha1, scoresAtAlpha0, afterMoreLikeThis, newTitle, afterNewSearch, newInSearch };
  });
} catch (e) {
  out = { error: String(e && e.stack || e) };
}
// Exit once stdout has taken the whole line: a pipe holds 64 KiB, and an exit right after a
// larger write cuts it off.
process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(out.error ? 1 : 0));
