/**
 * The access log: one JSON object per request, written in batches (one write per event
 * loop turn, not per request) to stdout, stderr or a file.
 *
 * @example
 * const log = createAccessLog('stdout')
 * log.write({ time, requestId, route, cluster, status, durationMs, epoch })
 */
import { createWriteStream, type WriteStream } from 'node:fs'

export interface AccessRecord {
  time: string
  requestId: string
  listener: string
  method: string
  path: string
  authority: string
  protocol: string
  remote: string
  route: string | null
  cluster: string | null
  upstream: string | null
  status: number
  /** Why the host answered itself (`no_route`, `upstream_timeout`, `filter_failed:authz:trap`...), else null. */
  details: string | null
  bytesReceived: number
  bytesSent: number
  /** Time to the response head, and to the end of the response, in ms. */
  ttfbMs: number
  durationMs: number
  epoch: number
  /** Downstream went away before the response ended. */
  aborted: boolean
}

export interface AccessLog {
  readonly enabled: boolean
  write(rec: AccessRecord): void
  close(): Promise<void>
}

const OFF: AccessLog = { enabled: false, write() {}, close: async () => {} }

class BatchedAccessLog implements AccessLog {
  readonly enabled = true
  #lines: string[] = []
  #scheduled = false
  readonly #out: NodeJS.WritableStream
  readonly #file: WriteStream | undefined

  constructor(target: string) {
    if (target === 'stdout') this.#out = process.stdout
    else if (target === 'stderr') this.#out = process.stderr
    else this.#out = this.#file = createWriteStream(target, { flags: 'a' })
  }

  write(rec: AccessRecord): void {
    this.#lines.push(JSON.stringify(rec))
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(flush, this)
    }
  }

  flush(): void {
    this.#scheduled = false
    if (this.#lines.length === 0) return
    const text = this.#lines.join('\n') + '\n'
    this.#lines = []
    this.#out.write(text)
  }

  async close(): Promise<void> {
    this.flush()
    const f = this.#file
    if (f) await new Promise<void>((res) => f.end(res))
  }
}

function flush(log: BatchedAccessLog): void {
  log.flush()
}

export function createAccessLog(target: string): AccessLog {
  return target === 'off' ? OFF : new BatchedAccessLog(target)
}
