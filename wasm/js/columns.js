// A history's columns as the wasm module reads them fastest: names as codes into a column's
// distinct names (one typed array and one short string per column instead of one string per
// event), and event objects turned into columns before they cross (wasm-bindgen copies this
// file under snippets/).

/**
 * Writes into `codes` the position of each entry of `column` among the column's distinct
 * names, and returns those names joined by `separator` (in order of first use); `undefined`
 * when an entry is not a string or contains the separator (the module then reads the column
 * entry by entry, and names a bad entry).
 */
export function codeNames(column, separator, codes) {
  const positions = new Map();
  const names = [];
  for (let i = 0; i < column.length; i++) {
    const name = column[i];
    let code = positions.get(name);
    if (code === undefined) {
      if (typeof name !== 'string' || name.includes(separator)) return undefined;
      code = names.length;
      positions.set(name, code);
      names.push(name);
    }
    codes[i] = code;
  }
  return names.join(separator);
}

// The defaults an event object's absent (or null) name fields take in the module.
const DEFAULT_NAMES = { action: 'play', surface: 'home', country: '??', device: 'web' };
const NAME_COLUMNS = { action: 'actions', surface: 'surfaces', country: 'countries', device: 'devices' };

/**
 * An array of event objects as columns (`{items, timestamps, durations?, actions?, surfaces?,
 * countries?, devices?}`, the form the module reads fastest), or `undefined` when an event is
 * not a plain object or a field has a type the columns cannot carry as the object would (an
 * item that is not a whole number from 0 to 2^32 − 1, a timestamp or duration that is not a
 * number, a name that is not a string); the module then reads the objects themselves and says
 * what is wrong. Absent and null fields take the module's defaults.
 */
export function eventColumns(events) {
  const n = events.length;
  const items = new Float64Array(n);
  const timestamps = new Float64Array(n);
  const columns = { items, timestamps };
  let durations;
  const names = {};
  for (let i = 0; i < n; i++) {
    const e = events[i];
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
    const { item, timestamp, duration } = e;
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 4294967295) return undefined;
    if (typeof timestamp !== 'number') return undefined;
    items[i] = item;
    timestamps[i] = timestamp;
    if (duration !== undefined && duration !== null) {
      if (typeof duration !== 'number') return undefined;
      if (durations === undefined) durations = columns.durations = new Float64Array(n);
      durations[i] = duration;
    }
    for (const field in DEFAULT_NAMES) {
      const name = e[field];
      if (name === undefined || name === null) {
        if (names[field] !== undefined) names[field][i] = DEFAULT_NAMES[field];
        continue;
      }
      if (typeof name !== 'string') return undefined;
      if (names[field] === undefined) {
        names[field] = columns[NAME_COLUMNS[field]] = new Array(n).fill(DEFAULT_NAMES[field]);
      }
      names[field][i] = name;
    }
  }
  return columns;
}
