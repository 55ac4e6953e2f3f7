// AssemblyScript compiler transform: drops the proxy-wasm entry points of hooks no filter
// class overrides (and OmniRelay's deferred-delete marker when one overrides onDelete). A
// missing callback means "continue" to every proxy-wasm host, so the module behaves the same,
// but the host never calls into it (or subscribes a phase, or buffers a body) for nothing,
// and the module imports only what it really uses.
//
// Used by build.js; with plain asc: `asc ... --transform @omnirelay/sdk-as/transform`.
import { Transform } from 'assemblyscript/transform'

/** Entry point -> the context method whose override makes it needed. */
export const HOOK_EXPORTS = Object.freeze({
  proxy_on_vm_start: 'onVmStart',
  proxy_on_tick: 'onTick',
  proxy_on_queue_ready: 'onQueueReady',
  proxy_on_request_headers: 'onRequestHeaders',
  omnirelay_on_context_create_request_headers: 'onRequestHeaders',
  proxy_on_request_body: 'onRequestBody',
  proxy_on_request_trailers: 'onRequestTrailers',
  proxy_on_response_headers: 'onResponseHeaders',
  proxy_on_response_body: 'onResponseBody',
  proxy_on_response_trailers: 'onResponseTrailers',
  proxy_on_http_call_response: 'onHttpCallResponse',
  proxy_on_log: 'onLog',
  // Hosts take a missing on_done as "done" (the SDK's default): one call less per request.
  proxy_on_done: 'onDone',
})

/** Exports dropped when a class DOES override the method (they promise it is not). */
export const UNLESS_OVERRIDDEN = Object.freeze({
  // The host may defer proxy_on_delete to the next stream start only if onDelete is the SDK's.
  omnirelay_deferred_delete: 'onDelete',
})

const SDK_BASES = /(^|\/)assembly\/context\/(BaseContext|RootContext|HttpContext)$/

/** Method names declared by any class outside the SDK's own context classes. */
export function overriddenHooks(program) {
  const names = new Set()
  for (const el of program.elementsByName.values()) {
    if (!el || el.instanceMembers === undefined || el.basePrototype === undefined) continue
    if (SDK_BASES.test(el.internalName)) continue
    if (el.instanceMembers) for (const name of el.instanceMembers.keys()) names.add(name)
  }
  return names
}

export default class PruneUnusedHooks extends Transform {
  #used = new Set()

  afterInitialize(program) {
    this.#used = overriddenHooks(program)
  }

  afterCompile(module) {
    for (const [exportName, hook] of Object.entries(HOOK_EXPORTS)) {
      if (!this.#used.has(hook) && module.getExport(exportName)) module.removeExport(exportName)
    }
    for (const [exportName, hook] of Object.entries(UNLESS_OVERRIDDEN)) {
      if (this.#used.has(hook) && module.getExport(exportName)) module.removeExport(exportName)
    }
  }
}
