// Compiles an AssemblyScript filter to a proxy-wasm (ABI v0.2.1) module with the
// assemblyscript package's programmatic compiler. Used by the `omnirelay-as` CLI, by the
// examples build and by `omnirelay bundle build`.
//
// Decisions (why these flags):
// - runtime "minimal" (two-colour mark & sweep), collected by the SDK itself when an entry
//   point returns to the host (assembly/gc.ts): proxy-wasm hosts (Envoy, and OmniRelay's
//   `shared` isolation) keep one instance for the life of the plugin, so memory must be
//   reclaimed, and "stub" never frees. "incremental" collects on its own at any point, but
//   pays for it on every call (a shadow stack of references, a write barrier per pointer
//   store, GC steps inside allocations): the five example filters cost 17 % less per request
//   with "minimal" (in process, 9.7 -> 8.0 µs), and the modules are up to 40 % smaller.
// - exportStart "_initialize": top-level code (registerRootContext) runs when the host calls
//   `_initialize` (spec: Integration), after it has the module's exports (memory), not
//   during instantiation where host calls would have no memory to read.
// - abort/trace/seed are the SDK's own (they log through proxy_log), so the module imports
//   only `env.proxy_*`: no `env.abort`, no WASI.
// - the SDK's transform drops entry points of hooks no class overrides.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile as fsReadFile, writeFile as fsWriteFile, mkdir, rename } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import PruneUnusedHooks from './transform.js'

const SDK_ROOT = dirname(fileURLToPath(import.meta.url))
const SDK_MARK = `${sep}node_modules${sep}@omnirelay${sep}sdk-as${sep}`
const LIB = '~lib/@omnirelay/sdk-as/assembly/abort'
const ASC_VERSION = createRequire(import.meta.url)('assemblyscript/package.json').version
/** The transform decides which entry points a module keeps: a changed transform is a changed build. */
const TRANSFORM_DIGEST = createHash('sha256').update(readFileSync(join(SDK_ROOT, 'transform.js'))).digest('hex')

/** Entry points every module built with this SDK exports. */
export const REQUIRED_EXPORTS = Object.freeze([
  'proxy_abi_version_0_2_1',
  'proxy_on_memory_allocate',
  'proxy_on_context_create',
  'proxy_on_delete',
  '_initialize',
  'memory',
])

/** A build that failed; `code` says why, `diagnostics` holds the compiler's output. */
export class FilterBuildError extends Error {
  /**
   * @param {'SDK_AS_ENTRY_NOT_FOUND'|'SDK_AS_COMPILE_FAILED'|'SDK_AS_MISSING_EXPORTS'|'SDK_AS_FORBIDDEN_IMPORT'} code
   * @param {string} message
   * @param {string} [diagnostics]
   */
  constructor(code, message, diagnostics = '') {
    super(message)
    this.name = 'FilterBuildError'
    this.code = code
    this.diagnostics = diagnostics
  }
}

/** The asc arguments for an entry (exported for tests and for users who run asc themselves). */
export function ascArgs(entry, { optimize = true } = {}) {
  const args = [
    entry,
    '--outFile', 'filter.wasm',
    '--runtime', 'minimal',
    '--exportStart', '_initialize',
    '--use', `abort=${LIB}/proxyAbort`,
    '--use', `trace=${LIB}/proxyTrace`,
    '--use', `seed=${LIB}/proxySeed`,
    '--noColors',
  ]
  if (optimize) args.push('--optimizeLevel', '3', '--shrinkLevel', '1', '--noAssert')
  else args.push('--debug')
  return args
}

/**
 * Compiles the AssemblyScript filter at `entry` and checks the result: it validates,
 * exports the proxy-wasm entry points and imports nothing but `env.proxy_*`.
 * The SDK itself is always taken from this package, whether or not the filter's project
 * has it installed.
 *
 * With `cache` (needs `outFile`), the build is skipped when every source file the last build
 * read is unchanged (their digests are kept in `<outFile>.inputs.json`).
 *
 * @param {{ entry: string, outFile?: string, optimize?: boolean, cache?: boolean }} options
 * @returns {Promise<{ wasm: Uint8Array, imports: string[], exports: string[] }>}
 * @example
 * import { buildFilter } from '@omnirelay/sdk-as/build'
 * const { wasm, imports } = await buildFilter({ entry: 'assembly/index.ts', outFile: 'build/filter.wasm' })
 */
export async function buildFilter({ entry, outFile, optimize = true, cache = false }) {
  const entryPath = resolve(entry)
  try {
    await fsReadFile(entryPath)
  } catch {
    throw new FilterBuildError('SDK_AS_ENTRY_NOT_FOUND', `entry file not found: ${entryPath}`)
  }
  const stampFile = cache && outFile ? `${resolve(outFile)}.inputs.json` : undefined
  const settings = JSON.stringify({ asc: ASC_VERSION, transform: TRANSFORM_DIGEST, args: ascArgs(entryPath, { optimize }) })
  if (stampFile) {
    const cached = await fromCache(outFile, stampFile, settings)
    if (cached) return { wasm: cached, ...inspect(cached, entryPath) }
  }
  /** Every source file asc read, with its digest: the build's exact inputs. */
  const inputs = {}
  const baseDir = dirname(entryPath)
  const { default: asc } = await import('assemblyscript/asc')

  let wasm = null
  let output = ''
  const stream = { write(chunk) { output += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
    return true } }
  const result = await asc.main(ascArgs(entryPath.slice(baseDir.length + 1), { optimize }).concat(['--baseDir', baseDir]), {
    stdout: stream,
    stderr: stream,
    transforms: [new PruneUnusedHooks()],
    readFile: async (name, dir) => {
      const file = mapSdkPath(resolve(dir, name))
      try {
        const text = await fsReadFile(file, 'utf8')
        inputs[file] = sha256(text)
        return text
      } catch {
        return null
      }
    },
    writeFile: (name, contents) => {
      if (name.endsWith('.wasm')) wasm = contents
    },
    listFiles: () => [],
  })
  if (result.error || !wasm) {
    // The runtime hooks live in the SDK's exports module: not found means it was not re-exported.
    if (output.includes(`${LIB}/proxyAbort' not found`)) {
      throw new FilterBuildError('SDK_AS_MISSING_EXPORTS', `${entryPath}: add  export * from "@omnirelay/sdk-as/exports"  to the entry file`, output)
    }
    throw new FilterBuildError('SDK_AS_COMPILE_FAILED', `asc failed for ${entryPath}: ${result.error?.message ?? 'no output'}`, output)
  }

  const { imports, exports } = inspect(wasm, entryPath)
  if (outFile) {
    await mkdir(dirname(resolve(outFile)), { recursive: true })
    await writeAtomically(outFile, wasm)
    if (stampFile) await writeAtomically(stampFile, JSON.stringify({ settings, output: sha256(wasm), inputs }, null, 1))
  }
  return { wasm, imports, exports }
}

// Parallel builds (test workers) of the same filter must never expose a half-written file.
async function writeAtomically(file, data) {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await fsWriteFile(tmp, data)
  await rename(tmp, file)
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex')
}

async function fromCache(outFile, stampFile, settings) {
  try {
    const stamp = JSON.parse(await fsReadFile(stampFile, 'utf8'))
    if (stamp.settings !== settings) return undefined
    for (const [file, digest] of Object.entries(stamp.inputs)) {
      if (sha256(await fsReadFile(file, 'utf8')) !== digest) return undefined
    }
    const wasm = new Uint8Array(await fsReadFile(outFile))
    return sha256(wasm) === stamp.output ? wasm : undefined
  } catch {
    return undefined
  }
}

/** Checks a compiled module; returns its imports as "module.name" and its export names. */
export function inspect(wasm, label = 'module') {
  let mod
  try {
    mod = new WebAssembly.Module(wasm)
  } catch (err) {
    throw new FilterBuildError('SDK_AS_COMPILE_FAILED', `${label}: output does not validate: ${err.message}`)
  }
  const imports = WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}`)
  const exports = WebAssembly.Module.exports(mod).map((e) => e.name)
  const missing = REQUIRED_EXPORTS.filter((name) => !exports.includes(name))
  if (missing.length > 0) {
    throw new FilterBuildError(
      'SDK_AS_MISSING_EXPORTS',
      `${label}: missing exports ${missing.join(', ')}; does the entry file have: export * from "@omnirelay/sdk-as/exports"`,
    )
  }
  const foreign = imports.filter((name) => !name.startsWith('env.proxy_'))
  if (foreign.length > 0) {
    throw new FilterBuildError('SDK_AS_FORBIDDEN_IMPORT', `${label}: imports outside env.proxy_*: ${foreign.join(', ')}`)
  }
  return { imports, exports }
}

// Any `node_modules/@omnirelay/sdk-as/...` asc looks for is served from this package, so the
// SDK that compiles (transform, abort hooks) is the SDK that is compiled in.
function mapSdkPath(file) {
  const i = file.lastIndexOf(SDK_MARK)
  return i < 0 ? file : join(SDK_ROOT, file.slice(i + SDK_MARK.length))
}
