// A bundle as `Reranker.load` accepts it → its bytes. Shared by the package's entries: the
// wasm module imports it (wasm-bindgen copies it under snippets/), and the worker entry's
// main-thread side imports the copy at the package root, so that a page fetches a bundle the
// same way whether the model runs on its thread or in a worker.

/**
 * Reads `source` (a Uint8Array or other typed array, an ArrayBuffer, a Response, a URL or a
 * URL string) into a Uint8Array. A Response (or what fetching the URL gives) is read as a
 * stream, calling `onProgress(loaded, total)` after each chunk: `loaded` bytes so far, `total`
 * the Content-Length when the server sent one for an unencoded body, else null.
 */
export async function bundleBytes(source, onProgress) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (onProgress !== undefined && onProgress !== null && typeof onProgress !== 'function') {
    throw new TypeError('load options: onProgress must be a function');
  }
  let response = source;
  if (typeof source === 'string' || source instanceof URL) {
    response = await fetch(source);
  }
  if (typeof Response === 'undefined' || !(response instanceof Response)) {
    throw new TypeError('the bundle must be a Uint8Array, an ArrayBuffer, a Response, a URL or a URL string');
  }
  if (!response.ok) {
    throw new Error(`the bundle at ${response.url || String(source)} could not be fetched: HTTP ${response.status} ${response.statusText}`.trim());
  }
  const length = response.headers.get('content-length');
  const encoded = response.headers.get('content-encoding');
  const total = length !== null && /^\d+$/.test(length) && !encoded ? Number(length) : null;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (onProgress) onProgress(bytes.length, total);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (onProgress) onProgress(loaded, total);
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
