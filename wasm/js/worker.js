// `encore-reranker/worker`: the same reranker, run in a Web Worker. The page's thread fetches
// the bundle and posts calls; the worker compiles the wasm, loads the model and reranks, so the
// page's thread never compiles or runs the model. Every method is async (a call is a message
// to the worker and back); results, errors and their messages are those of the main entry.
import { bundleBytes } from './bundle.js';

/** Typed arrays of a history or candidate list, whose buffers a call may transfer. */
function typedArrays(...values) {
  const out = [];
  for (const v of values) {
    if (ArrayBuffer.isView(v)) out.push(v.buffer);
    else if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const column of Object.values(v)) if (ArrayBuffer.isView(column)) out.push(column.buffer);
    }
  }
  return [...new Set(out)];
}

/** Splits `transfer` off request options. */
function requestOptions(options) {
  if (!options || typeof options !== 'object' || !('transfer' in options)) return [options, false];
  const { transfer, ...rest } = options;
  return [Object.keys(rest).length ? rest : undefined, transfer === true];
}

class Channel {
  constructor(worker) {
    this.worker = worker;
    this.next = 0;
    this.pending = new Map();
    worker.onmessage = ({ data }) => {
      const call = this.pending.get(data.id);
      this.pending.delete(data.id);
      if ('error' in data) call.reject(new Error(data.error));
      else call.resolve(data.value);
    };
    worker.onerror = (e) => {
      const error = new Error(`the reranker's worker failed: ${e.message || 'could not start'}`);
      for (const call of this.pending.values()) call.reject(error);
      this.pending.clear();
      this.failed = error;
    };
  }

  call(op, args, transfer = []) {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.worker) return Promise.reject(new Error('the reranker was freed'));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...args }, transfer);
    });
  }
}

/** A model loaded in a Web Worker (see `Reranker.load`). */
export class Reranker {
  /**
   * Starts a worker and loads the bundle in it. `source`, `backend` and `options` are those of
   * the main entry's `Reranker.load`; `options.cpuOnly` loads the CPU-only build in the worker
   * (a smaller download; `backend` is then "cpu"), `options.wasmUrl` where the worker fetches
   * the wasm module from (default: next to the package's module). The bundle is fetched on
   * this thread (with `onProgress`) and its bytes moved to the worker without a copy.
   */
  static async load(source, backend, options) {
    const { onProgress, cpuOnly, wasmUrl, ...loadOptions } = options ?? {};
    let bytes = await bundleBytes(source, onProgress);
    if (bytes === source || bytes.byteLength !== bytes.buffer.byteLength) bytes = bytes.slice();
    const worker = new Worker(new URL('./worker-runtime.js', import.meta.url), { type: 'module' });
    const channel = new Channel(worker);
    try {
      const described = await channel.call(
        'load',
        { bytes, backend: cpuOnly ? 'cpu' : backend, options: loadOptions, cpuOnly: cpuOnly === true, wasmUrl: wasmUrl && String(wasmUrl) },
        [bytes.buffer],
      );
      return new Reranker(channel, described);
    } catch (e) {
      worker.terminate();
      throw e;
    }
  }

  constructor(channel, described) {
    this.channel = channel;
    this.nextSession = 0;
    Object.assign(this, described);
  }

  /**
   * Reranks as the main entry's `rerank`. With `options.transfer` true, the buffers of the
   * typed arrays in `events` and `candidates` move to the worker instead of being copied (the
   * caller's arrays are then empty).
   */
  rerank(events, candidates, surface, options) {
    const [request, transfer] = requestOptions(options);
    return this.channel.call('rerank', { events, candidates, surface, options: request }, transfer ? typedArrays(events, candidates) : []);
  }

  /** Starts a member session in the worker (see the main entry's `session`). */
  async session(events) {
    const sid = this.nextSession++;
    const state = await this.channel.call('session', { sid, events });
    return new Session(this.channel, sid, state);
  }

  /** Ends the worker; the reranker and its sessions can no longer be used. */
  free() {
    this.channel.worker?.terminate();
    this.channel.worker = null;
  }
}

/** A member session whose history and cache live in the worker. */
export class Session {
  constructor(channel, sid, state) {
    this.channel = channel;
    this.sid = sid;
    Object.assign(this, state);
  }

  /** Appends an event (see the main entry's `append`); resolves once the worker has it. */
  async append(event) {
    Object.assign(this, await this.channel.call('append', { sid: this.sid, event }));
  }

  /** Keeps the first `length` events. */
  async truncate(length) {
    Object.assign(this, await this.channel.call('truncate', { sid: this.sid, length }));
  }

  /** Reranks for this member (see the main entry's `Session.rerank`). */
  async rerank(candidates, surface, options) {
    const [request, transfer] = requestOptions(options);
    const { ranking, state } = await this.channel.call(
      'sessionRerank',
      { sid: this.sid, candidates, surface, options: request },
      transfer ? typedArrays(candidates) : [],
    );
    Object.assign(this, state);
    return ranking;
  }

  /** Frees the session in the worker. */
  async free() {
    await this.channel.call('freeSession', { sid: this.sid });
  }
}
