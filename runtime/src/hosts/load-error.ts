/**
 * What the hosts' load errors (WasmLoadError, QuickJsLoadError, NativeLoadError) have in
 * common: a filter refused while its factory was built, with a stable `code` and the filter's
 * name. Each host keeps its own subclass (and `name`), so callers can still tell them apart.
 *
 * @example
 * try { await host.createFactory(def, artifact, services) } catch (e) {
 *   if (e instanceof FilterLoadError) console.error(e.filter, e.code)
 * }
 */
export class FilterLoadError extends Error {
  readonly code: string
  readonly filter: string
  constructor(filter: string, code: string, message: string, options?: { cause?: unknown }) {
    super(`filter "${filter}": ${message}`, options)
    this.code = code
    this.filter = filter
  }
}
