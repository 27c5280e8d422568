// A TypeScript app using the worker entry (`encore-reranker/worker`), checked with
// `tsc --strict` against its declarations (tests/tests/typescript.rs): the right calls
// type-check; each `@ts-expect-error` line must be an error.
import { Reranker, Session } from './pkg/worker.js';
import type { EncoreEvent, PromptSetInfo, Ranking } from './pkg/worker.js';

export async function app(url: string): Promise<number> {
  const reranker: Reranker = await Reranker.load(url, 'auto', {
    cpuOnly: true,
    windowStep: 4,
    onProgress: (loaded: number, total: number | null) => console.log(loaded, total),
  });
  const fromResponse = await Reranker.load(await fetch(url), 'cpu', { wasmUrl: new URL('x.wasm', url) });
  const history: EncoreEvent[] = [{ item: 1042, timestamp: 1767300000, action: 'play' }];
  const ranked: Ranking = await reranker.rerank(history, Uint32Array.of(1, 2), 'home', { country: 'US', transfer: true });
  const session: Session = await reranker.session(history);
  await session.append({ item: 1, timestamp: 1767300100 });
  await session.truncate(1);
  const next = await session.rerank([1, 2], 'kids');
  // The bundle's prompt sets, selected by name in the worker too.
  const sets: PromptSetInfo[] = reranker.promptSets;
  await session.rerank([1, 2], sets[0].name, { promptFallback: true });
  const tasks: string[] = reranker.rankerTasks;
  await session.rerank([1, 2], 'search', { task: tasks[0], query: 'star wa', alpha: 0 });
  const length: number = session.length + reranker.itemCount;
  const backend: 'webgpu' | 'cpu' = reranker.backend;
  await session.free();
  reranker.free();
  fromResponse.free();

  // @ts-expect-error: the worker's session is async: it must be awaited before use
  reranker.session(history).append({ item: 1, timestamp: 1 });
  // @ts-expect-error: not a surface
  await reranker.rerank(history, [1], 'attic');
  // @ts-expect-error: transfer is a boolean
  await reranker.rerank(history, [1], 'home', { transfer: 'yes' });
  // @ts-expect-error: a misspelt load option
  await Reranker.load(url, 'cpu', { cpuonly: true });
  // @ts-expect-error: not a bundle source
  await Reranker.load(42);
  // @ts-expect-error: the ranking's scores are numbers
  const wrong: string = next.scores[0];
  return ranked.items[0] + length + backend.length + wrong.length;
}
