#!/usr/bin/env node
// In-proc mode: a plain node:http app that runs OmniRelay's filter chain on its own requests.
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

register()
const { createInProcPipeline } = await import('../../runtime/src/index.ts')

const omni = await createInProcPipeline(fileURLToPath(new URL('./omnirelay.yaml', import.meta.url)))

const app = (req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ hello: 'from the app', path: req.url, caller: req.headers['x-caller'] }) + '\n')
}

const server = http.createServer(omni.wrap(app)).listen(3000, '127.0.0.1', () => {
  process.stderr.write(`
In-proc example on http://127.0.0.1:3000
  curl -i localhost:3000/                                   -> app, with x-filtered-by
  curl -i localhost:3000/private                            -> 401 from the filter, app not called
  curl -i -H 'x-api-key: demo-key' localhost:3000/private   -> app sees x-caller: known
  curl localhost:3000/healthz                               -> direct response from the route table
`)
})
const stop = async () => {
  server.close()
  await omni.close()
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
