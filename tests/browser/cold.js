// A page's cold start with the wasm package, counted as ONNX Runtime Web's benchmark counts its
// own (`../shared/peers`): the package's JavaScript import, its module (fetch, compile,
// instantiate), the weights' fetch, the load and the first rerank (the longest history of the
// fixture), one after another; fetching the test's inputs is left out. With `?overlap=1` the
// weights are fetched while the package loads, as an app that knows both addresses would.
const overlap = new URLSearchParams(location.search).get('overlap') === '1';
const t0 = performance.now();
const early = overlap ? fetch('fixture/model.encore').then((r) => r.arrayBuffer()) : null;
const pkg = await import('./pkg/encore_wasm.js');
const tImport = performance.now();
await pkg.default();
const tInit = performance.now();
const bytes = new Uint8Array(await (early ?? fetch('fixture/model.encore').then((r) => r.arrayBuffer())));
const tFetch = performance.now();
const reranker = await pkg.Reranker.load(bytes, 'cpu');
const tLoad = performance.now();
const cases = await (await fetch('fixture/cases.json')).json();
const c = cases.reduce((a, b) => (b.events.length > a.events.length ? b : a));
const tInputs = performance.now();
await reranker.rerank(c.events, Uint32Array.from(c.candidates), c.surface, c.options);
const tFirst = performance.now();
window.coldResult = {
  overlap,
  crossOriginIsolated: self.crossOriginIsolated,
  importMs: tImport - t0,
  moduleMs: tInit - tImport,
  fetchMs: tFetch - tInit,
  loadMs: tLoad - tFetch,
  firstRerankMs: tFirst - tInputs,
  totalMs: tLoad - t0 + (tFirst - tInputs),
  history: c.events.length,
  candidates: c.candidates.length,
  modelBytes: bytes.byteLength,
};
