/** `omnirelay bundle build` of an AssemblyScript project that does not compile shows the compiler's diagnostics. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { bundleCommand } from '../../src/bundles/cli.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { tempDir } from './fixtures.ts'

const { dir, cleanup } = await tempDir()
afterAll(cleanup)

describe('bundle build of a broken AssemblyScript project', () => {
  it('exits 1 with build_failed and the compiler output naming the problem', async () => {
    const project = join(dir, 'broken')
    await mkdir(join(project, 'assembly'), { recursive: true })
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'broken', version: '1.0.0' }))
    await writeFile(join(project, 'assembly', 'index.ts'), 'export * from "@omnirelay/sdk-as/exports"\nexport function f(): i32 {\n  const x: i32 = undefinedThing42\n  return x\n}\n')
    const err: string[] = []
    const code = await bundleCommand(['build', project, '-o', join(dir, 'out.orb')], { log: () => {}, err: (s) => err.push(s) })
    expect(code).toBe(1)
    const text = err.join('\n')
    expect(text).toContain(`[${BundleErrorCode.BuildFailed}]`)
    // The compiler's own diagnostic: the unknown name and where it is.
    expect(text).toMatch(/TS2304.*undefinedThing42/)
    expect(text).toContain('index.ts(3,')
  }, 60_000)
})
