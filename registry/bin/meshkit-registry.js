#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step in this repo).
import { register } from 'tsx/esm/api'

// Admission (and binaryen, which loads slowly through tsx) runs in its own worker thread,
// whose bootstrap loads binaryen natively: see src/admission/worker/entry.js.
const argv = process.argv.slice(2)
register()
const { registryCommand } = await import('../src/cli/index.ts')
process.exitCode = await registryCommand(argv)
