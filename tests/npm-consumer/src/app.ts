// A web app using the installed encore-reranker package the way its README shows: the main
// entry (streamed wasm compile, a bundle loaded from a URL with progress, from a Response and
// from bytes), sessions, the worker entry, and the CPU-only entry on a page without WebGPU.
// Each function returns what it computed; tests/tests/npm_package.rs compares it with the
// Rust library.
import init, { Reranker } from 'encore-reranker';
import type { EncoreEvent, Ranking, RequestOptions, Surface } from 'encore-reranker';
import { Reranker as WorkerReranker } from 'encore-reranker/worker';

/** A case of `cases.json` (written by the Rust test). */
interface Case {
  events: EncoreEvent[];
  candidates: number[];
  surface: Surface;
  options: RequestOptions;
}

/** A ranking as plain arrays. */
interface Result {
  items: number[];
  scores: number[];
}

const plain = (r: Ranking): Result => ({ items: Array.from(r.items), scores: Array.from(r.scores) });

async function cases(): Promise<Case[]> {
  return (await fetch('cases.json')).json();
}

async function message(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Milliseconds per awaited call of `f`: the median over 15 batches of 30 calls (the page's
 * clock ticks in 0.1 ms steps, so single calls are not timed), after 20 warm-up calls. */
async function msPerCall(f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i++) await f();
  const batches: number[] = [];
  for (let b = 0; b < 15; b++) {
    const t = performance.now();
    for (let i = 0; i < 30; i++) await f();
    batches.push((performance.now() - t) / 30);
  }
  batches.sort((a, b) => a - b);
  return batches[7];
}

export async function main(): Promise<unknown> {
  const all = await cases();
  // The wasm compiles while it streams in.
  let streamed = 0;
  const instantiateStreaming = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = (source, imports) => {
    streamed++;
    return instantiateStreaming.call(WebAssembly, source, imports);
  };
  await init();
  WebAssembly.instantiateStreaming = instantiateStreaming;

  // A bundle from a URL string with progress, from a Response, a URL object and bytes.
  const progress: [number, number | null][] = [];
  const reranker = await Reranker.load('model.encore', 'auto', { onProgress: (loaded, total) => progress.push([loaded, total]) });
  const cpu = await Reranker.load(await fetch('model.encore'), 'cpu');
  const fromUrl = await Reranker.load(new URL('model.encore', location.href), 'cpu');
  const bytes = new Uint8Array(await (await fetch('model.encore')).arrayBuffer());
  const fromBuffer = await Reranker.load(bytes.buffer, 'cpu');

  const direct: Result[] = [];
  const loaders: Result[][] = [[], [], []];
  const sessions: Result[] = [];
  for (const c of all) {
    direct.push(plain(await reranker.rerank(c.events, Uint32Array.from(c.candidates), c.surface, c.options)));
    for (const [k, r] of [cpu, fromUrl, fromBuffer].entries()) {
      loaders[k].push(plain(await r.rerank(c.events, c.candidates, c.surface, c.options)));
    }
    const half = Math.floor(c.events.length / 2);
    const session = reranker.session(c.events.slice(0, Math.max(half, 1)));
    await session.rerank(c.candidates, c.surface, c.options);
    for (const e of c.events.slice(Math.max(half, 1))) session.append(e);
    sessions.push(plain(await session.rerank(c.candidates, c.surface, c.options)));
    session.free();
  }
  const refusals = {
    missing: await message(Reranker.load('missing.encore')),
    notBytes: await message(Reranker.load(42 as unknown as string)),
    surface: await message(reranker.rerank(all[0].events, all[0].candidates, 'attic' as Surface)),
  };

  // The worker entry: the same calls through a Web Worker.
  const workerProgress: [number, number | null][] = [];
  const worker = await WorkerReranker.load('model.encore', 'auto', { onProgress: (loaded, total) => workerProgress.push([loaded, total]) });
  const workerDirect: Result[] = [];
  const workerSessions: Result[] = [];
  for (const c of all) {
    workerDirect.push(plain(await worker.rerank(c.events, c.candidates, c.surface, c.options)));
    const session = await worker.session(c.events.slice(0, 1));
    for (const e of c.events.slice(1)) await session.append(e);
    workerSessions.push(plain(await session.rerank(c.candidates, c.surface, c.options)));
    await session.free();
  }
  // Typed arrays moved to the worker: the caller's are emptied.
  const last = all[all.length - 1];
  const items = Uint32Array.from(last.events.map((e) => e.item));
  const timestamps = Float64Array.from(last.events.map((e) => e.timestamp));
  const candidates = Uint32Array.from(last.candidates);
  await worker.rerank({ items, timestamps }, candidates, last.surface, { ...last.options, transfer: true });
  const transferred = items.byteLength === 0 && timestamps.byteLength === 0 && candidates.byteLength === 0;
  const workerRefusals = {
    surface: await message(worker.rerank(all[0].events, all[0].candidates, 'attic' as Surface)),
    missing: await message(WorkerReranker.load('missing.encore')),
  };
  const workerState = { backend: worker.backend, itemCount: worker.itemCount, quantization: worker.quantization };

  // The hop: the same rerank on the CPU backend, on this thread and through a CPU-only worker.
  const cpuWorker = await WorkerReranker.load('model.encore', 'cpu', { cpuOnly: true });
  const hopCase = last;
  const hop = {
    direct: await msPerCall(() => cpu.rerank(hopCase.events, hopCase.candidates, hopCase.surface, hopCase.options)),
    worker: await msPerCall(() => cpuWorker.rerank(hopCase.events, hopCase.candidates, hopCase.surface, hopCase.options)),
    workerBackend: cpuWorker.backend,
  };
  const loaded = { backend: reranker.backend, itemCount: reranker.itemCount };
  for (const r of [reranker, cpu, fromUrl, fromBuffer]) r.free();
  worker.free();
  cpuWorker.free();
  const afterFree = await message(worker.rerank(all[0].events, all[0].candidates, 'home'));

  return {
    streamed,
    progress,
    workerProgress,
    ...loaded,
    direct,
    loaders,
    sessions,
    refusals,
    workerDirect,
    workerSessions,
    transferred,
    workerRefusals,
    workerState,
    hop,
    afterFree,
  };
}

/** On a page without WebGPU: the README's choice of entry, then a rerank. */
export async function withoutWebGpu(): Promise<unknown> {
  const all = await cases();
  // (`'gpu' in navigator`: TypeScript's DOM types do not declare navigator.gpu.)
  const hasWebGpu = 'gpu' in navigator && navigator.gpu !== undefined;
  const entry = hasWebGpu ? 'encore-reranker' : 'encore-reranker/cpu';
  const { default: start, Reranker: EntryReranker } = await import(hasWebGpu ? 'encore-reranker' : 'encore-reranker/cpu');
  await start();
  const reranker = await EntryReranker.load('model.encore');
  const direct: Result[] = [];
  for (const c of all) direct.push(plain(await reranker.rerank(c.events, c.candidates, c.surface, c.options)));
  const webgpu = await message(EntryReranker.load('model.encore', 'webgpu'));
  return { entry, backend: reranker.backend, direct, webgpu };
}
