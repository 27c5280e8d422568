// Types of `encore-reranker/worker`: the main entry's reranker, run in a Web Worker.
import type {
  BackendName,
  BundleSource,
  Candidates,
  EncoreEvent,
  History,
  LoadOptions,
  PromptSetInfo,
  PromptSetName,
  Ranking,
  RequestOptions,
  Surface,
} from './encore_wasm.js';

export type {
  BackendName,
  BundleSource,
  Candidates,
  EncoreEvent,
  History,
  LoadOptions,
  PromptSetInfo,
  PromptSetName,
  Ranking,
  RequestOptions,
  Surface,
} from './encore_wasm.js';

/** `Reranker.load`'s options in the worker entry. */
export interface WorkerLoadOptions extends LoadOptions {
  /** Load the CPU-only build in the worker (a smaller download; the backend is then "cpu"). */
  cpuOnly?: boolean;
  /** Where the worker fetches the wasm module from (default: next to the package's module). */
  wasmUrl?: string | URL;
}

/** A request's options in the worker entry. */
export interface WorkerRequestOptions extends RequestOptions {
  /** Move the buffers of the typed arrays in the history and candidates to the worker
   * instead of copying them (the caller's arrays are empty afterwards). */
  transfer?: boolean;
}

/** A model loaded in a Web Worker: the main entry's `Reranker`, every method async. */
export declare class Reranker {
  private constructor();
  /** Starts a worker and loads the bundle in it (fetched on the calling thread). */
  static load(source: BundleSource, backend?: BackendName, options?: WorkerLoadOptions): Promise<Reranker>;
  /** "webgpu" or "cpu". */
  readonly backend: "webgpu" | "cpu";
  /** Why this backend was chosen. */
  readonly backendReason: string;
  /** Number of titles in the bundle. */
  readonly itemCount: number;
  /** Genre names of the bundle's content encoder (undefined without one). */
  readonly genres: string[] | undefined;
  /** Width of pushed titles' content vectors (undefined without a content encoder). */
  readonly contentDim: number | undefined;
  /** How many events the window moves at a time. */
  readonly windowStep: number;
  /** "f32", "f16" or "int8". */
  readonly quantization: string;
  /** The bundle's prompt sets: a `surface` argument naming one steers the model with it. */
  readonly promptSets: PromptSetInfo[];
  /** The contextual ranker's task names (empty without a ranker). */
  readonly rankerTasks: string[];
  /** Reranks `candidates` for a member with this history, best first. */
  rerank(events: History, candidates: Candidates, surface: Surface | PromptSetName, options?: WorkerRequestOptions): Promise<Ranking>;
  /** Starts a member session in the worker. */
  session(events: History): Promise<Session>;
  /** Ends the worker. */
  free(): void;
}

/** A member session whose history and cached keys and values live in the worker. */
export declare class Session {
  private constructor();
  /** Events in the history (as of the last call that resolved). */
  readonly length: number;
  /** Tokens the last rerank encoded. */
  readonly lastEncodedTokens: number;
  /** Tokens whose keys and values are cached. */
  readonly cachedTokens: number;
  /** Appends a local event. */
  append(event: EncoreEvent): Promise<void>;
  /** Keeps the first `length` events. */
  truncate(length: number): Promise<void>;
  /** Reranks for this member. */
  rerank(candidates: Candidates, surface: Surface | PromptSetName, options?: WorkerRequestOptions): Promise<Ranking>;
  /** Frees the session in the worker. */
  free(): Promise<void>;
}
