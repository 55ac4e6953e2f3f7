// Garbage collection under the `minimal` runtime (two-colour mark & sweep), which the SDK's
// build uses. Unlike `incremental` it keeps no shadow stack of references and runs no write
// barrier or GC step on each allocation (about a sixth of a typical filter chain's cost per
// request), but it may only collect when no Wasm frame holds a reference: when an entry
// point the host called returns. So every entry point brackets its work with enter() and
// leave(), and the outermost leave() collects:
// - every EXITS_PER_COLLECTION returns: a header filter returns 2-3 times per request, so
//   one collection per 10-16 requests, ~1 µs each for a small filter's heap;
// - when the heap had to grow since the last collection (a burst);
// - after root-context callbacks (configuration, ticks, queues): rare, and with no stream
//   ending they would otherwise only collect by count.
// A callback that allocates a lot keeps its garbage until it returns: budget the memory
// quota for a few requests' worth of garbage, not one. Hosts need do nothing.
//
// Built with another runtime (plain `asc --runtime incremental`), leave() does nothing: that
// runtime collects by itself.

/** Entry-point returns between two collections at most (a filter sees a few per request). */
const EXITS_PER_COLLECTION: u32 = 32;

let depth: i32 = 0;
let exits: u32 = 0;
let pagesAtCollection: i32 = 0;

/** An entry point starts (host callbacks may nest: only the outermost one may collect). */
// @ts-ignore: decorator
@inline export function enter(): void {
  depth++;
}

/** An entry point returns; `collect` forces a collection (root-context callbacks). */
export function leave(collect: bool = false): void {
  if (--depth != 0 || ASC_RUNTIME != 1 /* minimal */) return;
  if (!collect && ++exits < EXITS_PER_COLLECTION && memory.size() <= pagesAtCollection) return;
  exits = 0;
  __collect();
  pagesAtCollection = memory.size();
}
