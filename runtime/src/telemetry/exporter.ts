/**
 * Streams the aggregator's batches to central over gRPC (TelemetryService.Report), one batch
 * per interval. When central is away, batches wait in a bounded queue; past the bound the
 * oldest are dropped and counted, and the counts ride along in the next batch that gets
 * through. Never throws into the proxy; never holds more than `maxPending` batches.
 */
import * as grpc from '@grpc/grpc-js'
import type { TelemetryAggregator } from './aggregator.ts'
import { telemetryClientConstructor, type AckWire, type BatchWire } from './proto.ts'

export interface TelemetryExporterOptions {
  /** Central's telemetry address, `host:port`. */
  target: string
  node: string
  group?: string
  aggregator: TelemetryAggregator
  /** Batch interval (default 1000 ms). 0: no timer, call `flush()` yourself. */
  intervalMs?: number
  /** Batches kept while central is away (default 120). */
  maxPending?: number
  /** Deadline of one send (default 2000 ms). */
  timeoutMs?: number
  now?: () => number
}

type ReportClient = grpc.Client & {
  Report(b: BatchWire, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, ack?: AckWire) => void): void
}

export interface ExporterStatus {
  sent: number
  pending: number
  droppedBatches: number
  droppedSeries: number
  lastError: string | undefined
}

/**
 * @example
 * const exp = new TelemetryExporter({ target: central.telemetryAddress, node: 'edge-1', aggregator })
 * exp.start()
 * await exp.close() // one last flush attempt
 */
export class TelemetryExporter {
  readonly #o: Required<Omit<TelemetryExporterOptions, 'group'>> & { group: string }
  readonly #client: ReportClient
  readonly #queue: BatchWire[] = []
  #seq = 0
  #windowStart: number
  #timer: NodeJS.Timeout | undefined
  #inflight: Promise<void> | undefined
  // Drops not yet reported to central.
  #unreportedBatches = 0
  #unreportedSeries = 0
  readonly status: ExporterStatus = { sent: 0, pending: 0, droppedBatches: 0, droppedSeries: 0, lastError: undefined }

  constructor(opts: TelemetryExporterOptions) {
    this.#o = { intervalMs: 1000, maxPending: 120, timeoutMs: 2000, now: Date.now, group: '', ...opts }
    const Ctor = telemetryClientConstructor()
    this.#client = new Ctor(opts.target, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
    }) as unknown as ReportClient
    this.#windowStart = this.#o.now()
  }

  start(): void {
    if (this.#timer || this.#o.intervalMs <= 0) return
    this.#timer = setInterval(() => void this.flush(), this.#o.intervalMs)
    this.#timer.unref()
  }

  /** Cuts a batch from the aggregator and sends everything pending, oldest first. */
  flush(): Promise<void> {
    this.#cut()
    if (!this.#inflight) this.#inflight = this.#drainQueue().finally(() => (this.#inflight = undefined))
    return this.#inflight
  }

  #cut(): void {
    const now = this.#o.now()
    const { series, droppedSeries } = this.#o.aggregator.drain()
    this.#unreportedSeries += droppedSeries
    this.status.droppedSeries += droppedSeries
    const start = this.#windowStart
    this.#windowStart = now
    if (series.length === 0 && droppedSeries === 0) return
    this.#queue.push({ node: this.#o.node, group: this.#o.group, seq: ++this.#seq, startMs: start, endMs: now, series, droppedBatches: 0, droppedSeries: 0 })
    while (this.#queue.length > this.#o.maxPending) {
      const lost = this.#queue.shift()!
      this.#unreportedBatches++
      this.#unreportedSeries += lost.series.length
      this.status.droppedBatches++
      this.status.droppedSeries += lost.series.length
    }
    this.status.pending = this.#queue.length
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length) {
      const b = this.#queue[0]!
      b.droppedBatches = this.#unreportedBatches
      b.droppedSeries = this.#unreportedSeries
      try {
        await this.#send(b)
      } catch (e) {
        this.status.lastError = (e as Error).message
        return
      }
      this.#unreportedBatches = 0
      this.#unreportedSeries = 0
      this.#queue.shift()
      this.status.sent++
      this.status.pending = this.#queue.length
      this.status.lastError = undefined
    }
  }

  #send(b: BatchWire): Promise<AckWire> {
    return new Promise((ok, fail) => {
      this.#client.Report(b, new grpc.Metadata(), { deadline: Date.now() + this.#o.timeoutMs }, (err, ack) => (err ? fail(err) : ok(ack!)))
    })
  }

  /** Stops the timer, tries one last flush, closes the channel. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush().catch(() => {})
    this.#client.close()
  }
}
