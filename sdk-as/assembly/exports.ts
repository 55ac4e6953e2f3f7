// The proxy-wasm ABI v0.2.1 entry points. A filter's entry file re-exports them:
//
//   export * from "@omnirelay/sdk-as/exports";
//
// Each dispatches to the context the host names. A callback for an unknown context id is
// ignored (the host's mistake must not trap the filter). Each brackets its work with
// enter()/leave(): when the outermost one returns, no Wasm frame holds a reference, the one
// moment the `minimal` runtime's collector may run (see gc.ts).

import "./abort";
import { createRoot, HttpContext, pendingCalls, RootContext, roots, streams } from "./context";
import { enter, leave } from "./gc";
import { setEffectiveContext } from "./hostcalls";
import { Action } from "./types";

/** Marks the module as built for proxy-wasm ABI v0.2.1. Never called. */
export function proxy_abi_version_0_2_1(): void {}

/** The host allocates memory inside the module to return data (freed by the SDK after copying). */
export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

// One-entry caches: a host usually runs every hook of a stream before the next stream's, and
// has one root, so most lookups skip the maps (fuel the filter would otherwise pay per hook).
let lastRootId: u32 = 0;
let lastRoot: RootContext | null = null;
let lastStreamId: u32 = 0;
let lastStream: HttpContext | null = null;

function root(contextId: u32): RootContext | null {
  if (contextId == lastRootId && lastRoot !== null) return lastRoot;
  if (!roots.has(contextId)) return null;
  const r = roots.get(contextId);
  lastRootId = contextId;
  lastRoot = r;
  return r;
}

function stream(contextId: u32): HttpContext | null {
  if (contextId == lastStreamId && lastStream !== null) return lastStream;
  if (!streams.has(contextId)) return null;
  const s = streams.get(contextId);
  lastStreamId = contextId;
  lastStream = s;
  return s;
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  enter();
  on_context_create(contextId, parentContextId);
  leave();
}

function on_context_create(contextId: u32, parentContextId: u32): void {
  if (parentContextId == 0) {
    lastRoot = createRoot(contextId);
    lastRootId = contextId;
    return;
  }
  const r = root(parentContextId);
  if (r === null) return;
  const s = r.newHttpContext(contextId);
  streams.set(contextId, s);
  lastStreamId = contextId;
  lastStream = s;
}

export function proxy_on_vm_start(rootContextId: u32, vmConfigurationSize: u32): u32 {
  enter();
  const r = on_vm_start(rootContextId, vmConfigurationSize);
  leave(true);
  return r;
}

function on_vm_start(rootContextId: u32, vmConfigurationSize: u32): u32 {
  const r = root(rootContextId);
  if (r === null) return 1;
  return r.onVmStart(vmConfigurationSize) ? 1 : 0;
}

export function proxy_on_configure(rootContextId: u32, pluginConfigurationSize: u32): u32 {
  enter();
  const r = on_configure(rootContextId, pluginConfigurationSize);
  leave(true);
  return r;
}

function on_configure(rootContextId: u32, pluginConfigurationSize: u32): u32 {
  const r = root(rootContextId);
  if (r === null) return 0;
  r.configSize = pluginConfigurationSize;
  const ok = r.onConfigure(pluginConfigurationSize);
  r.configSize = 0;
  return ok ? 1 : 0;
}

export function proxy_on_tick(rootContextId: u32): void {
  enter();
  on_tick(rootContextId);
  leave(true);
}

function on_tick(rootContextId: u32): void {
  const r = root(rootContextId);
  if (r !== null) r.onTick();
}

export function proxy_on_queue_ready(rootContextId: u32, queueId: u32): void {
  enter();
  on_queue_ready(rootContextId, queueId);
  leave(true);
}

function on_queue_ready(rootContextId: u32, queueId: u32): void {
  const r = root(rootContextId);
  if (r !== null) r.onQueueReady(queueId);
}

export function proxy_on_request_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  enter();
  const r = on_request_headers(contextId, numHeaders, endOfStream);
  leave();
  return r;
}

function on_request_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestHeaders(numHeaders, endOfStream != 0);
}

/**
 * OmniRelay's host calls this instead of proxy_on_context_create + proxy_on_request_headers
 * when a stream starts (one call into the module instead of two); other hosts call the two.
 * `deletedContextId` (0: none) is a finished stream whose proxy_on_delete the host left for
 * now (see omnirelay_deferred_delete).
 */
export function omnirelay_on_context_create_request_headers(contextId: u32, rootContextId: u32, numHeaders: u32, endOfStream: u32, deletedContextId: u32): u32 {
  enter();
  if (deletedContextId != 0) on_delete(deletedContextId);
  on_context_create(contextId, rootContextId);
  const r = on_request_headers(contextId, numHeaders, endOfStream);
  leave();
  return r;
}

export function proxy_on_request_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  enter();
  const r = on_request_body(contextId, bodySize, endOfStream);
  leave();
  return r;
}

function on_request_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestBody(bodySize, endOfStream != 0);
}

export function proxy_on_request_trailers(contextId: u32, numTrailers: u32): u32 {
  enter();
  const r = on_request_trailers(contextId, numTrailers);
  leave();
  return r;
}

function on_request_trailers(contextId: u32, numTrailers: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestTrailers(numTrailers);
}

export function proxy_on_response_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  enter();
  const r = on_response_headers(contextId, numHeaders, endOfStream);
  leave();
  return r;
}

function on_response_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onResponseHeaders(numHeaders, endOfStream != 0);
}

export function proxy_on_response_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  enter();
  const r = on_response_body(contextId, bodySize, endOfStream);
  leave();
  return r;
}

function on_response_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onResponseBody(bodySize, endOfStream != 0);
}

export function proxy_on_response_trailers(contextId: u32, numTrailers: u32): u32 {
  enter();
  const r = on_response_trailers(contextId, numTrailers);
  leave();
  return r;
}

function on_response_trailers(contextId: u32, numTrailers: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onResponseTrailers(numTrailers);
}

/**
 * Hosts deliver callout responses to the plugin (root) context (the spec's `plugin_context_id`,
 * what Envoy does) or to the calling context. Either way we route by token to the context
 * that made the call, and make it the effective context so its host calls (resume, local
 * response) act on its stream.
 */
export function proxy_on_http_call_response(contextId: u32, token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
  enter();
  on_http_call_response(contextId, token, numHeaders, bodySize, numTrailers);
  leave();
}

function on_http_call_response(contextId: u32, token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
  let target = contextId;
  if (pendingCalls.has(token)) {
    target = pendingCalls.get(token);
    pendingCalls.delete(token);
  }
  if (target != contextId) setEffectiveContext(target);
  const s = stream(target);
  if (s !== null) {
    s.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
    return;
  }
  const r = root(target);
  if (r !== null) r.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
}

export function proxy_on_done(contextId: u32): u32 {
  enter();
  const r = on_done(contextId);
  leave();
  return r;
}

function on_done(contextId: u32): u32 {
  const s = stream(contextId);
  if (s !== null) return s.onDone() ? 1 : 0;
  const r = root(contextId);
  if (r !== null) return r.onDone() ? 1 : 0;
  return 1;
}

export function proxy_on_log(contextId: u32): void {
  enter();
  on_log(contextId);
  leave();
}

function on_log(contextId: u32): void {
  const s = stream(contextId);
  if (s !== null) {
    s.onLog();
    return;
  }
  const r = root(contextId);
  if (r !== null) r.onLog();
}

/**
 * Marker for OmniRelay (never called): no context overrides `onDelete`, so deleting a context
 * only frees it here and may wait for the next stream start's `deletedContextId`. The build
 * drops it when a class overrides `onDelete`.
 */
export function omnirelay_deferred_delete(): void {}

export function proxy_on_delete(contextId: u32): void {
  enter();
  on_delete(contextId);
  leave();
}

function on_delete(contextId: u32): void {
  const s = stream(contextId);
  if (s !== null) {
    s.onDelete();
    streams.delete(contextId);
    if (lastStreamId == contextId) lastStream = null;
  } else {
    const r = root(contextId);
    if (r !== null) {
      r.onDelete();
      roots.delete(contextId);
      if (lastRootId == contextId) lastRoot = null;
    }
  }
  if (pendingCalls.size > 0) {
    const tokens = pendingCalls.keys();
    for (let i = 0; i < tokens.length; i++) {
      if (pendingCalls.get(tokens[i]) == contextId) pendingCalls.delete(tokens[i]);
    }
  }
}
