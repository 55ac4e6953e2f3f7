import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ArtifactError, BundleErrorCode } from '../../src/bundles/errors.ts'
import { MAGIC, packBundle, unpackBundle } from '../../src/bundles/format.ts'
import { parseManifest } from '../../src/bundles/manifest.ts'
import { readWasmImports } from '../../src/bundles/wasm-imports.ts'
import { proxyWasm } from './fixtures.ts'

const codes = new Set<string>(Object.values(BundleErrorCode))

function outcome(f: () => unknown): string {
  try {
    f()
    return 'ok'
  } catch (e) {
    if (!(e instanceof ArtifactError) || !codes.has(e.code)) throw e
    return e.code
  }
}

describe('bundle container', () => {
  it('round-trips manifest, artifacts in order, and signature', () => {
    const contents = {
      manifest: new TextEncoder().encode('{"a":1}'),
      artifacts: new Map([
        ['filter.wasm', Uint8Array.of(1, 2, 3)],
        ['lib/data.bin', new Uint8Array(0)],
      ]),
      signature: new TextEncoder().encode('{}'),
    }
    const back = unpackBundle(packBundle(contents))
    expect(back.manifest).toEqual(contents.manifest)
    expect([...back.artifacts.keys()]).toEqual(['filter.wasm', 'lib/data.bin'])
    expect(back.artifacts.get('filter.wasm')).toEqual(Uint8Array.of(1, 2, 3))
    expect(back.signature).toEqual(contents.signature)
  })

  it('refuses unsafe artifact paths when packing and unpacking', () => {
    for (const p of ['../x', '/abs', 'a//b', '', 'a/../b', '.hidden']) {
      expect(outcome(() => packBundle({ manifest: Uint8Array.of(1), artifacts: new Map([[p, Uint8Array.of(1)]]) }))).toBe(BundleErrorCode.Malformed)
    }
  })

  it('refuses a bundle larger than the limit', () => {
    const file = packBundle({ manifest: Uint8Array.of(1), artifacts: new Map([['a', new Uint8Array(100)]]) })
    expect(outcome(() => unpackBundle(file, 50))).toBe(BundleErrorCode.TooLarge)
  })

  it('refuses an unknown format version', () => {
    const file = packBundle({ manifest: Uint8Array.of(1), artifacts: new Map([['a', Uint8Array.of(1)]]) })
    file[11] = 2
    expect(outcome(() => unpackBundle(file))).toBe(BundleErrorCode.UnsupportedFormat)
  })

  it('never throws anything but a coded ArtifactError on random bytes (with and without the magic)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (tail, withMagic) => {
        const bytes = withMagic ? Uint8Array.from([...MAGIC, 0, 0, 0, 1, ...tail]) : tail
        outcome(() => unpackBundle(bytes))
      }),
      { numRuns: 500 },
    )
  })

  it('never throws on mutated valid bundles', () => {
    const file = packBundle({ manifest: new TextEncoder().encode('{}'), artifacts: new Map([['a.wasm', Uint8Array.of(1, 2, 3, 4)]]), signature: Uint8Array.of(5) })
    fc.assert(
      fc.property(fc.nat(file.length - 1), fc.integer({ min: 0, max: 255 }), (at, v) => {
        const m = file.slice()
        m[at] = v
        outcome(() => unpackBundle(m))
      }),
      { numRuns: 500 },
    )
  })

  it('parseManifest refuses garbage with manifest_invalid only', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        expect(outcome(() => parseManifest(new TextEncoder().encode(text)))).toBe(BundleErrorCode.ManifestInvalid)
      }),
      { numRuns: 200 },
    )
  })
})

describe('readWasmImports', () => {
  it('lists the imports of a real module', async () => {
    const wasm = await proxyWasm(['proxy_log', 'proxy_http_call'])
    expect(readWasmImports(wasm)?.map((i) => `${i.module}.${i.name}`)).toEqual(['env.proxy_log', 'env.proxy_http_call'])
  })

  it('returns undefined, never throws, for mutated modules', async () => {
    const wasm = await proxyWasm(['proxy_log', 'proxy_http_call'])
    fc.assert(
      fc.property(fc.nat(wasm.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(wasm.length), (at, v, cut) => {
        const m = wasm.slice(0, Math.max(cut, at + 1))
        m[at] = v
        const r = readWasmImports(m)
        expect(r === undefined || Array.isArray(r)).toBe(true)
      }),
      { numRuns: 500 },
    )
  })
})
