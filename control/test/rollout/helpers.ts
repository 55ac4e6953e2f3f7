/**
 * A simulated fleet for rollout tests: a publisher that hands out epochs and remembers the
 * changes, and a data plane that serves requests through a real SplitSlot at the published
 * weight, aggregates with the real SplitTelemetry and reports over real gRPC into the real
 * telemetry store.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MetricsRegistry } from '@omnirelay/runtime/observability/metrics.ts'
import type { FilterFactory } from '@omnirelay/runtime/pipeline/filter.ts'
import { HeaderMap } from '@omnirelay/runtime/pipeline/header-map.ts'
import { createStreamInfo, PipelineStream } from '@omnirelay/runtime/pipeline/stream.ts'
import { SplitSlot } from '@omnirelay/runtime/rollout/index.ts'
import { SplitTelemetry, TelemetryAggregator, TelemetryExporter } from '@omnirelay/runtime/telemetry/index.ts'
import { RolloutManager, RolloutStore, storeTelemetry, versionOf, type RolloutChange } from '../../src/rollout/index.ts'
import { startTelemetryServer, TelemetryStore } from '../../src/telemetry/index.ts'

export interface Behaviour {
  /** When set, this version answers 500 on paths /bad/* (a third of the traffic). */
  errorShare?: number
  /** Fuel per request reported by the host. */
  fuel?: number
  /** Share of requests on which the filter traps. */
  trapShare?: number
}

export class FakeClock {
  t = 1_700_000_000_000
  now = (): number => this.t
  advance(ms: number): void {
    this.t += ms
  }
}

export class FakePublisher {
  epoch = 100
  readonly changes: { group: string; epoch: number; change: RolloutChange }[] = []
  fail = false
  publish(group: string, change: RolloutChange): number {
    if (this.fail) throw new Error('central down')
    this.epoch++
    this.changes.push({ group, epoch: this.epoch, change })
    return this.epoch
  }
  /** B's weight the data plane should run now (from the last change). */
  weightB(): { weightB: number; epoch: number } {
    for (let i = this.changes.length - 1; i >= 0; i--) {
      const c = this.changes[i]!.change
      if (c.kind === 'split') return { weightB: c.weightB, epoch: this.changes[i]!.epoch }
      if (c.kind === 'set-version') return { weightB: versionOf(c.version) === '2.0.0' ? 10_000 : 0, epoch: this.changes[i]!.epoch }
    }
    return { weightB: 0, epoch: 0 }
  }
}

function factory(name: string, version: string, b: Behaviour, metrics: MetricsRegistry): FilterFactory {
  const fuel = metrics.histogram('omnirelay_filter_fuel_used', 'Fuel used per request by a filter', ['filter'], [1e3, 1e6]).labels(name)
  let n = 0
  return {
    name,
    version,
    kind: 'native',
    phases: 1,
    failurePolicy: 'fail-closed',
    createStream: (s) => ({
      onRequestHeaders: () => {
        n++
        fuel.observe(b.fuel ?? 100)
        if (b.trapShare && n % Math.round(1 / b.trapShare) === 0) throw Object.assign(new Error('trap'), { code: 'trap' })
        if (b.errorShare && (s.requestHeaders.get(':path') ?? '').startsWith('/bad/')) s.sendLocalReply(500, 'bad')
        return 0
      },
    }),
    close: async () => {},
  }
}

export async function fleet(a: Behaviour, b: Behaviour) {
  const dir = mkdtempSync(join(tmpdir(), 'rollout-'))
  const clock = new FakeClock()
  const telemetryStore = TelemetryStore.open(join(dir, 'telemetry.sqlite'), { now: clock.now })
  const server = await startTelemetryServer(telemetryStore)
  const publisher = new FakePublisher()
  const metrics = new MetricsRegistry()
  const agg = new TelemetryAggregator()
  const observer = new SplitTelemetry(agg, metrics)
  const exporter = new TelemetryExporter({ target: server.address, node: 'dp-1', group: 'edge', aggregator: agg, intervalMs: 0 })
  const fa = factory('api.waf', '1.0.0', a, metrics)
  const fb = factory('api.waf#b', '2.0.0', b, metrics)
  let slot: SplitSlot | undefined
  let seq = 0
  const open = (file = join(dir, 'rollouts.sqlite')) => {
    const store = RolloutStore.open(file)
    return { store, manager: new RolloutManager({ store, publisher, telemetry: storeTelemetry(telemetryStore), clock }) }
  }
  let { store, manager } = open()
  const dp = {
    /** Serves `n` requests at the currently published split, then reports. Returns how many ran on B. */
    async serve(n: number): Promise<number> {
      const { weightB, epoch } = publisher.weightB()
      if (!slot || slot.weightB !== weightB) {
        slot = new SplitSlot(fa, fb, { slot: 'api.waf', weightB, observer })
        observer.track(slot)
      }
      let onB = 0
      for (let i = 0; i < n; i++) {
        const id = `req-${seq++}`
        const path = i % 3 === 0 ? '/bad/x' : '/ok'
        const stream = new PipelineStream({ info: createStreamInfo({ requestId: id, epoch, routeName: 'api' }), requestHeaders: HeaderMap.fromPairs([[':path', path]]) })
        const w = slot.createStream(stream) as { onRequestHeaders(e: boolean): number; onDone(): void; variant: number }
        onB += w.variant
        try {
          w.onRequestHeaders(true)
          stream.info.responseCode = stream.localReply?.status ?? 200
        } catch {
          stream.info.responseCode = 500
        }
        w.onDone()
      }
      await exporter.flush()
      return onB
    },
  }
  return {
    clock,
    publisher,
    telemetryStore,
    dp,
    get manager() {
      return manager
    },
    get store() {
      return store
    },
    /** Central restart: a new manager on the same file. */
    restart() {
      manager.stop()
      store.close()
      ;({ store, manager } = open())
    },
    async close() {
      manager.stop()
      await exporter.close()
      await server.close()
      store.close()
      telemetryStore.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
