// The proxy-wasm ABI v0.2.1 entry points. A filter's entry file re-exports them:
//
//   export * from "@omnirelay/sdk-as/exports";
//
// Each dispatches to the context the host names. A callback for an unknown context id is
// ignored (the host's mistake must not trap the filter).

import "./abort";
import { createRoot, HttpContext, pendingCalls, roots, streams } from "./context";
import { setEffectiveContext } from "./hostcalls";
import { Action } from "./types";

/** Marks the module as built for proxy-wasm ABI v0.2.1. Never called. */
export function proxy_abi_version_0_2_1(): void {}

/** The host allocates memory inside the module to return data (freed by the SDK after copying). */
export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  if (parentContextId == 0) {
    createRoot(contextId);
    return;
  }
  if (!roots.has(parentContextId)) return;
  const root = roots.get(parentContextId);
  streams.set(contextId, root.newHttpContext(contextId));
}

export function proxy_on_vm_start(rootContextId: u32, vmConfigurationSize: u32): u32 {
  if (!roots.has(rootContextId)) return 1;
  return roots.get(rootContextId).onVmStart(vmConfigurationSize) ? 1 : 0;
}

export function proxy_on_configure(rootContextId: u32, pluginConfigurationSize: u32): u32 {
  if (!roots.has(rootContextId)) return 0;
  const root = roots.get(rootContextId);
  root.configSize = pluginConfigurationSize;
  const ok = root.onConfigure(pluginConfigurationSize);
  root.configSize = 0;
  return ok ? 1 : 0;
}

export function proxy_on_tick(rootContextId: u32): void {
  if (roots.has(rootContextId)) roots.get(rootContextId).onTick();
}

export function proxy_on_queue_ready(rootContextId: u32, queueId: u32): void {
  if (roots.has(rootContextId)) roots.get(rootContextId).onQueueReady(queueId);
}

@inline function stream(contextId: u32): HttpContext | null {
  return streams.has(contextId) ? streams.get(contextId) : null;
}

export function proxy_on_request_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestHeaders(numHeaders, endOfStream != 0);
}

export function proxy_on_request_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestBody(bodySize, endOfStream != 0);
}

export function proxy_on_request_trailers(contextId: u32, numTrailers: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onRequestTrailers(numTrailers);
}

export function proxy_on_response_headers(contextId: u32, numHeaders: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onResponseHeaders(numHeaders, endOfStream != 0);
}

export function proxy_on_response_body(contextId: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = stream(contextId);
  return s === null ? Action.Continue : s.onResponseBody(bodySize, endOfStream != 0);
}

export function proxy_on_response_trailers(contextId: u32, numTrailers: u32): u32 {
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
  let target = contextId;
  if (pendingCalls.has(token)) {
    target = pendingCalls.get(token);
    pendingCalls.delete(token);
  }
  if (target != contextId) setEffectiveContext(target);
  if (streams.has(target)) streams.get(target).onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
  else if (roots.has(target)) roots.get(target).onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
}

export function proxy_on_done(contextId: u32): u32 {
  if (streams.has(contextId)) return streams.get(contextId).onDone() ? 1 : 0;
  if (roots.has(contextId)) return roots.get(contextId).onDone() ? 1 : 0;
  return 1;
}

export function proxy_on_log(contextId: u32): void {
  if (streams.has(contextId)) streams.get(contextId).onLog();
  else if (roots.has(contextId)) roots.get(contextId).onLog();
}

export function proxy_on_delete(contextId: u32): void {
  if (streams.has(contextId)) {
    streams.get(contextId).onDelete();
    streams.delete(contextId);
  } else if (roots.has(contextId)) {
    roots.get(contextId).onDelete();
    roots.delete(contextId);
  }
  if (pendingCalls.size > 0) {
    const tokens = pendingCalls.keys();
    for (let i = 0; i < tokens.length; i++) {
      if (pendingCalls.get(tokens[i]) == contextId) pendingCalls.delete(tokens[i]);
    }
  }
}
