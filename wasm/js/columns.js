// Columns of names → one string, so that a history's names cross into the wasm module in one
// piece instead of as one string per event (wasm-bindgen copies this file under snippets/).

/**
 * The entries of `column` joined by `separator`, or `undefined` when an entry is not a string
 * or contains the separator (the module then reads the column entry by entry, and names a bad
 * entry).
 */
export function joinNames(column, separator) {
  for (const name of column) {
    if (typeof name !== 'string' || name.includes(separator)) return undefined;
  }
  return column.join(separator);
}
