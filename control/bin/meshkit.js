#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step in this repo).
import { register } from 'tsx/esm/api'

const argv = process.argv.slice(2)
const ADMIN_COMMANDS = new Set(['ls', 'show', 'publish', 'yank', 'revoke', 'revocations', 'audit', 'token'])
const serving = argv[0] === 'central' || (argv[0] === 'registry' && !argv.slice(1).some((a) => ADMIN_COMMANDS.has(a)))
if (serving && !argv.includes('--help') && !argv.includes('-h')) {
  // Admission needs binaryen (15 MB): ~1 s loaded natively, ~20 s through the tsx loader.
  await import('binaryen')
}
register()
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(argv)
