// A TypeScript app using the package, checked with `tsc --strict` against the package's own
// declarations (tests/tests/typescript.rs): the right calls type-check, and each wrong call
// marked `@ts-expect-error` must be an error (an unused marker fails the check).
import init, { Reranker, Session } from './pkg/encore_wasm.js';
import type { EncoreEvent, PushedTitle, Ranking, Candidates, History, PromptSetInfo, PromptSetName } from './pkg/encore_wasm.js';

export async function app(bytes: Uint8Array): Promise<number> {
  await init();
  const reranker: Reranker = await Reranker.load(bytes, 'auto', { windowStep: 8, maxDecodedBytes: 64e6 });
  const history: EncoreEvent[] = [
    { item: 1042, timestamp: 1767300000, action: 'play', duration: 2400, surface: 'home', country: 'US', device: 'tv' },
    { item: 1001, timestamp: 1767303600 },
  ];
  const fresh: PushedTitle = { id: 90001, genres: ['Drama'], kind: 'movie', language: 'en', release_year: 2026, added_at: 1767300000 };
  const camel: PushedTitle = { id: 90002, kind: 'series', language: 'de', releaseYear: 2025, addedAt: 1767300000, content: new Float32Array(384) };
  const candidates: Candidates = [1001, 1002, fresh, camel];
  const ranked: Ranking = await reranker.rerank(history, candidates, 'home', { timestamp: 1767304000, device: 'web' });
  const first: number = ranked.items[0] + ranked.scores[0];
  const columns: History = { items: Uint32Array.of(1042), timestamps: [1767300000], actions: ['play'] };
  await reranker.rerank(columns, Uint32Array.of(1001, 1002), 'kids');
  // A history title the bundle lacks, pushed with its int8 vector.
  const watched = { id: 90003, vector: new Int8Array(32), scale: 0.01 };
  await reranker.rerank([{ item: 90003, timestamp: 1767300000 }], [1001, 1002], 'home', { historyTitles: [watched, fresh] });
  // @ts-expect-error: history titles are title objects, not ids
  await reranker.rerank(history, [1001], 'home', { historyTitles: [90003] });
  const session: Session = reranker.session(history);
  session.append({ item: 1002, timestamp: 1767305000, action: 'add_to_list' });
  const next = await session.rerank([1001, fresh], 'mobile_feed');
  // Prompt sets: a listed name, or an application's own name cast as one.
  const sets: PromptSetInfo[] = reranker.promptSets;
  const form: 'input' | 'deep' = sets[0].form;
  await reranker.rerank(history, candidates, sets[0].name, { promptFallback: true });
  await session.rerank([1001], 'partner_row' as PromptSetName);
  // The contextual ranker: a task from the bundle's list, with a query, source and α.
  const tasks: string[] = reranker.rankerTasks;
  await reranker.rerank(history, candidates, 'search', { task: tasks[0], query: 'star wa', country: 'US', language: 'en', alpha: 0.5 });
  await session.rerank(Uint32Array.of(1001), 'home', { task: 'more_like_this', source: 1042 });
  // A title the bundle lacks, searched for by its name.
  const named: PushedTitle = { ...fresh, id: 90004, title: 'Star Wars: New Arrivals' };
  await reranker.rerank(history, [named, 1001], 'search', { task: 'search', query: 'star wa' });
  const genres: string[] | undefined = reranker.genres;
  const width: number | undefined = reranker.contentDim;

  // @ts-expect-error: not a surface
  await reranker.rerank(history, candidates, 'attic');
  // @ts-expect-error: an event's timestamp is a number
  await reranker.rerank([{ item: 1, timestamp: '2026-01-01' }], candidates, 'home');
  // @ts-expect-error: a misspelt request option
  await reranker.rerank(history, candidates, 'home', { contry: 'US' });
  // @ts-expect-error: a pushed title needs its kind and language
  await reranker.rerank(history, [{ id: 5, added_at: 0 }], 'home');
  // @ts-expect-error: a pushed title needs its arrival time
  await reranker.rerank(history, [{ id: 5, kind: 'movie', language: 'en' }], 'home');
  // @ts-expect-error: not a kind
  await reranker.rerank(history, [{ id: 5, kind: 'opera', language: 'en', added_at: 0 }], 'home');
  // @ts-expect-error: not a backend
  await Reranker.load(bytes, 'gpu');
  // @ts-expect-error: a misspelt load option
  await Reranker.load(bytes, 'cpu', { windwStep: 8 });
  // @ts-expect-error: the ranking's items are ids, not strings
  const wrong: string = ranked.items[0];
  // @ts-expect-error: an appended event needs its item
  session.append({ timestamp: 1 });
  // @ts-expect-error: α is a number
  await reranker.rerank(history, candidates, 'search', { task: 'search', alpha: 'high' });
  // @ts-expect-error: a source title is an id
  await reranker.rerank(history, candidates, 'home', { task: 'more_like_this', source: 'Heat' });
  // @ts-expect-error: a title's name is a string
  await reranker.rerank(history, [{ ...fresh, title: 42 }], 'search', { task: 'search' });
  // @ts-expect-error: promptFallback is a boolean
  await reranker.rerank(history, candidates, 'home', { promptFallback: 'yes' });
  return first + next.items.length + (genres?.length ?? 0) + (width ?? 0) + wrong.length + form.length;
}
