/**
 * The proxy-wasm v0.2.1 host functions: the only door from a module into the host.
 *
 * Every function checks its pointers (InvalidMemoryAccess), its enum arguments (BadArgument)
 * and its context (NotFound when the effective context has no stream, e.g. reading request
 * headers from proxy_on_vm_start) and answers with the spec's status code; none throws on
 * bad input. Only the module's own allocator, called back while returning data, can throw
 * (a trap inside it), and that propagates as the module's failure.
 *
 * Only the functions a module imports are put into its import object, and the loader has
 * already refused modules whose imports exceed the grant (capabilities.ts); the few grants
 * that depend on arguments (body buffers) are checked here.
 */
import type { Capability } from '../../pipeline/filter.ts'
import type { HeaderMap } from '../../pipeline/header-map.ts'
import { BAD_HEADER_VALUE, HEADER_NAME } from '../../pipeline/header-syntax.ts'
import { hostReply } from '../../pipeline/local-reply.ts'
import { fromHeaders, getProperty, splitPropertyPath } from '../properties.ts'
import { BufferType, LogLevel, MapType, StreamType, WasmResult } from './abi.ts'
import type { WasmVm } from './vm.ts'
import { wasiImports, assemblyScriptImports } from './wasi.ts'

const R = WasmResult

/**
 * Bounds on what a module can make the host hold: fuel limits how often a module calls us,
 * not how much each call copies out of its memory, so every growing host-side structure is
 * capped here (answers BadArgument beyond).
 */
export const HOST_LIMITS = {
  /** Entries in one header map, and bytes of one header value. */
  maxHeaders: 1024,
  maxHeaderValueBytes: 64 * 1024,
  /** Bytes of a serialized map handed to set_header_map_pairs / http_call / local reply. */
  maxSerializedMapBytes: 1024 * 1024,
  /** Bytes of a callout request body. */
  maxCalloutBodyBytes: 1024 * 1024,
} as const
type HostFn = (...args: any[]) => number | bigint | void

function validHeader(name: string, value: string): boolean {
  return HEADER_NAME.test(name) && !BAD_HEADER_VALUE.test(value)
}

function validPairs(flat: readonly string[]): boolean {
  for (let i = 0; i < flat.length; i += 2) if (!validHeader(flat[i]!, flat[i + 1]!)) return false
  return true
}

/** Buffer bytes by id, or null when not available here, undefined when the id is unknown. */
function bufferFor(vm: WasmVm, type: number, grants: ReadonlySet<Capability>): Uint8Array | null | undefined {
  const s = vm.current?.stream
  switch (type) {
    case BufferType.HttpRequestBody:
      return s && grants.has('body:read') ? s.requestBody : null
    case BufferType.HttpResponseBody:
      return s && grants.has('body:read') ? s.responseBody : null
    case BufferType.HttpCallResponseBody:
      return vm.callResponse?.body ?? null
    case BufferType.VmConfiguration:
      return vm.env.vmConfig
    case BufferType.PluginConfiguration:
      return vm.env.pluginConfig
    case BufferType.DownstreamData:
    case BufferType.UpstreamData:
    case BufferType.GrpcReceiveBuffer:
    case BufferType.CallData:
      return null
  }
  return undefined
}

/** Header map by id, or null when not available here, undefined when the id is unknown. */
function mapFor(vm: WasmVm, type: number): HeaderMap | null | undefined {
  const s = vm.current?.stream
  switch (type) {
    case MapType.HttpRequestHeaders:
      return s ? s.requestHeaders : null
    case MapType.HttpRequestTrailers:
      return s ? s.requestTrailers : null
    case MapType.HttpResponseHeaders:
      return s ? s.responseHeaders : null
    case MapType.HttpResponseTrailers:
      return s ? s.responseTrailers : null
    case MapType.HttpCallResponseHeaders:
      return vm.callResponse?.headers ?? null
    case MapType.HttpCallResponseTrailers:
      return vm.callResponse?.trailers ?? null
    case MapType.GrpcReceiveInitialMetadata:
    case MapType.GrpcReceiveTrailingMetadata:
      return null
  }
  return undefined
}

function writableMap(vm: WasmVm, type: number): HeaderMap | null | undefined {
  if (type === MapType.HttpCallResponseHeaders || type === MapType.HttpCallResponseTrailers) return undefined
  return mapFor(vm, type)
}

/** Shared-data keys whose namespaced form an instance keeps (see `dataKey`). */
const MAX_CACHED_DATA_KEYS = 256
const MAX_CACHED_DATA_KEY_BYTES = 128

let clockMs = -1
let clockNs = 0n

/** All proxy-wasm host functions for `vm`, by name (module `env`). */
function proxyImports(vm: WasmVm): Record<string, HostFn> {
  const env = vm.env
  const grants = env.grants
  const m = () => vm.mem
  const str = (ptr: number, len: number) => m().string(ptr, len)
  /**
   * Shared data keys are namespaced per VM. Filters use a few short keys on every request:
   * keeping the joined key (its hash computed once) saves building and hashing a new string
   * per call. Only short keys, and a bounded number: a module must not make the host hold its
   * memory's worth of keys.
   */
  const dataKeys = new Map<string, string>()
  const dataKey = (ptr: number, len: number): string => {
    const k = str(ptr, len)
    if (len > MAX_CACHED_DATA_KEY_BYTES) return `${env.vmId}\0${k}`
    let key = dataKeys.get(k)
    if (key === undefined) {
      if (dataKeys.size >= MAX_CACHED_DATA_KEYS) dataKeys.clear()
      key = `${env.vmId}\0${k}`
      dataKeys.set(k, key)
    }
    return key
  }
  /** Resumes the current stream (continue_stream and its 0.2.0 forms). */
  const resume = (): number => {
    const s = vm.current?.stream
    if (!s) return R.NotFound
    vm.streamOp(() => s.resume())
    return R.Ok
  }
  /** add_header_map_value (append) and replace_header_map_value (`replace`): same checks. */
  const writeValue = (type: number, kPtr: number, kLen: number, vPtr: number, vLen: number, replace: boolean): number => {
    const map = writableMap(vm, type)
    if (map === undefined) return R.BadArgument
    if (!m().ok(kPtr, kLen) || !m().ok(vPtr, vLen)) return R.InvalidMemoryAccess
    if (map === null) return R.NotFound
    if (vLen > HOST_LIMITS.maxHeaderValueBytes || map.size >= HOST_LIMITS.maxHeaders) return R.BadArgument
    const k = m().headerName(kPtr, kLen)
    const v = m().headerValue(vPtr, vLen)
    if (k === undefined || v === undefined) return R.BadArgument
    // headerName() lower-cased the name already.
    if (replace) map.setLowerCase(k, v)
    else map.addLowerCase(k, v)
    return R.Ok
  }

  return {
    proxy_log(level: number, ptr: number, len: number) {
      if (level < LogLevel.Trace || level > LogLevel.Critical) return R.BadArgument
      if (!m().ok(ptr, len)) return R.InvalidMemoryAccess
      // Decode at most what the log line keeps: a module must not make the host copy megabytes.
      vm.guestLog(level, str(ptr, Math.min(len, 4097)))
      return R.Ok
    },
    proxy_get_log_level(retPtr: number) {
      if (!m().ok(retPtr, 4)) return R.InvalidMemoryAccess
      const l = env.log
      m().setU32(retPtr, l.isEnabled('debug') ? LogLevel.Debug : l.isEnabled('info') ? LogLevel.Info : l.isEnabled('warn') ? LogLevel.Warn : LogLevel.Error)
      return R.Ok
    },
    proxy_done() {
      return vm.done() ? R.Ok : R.NotFound
    },
    proxy_set_effective_context(id: number) {
      return vm.setEffectiveContext(id) ? R.Ok : R.BadArgument
    },
    proxy_get_current_time_nanoseconds(retPtr: number) {
      if (!m().ok(retPtr, 8)) return R.InvalidMemoryAccess
      const ms = Date.now()
      // Rate limiters ask on every request: build the BigInt once per millisecond.
      if (ms !== clockMs) {
        clockMs = ms
        clockNs = BigInt(ms) * 1_000_000n
      }
      m().setU64(retPtr, clockNs)
      return R.Ok
    },
    proxy_get_buffer_bytes(type: number, start: number, maxSize: number, retPtr: number, retSize: number) {
      const buf = bufferFor(vm, type, grants)
      if (buf === undefined) return R.BadArgument
      if (buf === null) return R.NotFound
      start >>>= 0
      maxSize >>>= 0
      if (start > buf.length) return R.BadArgument
      const end = Math.min(buf.length, start + maxSize)
      return m().returnValue(buf.subarray(start, end), retPtr, retSize) ? R.Ok : R.InvalidMemoryAccess
    },
    proxy_get_buffer_status(type: number, retSize: number, retFlags: number) {
      const buf = bufferFor(vm, type, grants)
      if (buf === undefined) return R.BadArgument
      if (buf === null) return R.NotFound
      if (!m().ok(retSize, 4) || !m().ok(retFlags, 4)) return R.InvalidMemoryAccess
      m().setU32(retSize, buf.length)
      m().setU32(retFlags, 0)
      return R.Ok
    },
    proxy_set_buffer_bytes(type: number, start: number, size: number, dataPtr: number, dataLen: number) {
      const s = vm.current?.stream
      if (type !== BufferType.HttpRequestBody && type !== BufferType.HttpResponseBody) {
        return bufferFor(vm, type, grants) === undefined ? R.BadArgument : R.NotFound
      }
      if (!s) return R.NotFound
      if (!m().ok(dataPtr, dataLen)) return R.InvalidMemoryAccess
      const old = type === BufferType.HttpRequestBody ? s.requestBody : s.responseBody
      const from = Math.min(start >>> 0, old.length)
      const to = Math.min(from + (size >>> 0), old.length)
      const nextLen = from + dataLen + (old.length - to)
      if (nextLen > env.maxBodyBytes) return R.BadArgument
      const data = m().bytes(dataPtr, dataLen)
      const next = new Uint8Array(nextLen)
      next.set(old.subarray(0, from), 0)
      next.set(data, from)
      next.set(old.subarray(to), from + data.length)
      if (type === BufferType.HttpRequestBody) s.requestBody = next
      else s.responseBody = next
      return R.Ok
    },
    proxy_continue_stream(type: number) {
      if (type === StreamType.Downstream || type === StreamType.Upstream) return R.Unimplemented
      if (type !== StreamType.HttpRequest && type !== StreamType.HttpResponse) return R.BadArgument
      return resume()
    },
    // ABI 0.2.0 names of the same call.
    proxy_continue_request: resume,
    proxy_continue_response: resume,
    proxy_close_stream(type: number) {
      if (type < StreamType.HttpRequest || type > StreamType.Upstream) return R.BadArgument
      const s = vm.current?.stream
      if (!s) return R.NotFound
      // No stream reset in the HttpStream contract: end it with a stable local reply instead.
      const r = hostReply(503, 'stream_closed_by_filter', { filter: env.name })
      vm.streamOp(() => s.sendLocalReply(r.status, r.body, r.headers, `filter_closed:${env.name}`))
      return R.Ok
    },
    proxy_clear_route_cache() {
      return R.Ok
    },
    proxy_get_status(codePtr: number, msgPtr: number, msgSize: number) {
      const cr = vm.callResponse
      if (!cr) return R.NotFound
      if (!m().ok(codePtr, 4)) return R.InvalidMemoryAccess
      m().setU32(codePtr, cr.status)
      return m().returnValue(cr.message, msgPtr, msgSize) ? R.Ok : R.InvalidMemoryAccess
    },
    proxy_call_foreign_function() {
      return R.NotFound
    },

    proxy_get_header_map_size(type: number, retSize: number) {
      const map = mapFor(vm, type)
      if (map === undefined) return R.BadArgument
      if (!m().ok(retSize, 4)) return R.InvalidMemoryAccess
      let size = 4
      if (map) for (const s of map.flat) size += s.length + 5
      m().setU32(retSize, map ? size : 0)
      return R.Ok
    },
    proxy_get_header_map_pairs(type: number, retPtr: number, retSize: number) {
      const map = mapFor(vm, type)
      if (map === undefined) return R.BadArgument
      return m().returnPairs(map ? map.flat : [], retPtr, retSize) ? R.Ok : R.InvalidMemoryAccess
    },
    proxy_get_header_map_value(type: number, kPtr: number, kLen: number, retPtr: number, retSize: number) {
      const map = mapFor(vm, type)
      if (map === undefined) return R.BadArgument
      if (!m().ok(kPtr, kLen)) return R.InvalidMemoryAccess
      if (map === null) return R.NotFound
      // Not a header name: not in the map either.
      const k = m().headerName(kPtr, kLen)
      const v = k === undefined ? undefined : map.get(k)
      if (v === undefined) return R.NotFound
      return m().returnValue(v, retPtr, retSize, 'latin1') ? R.Ok : R.InvalidMemoryAccess
    },
    proxy_set_header_map_pairs(type: number, ptr: number, len: number) {
      const map = writableMap(vm, type)
      if (map === undefined) return R.BadArgument
      if (!m().ok(ptr, len)) return R.InvalidMemoryAccess
      if (map === null) return R.NotFound
      if (len > HOST_LIMITS.maxSerializedMapBytes) return R.BadArgument
      const flat = m().pairs(ptr, len)
      if (!flat || flat.length > HOST_LIMITS.maxHeaders * 2 || !validPairs(flat)) return R.BadArgument
      map.replaceAll(flat)
      return R.Ok
    },
    proxy_add_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
      return writeValue(type, kPtr, kLen, vPtr, vLen, false)
    },
    proxy_replace_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
      return writeValue(type, kPtr, kLen, vPtr, vLen, true)
    },
    proxy_remove_header_map_value(type: number, kPtr: number, kLen: number) {
      const map = writableMap(vm, type)
      if (map === undefined) return R.BadArgument
      if (!m().ok(kPtr, kLen)) return R.InvalidMemoryAccess
      if (map === null) return R.NotFound
      const k = m().headerName(kPtr, kLen)
      if (k !== undefined) map.removeLowerCase(k)
      return R.Ok
    },

    proxy_send_local_response(
      status: number,
      detPtr: number,
      detLen: number,
      bodyPtr: number,
      bodyLen: number,
      hdrPtr: number,
      hdrLen: number,
      _grpcStatus: number,
    ) {
      if (!m().ok(detPtr, detLen) || !m().ok(bodyPtr, bodyLen) || !m().ok(hdrPtr, hdrLen)) return R.InvalidMemoryAccess
      const s = vm.current?.stream
      if (!s) return R.NotFound
      if (hdrLen > HOST_LIMITS.maxSerializedMapBytes) return R.BadArgument
      const flat = m().pairs(hdrPtr, hdrLen)
      if (!flat || !validPairs(flat)) return R.BadArgument
      const headers: [string, string][] = []
      for (let i = 0; i < flat.length; i += 2) if (flat[i]!.charCodeAt(0) !== 58) headers.push([flat[i]!, flat[i + 1]!])
      const details = detLen ? str(detPtr, detLen) : ''
      const body = m().bytes(bodyPtr, bodyLen)
      vm.streamOp(() => s.sendLocalReply(status, body, headers, `filter:${env.name}${details ? `:${details}` : ''}`))
      return R.Ok
    },

    proxy_get_property(pPtr: number, pLen: number, retPtr: number, retSize: number) {
      if (!m().ok(pPtr, pLen)) return R.InvalidMemoryAccess
      const cur = vm.current
      const path = splitPropertyPath(m().bytes(pPtr, pLen))
      const value = getProperty(path, {
        stream: cur?.stream,
        pluginName: env.name,
        vmId: env.vmId,
        filterVersion: env.version,
        custom: cur ? cur.props : vm.rootProps,
        epoch: env.services.epoch,
      })
      if (value === undefined) return R.NotFound
      return m().returnValue(value, retPtr, retSize, fromHeaders(path) ? 'latin1' : 'utf8') ? R.Ok : R.InvalidMemoryAccess
    },
    proxy_set_property(pPtr: number, pLen: number, vPtr: number, vLen: number) {
      if (!m().ok(pPtr, pLen) || !m().ok(vPtr, vLen)) return R.InvalidMemoryAccess
      const cur = vm.current
      const props = cur ? (cur.props ??= new Map()) : vm.rootProps
      if (props.size >= 64 || vLen > 65536) return R.InternalFailure
      props.set(splitPropertyPath(m().bytes(pPtr, pLen)).join('.'), m().bytes(vPtr, vLen))
      return R.Ok
    },

    proxy_define_metric(type: number, nPtr: number, nLen: number, retId: number) {
      if (!m().ok(nPtr, nLen) || !m().ok(retId, 4)) return R.InvalidMemoryAccess
      const id = env.metrics.define(type, str(nPtr, nLen))
      if (id < 0) return -id
      m().setU32(retId, id)
      return R.Ok
    },
    proxy_increment_metric(id: number, delta: bigint) {
      return env.metrics.increment(id, delta)
    },
    proxy_record_metric(id: number, value: bigint) {
      return env.metrics.record(id, value)
    },
    proxy_get_metric(id: number, retPtr: number) {
      if (!m().ok(retPtr, 8)) return R.InvalidMemoryAccess
      const v = env.metrics.get(id)
      if (v === undefined) return R.NotFound
      m().setU64(retPtr, BigInt(Math.trunc(v)))
      return R.Ok
    },

    proxy_get_shared_data(kPtr: number, kLen: number, retPtr: number, retSize: number, retCas: number) {
      if (!m().ok(kPtr, kLen) || !m().ok(retCas, 4)) return R.InvalidMemoryAccess
      const e = env.services.sharedData.get(dataKey(kPtr, kLen))
      if (!e) return R.NotFound
      if (!m().returnValue(e.value, retPtr, retSize)) return R.InvalidMemoryAccess
      m().setU32(retCas, e.cas)
      return R.Ok
    },
    proxy_set_shared_data(kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number) {
      if (!m().ok(kPtr, kLen) || !m().ok(vPtr, vLen)) return R.InvalidMemoryAccess
      try {
        const ok = env.services.sharedData.set(dataKey(kPtr, kLen), m().bytes(vPtr, vLen), cas >>> 0)
        return ok ? R.Ok : R.CasMismatch
      } catch {
        return R.InternalFailure
      }
    },
    proxy_register_shared_queue(nPtr: number, nLen: number, retId: number) {
      if (!m().ok(nPtr, nLen) || !m().ok(retId, 4)) return R.InvalidMemoryAccess
      try {
        const id = env.services.sharedQueues.register(env.vmId, str(nPtr, nLen))
        vm.watchQueue(id)
        m().setU32(retId, id)
        return R.Ok
      } catch {
        return R.InternalFailure
      }
    },
    proxy_resolve_shared_queue(vPtr: number, vLen: number, nPtr: number, nLen: number, retId: number) {
      if (!m().ok(vPtr, vLen) || !m().ok(nPtr, nLen) || !m().ok(retId, 4)) return R.InvalidMemoryAccess
      const id = env.services.sharedQueues.resolve(vLen ? str(vPtr, vLen) : env.vmId, str(nPtr, nLen))
      if (id === undefined) return R.NotFound
      m().setU32(retId, id)
      return R.Ok
    },
    proxy_enqueue_shared_queue(id: number, vPtr: number, vLen: number) {
      if (!m().ok(vPtr, vLen)) return R.InvalidMemoryAccess
      try {
        return env.services.sharedQueues.enqueue(id >>> 0, m().bytes(vPtr, vLen)) ? R.Ok : R.NotFound
      } catch {
        return R.InternalFailure
      }
    },
    proxy_dequeue_shared_queue(id: number, retPtr: number, retSize: number) {
      if (!m().ok(retPtr, 4) || !m().ok(retSize, 4)) return R.InvalidMemoryAccess
      const item = env.services.sharedQueues.dequeue(id >>> 0)
      if (item === null) return R.NotFound
      if (item === undefined) return R.Empty
      return m().returnValue(item, retPtr, retSize) ? R.Ok : R.InvalidMemoryAccess
    },

    proxy_set_tick_period_milliseconds(ms: number) {
      vm.setTickPeriod(ms >>> 0)
      return R.Ok
    },

    proxy_http_call(
      uPtr: number,
      uLen: number,
      hPtr: number,
      hLen: number,
      bPtr: number,
      bLen: number,
      tPtr: number,
      tLen: number,
      timeout: number,
      retToken: number,
    ) {
      const mm = m()
      if (!mm.ok(uPtr, uLen) || !mm.ok(hPtr, hLen) || !mm.ok(bPtr, bLen) || !mm.ok(tPtr, tLen) || !mm.ok(retToken, 4)) {
        return R.InvalidMemoryAccess
      }
      if (hLen > HOST_LIMITS.maxSerializedMapBytes || tLen > HOST_LIMITS.maxSerializedMapBytes || bLen > HOST_LIMITS.maxCalloutBodyBytes) {
        return R.BadArgument
      }
      const cluster = str(uPtr, uLen)
      if (!env.calloutClusters.has(cluster)) return R.BadArgument
      const flat = mm.pairs(hPtr, hLen)
      const trailers = mm.pairs(tPtr, tLen)
      if (!flat || !trailers || !validPairs(flat) || !validPairs(trailers)) return R.BadArgument
      const headers: [string, string][] = []
      let method = false
      let path = false
      let authority = false
      for (let i = 0; i < flat.length; i += 2) {
        if (flat[i] === ':method') method = true
        else if (flat[i] === ':path') path = true
        else if (flat[i] === ':authority') authority = true
        headers.push([flat[i]!, flat[i + 1]!])
      }
      // The spec (and Envoy) require all three pseudo-headers.
      if (!method || !path || !authority) return R.BadArgument
      const tr: [string, string][] = []
      for (let i = 0; i < trailers.length; i += 2) tr.push([trailers[i]!, trailers[i + 1]!])
      const token = vm.dispatchHttpCall({
        cluster,
        headers,
        body: bLen ? mm.bytes(bPtr, bLen) : undefined,
        trailers: tr.length ? tr : undefined,
        timeoutMs: timeout > 0 ? Math.min(timeout >>> 0, 60_000) : 5_000,
      })
      if (token === 0) return R.InternalFailure
      mm.setU32(retToken, token)
      return R.Ok
    },
    proxy_grpc_call() {
      return R.Unimplemented
    },
    proxy_grpc_stream() {
      return R.Unimplemented
    },
    proxy_grpc_send() {
      return R.Unimplemented
    },
    proxy_grpc_cancel() {
      return R.Unimplemented
    },
    proxy_grpc_close() {
      return R.Unimplemented
    },
  }
}

/**
 * The import object for `vm`: exactly the functions the module imports (already checked
 * against the grant), plus the fuel import and a capped memory when the module imports one.
 */
export function createImports(
  vm: WasmVm,
  imports: readonly WebAssembly.ModuleImportDescriptor[],
  extra: { fuel?: WebAssembly.ModuleImports; memory?: WebAssembly.Memory },
): WebAssembly.Imports {
  const tables: Record<string, Record<string, HostFn>> = {
    env: { ...assemblyScriptImports(vm), ...proxyImports(vm) },
    wasi_snapshot_preview1: wasiImports(vm),
    wasi_unstable: wasiImports(vm),
  }
  const out: WebAssembly.Imports = {}
  for (const imp of imports) {
    const mod = (out[imp.module] ??= {})
    if (imp.kind === 'memory' && extra.memory) mod[imp.name] = extra.memory
    else if (extra.fuel && imp.name in extra.fuel && imp.kind === 'function' && !(imp.module in tables)) mod[imp.name] = extra.fuel[imp.name]!
    else {
      const fn = tables[imp.module]?.[imp.name]
      if (fn) mod[imp.name] = metered(vm, fn)
    }
  }
  return out
}

/**
 * Host calls cost fuel too: a loop of cheap Wasm around an expensive host call would
 * otherwise run long on little fuel. Each call counts; past the call's allowance
 * (fuel at entry / HOSTCALL_FUEL) it stops the module like running out of fuel, and the
 * count is charged to the request afterwards (vm.ts). Fixed arity: no rest-array per call.
 */
function metered(vm: WasmVm, fn: HostFn): HostFn {
  return (a?: any, b?: any, c?: any, d?: any, e?: any, f?: any, g?: any, h?: any, i?: any, j?: any, k?: any, l?: any) => {
    if (++vm.hostcalls > vm.hostcallLimit) vm.hostcallsExhausted()
    return fn(a, b, c, d, e, f, g, h, i, j, k, l)
  }
}
