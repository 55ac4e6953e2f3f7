/**
 * Every import and export of SDK-built modules has exactly the signature proxy-wasm ABI
 * v0.2.1 gives it. Our own host (JavaScript functions) would accept a wrong arity; Envoy and
 * other native hosts refuse to link such a module, so this is checked here, from the binary.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import binaryen from 'binaryen'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildExamples } from '../../examples/filters/build.js'
import { buildFilter } from '../build.js'

const here = dirname(fileURLToPath(import.meta.url))
const I = 'i32'
const L = 'i64'
const n = (count: number) => Array<string>(count).fill(I)

/** proxy-wasm ABI v0.2.1 ("Functions exposed by the host"): params -> results. */
const HOST: Record<string, [string[], string[]]> = {
  proxy_log: [n(3), [I]],
  proxy_get_log_level: [n(1), [I]],
  proxy_get_current_time_nanoseconds: [n(1), [I]],
  proxy_set_tick_period_milliseconds: [n(1), [I]],
  proxy_done: [[], [I]],
  proxy_set_effective_context: [n(1), [I]],
  proxy_get_buffer_bytes: [n(5), [I]],
  proxy_get_buffer_status: [n(3), [I]],
  proxy_set_buffer_bytes: [n(5), [I]],
  proxy_get_header_map_size: [n(2), [I]],
  proxy_get_header_map_pairs: [n(3), [I]],
  proxy_set_header_map_pairs: [n(3), [I]],
  proxy_get_header_map_value: [n(5), [I]],
  proxy_add_header_map_value: [n(5), [I]],
  proxy_replace_header_map_value: [n(5), [I]],
  proxy_remove_header_map_value: [n(3), [I]],
  proxy_continue_stream: [n(1), [I]],
  proxy_close_stream: [n(1), [I]],
  proxy_send_local_response: [n(8), [I]],
  proxy_http_call: [n(10), [I]],
  proxy_set_shared_data: [n(5), [I]],
  proxy_get_shared_data: [n(5), [I]],
  proxy_register_shared_queue: [n(3), [I]],
  proxy_resolve_shared_queue: [n(5), [I]],
  proxy_enqueue_shared_queue: [n(3), [I]],
  proxy_dequeue_shared_queue: [n(3), [I]],
  proxy_define_metric: [n(4), [I]],
  proxy_increment_metric: [[I, L], [I]],
  proxy_record_metric: [[I, L], [I]],
  proxy_get_metric: [n(2), [I]],
  proxy_get_property: [n(4), [I]],
  proxy_set_property: [n(4), [I]],
}

/** ("Callbacks exposed by the Wasm module"). */
const MODULE: Record<string, [string[], string[]]> = {
  _initialize: [[], []],
  proxy_abi_version_0_2_1: [[], []],
  proxy_on_memory_allocate: [n(1), [I]],
  proxy_on_context_create: [n(2), []],
  proxy_on_vm_start: [n(2), [I]],
  proxy_on_configure: [n(2), [I]],
  proxy_on_tick: [n(1), []],
  proxy_on_queue_ready: [n(2), []],
  proxy_on_request_headers: [n(3), [I]],
  proxy_on_request_body: [n(3), [I]],
  proxy_on_request_trailers: [n(2), [I]],
  proxy_on_response_headers: [n(3), [I]],
  proxy_on_response_body: [n(3), [I]],
  proxy_on_response_trailers: [n(2), [I]],
  proxy_on_http_call_response: [n(5), []],
  proxy_on_done: [n(1), [I]],
  proxy_on_log: [n(1), []],
  proxy_on_delete: [n(1), []],
}

/** OmniRelay's optional exports (runtime/src/hosts/wasm/abi.ts); other hosts ignore them. */
const EXTENSIONS: Record<string, [string[], string[]]> = {
  omnirelay_on_context_create_request_headers: [n(5), [I]],
  omnirelay_deferred_delete: [[], []],
}
const EXPORTED = { ...MODULE, ...EXTENSIONS }

const typeName = (t: number) => (t === binaryen.i32 ? I : t === binaryen.i64 ? L : `type${t}`)
const sig = (info: binaryen.FunctionInfo): [string[], string[]] => [
  binaryen.expandType(info.params).map(typeName),
  binaryen.expandType(info.results).map(typeName),
]

function signatures(wasm: Uint8Array) {
  const mod = binaryen.readBinary(wasm)
  const imports: Record<string, [string[], string[]]> = {}
  const exports: Record<string, [string[], string[]]> = {}
  for (let i = 0; i < mod.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(mod.getFunctionByIndex(i))
    if (info.module) imports[`${info.module}.${info.base}`] = sig(info)
  }
  for (let i = 0; i < mod.getNumExports(); i++) {
    const e = binaryen.getExportInfo(mod.getExportByIndex(i))
    if (e.kind === binaryen.ExternalFunction) exports[e.name] = sig(binaryen.getFunctionInfo(mod.getFunction(e.value)))
  }
  mod.dispose()
  return { imports, exports }
}

let modules: Record<string, Uint8Array>
beforeAll(async () => {
  modules = await buildExamples()
  const dir = join(here, 'fixtures', 'all-hostcalls')
  modules['all-hostcalls'] = (await buildFilter({ entry: join(dir, 'assembly', 'index.ts'), outFile: join(dir, 'build', 'filter.wasm'), cache: true })).wasm
})

describe('proxy-wasm ABI v0.2.1 signatures', () => {
  it('the fixture touches every host function the SDK declares, and each has the spec signature', () => {
    const { imports } = signatures(modules['all-hostcalls']!)
    expect(Object.keys(imports).sort()).toEqual(Object.keys(HOST).map((k) => `env.${k}`).sort())
    for (const [name, s] of Object.entries(imports)) expect([name, s]).toEqual([name, HOST[name.slice(4)]])
  })

  it('the fixture exports every callback, each with the spec signature', () => {
    const { exports } = signatures(modules['all-hostcalls']!)
    expect(Object.keys(exports).sort()).toEqual(Object.keys(EXPORTED).sort())
    for (const [name, s] of Object.entries(exports)) expect([name, s]).toEqual([name, EXPORTED[name]])
  })

  it.each(['add-headers', 'callout-auth', 'path-deny', 'rate-limit'])('%s: every import and export matches the spec', (name) => {
    const { imports, exports } = signatures(modules[name]!)
    for (const [imp, s] of Object.entries(imports)) expect([imp, s]).toEqual([imp, HOST[imp.slice(4)]])
    for (const [exp, s] of Object.entries(exports)) expect([exp, s]).toEqual([exp, EXPORTED[exp]])
  })
})
