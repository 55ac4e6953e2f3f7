#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step in this repo).
import { register } from 'tsx/esm/api'

register()
const { registryCommand } = await import('../src/cli/index.ts')
process.exitCode = await registryCommand(process.argv.slice(2))
