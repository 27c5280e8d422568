// In-page half of the browser tests: loads the wasm package and the fixture, runs the cases on
// both backends, the WGSL engine self-check and the bad-input rejections. The same page serves
// the CPU-only package (no WebGPU backend, no WGSL engine self-check).
import init, { Reranker, hasWebGpuBackend } from './pkg/encore_wasm.js';
import * as encore from './pkg/encore_wasm.js';
import { toColumns } from './columns.mjs';

async function fixture() {
  const bytes = new Uint8Array(await (await fetch('fixture/model.encore')).arrayBuffer());
  const cases = await (await fetch('fixture/cases.json')).json();
  return { bytes, cases };
}

async function rejection(f) {
  try { await f(); return null; } catch (e) { return String((e && e.message) || e); }
}

/** A ranking's typed arrays as plain arrays (for JSON). */
const asArrays = (res) => ({ items: Array.from(res.items), scores: Array.from(res.scores) });

window.runHarness = async () => {
  const { bytes, cases } = await fixture();
  const out = { navigatorGpu: !!navigator.gpu, webgpuBackend: hasWebGpuBackend(), backends: {}, kernel: [], rejections: {} };
  for (const wanted of ['webgpu', 'cpu']) {
    if (wanted === 'webgpu' && !out.webgpuBackend) {
      out.backends.webgpu = { rejected: await rejection(() => Reranker.load(bytes, 'webgpu')) };
      continue;
    }
    const r = await Reranker.load(bytes, wanted);
    const results = [];
    for (const c of cases) {
      const t0 = performance.now();
      const res = await r.rerank(c.events, Uint32Array.from(c.candidates), c.surface, c.options);
      results.push({ items: Array.from(res.items), scores: Array.from(res.scores), ms: performance.now() - t0 });
    }
    out.backends[wanted] = { backend: r.backend, reason: r.backendReason, results };
    r.free();
  }
  const auto = await Reranker.load(bytes, 'auto');
  const autoRes = await auto.rerank(cases[0].events, Uint32Array.from(cases[0].candidates), cases[0].surface, cases[0].options);
  out.auto = { backend: auto.backend, reason: auto.backendReason, items: Array.from(autoRes.items) };
  auto.free();
  // The WGSL engine against the CPU engine: head widths 8 to 128, one to three layers,
  // one token, windows not a multiple of the 64-invocation workgroup, histories past the window.
  const shapes = [[8, 1, 1, 16, 1], [32, 2, 2, 70, 69], [64, 4, 2, 65, 200], [50, 1, 2, 130, 129], [128, 1, 1, 33, 40], [48, 6, 3, 20, 20]];
  for (const [d, heads, layers, window, history] of out.webgpuBackend ? shapes : []) {
    out.kernel.push({ shape: { d, heads, layers, window, history }, maxError: await encore.wgslEngineMaxError(d, heads, layers, window, history, 7) });
  }
  const r = await Reranker.load(bytes, 'cpu');
  const c = cases[cases.length - 1];
  const cands = Uint32Array.from(c.candidates);
  const rej = out.rejections;
  rej.truncated = await rejection(() => Reranker.load(bytes.slice(0, bytes.length - 9), 'cpu'));
  rej.foreign = await rejection(() => Reranker.load(new TextEncoder().encode('<html>this is not a model</html>'), 'cpu'));
  rej.empty = await rejection(() => Reranker.load(new Uint8Array(0), 'cpu'));
  rej.badBackend = await rejection(() => Reranker.load(bytes, 'tpu'));
  rej.unknownCandidate = await rejection(() => r.rerank(c.events, Uint32Array.from([c.candidates[0], 4242424]), c.surface));
  rej.unknownHistoryItem = await rejection(() => r.rerank([...c.events.slice(0, -1), { ...c.events[0], item: 4242424, timestamp: c.events[c.events.length - 1].timestamp }], cands, c.surface));
  rej.emptyHistory = await rejection(() => r.rerank([], cands, c.surface));
  rej.emptyCandidates = await rejection(() => r.rerank(c.events, new Uint32Array(0), c.surface));
  rej.duplicateCandidate = await rejection(() => r.rerank(c.events, Uint32Array.from([c.candidates[0], c.candidates[0]]), c.surface));
  rej.badSurface = await rejection(() => r.rerank(c.events, cands, 'attic'));
  rej.nanTimestamp = await rejection(() => r.rerank([{ item: c.candidates[0], timestamp: NaN }], cands, c.surface));
  rej.notAnArray = await rejection(() => r.rerank('yesterday I watched TV', cands, c.surface));
  // A misspelt key is refused by name in every object the API reads (serde alone ignores it).
  rej.rerankOptionTypo = await rejection(() => r.rerank(c.events, cands, c.surface, { ...c.options, contry: 'DE' }));
  rej.eventKeyTypo = await rejection(() => r.rerank([{ ...c.events[0], acton: 'play' }, ...c.events.slice(1)], cands, c.surface));
  // The same history as columns gives the same ranking, stateless and as a session.
  const byObjects = await r.rerank(c.events, cands, c.surface, c.options);
  const byColumns = await r.rerank(toColumns(c.events), cands, c.surface, c.options);
  const columnSession = r.session(toColumns(c.events));
  const bySessionColumns = await columnSession.rerank(cands, c.surface, c.options);
  columnSession.free();
  const plainColumns = { items: Array.from(c.events, (e) => e.item), timestamps: c.events.map((e) => e.timestamp) };
  const plain = await r.rerank(plainColumns, cands, c.surface, c.options);
  out.columns = {
    objects: { items: Array.from(byObjects.items), scores: Array.from(byObjects.scores) },
    columns: { items: Array.from(byColumns.items), scores: Array.from(byColumns.scores) },
    session: { items: Array.from(bySessionColumns.items), scores: Array.from(bySessionColumns.scores) },
    plainArraysLength: plain.items.length,
  };
  // Event objects with absent or null names rank as with the names' defaults written out
  // (every other event spells them, so that each name column exists).
  const spell = (e) => ({ item: e.item, timestamp: e.timestamp, action: 'play', surface: 'home', country: '??', device: 'web' });
  const bare = c.events.map((e, i) => (i % 2 ? spell(e) : { item: e.item, timestamp: e.timestamp, action: null, surface: undefined }));
  const spelt = c.events.map(spell);
  out.columns.bareNames = Array.from((await r.rerank(bare, cands, c.surface, c.options)).items);
  out.columns.speltNames = Array.from((await r.rerank(spelt, cands, c.surface, c.options)).items);
  // An event with a field of the wrong type is named, with what is wrong.
  rej.objectsBadItem = await rejection(() => r.rerank(c.events.map((e, i) => (i === 3 ? { ...e, item: 1.5 } : e)), cands, c.surface));
  rej.objectsBadName = await rejection(() => r.rerank(c.events.map((e, i) => (i === 2 ? { ...e, country: 7 } : e)), cands, c.surface));
  rej.objectsNotAnEvent = await rejection(() => r.rerank([...c.events.slice(0, 1), 'x', ...c.events.slice(2)], cands, c.surface));
  const cols = toColumns(c.events);
  rej.columnsLengths = await rejection(() => r.rerank({ ...cols, timestamps: cols.timestamps.slice(1) }, cands, c.surface));
  rej.columnsMissing = await rejection(() => r.rerank({ items: cols.items }, cands, c.surface));
  rej.columnsBadItem = await rejection(() => r.rerank({ ...cols, items: Float64Array.from(cols.items, (x, i) => (i === 3 ? 1.5 : x)) }, cands, c.surface));
  rej.columnsNanTimestamp = await rejection(() => r.rerank({ ...cols, timestamps: Float64Array.from(cols.timestamps, (x, i) => (i === 2 ? NaN : x)) }, cands, c.surface));
  rej.columnsKeyTypo = await rejection(() => r.rerank({ ...cols, duration: cols.items }, cands, c.surface));
  rej.columnsBadSurface = await rejection(() => r.rerank({ ...cols, surfaces: c.events.map(() => 'attic') }, cands, c.surface));
  rej.columnsBadName = await rejection(() => r.rerank({ ...cols, countries: c.events.map((_, i) => (i === 1 ? 7 : 'US')) }, cands, c.surface));
  // A member session (the 12-event case, inside the model's window): append its last three
  // events one at a time; the rerank after the last append equals a stateless rerank of the
  // whole history, after encoding two tokens.
  const sc = cases[1];
  const session = r.session(sc.events.slice(0, -3));
  await session.rerank(Uint32Array.from(sc.candidates), sc.surface, sc.options);
  for (const e of sc.events.slice(-3)) {
    session.append(e);
    out.sessionLast = await session.rerank(Uint32Array.from(sc.candidates), sc.surface, sc.options);
  }
  out.session = {
    length: session.length,
    lastEncodedTokens: session.lastEncodedTokens,
    items: Array.from(out.sessionLast.items),
    scores: Array.from(out.sessionLast.scores),
  };
  delete out.sessionLast;
  rej.olderEvent = await rejection(() => session.append({ ...sc.events[0], timestamp: sc.events[0].timestamp - 86400 }));
  rej.badEvent = await rejection(() => session.append({ item: c.candidates[0], timestamp: 'soon' }));
  rej.appendKeyTypo = await rejection(() => session.append({ ...sc.events[sc.events.length - 1], durration: 60 }));
  // An event the model does not know is refused at the rerank; truncating drops it again.
  session.append({ ...sc.events[sc.events.length - 1], item: 4242424 });
  rej.sessionUnknownItem = await rejection(() => session.rerank(Uint32Array.from(sc.candidates), sc.surface, sc.options));
  session.truncate(sc.events.length);
  const recovered = await session.rerank(Uint32Array.from(sc.candidates), sc.surface, sc.options);
  out.session.recoveredItems = Array.from(recovered.items);
  session.free();
  // A window step: a session over the 50-event case (longer than the window) appends its
  // last ten events one at a time. With windowStep 8 it re-encodes the window about once
  // every 8 new events, with step 1 at each, and either way ends equal to a stateless rerank
  // of the same reranker.
  const lc = cases[2];
  const lcands = Uint32Array.from(lc.candidates);
  out.windowStep = {};
  for (const step of [1, 8]) {
    const wr = await Reranker.load(bytes, 'cpu', { windowStep: step });
    const ws = wr.session(lc.events.slice(0, -10));
    await ws.rerank(lcands, lc.surface, lc.options);
    const encoded = [];
    let last;
    for (const e of lc.events.slice(-10)) {
      ws.append(e);
      last = await ws.rerank(lcands, lc.surface, lc.options);
      encoded.push(ws.lastEncodedTokens);
    }
    const stateless = await wr.rerank(lc.events, lcands, lc.surface, lc.options);
    out.windowStep[step] = {
      windowStep: wr.windowStep,
      encoded,
      session: { items: Array.from(last.items), scores: Array.from(last.scores) },
      stateless: { items: Array.from(stateless.items), scores: Array.from(stateless.scores) },
    };
    ws.free();
    wr.free();
  }
  rej.windowStepZero = await rejection(() => Reranker.load(bytes, 'cpu', { windowStep: 0 }));
  rej.windowStepFraction = await rejection(() => Reranker.load(bytes, 'cpu', { windowStep: 2.5 }));
  rej.loadOptionTypo = await rejection(() => Reranker.load(bytes, 'cpu', { windwStep: 8 }));
  rej.overDecodedLimit = await rejection(() => Reranker.load(bytes, 'cpu', { maxDecodedBytes: 1000 }));
  rej.decodedLimitFraction = await rejection(() => Reranker.load(bytes, 'cpu', { maxDecodedBytes: 0.5 }));
  // A limit the model fits in loads as usual (four times the file bounds any valid file).
  const within = await Reranker.load(bytes, 'cpu', { maxDecodedBytes: 4 * bytes.length });
  out.loadedWithinLimit = within.itemCount;
  within.free();
  out.quantization = r.quantization;
  const int8 = await Reranker.load(new Uint8Array(await (await fetch('fixture/model-int8.encore')).arrayBuffer()), 'cpu');
  const int8Res = await int8.rerank(c.events, cands, c.surface, c.options);
  out.int8 = { quantization: int8.quantization, items: Array.from(int8Res.items), scores: Array.from(int8Res.scores) };
  int8.free();
  // Titles the bundle has never seen, pushed with their metadata among plain ids.
  const pushedBytes = new Uint8Array(await (await fetch('fixture/pushed.encore')).arrayBuffer());
  const pc = await (await fetch('fixture/pushed.json')).json();
  const pr = await Reranker.load(pushedBytes, 'cpu');
  const pres = await pr.rerank(pc.events, pc.candidates, pc.surface, pc.options);
  const psession = pr.session(pc.events);
  const psres = await psession.rerank(pc.candidates, pc.surface, pc.options);
  out.pushed = {
    stateless: { items: Array.from(pres.items), scores: Array.from(pres.scores) },
    session: { items: Array.from(psres.items), scores: Array.from(psres.scores) },
    genres: pr.genres,
    contentDim: pr.contentDim,
    // A history that holds a title the bundle lacks, described by the same call.
    watched: Array.from((await pr.rerank(pc.watchedEvents, pc.candidates, pc.surface, pc.options)).scores),
  };
  psession.free();
  // A watched title no candidate describes, described by the call's historyTitles.
  const withTitles = { ...pc.options, historyTitles: [pc.watchedTitle] };
  const tres = await pr.rerank(pc.watchedEvents, pc.otherCandidates, pc.surface, withTitles);
  out.pushed.historyTitles = { items: Array.from(tres.items), scores: Array.from(tres.scores) };
  const tsession = pr.session(pc.watchedEvents);
  const tsres = await tsession.rerank(pc.otherCandidates, pc.surface, withTitles);
  out.pushed.historyTitlesSession = { items: Array.from(tsres.items), scores: Array.from(tsres.scores) };
  tsession.free();
  rej.historyTitleMissing = await rejection(() => pr.rerank(pc.watchedEvents, pc.otherCandidates, pc.surface, pc.options));
  rej.historyTitleNotAnObject = await rejection(() => pr.rerank(pc.watchedEvents, pc.otherCandidates, pc.surface, { ...pc.options, historyTitles: [pc.watchedTitle, 5] }));
  rej.historyTitlesNotAnArray = await rejection(() => pr.rerank(pc.watchedEvents, pc.otherCandidates, pc.surface, { ...pc.options, historyTitles: pc.watchedTitle }));
  const title = pc.candidates.find((x) => typeof x === 'object');
  const bundled = pc.candidates.find((x) => typeof x === 'number');
  const withTitle = (t) => [bundled, t];
  rej.pushedById = await rejection(() => pr.rerank(pc.events, [bundled, title.id], pc.surface));
  rej.pushedUnknownGenre = await rejection(() => pr.rerank(pc.events, withTitle({ ...title, genres: [...title.genres, 'space-western'] }), pc.surface));
  rej.pushedBadKind = await rejection(() => pr.rerank(pc.events, withTitle({ ...title, kind: 'opera' }), pc.surface));
  const { release_year, ...noYear } = title;
  rej.pushedKeyTypo = await rejection(() => pr.rerank(pc.events, withTitle({ ...noYear, relase_year: release_year }), pc.surface));
  const { language, ...noLanguage } = title;
  rej.pushedMissingField = await rejection(() => pr.rerank(pc.events, withTitle(noLanguage), pc.surface));
  rej.pushedNotAnId = await rejection(() => pr.rerank(pc.events, [bundled, 'x'], pc.surface));
  rej.pushedContentWidth = await rejection(() => pr.rerank(pc.events, withTitle({ ...title, content: Float32Array.of(1, 2, 3) }), pc.surface));
  pr.free();
  // Prompt sets: selected by a surface argument naming them, stateless on every backend and
  // in a session that switches between them without re-encoding the history.
  const promptBytes = new Uint8Array(await (await fetch('fixture/prompts.encore')).arrayBuffer());
  const pp = await (await fetch('fixture/prompts.json')).json();
  out.prompts = { backends: {}, rejections: {} };
  for (const wanted of out.webgpuBackend ? ['webgpu', 'cpu'] : ['cpu']) {
    const pr2 = await Reranker.load(promptBytes, wanted);
    const stateless = [];
    for (const name of pp.names) stateless.push(asArrays(await pr2.rerank(pp.events, pp.candidates, name, { ...pp.options, promptFallback: true })));
    const session = pr2.session(pp.events);
    const switched = [];
    for (const name of pp.names) {
      const res = await session.rerank(pp.candidates, name, { ...pp.options, promptFallback: true });
      switched.push({ ...asArrays(res), encoded: session.lastEncodedTokens, cached: session.cachedTokens });
    }
    session.free();
    // A member without history: ranked under a prompt set from the request alone.
    const newProfile = [];
    for (const name of ['kids', 'partner_row']) newProfile.push(asArrays(await pr2.rerank([], pp.candidates, name, pp.options)));
    const fresh = pr2.session([]);
    newProfile.push(asArrays(await fresh.rerank(pp.candidates, 'kids', pp.options)));
    fresh.free();
    out.prompts.backends[wanted] = { backend: pr2.backend, promptSets: pr2.promptSets, stateless, switched, newProfile };
    if (wanted === 'cpu') {
      out.prompts.rejections.unknown = await rejection(() => pr2.rerank(pp.events, pp.candidates, 'attic', pp.options));
      out.prompts.rejections.noPromptSet = await rejection(() => pr2.rerank(pp.events, pp.candidates, 'home', pp.options));
      out.prompts.rejections.fallbackType = await rejection(() => pr2.rerank(pp.events, pp.candidates, 'home', { ...pp.options, promptFallback: 'yes' }));
      out.prompts.rejections.noHistoryNoPrompt = await rejection(() => pr2.rerank([], pp.candidates, 'home', { ...pp.options, promptFallback: true }));
      out.prompts.rejections.noHistoryNoTime = await rejection(() => pr2.rerank([], pp.candidates, 'kids', { device: 'tv' }));
    }
    pr2.free();
  }
  // The contextual ranker: a `task` option has the bundle's ranker score the candidates,
  // stateless and in a session (which then encodes the request token alone), on every backend.
  const rankerBytes = new Uint8Array(await (await fetch('fixture/ranker.encore')).arrayBuffer());
  const rc = await (await fetch('fixture/ranker.json')).json();
  out.ranker = { backends: {}, rejections: {} };
  for (const wanted of out.webgpuBackend ? ['webgpu', 'cpu'] : ['cpu']) {
    const rr = await Reranker.load(rankerBytes, wanted);
    const stateless = [];
    for (const o of rc.calls) stateless.push(asArrays(await rr.rerank(rc.events, rc.candidates, rc.surface, o)));
    const s = rr.session(rc.events);
    const session = [];
    for (const o of rc.calls) {
      const res = await s.rerank(rc.candidates, rc.surface, o);
      session.push({ ...asArrays(res), encoded: s.lastEncodedTokens });
    }
    // A title the bundle lacks, pushed with its metadata (its name included) into the first search.
    const pushedList = [rc.pushedTitle, ...Array.from(rc.candidates)];
    const pushed = asArrays(await rr.rerank(rc.events, pushedList, rc.surface, rc.calls[0]));
    const pushedSession = asArrays(await s.rerank(pushedList, rc.surface, rc.calls[0]));
    s.free();
    out.ranker.backends[wanted] = { backend: rr.backend, rankerTasks: rr.rankerTasks, stateless, session, pushed, pushedSession };
    if (wanted === 'cpu') {
      const base = rc.calls[0];
      const rej = out.ranker.rejections;
      rej.unknownTask = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, task: 'kids' }));
      rej.emptyQuery = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, query: ' ' }));
      rej.longQuery = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, query: 'q'.repeat(300) }));
      rej.nanAlpha = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, alpha: NaN }));
      rej.badAlpha = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, alpha: 2 }));
      rej.unknownSource = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, { ...base, task: 'more_like_this', source: 999999 }));
      const { task, ...noTask } = base;
      rej.queryWithoutTask = await rejection(() => rr.rerank(rc.events, rc.candidates, rc.surface, noTask));
      const { title, ...untitled } = rc.pushedTitle;
      rej.pushedWithoutTitle = await rejection(() => rr.rerank(rc.events, [untitled, ...Array.from(rc.candidates)], rc.surface, base));
      rej.noRanker = await rejection(() => r.rerank(c.events, cands, c.surface, { ...c.options, task: 'search', query: 'abc' }));
    }
    rr.free();
  }
  // After all that the instance still works.
  const again = await r.rerank(c.events, cands, c.surface, c.options);
  out.stillWorks = again.items.length === c.candidates.length;
  // Repeated reranks must not grow the wasm heap (each call once leaked constructor state).
  for (let i = 0; i < 20; i++) await r.rerank(c.events, cands, c.surface, c.options);
  const before = wasm.memory.buffer.byteLength;
  for (let i = 0; i < 10000; i++) await r.rerank(c.events, cands, c.surface, c.options);
  out.memoryGrowth = wasm.memory.buffer.byteLength - before;
  return out;
};

// Faults and load in one page: the WebGPU device destroyed under a reranker and a session,
// exceptions thrown by the caller's own code, 1,000 load/free cycles and a session of 100,000
// appends, with the module's memory before and after each.
window.runFaults = async () => {
  // Every GPUDevice the page opens, so that the test can destroy it as a browser would lose it.
  const devices = [];
  if (navigator.gpu) {
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const device = await requestDevice.apply(this, args);
      devices.push(device);
      return device;
    };
  }
  let unhandled = 0;
  window.addEventListener('unhandledrejection', () => { unhandled++; });
  const { bytes, cases } = await fixture();
  const c = cases[cases.length - 1];
  const cands = Uint32Array.from(c.candidates);
  const plain = (res) => ({ items: Array.from(res.items), scores: Array.from(res.scores) });
  const out = { webgpuBackend: hasWebGpuBackend() && !!navigator.gpu };

  if (out.webgpuBackend) {
    const r = await Reranker.load(bytes, 'webgpu');
    const session = r.session(c.events.slice(0, -1));
    await session.rerank(cands, c.surface, c.options);
    const before = plain(await r.rerank(c.events, cands, c.surface, c.options));
    const backendBefore = r.backend;
    for (const d of devices) d.destroy();
    // The next rerank, at once (the device-lost promise may not have settled yet) and again.
    const first = await rejection(async () => { out.afterLoss = plain(await r.rerank(c.events, cands, c.surface, c.options)); });
    const again = plain(await r.rerank(c.events, cands, c.surface, c.options));
    session.append(c.events[c.events.length - 1]);
    const sessionAfter = plain(await session.rerank(cands, c.surface, c.options));
    const reloaded = await Reranker.load(bytes, 'webgpu');
    const fresh = plain(await reloaded.rerank(c.events, cands, c.surface, c.options));
    out.deviceLost = {
      devices: devices.length, backendBefore, before, firstError: first, again, sessionAfter,
      backendAfter: r.backend, reasonAfter: r.backendReason, reloadedBackend: reloaded.backend, fresh,
    };
    session.free();
    r.free();
    reloaded.free();
  }

  // The caller's own exceptions: in a progress callback, after a rerank resolved, around a
  // refused append. The reranker stays usable and gives the same ranking.
  const r = await Reranker.load(bytes, 'cpu');
  const reference = plain(await r.rerank(c.events, cands, c.surface, c.options));
  const progressError = await rejection(() => Reranker.load(new Response(bytes), 'cpu', { onProgress: () => { throw new Error('app bug in onProgress'); } }));
  const afterProgress = await Reranker.load(new Response(bytes), 'cpu');
  const thenError = await rejection(() => r.rerank(c.events, cands, c.surface, c.options).then(() => { throw new Error('app bug after a rerank'); }));
  const session = r.session(c.events.slice(0, -1));
  let appendError = null;
  try { session.append({ item: 'not an id', timestamp: 1 }); } catch (e) { appendError = e.message; }
  session.append(c.events[c.events.length - 1]);
  out.callerErrors = {
    progressError, thenError, appendError,
    afterProgress: plain(await afterProgress.rerank(c.events, cands, c.surface, c.options)),
    afterThen: plain(await r.rerank(c.events, cands, c.surface, c.options)),
    session: plain(await session.rerank(cands, c.surface, c.options)),
    reference,
  };
  session.free();
  afterProgress.free();
  r.free();

  // 1,000 load/free cycles, each with a rerank.
  const memory = () => wasm.memory.buffer.byteLength;
  const cycle = async () => { const x = await Reranker.load(bytes, 'cpu'); await x.rerank(c.events, cands, c.surface, c.options); x.free(); };
  for (let i = 0; i < 20; i++) await cycle();
  let t = performance.now();
  const loadBefore = memory();
  for (let i = 0; i < 1000; i++) await cycle();
  out.loadCycles = { cycles: 1000, memoryBefore: loadBefore, memoryAfter: memory(), seconds: (performance.now() - t) / 1000 };

  // One session, 100,000 appended events (window step 16), a rerank after every 1,000.
  const stepped = await Reranker.load(bytes, 'cpu', { windowStep: 16 });
  const long = stepped.session(c.events);
  let ts = c.events[c.events.length - 1].timestamp;
  const items = c.candidates;
  const samples = [];
  t = performance.now();
  for (let i = 1; i <= 100000; i++) {
    ts += 60;
    long.append({ item: items[i % items.length], timestamp: ts, action: 'play', duration: 600 });
    if (i % 1000 === 0) {
      await long.rerank(cands, c.surface, c.options);
      if (i % 10000 === 0) samples.push([i, memory()]);
    }
  }
  out.longSession = { appends: 100000, length: long.length, samples, seconds: (performance.now() - t) / 1000, cachedTokens: long.cachedTokens };
  long.free();
  stepped.free();
  out.unhandledRejections = unhandled;
  return out;
};

window.runBench = async (iters, backends = ['webgpu', 'cpu'], windowStep = 1) => {
  // The CPU-only package has no WebGPU backend to time.
  backends = backends.filter((b) => b !== 'webgpu' || hasWebGpuBackend());
  // Cold start: the page's module fetch + compile + instantiate (until init resolved), then
  // fetching the weights, loading them on the CPU backend and the first rerank.
  const t0 = performance.now();
  const { bytes, cases } = await fixture();
  const t1 = performance.now();
  const first = await Reranker.load(bytes, 'cpu');
  const t2 = performance.now();
  await first.rerank(cases[0].events, Uint32Array.from(cases[0].candidates), cases[0].surface, cases[0].options);
  const t3 = performance.now();
  const out = {
    package: hasWebGpuBackend() ? 'full' : 'cpu', crossOriginIsolated: self.crossOriginIsolated, wasmReadyMs: wasmReadyMs, initStartMs,
    coldLoadAndFirstRerankMs: t3 - t0, coldParts: { fetchMs: t1 - t0, loadMs: t2 - t1, firstRerankMs: t3 - t2 }, iters, cases: [],
  };
  // Cold start: init() called → module ready → weights fetched and loaded → first rerank done.
  out.coldStartMs = out.wasmReadyMs - initStartMs + out.coldLoadAndFirstRerankMs;
  // The same counted from the page's navigation start (includes loading the page itself).
  out.sinceNavigationMs = out.wasmReadyMs + out.coldLoadAndFirstRerankMs;
  first.free();
  const pct = (v, p) => v[Math.round((v.length - 1) * p)];
  const mean = (v) => v.reduce((a, b) => a + b, 0) / Math.max(v.length, 1);
  out.windowStep = windowStep;
  for (const wanted of backends) {
    const r = await Reranker.load(bytes, wanted, { windowStep });
    for (const c of cases) {
      const cands = Uint32Array.from(c.candidates);
      for (let i = 0; i < 5; i++) await r.rerank(c.events, cands, c.surface, c.options);
      const ms = [];
      for (let i = 0; i < iters; i++) {
        const t = performance.now();
        await r.rerank(c.events, cands, c.surface, c.options);
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      // The same, with the history passed as columns of typed arrays.
      const cols = toColumns(c.events);
      const msColumns = [];
      for (let i = 0; i < iters; i++) {
        const t = performance.now();
        await r.rerank(cols, cands, c.surface, c.options);
        msColumns.push(performance.now() - t);
      }
      msColumns.sort((a, b) => a - b);
      // One local event appended to a warm session, then a rerank.
      const append = [];
      for (let i = 0; i < iters; i++) {
        const s = r.session(c.events.slice(0, -1));
        await s.rerank(cands, c.surface, c.options);
        const t = performance.now();
        s.append(c.events[c.events.length - 1]);
        await s.rerank(cands, c.surface, c.options);
        append.push(performance.now() - t);
        s.free();
      }
      append.sort((a, b) => a - b);
      // A member clicking on: 40 events appended to one session, each followed by a rerank,
      // timed together (the mean is finer than Chromium's 0.1 ms timer).
      const steady = 40;
      const s = r.session(c.events.slice(0, -1));
      await s.rerank(cands, c.surface, c.options);
      const last = c.events[c.events.length - 1];
      const t = performance.now();
      for (let i = 0; i < steady; i++) {
        s.append(last);
        await s.rerank(cands, c.surface, c.options);
      }
      const appendSteadyMean = (performance.now() - t) / steady;
      s.free();
      // Prompt sets (a bundle from `encore bench --prompts P`: input_a/b, deep_a/b): the
      // stateless rerank under one, and a warm session switching between a form's two at every
      // rerank (no new event: the swap alone), each call timed and 40 timed together.
      const promptSwaps = [];
      const names = new Set(r.promptSets.map((p) => p.name));
      for (const form of ['input', 'deep']) {
        if (!names.has(`${form}_a`) || !names.has(`${form}_b`)) continue;
        const opts = { ...c.options, promptFallback: true };
        const stateless = [];
        for (let i = 0; i < iters; i++) {
          const t = performance.now();
          await r.rerank(c.events, cands, `${form}_a`, opts);
          stateless.push(performance.now() - t);
        }
        stateless.sort((a, b) => a - b);
        const ps = r.session(c.events);
        await ps.rerank(cands, `${form}_a`, opts);
        const swaps = [];
        for (let i = 0; i < iters; i++) {
          const t = performance.now();
          await ps.rerank(cands, i % 2 ? `${form}_a` : `${form}_b`, opts);
          swaps.push(performance.now() - t);
        }
        const encoded = ps.lastEncodedTokens;
        const t2 = performance.now();
        for (let i = 0; i < steady; i++) await ps.rerank(cands, i % 2 ? `${form}_a` : `${form}_b`, opts);
        const swapSteadyMean = (performance.now() - t2) / steady;
        ps.free();
        swaps.sort((a, b) => a - b);
        const length = r.promptSets.find((p) => p.name === `${form}_a`).length;
        promptSwaps.push({ form, length, statelessP50: pct(stateless, 0.5), swapP50: pct(swaps, 0.5), swapP99: pct(swaps, 0.99), swapSteadyMean, tokensEncoded: encoded });
      }
      // The contextual ranker (a bundle with a `ranker` part): a stateless search rerank, and
      // a warm session where every call is a new query on the same history.
      let contextual = null;
      if (r.rankerTasks.includes('search')) {
        const q = (k) => ({ ...c.options, task: 'search', query: k % 2 ? 'the dr' : 'lov', alpha: 0.5 });
        const stateless = [];
        for (let i = 0; i < 5; i++) await r.rerank(c.events, cands, c.surface, q(0));
        for (let i = 0; i < iters; i++) {
          const t = performance.now();
          await r.rerank(c.events, cands, c.surface, q(0));
          stateless.push(performance.now() - t);
        }
        stateless.sort((a, b) => a - b);
        const qs = r.session(c.events);
        await qs.rerank(cands, c.surface, q(0));
        const swaps = [];
        for (let i = 0; i < iters; i++) {
          const t = performance.now();
          await qs.rerank(cands, c.surface, q(i + 1));
          swaps.push(performance.now() - t);
        }
        swaps.sort((a, b) => a - b);
        const t3 = performance.now();
        for (let i = 0; i < steady; i++) await qs.rerank(cands, c.surface, q(i));
        const querySwapSteadyMean = (performance.now() - t3) / steady;
        const tokensEncoded = qs.lastEncodedTokens;
        qs.free();
        contextual = { statelessP50: pct(stateless, 0.5), statelessP99: pct(stateless, 0.99), querySwapP50: pct(swaps, 0.5), querySwapP99: pct(swaps, 0.99), querySwapSteadyMean, tokensEncoded };
      }
      out.cases.push({
        backend: r.backend, history: c.events.length, candidates: c.candidates.length, contextual,
        p50: pct(ms, 0.5), p99: pct(ms, 0.99), columnsP50: pct(msColumns, 0.5), columnsP99: pct(msColumns, 0.99), appendP50: pct(append, 0.5), appendP99: pct(append, 0.99),
        // Means of the timed calls: finer than a percentile of Chromium's 0.1 ms clock steps.
        mean: mean(ms), columnsMean: mean(msColumns),
        appendSteadyMean, promptSwaps,
      });
    }
    r.free();
  }
  return out;
};

let wasm;
let wasmReadyMs;
// The runtime's share of a page's start: from the init() call (module fetch, compile,
// instantiate) to ready, apart from the page's own navigation and script loading before it.
const initStartMs = performance.now();
init().then((exports) => { wasm = exports; wasmReadyMs = performance.now(); window.harnessReady = true; }, (e) => { window.harnessError = String(e); });
