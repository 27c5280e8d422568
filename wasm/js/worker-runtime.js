// The Web Worker side of `encore-reranker/worker`: loads the wasm package in the worker and
// runs every call the page's proxy (worker.js) posts, one at a time, in the order posted.
// Messages: {id, op, ...args} → {id, value} or {id, error}. Rankings go back with their
// buffers transferred (no copy).

let wasm;
let reranker;
const sessions = new Map();
let queue = Promise.resolve();

const described = (r) => ({
  backend: r.backend,
  backendReason: r.backendReason,
  itemCount: r.itemCount,
  genres: r.genres,
  contentDim: r.contentDim,
  windowStep: r.windowStep,
  quantization: r.quantization,
  promptSets: r.promptSets,
  rankerTasks: r.rankerTasks,
});

const sessionState = (s) => ({ length: s.length, lastEncodedTokens: s.lastEncodedTokens, cachedTokens: s.cachedTokens });

function session(id) {
  const s = sessions.get(id);
  if (!s) throw new Error('the session was freed');
  return s;
}

const ops = {
  async load({ bytes, backend, options, cpuOnly, wasmUrl }) {
    wasm = await import(cpuOnly ? './cpu/encore_wasm.js' : './encore_wasm.js');
    await wasm.default(wasmUrl ? { module_or_path: wasmUrl } : undefined);
    reranker = await wasm.Reranker.load(bytes, backend, options);
    return described(reranker);
  },
  async rerank({ events, candidates, surface, options }) {
    return reranker.rerank(events, candidates, surface, options);
  },
  session({ sid, events }) {
    const s = reranker.session(events);
    sessions.set(sid, s);
    return sessionState(s);
  },
  append({ sid, event }) {
    const s = session(sid);
    s.append(event);
    return sessionState(s);
  },
  truncate({ sid, length }) {
    const s = session(sid);
    s.truncate(length);
    return sessionState(s);
  },
  async sessionRerank({ sid, candidates, surface, options }) {
    const s = session(sid);
    const ranking = await s.rerank(candidates, surface, options);
    return { ranking, state: sessionState(s) };
  },
  freeSession({ sid }) {
    sessions.get(sid)?.free();
    sessions.delete(sid);
  },
};

function reply(id, value) {
  const ranking = value?.ranking ?? value;
  const transfer = ranking?.items instanceof Uint32Array ? [ranking.items.buffer, ranking.scores.buffer] : [];
  self.postMessage({ id, value }, transfer);
}

self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      reply(data.id, await ops[data.op](data));
    } catch (e) {
      self.postMessage({ id: data.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
};
