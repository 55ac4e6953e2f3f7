import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildFilter, FilterBuildError, REQUIRED_EXPORTS } from '../build.js'
import { buildExamples, exampleFilters } from '../../examples/filters/build.js'

const here = dirname(fileURLToPath(import.meta.url))
const fixture = (name: string) => join(here, 'fixtures', name, 'assembly', 'index.ts')

let tmp: string
let examples: Record<string, Uint8Array>
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sdk-as-build-'))
  examples = await buildExamples()
})
afterAll(() => rm(tmp, { recursive: true, force: true }))

describe('compiled example filters', () => {
  it('has the four required examples', () => {
    expect(exampleFilters()).toEqual(expect.arrayContaining(['add-headers', 'callout-auth', 'path-deny', 'rate-limit']))
  })

  it.each(['add-headers', 'callout-auth', 'path-deny', 'rate-limit'])('%s validates, exports the ABI and imports only env.proxy_*', (name) => {
    const wasm = examples[name]!
    expect(WebAssembly.validate(wasm)).toBe(true)
    const mod = new WebAssembly.Module(wasm)
    const exports = WebAssembly.Module.exports(mod).map((e) => e.name)
    expect(exports).toEqual(expect.arrayContaining([...REQUIRED_EXPORTS, 'proxy_on_configure', 'proxy_on_request_headers']))
    for (const i of WebAssembly.Module.imports(mod)) {
      expect(i.module).toBe('env')
      expect(i.name).toMatch(/^proxy_/)
    }
  })

  it('drops entry points of hooks the filter does not override', () => {
    const names = (w: Uint8Array) => WebAssembly.Module.exports(new WebAssembly.Module(w)).map((e) => e.name)
    expect(names(examples['path-deny']!)).not.toContain('proxy_on_response_headers')
    expect(names(examples['path-deny']!)).not.toContain('proxy_on_request_body')
    expect(names(examples['path-deny']!)).not.toContain('proxy_on_http_call_response')
    expect(names(examples['add-headers']!)).toContain('proxy_on_response_headers')
    expect(names(examples['callout-auth']!)).toContain('proxy_on_http_call_response')
    // on_done: hosts take a missing one as "done"; kept where a class overrides onDone.
    expect(names(examples['add-headers']!)).not.toContain('proxy_on_done')
    // OmniRelay's one-call stream start goes with the request headers hook; no class
    // overrides onDelete, so the host may defer deletes.
    expect(names(examples['add-headers']!)).toContain('omnirelay_on_context_create_request_headers')
    expect(names(examples['add-headers']!)).toContain('omnirelay_deferred_delete')
  })

  it('keeps proxy_on_done when a context overrides onDone; no deferred deletes when one overrides onDelete', async () => {
    const built = await buildFilter({ entry: fixture('kitchen-sink') })
    const exported = WebAssembly.Module.exports(new WebAssembly.Module(built.wasm)).map((e) => e.name)
    expect(exported).toContain('proxy_on_done')
    expect(exported).not.toContain('omnirelay_deferred_delete')
  })

  it('imports exactly what each filter uses', () => {
    const imports = (w: Uint8Array) => WebAssembly.Module.imports(new WebAssembly.Module(w)).map((i) => i.name).sort()
    expect(imports(examples['rate-limit']!)).toEqual(expect.arrayContaining(['proxy_get_shared_data', 'proxy_set_shared_data', 'proxy_send_local_response']))
    expect(imports(examples['add-headers']!)).not.toContain('proxy_http_call')
    expect(imports(examples['add-headers']!)).not.toContain('proxy_send_local_response')
    expect(imports(examples['callout-auth']!)).toEqual(expect.arrayContaining(['proxy_http_call', 'proxy_set_effective_context', 'proxy_continue_stream']))
  })
})

describe('buildFilter', () => {
  it('is deterministic (same bytes as the examples build) and writes outFile', async () => {
    const outFile = join(tmp, 'out', 'filter.wasm')
    const built = await buildFilter({ entry: join(here, '..', '..', 'examples', 'filters', 'path-deny', 'assembly', 'index.ts'), outFile })
    expect(Buffer.from(built.wasm).equals(Buffer.from(examples['path-deny']!))).toBe(true)
    expect(Buffer.from(await readFile(outFile)).equals(Buffer.from(built.wasm))).toBe(true)
    expect(built.imports.every((i) => i.startsWith('env.proxy_'))).toBe(true)
  })

  it('fails with SDK_AS_MISSING_EXPORTS when the entry does not re-export the ABI', async () => {
    await expect(buildFilter({ entry: fixture('no-exports') })).rejects.toMatchObject({ code: 'SDK_AS_MISSING_EXPORTS' })
  })

  it('fails with SDK_AS_COMPILE_FAILED and the diagnostics on a type error', async () => {
    const err = await buildFilter({ entry: fixture('broken') }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FilterBuildError)
    expect((err as FilterBuildError).code).toBe('SDK_AS_COMPILE_FAILED')
    expect((err as FilterBuildError).diagnostics).toMatch(/TS2322/)
  })

  it('fails with SDK_AS_ENTRY_NOT_FOUND for a missing entry', async () => {
    await expect(buildFilter({ entry: join(tmp, 'nope.ts') })).rejects.toMatchObject({ code: 'SDK_AS_ENTRY_NOT_FOUND' })
  })
})
