// Compiles every example filter (examples/filters/<name>/assembly/index.ts) to
// examples/filters/<name>/build/filter.wasm. Run by `npm run build` (examples/build.js).
// Sequential on purpose: asc is CPU-bound and the machine is shared. Output is deterministic,
// and a filter none of whose sources changed is not rebuilt (buildFilter's cache).
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildFilter } from '@omnirelay/sdk-as/build'

const here = dirname(fileURLToPath(import.meta.url))

/** Names of the example filters (folders with an assembly/index.ts). */
export function exampleFilters() {
  return readdirSync(here, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(here, d.name, 'assembly', 'index.ts')))
    .map((d) => d.name)
    .sort()
}

/** The module path of example `name`. */
export function exampleModule(name) {
  return join(here, name, 'build', 'filter.wasm')
}

/** Builds the named examples (all by default) unless up to date; returns name -> module bytes. */
export async function buildExamples(names = exampleFilters()) {
  const out = {}
  for (const name of names) {
    const entry = join(here, name, 'assembly', 'index.ts')
    out[name] = (await buildFilter({ entry, outFile: exampleModule(name), cache: true })).wasm
  }
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now()
  try {
    const built = await buildExamples(process.argv.length > 2 ? process.argv.slice(2) : undefined)
    for (const [name, wasm] of Object.entries(built)) console.log(`filters: ${name}/build/filter.wasm ${wasm.length} bytes`)
    console.log(`filters: ${Object.keys(built).length} up to date in ${Date.now() - started} ms`)
  } catch (err) {
    console.error(`filters: ${err.code ?? 'error'}: ${err.message}`)
    if (err.diagnostics) console.error(err.diagnostics)
    process.exit(1)
  }
}
