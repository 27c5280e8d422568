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

/**
 * An array of event objects as columns (`{items, timestamps, durations?, actions?, surfaces?,
 * countries?, devices?}`, the form the module reads fastest), or `undefined` when an event is
 * not a plain object or a field has a type the columns cannot carry as the object would (an
 * item that is not a whole number from 0 to 2^32 − 1, a timestamp or duration that is not a
 * number, a name that is not a string); the module then reads the objects themselves and says
 * what is wrong. Absent and null fields take the module's defaults (play, home, ??, web).
 */
export function eventColumns(events) {
  const n = events.length;
  const items = new Float64Array(n);
  const timestamps = new Float64Array(n);
  const columns = { items, timestamps };
  // The four name fields are written out one by one: a loop over them read each through a
  // computed key, which made the call about 10% slower in Node.
  let durations, actions, surfaces, countries, devices;
  // A name column is made at its first name, with the default up to there.
  const column = (key, fallback, i) => (columns[key] = new Array(n).fill(fallback, 0, i));
  for (let i = 0; i < n; i++) {
    const e = events[i];
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
    const { item, timestamp, duration, action, surface, country, device } = e;
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 4294967295) return undefined;
    if (typeof timestamp !== 'number') return undefined;
    items[i] = item;
    timestamps[i] = timestamp;
    if (duration != null) {
      if (typeof duration !== 'number') return undefined;
      if (durations === undefined) durations = columns.durations = new Float64Array(n);
      durations[i] = duration;
    }
    if (action != null) {
      if (typeof action !== 'string') return undefined;
      if (actions === undefined) actions = column('actions', 'play', i);
      actions[i] = action;
    } else if (actions !== undefined) actions[i] = 'play';
    if (surface != null) {
      if (typeof surface !== 'string') return undefined;
      if (surfaces === undefined) surfaces = column('surfaces', 'home', i);
      surfaces[i] = surface;
    } else if (surfaces !== undefined) surfaces[i] = 'home';
    if (country != null) {
      if (typeof country !== 'string') return undefined;
      if (countries === undefined) countries = column('countries', '??', i);
      countries[i] = country;
    } else if (countries !== undefined) countries[i] = '??';
    if (device != null) {
      if (typeof device !== 'string') return undefined;
      if (devices === undefined) devices = column('devices', 'web', i);
      devices[i] = device;
    } else if (devices !== undefined) devices[i] = 'web';
  }
  return columns;
}
