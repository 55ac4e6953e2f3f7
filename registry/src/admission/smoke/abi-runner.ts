/**
 * A minimal proxy-wasm 0.2.1 driver for the smoke run, used until (or where) the runtime's Wasm
 * host is not installed. It links the fuel-instrumented module with a memory cap, answers the
 * host calls over an in-memory request/response, and drives the root context (start, configure)
 * and one stream context per sample through every phase. Every call gets the fuel budget, so
 * the run is deterministic and always ends; the wall-clock bound is checked between calls.
 *
 * It is not the data-plane host: it only has to make a module show whether it traps, runs out
 * of fuel or memory on ordinary traffic. Callouts never answer; properties are not found.
 */
import { FuelMeter, fuelImports, isOutOfFuel, START_EXPORT, FUEL_IMPORT_MODULE } from '@omnirelay/runtime/sandbox/fuel.ts'
import { capMemory, pagesFor } from '@omnirelay/runtime/sandbox/memory-cap.ts'
import { refusal, AdmissionStep, RegistryErrorCode } from '../../errors.ts'
import type { SampleRequest } from '../samples.ts'
import type { SmokeInput, SmokeReport } from './runner.ts'

const R = { Ok: 0, NotFound: 1, BadArgument: 2, Empty: 7, Unimplemented: 12 } as const
const MapType = { RequestHeaders: 0, RequestTrailers: 1, ResponseHeaders: 2, ResponseTrailers: 3, GrpcReceiveInitialMetadata: 4, GrpcReceiveTrailingMetadata: 5, HttpCallResponseHeaders: 6, HttpCallResponseTrailers: 7 } as const
const BufferType = { RequestBody: 0, ResponseBody: 1, PluginConfiguration: 7, VmConfiguration: 6 } as const

const enc = new TextEncoder()
const dec = new TextDecoder()

class SmokeAbort extends Error {}

interface State {
  maps: Map<number, [string, string][]>
  buffers: Map<number, Uint8Array>
  localReplies: number
}

export async function runAbiSmoke(input: SmokeInput): Promise<SmokeReport> {
  const step = AdmissionStep.Smoke
  const t0 = performance.now()
  if (!input.instrumented || input.fuel === undefined || input.memoryBytes === undefined) {
    throw new Error('the ABI smoke runner needs an instrumented Wasm module, a fuel budget and a memory cap')
  }
  const fuel = input.fuel
  const memoryBytes = input.memoryBytes
  const capped = capMemory(input.instrumented, pagesFor(memoryBytes))
  let module: WebAssembly.Module
  try {
    module = await WebAssembly.compile(capped.bytes)
  } catch (e) {
    throw refusal(step, RegistryErrorCode.SmokeInstantiateFailed, `compile: ${(e as Error).message}`, { cause: e })
  }
  const state: State = { maps: new Map(), buffers: new Map(), localReplies: 0 }
  let memory: WebAssembly.Memory | undefined
  let exports: WebAssembly.Exports | undefined
  const mem = (): DataView => new DataView((memory as WebAssembly.Memory).buffer)
  const bytesAt = (ptr: number, len: number): Uint8Array => new Uint8Array((memory as WebAssembly.Memory).buffer, ptr >>> 0, len >>> 0).slice()
  const alloc = (size: number): number => {
    const f = (exports?.proxy_on_memory_allocate ?? exports?.malloc) as ((n: number) => number) | undefined
    if (!f) throw new SmokeAbort('module exports no proxy_on_memory_allocate/malloc')
    return f(size) >>> 0
  }
  /** Copies bytes into guest memory and writes (ptr, len) at the return pointers. */
  const give = (bytes: Uint8Array, retPtr: number, retLen: number): number => {
    const p = bytes.length === 0 ? 0 : alloc(bytes.length)
    new Uint8Array((memory as WebAssembly.Memory).buffer).set(bytes, p)
    mem().setUint32(retPtr, p, true)
    mem().setUint32(retLen, bytes.length, true)
    return R.Ok
  }
  const headerMap = (t: number): [string, string][] | undefined => state.maps.get(t)

  const host: Record<string, (...a: number[]) => number> = {
    proxy_log: () => R.Ok,
    proxy_get_log_level: (ret) => (mem().setUint32(ret, 2, true), R.Ok),
    proxy_get_current_time_nanoseconds: (ret) => (mem().setBigUint64(ret, BigInt(Date.now()) * 1_000_000n, true), R.Ok),
    proxy_set_tick_period_milliseconds: () => R.Ok,
    proxy_set_effective_context: () => R.Ok,
    proxy_done: () => R.Ok,
    proxy_continue_stream: () => R.Ok,
    proxy_close_stream: () => R.Ok,
    proxy_continue_request: () => R.Ok,
    proxy_continue_response: () => R.Ok,
    proxy_get_header_map_size: (t, ret) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      mem().setUint32(ret, m.length, true)
      return R.Ok
    },
    proxy_get_header_map_pairs: (t, retPtr, retLen) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      return give(serializePairs(m), retPtr, retLen)
    },
    proxy_get_header_map_value: (t, kp, kl, retPtr, retLen) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      const key = dec.decode(bytesAt(kp, kl)).toLowerCase()
      const hit = m.find(([k]) => k === key)
      return hit ? give(enc.encode(hit[1]), retPtr, retLen) : R.NotFound
    },
    proxy_add_header_map_value: (t, kp, kl, vp, vl) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      m.push([dec.decode(bytesAt(kp, kl)).toLowerCase(), dec.decode(bytesAt(vp, vl))])
      return R.Ok
    },
    proxy_replace_header_map_value: (t, kp, kl, vp, vl) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      const key = dec.decode(bytesAt(kp, kl)).toLowerCase()
      const rest = m.filter(([k]) => k !== key)
      rest.push([key, dec.decode(bytesAt(vp, vl))])
      m.splice(0, m.length, ...rest)
      return R.Ok
    },
    proxy_remove_header_map_value: (t, kp, kl) => {
      const m = headerMap(t)
      if (!m) return R.BadArgument
      const key = dec.decode(bytesAt(kp, kl)).toLowerCase()
      const rest = m.filter(([k]) => k !== key)
      m.splice(0, m.length, ...rest)
      return R.Ok
    },
    proxy_set_header_map_pairs: (t) => (headerMap(t) ? R.Ok : R.BadArgument),
    proxy_get_buffer_status: (t, retLen, retFlags) => {
      const b = state.buffers.get(t)
      if (!b) return R.NotFound
      mem().setUint32(retLen, b.length, true)
      mem().setUint32(retFlags, 0, true)
      return R.Ok
    },
    proxy_get_buffer_bytes: (t, start, max, retPtr, retLen) => {
      const b = state.buffers.get(t)
      if (!b) return R.NotFound
      return give(b.subarray(start >>> 0, (start >>> 0) + (max >>> 0)), retPtr, retLen)
    },
    proxy_set_buffer_bytes: (t) => (state.buffers.has(t) ? R.Ok : R.NotFound),
    proxy_send_local_response: () => (state.localReplies++, R.Ok),
    proxy_get_property: () => R.NotFound,
    proxy_set_property: () => R.Ok,
    proxy_define_metric: (_t, _p, _l, ret) => (mem().setUint32(ret, 1, true), R.Ok),
    proxy_increment_metric: () => R.Ok,
    proxy_record_metric: () => R.Ok,
    proxy_get_metric: (_id, ret) => (mem().setBigUint64(ret, 0n, true), R.Ok),
    proxy_get_shared_data: () => R.NotFound,
    proxy_set_shared_data: () => R.Ok,
    proxy_register_shared_queue: (_p, _l, ret) => (mem().setUint32(ret, 1, true), R.Ok),
    proxy_resolve_shared_queue: () => R.NotFound,
    proxy_enqueue_shared_queue: () => R.Ok,
    proxy_dequeue_shared_queue: () => R.Empty,
    proxy_http_call: () => R.Unimplemented,
    proxy_dispatch_http_call: () => R.Unimplemented,
  }

  const imports: WebAssembly.Imports = { ...fuelImports() }
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module === FUEL_IMPORT_MODULE) continue
    const ns = (imports[imp.module] ??= {}) as Record<string, WebAssembly.ImportValue>
    if (imp.kind === 'memory') {
      const facts = capped.memories.find((m) => m.imported && m.module === imp.module && m.name === imp.name)
      memory = new WebAssembly.Memory({ initial: facts?.initial ?? 1, maximum: facts?.maximum ?? pagesFor(memoryBytes) })
      ns[imp.name] = memory
    } else if (imp.kind === 'function') {
      const f = host[imp.name]
      // WASI and the rarer calls: succeed doing nothing (proc_exit traps, as it never returns).
      ns[imp.name] = f ?? (imp.name === 'proc_exit' ? () => { throw new SmokeAbort('proc_exit called') } : () => (imp.module === 'env' ? R.Unimplemented : 0))
    }
  }

  let instance: WebAssembly.Instance
  try {
    instance = new WebAssembly.Instance(module, imports)
  } catch (e) {
    throw refusal(step, RegistryErrorCode.SmokeInstantiateFailed, `instantiate: ${(e as Error).message}`, { cause: e })
  }
  exports = instance.exports
  // The wall-clock bound covers the module's own calls, not our compile and link above.
  const tRun = performance.now()
  if (!memory) {
    const m = exports.memory
    if (!(m instanceof WebAssembly.Memory)) throw refusal(step, RegistryErrorCode.SmokeInstantiateFailed, 'module exports no memory')
    memory = m
  }
  const meter = new FuelMeter(exports)
  let maxFuel = 0
  let phase = 'start'
  const call = (name: string, ...args: number[]): number => {
    const f = (exports as Record<string, unknown>)[name]
    if (typeof f !== 'function') return 0
    meter.set(fuel)
    try {
      const r = (f as (...a: number[]) => unknown)(...args)
      return typeof r === 'number' ? r : 0
    } catch (e) {
      if (isOutOfFuel(e)) throw refusal(step, RegistryErrorCode.SmokeFuelExhausted, `${phase}: ${name} used more than ${fuel} fuel`, { cause: e })
      if (e instanceof RangeError && /memory|allocation/i.test(e.message)) {
        throw refusal(step, RegistryErrorCode.SmokeMemoryExceeded, `${phase}: ${name}: ${e.message}`, { cause: e })
      }
      const pages = (memory as WebAssembly.Memory).buffer.byteLength / 65536
      const cap = capped.memories[0]?.maximum ?? pagesFor(memoryBytes)
      // A failed memory.grow is invisible from outside; allocators then trap. Memory past half
      // the cap means a doubling allocator could not grow again: call that the memory quota.
      if (pages * 2 > cap) throw refusal(step, RegistryErrorCode.SmokeMemoryExceeded, `${phase}: ${name} failed with memory at its cap (${cap} pages)`, { cause: e })
      const why = e instanceof SmokeAbort ? e.message : e instanceof WebAssembly.RuntimeError ? `trap: ${e.message}` : `threw: ${(e as Error).message}`
      throw refusal(step, RegistryErrorCode.SmokeTrap, `${phase}: ${name}: ${why}`, { cause: e })
    } finally {
      maxFuel = Math.max(maxFuel, meter.used())
      if (performance.now() - tRun > input.timeoutMs) {
        throw refusal(step, RegistryErrorCode.SmokeTimeout, `${phase}: smoke run took longer than ${input.timeoutMs} ms`)
      }
    }
  }

  if (input.hasStart) call(START_EXPORT)
  // A WASI reactor initializes with `_initialize`; a command-style build with `_start`.
  if (typeof exports._initialize === 'function') call('_initialize')
  else call('_start')
  const root = 1
  const config = input.samples.config === undefined ? new Uint8Array(0) : enc.encode(JSON.stringify(input.samples.config))
  state.buffers.set(BufferType.PluginConfiguration, config)
  state.buffers.set(BufferType.VmConfiguration, new Uint8Array(0))
  phase = 'root'
  call('proxy_on_context_create', root, 0)
  call('proxy_on_vm_start', root, 0)
  // As in the Wasm host: a filter that refuses its configuration cannot load anywhere.
  if (typeof exports.proxy_on_configure === 'function' && call('proxy_on_configure', root, config.length) === 0) {
    throw refusal(step, RegistryErrorCode.SmokeConfigureRejected, 'root: proxy_on_configure returned false for the sample configuration')
  }

  let ctx = root + 1
  for (const [i, req] of input.samples.requests.entries()) {
    phase = `request ${i} ${req.method} ${req.path}`
    runRequest(req, ctx++)
  }
  phase = 'root'
  call('proxy_on_done', root)
  call('proxy_on_delete', root)
  return { runner: 'abi', requests: input.samples.requests.length, maxFuel, localReplies: state.localReplies, ms: performance.now() - t0 }

  function runRequest(req: SampleRequest, id: number): void {
    const reqHeaders: [string, string][] = [[':method', req.method], [':path', req.path], [':authority', req.authority], [':scheme', 'http'], ...req.headers]
    const respHeaders: [string, string][] = [[':status', String(req.response.status)], ...req.response.headers]
    state.maps.clear()
    state.buffers.delete(BufferType.RequestBody)
    state.buffers.delete(BufferType.ResponseBody)
    state.maps.set(MapType.RequestHeaders, reqHeaders)
    state.maps.set(MapType.RequestTrailers, [])
    const before = state.localReplies
    call('proxy_on_context_create', id, root)
    const reqBody = req.body === undefined ? undefined : enc.encode(req.body)
    call('proxy_on_request_headers', id, reqHeaders.length, reqBody ? 0 : 1)
    if (reqBody && state.localReplies === before) {
      state.buffers.set(BufferType.RequestBody, reqBody)
      call('proxy_on_request_body', id, reqBody.length, 1)
    }
    if (state.localReplies === before) {
      state.maps.set(MapType.ResponseHeaders, respHeaders)
      state.maps.set(MapType.ResponseTrailers, [])
      const respBody = req.response.body === undefined ? undefined : enc.encode(req.response.body)
      call('proxy_on_response_headers', id, respHeaders.length, respBody ? 0 : 1)
      if (respBody) {
        state.buffers.set(BufferType.ResponseBody, respBody)
        call('proxy_on_response_body', id, respBody.length, 1)
      }
    }
    call('proxy_on_log', id)
    call('proxy_on_done', id)
    call('proxy_on_delete', id)
  }
}

/** proxy-wasm header map serialization: count, then (keyLen, valueLen) pairs, then NUL-terminated keys and values. */
function serializePairs(pairs: readonly [string, string][]): Uint8Array {
  const encoded = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const)
  let size = 4 + 8 * encoded.length
  for (const [k, v] of encoded) size += k.length + 1 + v.length + 1
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint32(0, encoded.length, true)
  let at = 4
  for (const [k, v] of encoded) {
    view.setUint32(at, k.length, true)
    view.setUint32(at + 4, v.length, true)
    at += 8
  }
  for (const [k, v] of encoded) {
    out.set(k, at)
    at += k.length + 1
    out.set(v, at)
    at += v.length + 1
  }
  return out
}
