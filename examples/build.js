// Builds the examples: compiles the example filters, then packs and signs them into bundles.
// Each step is a script of its own; a step whose script is not there yet is skipped.
import { existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
for (const step of ['filters/build.js', 'bundles/build.js']) {
  const script = join(here, step)
  if (!existsSync(script)) continue
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
