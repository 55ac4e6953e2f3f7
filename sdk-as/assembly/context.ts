// What filter authors implement: a root context per plugin (configuration, timers, queues)
// and an HTTP context per request. Every callback has a do-nothing default, so a filter
// overrides only what it needs; the SDK's build drops the entry points of hooks no
// filter overrides, so the host never calls (or buffers for) phases nobody uses.

import { Buffer, callResponseBody, requestBody, responseBody, vmConfiguration } from "./buffers";
import { callResponseHeaders, callResponseTrailers, HeaderMap, requestHeaders, requestTrailers, responseHeaders, responseTrailers } from "./headers";
import { CallResult, closeStream, continueStream, done, getBufferBytes, httpCall, sendLocalResponse, setTickPeriodMilliseconds } from "./hostcalls";
import { JsonValue, parseJsonBytes } from "./json";
import { Action, BufferType, Header, Status, StreamType } from "./types";

/** State shared by root and HTTP contexts: identity, lifecycle hooks and HTTP callouts. */
export class BaseContext {
  constructor(public readonly id: u32) {}

  /**
   * The host is done with this context. Return false to keep it alive (e.g. a callout is
   * still running) and call `finish()` later. Default: true.
   */
  onDone(): bool { return true; }

  /** After `onDone`; for final log lines and accounting. Request/response headers are readable. */
  onLog(): void {}

  /** The context is gone; drop any state keyed by it. */
  onDelete(): void {}

  /**
   * The response to a callout this context started with `httpCall`. `numHeaders == 0`
   * means the call failed (timeout, reset, unknown cluster). Read the answer with
   * `callResponseHeaders` / `callResponseBody`.
   */
  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {}

  /**
   * Starts an HTTP request to the configured cluster `cluster`. The response arrives in
   * `onHttpCallResponse` of this same context. `headers` must include `:method` and `:path`;
   * `:authority` is set to the cluster name when missing.
   *
   * @example
   * const r = this.httpCall("auth", [new Header(":method", "GET"), new Header(":path", "/check")]);
   * if (r.status != Status.Ok) { ...; }
   * return Action.Pause;
   */
  httpCall(cluster: string, headers: Array<Header>, body: ArrayBuffer | null = null, timeoutMs: u32 = 5000, trailers: Array<Header> = []): CallResult {
    let hasAuthority = false;
    for (let i = 0; i < headers.length; i++) {
      if (headers[i].name == ":authority") { hasAuthority = true; break; }
    }
    if (!hasAuthority) {
      headers = headers.slice(0);
      headers.push(new Header(":authority", cluster));
    }
    const r = httpCall(cluster, headers, body, trailers, timeoutMs);
    if (r.status == Status.Ok) pendingCalls.set(r.token, this.id);
    return r;
  }

  /** Headers of the callout response being delivered (inside `onHttpCallResponse`). */
  get callResponseHeaders(): HeaderMap { return callResponseHeaders; }
  get callResponseTrailers(): HeaderMap { return callResponseTrailers; }
  /** Body of the callout response being delivered (inside `onHttpCallResponse`). */
  get callResponseBody(): Buffer { return callResponseBody; }

  /** Completes a context that returned false from `onDone`. */
  finish(): Status { return done(); }
}

/**
 * The plugin's context: created once per configured filter, lives as long as the plugin.
 * Parse configuration here (once), and hand the result to each request through `this`.
 *
 * @example
 * class Root extends RootContext {
 *   header: string = "x-hello";
 *   onConfigure(size: u32): bool {
 *     const cfg = this.configJson();
 *     if (cfg === null) return false;             // refuse bad config at load
 *     this.header = cfg.getString("header", this.header);
 *     return true;
 *   }
 *   newHttpContext(id: u32): HttpContext { return new Hello(id, this); }
 * }
 * registerRootContext((id: u32): RootContext => new Root(id));
 */
export class RootContext extends BaseContext {
  /** Size of the plugin configuration handed to the current `onConfigure`. */
  configSize: u32 = 0;

  /** The VM started; `vmConfigSize` bytes of VM configuration are readable via `vmConfiguration`. */
  onVmStart(vmConfigSize: u32): bool { return true; }

  /** The plugin (re)starts with its configuration. Return false to refuse it. */
  onConfigure(configSize: u32): bool { return true; }

  /** Called every tick period (see `setTickPeriod`). */
  onTick(): void {}

  /** An item was enqueued on a queue this VM registered. */
  onQueueReady(queueId: u32): void {}

  /** Creates the per-request context. Override to return your `HttpContext` subclass. */
  newHttpContext(contextId: u32): HttpContext {
    return new HttpContext(contextId, this);
  }

  /** The raw plugin configuration (inside `onConfigure`); empty when there is none. */
  configBytes(): ArrayBuffer {
    if (this.configSize == 0) return new ArrayBuffer(0);
    const b = getBufferBytes(BufferType.PluginConfiguration, 0, this.configSize);
    return b === null ? new ArrayBuffer(0) : b;
  }

  /** The plugin configuration as text (inside `onConfigure`). */
  configText(): string {
    return String.UTF8.decode(this.configBytes());
  }

  /**
   * The plugin configuration parsed as JSON (inside `onConfigure`). An empty configuration
   * reads as an empty object; invalid JSON gives null.
   */
  configJson(): JsonValue | null {
    if (this.configSize == 0) return parseJsonBytes(String.UTF8.encode("{}"));
    return parseJsonBytes(this.configBytes());
  }

  /** The VM configuration (inside `onVmStart`). */
  get vmConfiguration(): Buffer { return vmConfiguration; }

  /** Calls `onTick` every `ms` milliseconds; 0 stops it. */
  setTickPeriod(ms: u32): Status { return setTickPeriodMilliseconds(ms); }
}

/**
 * One HTTP request/response pair. Every hook returns an `Action`: `Continue` hands the
 * stream on; `Pause` stops it until `resumeRequest()`/`resumeResponse()` (or after a local
 * response).
 *
 * @example
 * class Hello extends HttpContext {
 *   onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
 *     this.responseHeaders.set("x-hello", "world");
 *     return Action.Continue;
 *   }
 * }
 */
export class HttpContext extends BaseContext {
  constructor(id: u32, public readonly root: RootContext) {
    super(id);
  }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  /** `bodySize` is what is buffered so far (it grows while this hook returns `Pause`). */
  onRequestBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestTrailers(numTrailers: u32): Action { return Action.Continue; }
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseTrailers(numTrailers: u32): Action { return Action.Continue; }

  get requestHeaders(): HeaderMap { return requestHeaders; }
  get requestTrailers(): HeaderMap { return requestTrailers; }
  get responseHeaders(): HeaderMap { return responseHeaders; }
  get responseTrailers(): HeaderMap { return responseTrailers; }
  get requestBody(): Buffer { return requestBody; }
  get responseBody(): Buffer { return responseBody; }

  /**
   * Answers locally with `status`, `body` and `headers`; return `Action.Pause` from the hook
   * afterwards. `details` is recorded by the host as the reason (access log, metrics).
   *
   * @example
   * this.sendLocalResponse(403, '{"error":"forbidden"}', [new Header("content-type", "application/json")], "forbidden");
   * return Action.Pause;
   */
  sendLocalResponse(status: u32, body: string = "", headers: Array<Header> = [], details: string = ""): Status {
    return sendLocalResponse(status, details, body.length == 0 ? null : String.UTF8.encode(body), headers, -1);
  }

  /** Like `sendLocalResponse` with a binary body and an optional gRPC status (-1: none). */
  sendLocalResponseBytes(status: u32, body: ArrayBuffer | null, headers: Array<Header>, details: string, grpcStatus: i32 = -1): Status {
    return sendLocalResponse(status, details, body, headers, grpcStatus);
  }

  /** Resumes a request a hook paused. */
  resumeRequest(): Status { return continueStream(StreamType.HttpRequest); }
  /** Resumes a response a hook paused. */
  resumeResponse(): Status { return continueStream(StreamType.HttpResponse); }
  /** Resets the request stream. */
  closeRequest(): Status { return closeStream(StreamType.HttpRequest); }
  /** Resets the response stream. */
  closeResponse(): Status { return closeStream(StreamType.HttpResponse); }
}

// ---- registry (used by exports.ts) ---------------------------------------------------------

/** Creates the plugin's root context; registered once at the top level of the filter. */
export type RootFactory = (contextId: u32) => RootContext;

function defaultRoot(contextId: u32): RootContext {
  return new RootContext(contextId);
}

let rootFactory: RootFactory = defaultRoot;

/**
 * Registers the root context factory. Call it once at the top level of your filter's
 * entry file (it runs in `_initialize`, before the host creates any context).
 *
 * @example
 * registerRootContext((id: u32): RootContext => new MyRoot(id));
 */
export function registerRootContext(factory: RootFactory): void {
  rootFactory = factory;
}

export const roots = new Map<u32, RootContext>();
export const streams = new Map<u32, HttpContext>();
/** Callout token -> id of the context that started it. */
export const pendingCalls = new Map<u32, u32>();

export function createRoot(contextId: u32): RootContext {
  const r = rootFactory(contextId);
  roots.set(contextId, r);
  return r;
}
