#!/usr/bin/env node
// `npm start`: the demo upstream on :3001 and the OmniRelay edge proxy on :8080 (admin :9901).
import { register } from 'tsx/esm/api'
import { fileURLToPath } from 'node:url'
import { startDemoUpstream } from './demo-upstream.js'

register()
const { startProxy } = await import('../../runtime/src/index.ts')

const config = fileURLToPath(new URL('./omnirelay.yaml', import.meta.url))
const upstream = await startDemoUpstream(3001)
const proxy = await startProxy(config, { watch: true, sighup: true })
const { port } = proxy.address('edge')
const admin = proxy.adminAddress()

process.stderr.write(`
OmniRelay edge example is running (config epoch ${proxy.epoch}).
  curl localhost:${port}/            -> proxied to the demo upstream on :3001
  curl localhost:${port}/hello       -> a direct response
  curl localhost:${admin.port}/metrics   -> Prometheus metrics   (/ready /live /config too)
Config: ${config} (edit it: it reloads live). Ctrl-C stops.
Access log lines follow on stdout.

`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await proxy.close()
  upstream.close()
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
