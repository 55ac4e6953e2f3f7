// Smoke-run samples travel inside the bundle as a signed artifact, so the registry runs the
// publisher's own requests (with the config they need) rather than only its default corpus.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildBundle, SAMPLES_ARTIFACT } from '../../src/bundles/build.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { unpackBundle } from '../../src/bundles/format.ts'
import { signBundle } from '../../src/bundles/sign.ts'
import { verifyBundle } from '../../src/bundles/verify.ts'
import { newKey, policyFor, proxyWasm, tempDir } from './fixtures.ts'

const tmp = await tempDir()
afterAll(() => tmp.cleanup())
const wasmFile = join(tmp.dir, 'filter.wasm')
await writeFile(wasmFile, await proxyWasm(['proxy_log']))
const samples = { config: { cluster: 'auth' }, requests: [{ method: 'GET', path: '/', authority: 'a.test', headers: [], response: { status: 200, headers: [] } }] }

describe('bundle build --samples', () => {
  it('packs the samples as a signed artifact listed in the manifest', async () => {
    const samplesFile = join(tmp.dir, 'samples.json')
    await writeFile(samplesFile, JSON.stringify(samples))
    const built = await buildBundle({ source: wasmFile, name: 'with-samples', version: '1.0.0', samples: samplesFile })
    expect(built.manifest.artifacts.map((a) => a.path)).toEqual(['filter.wasm', SAMPLES_ARTIFACT])
    const key = newKey()
    const v = await verifyBundle(await signBundle(built.file, key), await policyFor(key))
    expect(v.manifest.artifacts).toHaveLength(2)
    const packed = unpackBundle(built.file).artifacts.get(SAMPLES_ARTIFACT)!
    expect(JSON.parse(new TextDecoder().decode(packed))).toEqual(samples)
  })

  it('without samples the bundle has one artifact', async () => {
    const built = await buildBundle({ source: wasmFile, name: 'plain', version: '1.0.0' })
    expect(built.manifest.artifacts.map((a) => a.path)).toEqual(['filter.wasm'])
  })

  it('refuses a samples file that is missing or not JSON', async () => {
    await expect(buildBundle({ source: wasmFile, name: 'x', version: '1.0.0', samples: join(tmp.dir, 'nope.json') })).rejects.toMatchObject({ code: BundleErrorCode.BuildFailed })
    const bad = join(tmp.dir, 'bad.json')
    await writeFile(bad, '{not json')
    await expect(buildBundle({ source: wasmFile, name: 'x', version: '1.0.0', samples: bad })).rejects.toMatchObject({ code: BundleErrorCode.BuildFailed })
  })
})
