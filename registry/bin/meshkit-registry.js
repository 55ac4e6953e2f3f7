#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step in this repo).
import { register } from 'tsx/esm/api'

const ADMIN_COMMANDS = new Set(['ls', 'show', 'publish', 'yank', 'revoke', 'revocations', 'audit', 'token'])
const argv = process.argv.slice(2)
if (!argv.some((a) => ADMIN_COMMANDS.has(a)) && !argv.includes('--help') && !argv.includes('-h')) {
  // Serving admits bundles, which needs binaryen (a 15 MB module). Loaded through the tsx
  // loader it takes ~20 s; loaded natively first, ~1 s, and later imports hit the module cache.
  await import('binaryen')
}
register()
const { registryCommand } = await import('../src/cli/index.ts')
process.exitCode = await registryCommand(argv)
