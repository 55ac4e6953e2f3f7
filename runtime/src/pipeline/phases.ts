/**
 * The lifecycle of one HTTP stream, listed once. Values are bit flags so a filter's
 * subscriptions fit in one number; the pipeline skips phases no filter subscribed to.
 *
 * Order on the wire: RequestHeaders -> RequestBody* -> RequestTrailers? -> (upstream)
 * -> ResponseHeaders -> ResponseBody* -> ResponseTrailers? -> Log.
 */
export const Phase = {
  RequestHeaders: 1,
  RequestBody: 2,
  RequestTrailers: 4,
  ResponseHeaders: 8,
  ResponseBody: 16,
  ResponseTrailers: 32,
  Log: 64,
} as const
export type Phase = (typeof Phase)[keyof typeof Phase]

/** Every phase: what a filter that does not say otherwise subscribes to. */
export const ALL_PHASES = 127

/** Phases that see body bytes: subscribing to one turns the stream's body from a plain pipe into per-chunk filter calls. */
export const BODY_PHASES = Phase.RequestBody | Phase.ResponseBody

/**
 * What a filter tells the pipeline after a hook. The numbers are fixed: they cross into
 * Wasm (proxy-wasm `Action`) and QuickJS unchanged.
 */
export const FilterStatus = {
  /** Go on: the next filter runs, then the stream proceeds. */
  Continue: 0,
  /**
   * Stop iterating.
   * - In a headers/trailers hook: hold the stream until the filter calls `stream.resume()`
   *   or `stream.sendLocalReply()` (used for async work such as an HTTP callout).
   * - In a body hook with `endOfStream === false`: keep buffering; the hook is called again
   *   with the grown buffer when more data arrives (Envoy's StopIterationAndBuffer).
   * - In a body hook with `endOfStream === true`: hold like a headers hook.
   * If the hook already sent a local reply, the reply wins whatever the status.
   */
  Pause: 1,
} as const
export type FilterStatus = (typeof FilterStatus)[keyof typeof FilterStatus]
