/**
 * Property test of the ABI boundary: every host function, called with arbitrary u32 pointers,
 * sizes and enum values (in a stream context and in the root context), answers with a status
 * code and never throws into the host.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { wat } from '../../../test/wasm/wat.ts'
import { PRELUDE, makeServices } from '../../../test/wasm/fixtures.ts'
import { MetricsRegistry } from '../../observability/metrics.ts'
import { CAPABILITIES } from '../../pipeline/filter.ts'
import { HeaderMap } from '../../pipeline/header-map.ts'
import { PipelineStream } from '../../pipeline/stream.ts'
import { ModuleCache } from '../../sandbox/module-cache.ts'
import { PROXY_IMPORTS, WASI_IMPORTS } from './capabilities.ts'
import { GuestMetrics } from './guest-metrics.ts'
import { createImports } from './hostcalls.ts'
import { WasmVm, type FilterEnv, type StreamBinding } from './vm.ts'

/** Parameter counts; `i64` marks the positions that are i64 (BigInt in JS). */
const ARITY: Record<string, number> = {
  proxy_log: 3, proxy_get_log_level: 1, proxy_done: 0, proxy_set_effective_context: 1, proxy_get_current_time_nanoseconds: 1,
  proxy_get_buffer_bytes: 5, proxy_get_buffer_status: 3, proxy_set_buffer_bytes: 5, proxy_continue_stream: 1, proxy_close_stream: 1,
  proxy_continue_request: 0, proxy_continue_response: 0, proxy_clear_route_cache: 0, proxy_get_status: 3, proxy_call_foreign_function: 6,
  proxy_get_header_map_size: 2, proxy_get_header_map_pairs: 3, proxy_get_header_map_value: 5, proxy_set_header_map_pairs: 3,
  proxy_add_header_map_value: 5, proxy_replace_header_map_value: 5, proxy_remove_header_map_value: 3, proxy_send_local_response: 8,
  proxy_get_property: 4, proxy_set_property: 4, proxy_define_metric: 4, proxy_increment_metric: 2, proxy_record_metric: 2, proxy_get_metric: 2,
  proxy_get_shared_data: 5, proxy_set_shared_data: 5, proxy_register_shared_queue: 3, proxy_resolve_shared_queue: 5,
  proxy_enqueue_shared_queue: 3, proxy_dequeue_shared_queue: 3, proxy_set_tick_period_milliseconds: 1, proxy_http_call: 10,
  proxy_grpc_call: 12, proxy_grpc_stream: 9, proxy_grpc_send: 4, proxy_grpc_cancel: 1, proxy_grpc_close: 1,
  fd_write: 4, fd_read: 4, fd_close: 1, fd_seek: 4, fd_fdstat_get: 2, fd_prestat_get: 2, fd_prestat_dir_name: 3, clock_time_get: 3,
  clock_res_get: 2, random_get: 2, environ_sizes_get: 2, environ_get: 2, args_sizes_get: 2, args_get: 2, sched_yield: 0, poll_oneoff: 4,
  fd_advise: 4, fd_allocate: 3, fd_datasync: 1, fd_fdstat_set_flags: 2, fd_filestat_get: 2, fd_pread: 5, fd_pwrite: 5, fd_readdir: 5,
  fd_renumber: 2, fd_sync: 1, fd_tell: 2, path_create_directory: 3, path_filestat_get: 5, path_link: 7, path_open: 9, path_readlink: 6,
  path_remove_directory: 3, path_rename: 6, path_symlink: 5, path_unlink_file: 3, proc_raise: 1, sock_accept: 3, sock_recv: 6,
  sock_send: 5, sock_shutdown: 2,
}
const I64: Record<string, number> = { proxy_increment_metric: 1, proxy_record_metric: 1, clock_time_get: 1 }

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 2, 4, 7, 8, 64, 1024, 2048, 65532, 65535, 65536, 0x7fffffff, 0xffffffff),
  fc.integer({ min: 0, max: 70_000 }),
  fc.integer({ min: 0, max: 0xffffffff }),
)

describe('host functions under arbitrary arguments', () => {
  it('always return a status code, never throw', async () => {
    const bytes = await wat(`(module ${PRELUDE} ${'(data (i32.const 1024) "x-a\\00a\\00")'})`)
    const prepared = await new ModuleCache().prepare(bytes, { fuel: true, maxPages: 64 })
    const services = makeServices(async () => ({ headers: [[':status', '200']], body: new Uint8Array(1), trailers: [] }))
    const env: FilterEnv = {
      name: 'fuzz', vmId: 'fuzz', version: undefined, services, log: services.log, grants: new Set(CAPABILITIES),
      calloutClusters: new Set(['auth']), pluginConfig: new TextEncoder().encode('{"a":1}'), vmConfig: new Uint8Array(0),
      metrics: new GuestMetrics(new MetricsRegistry(), 'fuzz'), fuelBudget: 1e9, initFuel: 1e9, timeoutMs: 1e9,
      maxBodyBytes: 1 << 20, allowLog: () => true, onFailure: () => {},
    }
    const vm = new WasmVm(prepared, env, true)
    const stream = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/'], ['x-a', 'b']]) })
    stream.requestBody = new TextEncoder().encode('body')
    const binding: StreamBinding = { stream, contextId: 2, slot: -1, fuelLeft: 1e9, props: undefined, finished: false, onCalloutFailure: () => {} }
    const names = [...Object.keys(PROXY_IMPORTS).map((n) => ['env', n] as const), ...Object.keys(WASI_IMPORTS).filter((n) => n !== 'proc_exit').map((n) => ['wasi_snapshot_preview1', n] as const)]
    for (const [, n] of names) expect(ARITY[n], n).toBeDefined()
    const imports = createImports(vm, names.map(([module, name]) => ({ module, name, kind: 'function' as const })), {})
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(u32, { minLength: 12, maxLength: 12 }), fc.boolean(), ([module, name], args, inStream) => {
        vm.current = inStream ? binding : undefined
        vm.streams.remove(binding)
        vm.streams.add(binding)
        const a: (number | bigint)[] = args.slice(0, ARITY[name])
        if (I64[name] !== undefined) a[I64[name]!] = BigInt(args[I64[name]!]!) * 12345n
        const r = (imports[module]![name] as (...x: unknown[]) => unknown)(...a)
        expect(Number.isInteger(r), `${module}.${name}(${a.join(', ')}) -> ${String(r)}`).toBe(true)
        expect(r as number).toBeGreaterThanOrEqual(0)
        expect(r as number).toBeLessThanOrEqual(76)
      }),
      { numRuns: 3000 },
    )
    vm.dispose()
  })
})
