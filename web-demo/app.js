// The Encore web demo: build a history by clicking titles, pick a surface, and watch the
// candidates a server pushed get reranked on this device. The member's history lives in a
// session that keeps the model's keys and values, so a click costs two tokens' work.
// A browser without WebGPU gets the CPU-only runtime (no WebGPU code: 410 instead of 478 KiB gzipped).
// The model is the distilled on-device student; the newest titles are not in its bundle: the
// server pushes them with their metadata, and the bundle's content encoder embeds them here.
// The bundle carries a prompt set per surface: a surface tab selects the prompt set of its name
// (home has none: the model without a prompt), and the session swaps it without re-encoding
// the history. It also carries the contextual ranker: with a task chosen (search, home row,
// more like this) the ranker scores the candidates from the member's representation and the
// request's context: a typed query reranks live, ≈ on a title opens its "more like this" page,
// and the α slider weighs personalization (0: relevance alone).
const { default: init, Reranker, hasWebGpuBackend } = await import(navigator.gpu ? './pkg/encore_wasm.js' : './pkg/cpu/encore_wasm.js');

const $ = (id) => document.getElementById(id);
const SURFACES = ['home', 'search', 'kids', 'mobile_feed'];
const state = { reranker: null, session: null, catalog: new Map(), members: [], history: [], candidates: [], surface: 'home', bytes: null, task: '', source: null, alpha: null };

const title = (id) => state.catalog.get(id)?.title ?? `#${id}`;
const meta = (id) => { const i = state.catalog.get(id); return i ? `${i.kind} · ${i.genres.join('/')}` + (i.new ? ' · <span class="new">new: not in the bundle, pushed with its metadata</span>' : '') : ''; };
// What the server sends for a candidate: its id, or for a title the bundle does not contain,
// the title's metadata (the bundle's content encoder embeds it on this device; the contextual
// ranker matches a query against its name).
const pushed = (id) => {
  const i = state.catalog.get(id);
  return i?.new ? { id, title: i.title, genres: i.genres, kind: i.kind, language: i.language, release_year: i.release_year, added_at: i.added_at } : id;
};
const promptOf = (surface) => state.reranker.promptSets.find((p) => p.name === surface);
const li = (html) => { const el = document.createElement('li'); el.innerHTML = html; return el; };

// A fresh session over the whole history (after a member change, a clear or a backend switch).
function restartSession() {
  if (state.session) state.session.free();
  state.session = state.reranker.session(state.history);
}

async function loadBackend(wanted) {
  if (state.session) { state.session.free(); state.session = null; }
  if (state.reranker) state.reranker.free();
  const t0 = performance.now();
  state.reranker = await Reranker.load(state.bytes, wanted);
  const fresh = [...state.catalog.values()].filter((i) => i.new).length;
  $('status').textContent = `backend: ${state.reranker.backend} (${state.reranker.backendReason}) · ${state.reranker.quantization} weights · loaded in ${(performance.now() - t0).toFixed(0)} ms · ${state.reranker.itemCount} titles in the bundle` + (fresh ? `, ${fresh} new ones pushed with metadata` : '') + (state.reranker.promptSets.length ? ` · prompt sets: ${state.reranker.promptSets.map((p) => p.name).join(', ')}` : '') + (state.reranker.rankerTasks.length ? ` · ranker tasks: ${state.reranker.rankerTasks.join(', ')}` : '') + (hasWebGpuBackend() ? '' : ' · CPU-only runtime');
  restartSession();
}

function lastTimestamp() {
  return state.history.length ? state.history[state.history.length - 1].timestamp : Math.floor(Date.now() / 1000);
}

// What the server pushes for the ranker's task: for a search, the catalog's titles whose words
// start with the query's (a stand-in for the server's lexical retriever; typos find less), new
// titles first; for "more like this", titles sharing the source's genres; for a home row, the
// member's pushed candidates. New titles (not in the bundle) go with their metadata.
function rankerCandidates() {
  const all = [...state.catalog.values()].sort((a, b) => Number(!!b.new) - Number(!!a.new));
  if (state.task === 'search') {
    const words = $('query').value.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
    if (!words.length) return [];
    const hits = all.filter((i) => words.some((w) => `${i.title} ${i.genres.join(' ')}`.toLowerCase().split(/[^\p{L}\p{N}]+/u).some((t) => t.startsWith(w))));
    return hits.slice(0, 40).map((i) => i.id);
  }
  if (state.task === 'more_like_this' && state.source != null) {
    const src = state.catalog.get(state.source);
    const near = all.filter((i) => i.id !== src.id && i.genres.some((g) => src.genres.includes(g)));
    return near.slice(0, 40).map((i) => i.id);
  }
  return state.candidates;
}

// The ranker's options for the chosen task (none when the ranker is off).
function rankerOptions() {
  if (!state.task) return {};
  const o = { task: state.task };
  if (state.task === 'search') o.query = $('query').value;
  if (state.task === 'more_like_this' && state.source != null) o.source = state.source;
  if (state.alpha != null) o.alpha = state.alpha;
  return o;
}

async function rerank() {
  renderHistory();
  const shown = state.task ? rankerCandidates() : state.candidates;
  $('before').replaceChildren(...shown.map((id) => li(`${title(id)} <div class="meta">${meta(id)}</div>`)));
  if (state.task && !shown.length) {
    $('after').replaceChildren(li(`<span class="meta">${state.task === 'search' ? 'Type a query.' : 'Pick ≈ on a title.'}</span>`));
    $('latency').textContent = '';
    return;
  }
  if (!state.history.length) {
    $('after').replaceChildren(li('<span class="meta">Watch something to get a personal order.</span>'));
    $('latency').textContent = '';
    return;
  }
  try {
    const t0 = performance.now();
    const candidates = shown.map(pushed);
    const { items, scores } = await state.session.rerank(candidates, state.surface, { timestamp: lastTimestamp() + 600, promptFallback: true, ...rankerOptions() });
    const ms = performance.now() - t0;
    const tokens = state.session.lastEncodedTokens;
    const prompt = promptOf(state.surface);
    // The request token is never cached, nor are an input prompt's tokens.
    const uncached = 1 + (prompt?.form === 'input' ? prompt.length : 0);
    const reused = state.session.cachedTokens + uncached - tokens;
    $('latency').textContent = `${ms.toFixed(1)} ms on ${state.reranker.backend} · ${tokens} token${tokens === 1 ? '' : 's'} encoded` + (reused > 0 ? `, ${reused} from the cache` : '')
      + (prompt ? ` · prompt ${prompt.name} (${prompt.form}, ${prompt.length} vectors)` : ' · no prompt')
      + (state.task ? ` · ranker: ${state.task}${state.source != null && state.task === 'more_like_this' ? ` like ${title(state.source)}` : ''}, α ${state.alpha ?? 'task default'}` : '');
    $('after').replaceChildren(...Array.from(items).map((id, i) => {
      const moved = shown.indexOf(id) - i;
      const cls = moved > 0 ? 'moved-up' : moved < 0 ? 'moved-down' : '';
      const arrow = moved > 0 ? `▲${moved}` : moved < 0 ? `▼${-moved}` : '';
      const el = li(`<span class="score">${scores[i].toFixed(2)}</span>${title(id)} <span class="${cls}">${arrow}</span>${state.reranker.rankerTasks.includes('more_like_this') && !state.catalog.get(id)?.new ? '<span class="mlt" title="more like this">≈</span>' : ''}<div class="meta">${meta(id)}</div>`);
      if (state.catalog.get(id)?.new) el.classList.add('new');
      el.onclick = () => watch(id);
      const mlt = el.querySelector('.mlt');
      if (mlt) mlt.onclick = (e) => { e.stopPropagation(); moreLikeThis(id); };
      return el;
    }));
  } catch (e) {
    $('latency').textContent = `error: ${e.message}`;
    // An event the session refused (e.g. a title it cannot embed) is dropped again.
    if (state.session.length > state.history.length) state.session.truncate(state.history.length);
  }
}

function renderHistory() {
  $('history-count').textContent = `${state.history.length} events, most recent first`;
  $('history').replaceChildren(...state.history.slice(-40).reverse().map((e) => li(`${title(e.item)} <div class="meta">${e.action} · ${e.surface} · ${new Date(e.timestamp * 1000).toISOString().slice(0, 16).replace('T', ' ')}</div>`)));
}

function renderCatalog() {
  const q = $('search').value.toLowerCase();
  // Titles the bundle does not contain reach the device only as pushed candidates.
  const items = [...state.catalog.values()].filter((i) => !i.new && (!q || i.title.toLowerCase().includes(q) || i.genres.join(' ').toLowerCase().includes(q))).slice(0, 300);
  $('catalog').replaceChildren(...items.map((i) => {
    const el = li(`${i.title} <div class="meta">${i.kind} · ${i.genres.join('/')}</div>`);
    el.onclick = () => watch(i.id);
    return el;
  }));
}

// The member plays a title: one event appended to the session. A new title the bundle lacks
// can be watched from the reranked list: the last rerank described it, and the session keeps
// its vector for the history.
function watch(id) {
  const event = { item: id, timestamp: lastTimestamp() + 3600, action: 'play', duration: 2400, surface: state.surface, device: 'web' };
  try {
    state.session.append(event);
  } catch (e) {
    $('latency').textContent = `error: ${e.message}`;
    return;
  }
  state.history.push(event);
  rerank();
}

// Opens the "more like this" page of `id`: the ranker's task with it as the source.
function moreLikeThis(id) {
  state.task = 'more_like_this';
  state.source = id;
  $('task').value = 'more_like_this';
  $('query').hidden = true;
  rerank();
}

// The ranker's controls, shown when the bundle carries a ranker.
function setupRanker() {
  const tasks = state.reranker.rankerTasks;
  $('ranker').hidden = !tasks.length;
  $('task').replaceChildren($('task').options[0], ...tasks.map((t) => { const o = document.createElement('option'); o.value = t; o.textContent = t.replaceAll('_', ' '); return o; }));
  $('task').value = state.task;
  $('task').onchange = (e) => { state.task = e.target.value; $('query').hidden = state.task !== 'search'; rerank(); };
  $('query').oninput = () => rerank();
  $('alpha').oninput = (e) => { state.alpha = Number(e.target.value); $('alpha-value').textContent = state.alpha.toFixed(2); rerank(); };
}

function selectMember(index) {
  const m = state.members[index];
  state.history = m.history.map((e) => ({ item: e.item, timestamp: e.timestamp, action: e.action, duration: e.duration_s, surface: e.surface, country: e.country, device: e.device }));
  state.candidates = m.candidates.slice();
  restartSession();
  rerank();
}

async function main() {
  await init();
  const [bytes, catalog, members] = await Promise.all([
    fetch('assets/model.encore').then((r) => r.arrayBuffer()),
    fetch('assets/catalog.json').then((r) => r.json()),
    fetch('assets/members.json').then((r) => r.json()),
  ]);
  state.bytes = new Uint8Array(bytes);
  for (const i of catalog) state.catalog.set(i.id, i);
  state.members = members;
  await loadBackend('auto');
  setupRanker();
  $('member').replaceChildren(...members.map((m, i) => { const o = document.createElement('option'); o.value = i; o.textContent = `member ${m.member} (${m.history.length} events)`; return o; }));
  $('member').onchange = (e) => selectMember(Number(e.target.value));
  $('backend').onchange = async (e) => { await loadBackend(e.target.value).catch((err) => { $('status').textContent = err.message; }); rerank(); };
  $('surfaces').replaceChildren(...SURFACES.map((s) => {
    const b = document.createElement('button');
    b.textContent = s; b.className = s === state.surface ? 'active' : '';
    b.onclick = () => { state.surface = s; [...$('surfaces').children].forEach((x) => x.classList.toggle('active', x === b)); rerank(); };
    return b;
  }));
  $('clear').onclick = () => { state.history = []; restartSession(); rerank(); };
  $('shuffle').onclick = () => {
    const all = [...state.catalog.keys()];
    state.candidates = Array.from({ length: 24 }, () => all[Math.floor(Math.random() * all.length)]).filter((v, i, a) => a.indexOf(v) === i);
    rerank();
  };
  $('search').oninput = renderCatalog;
  renderCatalog();
  selectMember(0);
}

main().catch((e) => { $('status').textContent = `failed: ${e.message}`; });
