// A history of event objects → the same history as columns (typed arrays for the numbers,
// arrays of names), as a page holding typed arrays would pass it. Shared by the browser harness
// and the Node timing script.
export function toColumns(events) {
  const cols = {
    items: Uint32Array.from(events, (e) => e.item),
    timestamps: Float64Array.from(events, (e) => e.timestamp),
    durations: Float64Array.from(events, (e) => e.duration ?? 0),
  };
  for (const [name, key] of [['actions', 'action'], ['surfaces', 'surface'], ['countries', 'country'], ['devices', 'device']]) {
    if (events.some((e) => e[key] !== undefined)) cols[name] = events.map((e) => e[key]);
  }
  return cols;
}
