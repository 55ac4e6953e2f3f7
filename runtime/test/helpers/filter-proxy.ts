/** A running proxy whose filter modules are source files in a temp dir, in front of a real upstream. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startProxy, type ProxyHandle } from '../../src/index.ts'
import { silentLogger } from '../../src/observability/logger.ts'
import { startUpstream, type Handler, type Upstream } from './servers.ts'

export interface FilterProxy {
  /** The temp dir holding the files; the config's module paths are relative to it. */
  dir: string
  up: Upstream
  proxy: ProxyHandle
  /** Port of the proxy's first listener. */
  port: number
  /** Closes the proxy, then the upstream, and removes the dir. */
  close(): Promise<void>
}

/**
 * Writes `files` into a fresh temp dir, starts an upstream (`upstream` handler, else the JSON
 * echo) and a proxy with `config(upstreamPort)`.
 *
 * @example
 * let fx: FilterProxy
 * beforeAll(async () => {
 *   fx = await startFilterProxy({
 *     prefix: 'tag-',
 *     files: { 'tag.js': 'export function onRequestHeaders(req) { req.headers.set("x-tag", "1"); return 0 }' },
 *     config: (upPort) => ({ allowUnsigned: true, listeners: [...], clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }], ... }),
 *   })
 * })
 * afterAll(() => fx?.close())
 */
export async function startFilterProxy(opts: {
  prefix: string
  files: Record<string, string>
  upstream?: Handler
  config: (upstreamPort: number) => object
}): Promise<FilterProxy> {
  const dir = await mkdtemp(join(tmpdir(), opts.prefix))
  let up: Upstream | undefined
  try {
    for (const [f, src] of Object.entries(opts.files)) await writeFile(join(dir, f), src)
    up = await startUpstream(opts.upstream)
    const proxy = await startProxy(opts.config(up.port), { baseDir: dir, log: silentLogger })
    const upstream = up
    return {
      dir,
      up: upstream,
      proxy,
      port: proxy.address().port,
      async close() {
        await proxy.close()
        await upstream.close()
        await rm(dir, { recursive: true, force: true })
      },
    }
  } catch (e) {
    await up?.close()
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}
