/** A request body a filter buffered whole is replayable: idempotent requests are retried after a 5xx. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { request, startUpstream, type Upstream } from './helpers/servers.ts'

// Buffers the whole request body and changes its length (the forwarded length must follow).
const BUFFER = `export function onRequestBody(req, ctx) {
  if (!ctx.endOfStream) return 1
  req.setBody(req.text() + '+filtered')
  return 0
}`

describe('buffered request bodies and retries', () => {
  let dir: string
  let a: Upstream
  let b: Upstream
  let proxy: ProxyHandle
  let port: number
  let calls = 0

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buffered-retry-'))
    await writeFile(join(dir, 'buffer.js'), BUFFER)
    // Whichever endpoint gets the first try answers 503; every later try succeeds.
    const handler = (_req: unknown, res: import('node:http').ServerResponse, body: string) => {
      if (calls++ === 0) {
        res.writeHead(503).end('busy')
        return
      }
      res.end(`got:${body}`)
    }
    a = await startUpstream(handler)
    b = await startUpstream(handler)
    proxy = await startProxy(
      {
        allowUnsigned: true,
        accessLog: 'off',
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] }],
        filters: [{ name: 'buffer', kind: 'quickjs', module: 'buffer.js', capabilities: ['headers:read', 'body:read', 'body:write'] }],
        routes: [
          {
            name: 'put',
            match: { prefix: '/' },
            cluster: 'app',
            filters: ['buffer'],
            policy: { retry: { maxRetries: 2, retryOn: ['5xx'], backoffMs: 1 } },
          },
        ],
      },
      { baseDir: dir, log: silentLogger },
    )
    port = proxy.address().port
  })
  afterAll(async () => {
    await proxy?.close()
    await a?.close()
    await b?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('retries a buffered-body PUT after a 503 and replays the filtered bytes', async () => {
    const body = 'x'.repeat(100_000)
    const r = await request(port, { method: 'PUT', path: '/obj', body })
    expect(r.status).toBe(200)
    expect(r.body).toBe(`got:${body}+filtered`)
    const tries = [...a.seen, ...b.seen]
    expect(tries).toHaveLength(2)
    for (const t of tries) expect(t.body).toBe(`${body}+filtered`)
  })
})
