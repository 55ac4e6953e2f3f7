/**
 * A node:cluster worker: runs a full proxy (listeners shared with the other workers through
 * the primary) on the config the primary sends, without an admin server.
 */
import type { AddressInfo } from 'node:net'
import { createLogger } from '../observability/logger.ts'
import { Proxy } from './proxy.ts'
import type { FromWorker, ToWorker } from './worker-messages.ts'

let proxy: Proxy | undefined
const send = (m: FromWorker) => process.send?.(m)

function addresses(p: Proxy): Record<string, AddressInfo> {
  const out: Record<string, AddressInfo> = {}
  for (const l of p.config.listeners) out[l.name] = p.address(l.name)
  return out
}

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start':
      Proxy.start(msg.config, { admin: false, epoch: msg.epoch, log: createLogger({ level: msg.config.logLevel, fields: { worker: process.pid } }) }).then(
        (p) => {
          proxy = p
          send({ type: 'ready', addresses: addresses(p) })
        },
        (err: Error & { code?: string }) => {
          send({ type: 'start-failed', code: err.code ?? 'start_failed', message: err.message })
          process.exit(1)
        },
      )
      return
    case 'reload':
      if (!proxy) return
      proxy.reload(msg.config, msg.epoch).then(
        () => send({ type: 'reloaded', id: msg.id, ok: true, addresses: addresses(proxy!) }),
        (err: Error & { code?: string }) => send({ type: 'reloaded', id: msg.id, ok: false, code: err.code, message: err.message }),
      )
      return
    case 'metrics':
      send({ type: 'metrics', id: msg.id, text: proxy ? proxy.metrics.render() : '' })
      return
    case 'close':
      void (proxy?.close() ?? Promise.resolve()).finally(() => process.exit(0))
      return
  }
})

send({ type: 'hello' })

// The primary owns signals: a worker ignores SIGINT/SIGTERM sent to the process group and
// waits for the primary's 'close' so in-flight requests drain.
process.on('SIGINT', () => {})
process.on('SIGTERM', () => {})
process.on('SIGHUP', () => {})
process.on('disconnect', () => void (proxy?.close(0) ?? Promise.resolve()).finally(() => process.exit(0)))
