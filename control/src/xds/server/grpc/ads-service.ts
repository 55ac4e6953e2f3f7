/**
 * The Aggregated Discovery Service on @grpc/grpc-js. Requests are decoded with
 * the published Envoy protos; responses leave as the bytes the streams built
 * (cached resource bytes spliced together), so the codec is the identity.
 */
import * as grpc from '@grpc/grpc-js'
import {
  decodeDeltaDiscoveryRequest,
  decodeDiscoveryRequest,
  encodeDeltaDiscoveryRequest,
  encodeDiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
} from '@omnirelay/runtime/xds/proto/messages.ts'
import { DeltaStream } from '../delta/stream.ts'
import { SotwStream } from '../sotw/stream.ts'
import type { AdsStream, AdsStreamOptions, StreamTransport } from '../stream-base.ts'
import type { DataPlane } from '../data-plane.ts'

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService'
const identity = (b: Buffer) => b

export const adsServiceDefinition = {
  StreamAggregatedResources: {
    path: `${SERVICE}/StreamAggregatedResources`,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodeDiscoveryRequest,
    requestDeserialize: decodeDiscoveryRequest,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  DeltaAggregatedResources: {
    path: `${SERVICE}/DeltaAggregatedResources`,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodeDeltaDiscoveryRequest,
    requestDeserialize: decodeDeltaDiscoveryRequest,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition

let streamSeq = 0

/** Live streams of one service instance, for central's view and for shutdown. */
export class StreamRegistry {
  readonly #streams = new Set<AdsStream>()

  add(s: AdsStream): void {
    this.#streams.add(s)
  }

  delete(s: AdsStream): void {
    this.#streams.delete(s)
  }

  get size(): number {
    return this.#streams.size
  }

  /** Ends (UNAVAILABLE) the streams whose data plane `which` selects; returns how many. */
  disconnect(which: (dp: DataPlane) => boolean, message: string): number {
    let n = 0
    for (const s of [...this.#streams]) {
      if (s.dataPlane !== undefined && which(s.dataPlane)) {
        s.disconnect(message)
        this.#streams.delete(s)
        n++
      }
    }
    return n
  }

  /** Data planes that have sent their first request. */
  dataPlanes(): DataPlane[] {
    const out: DataPlane[] = []
    for (const s of this.#streams) if (s.dataPlane !== undefined) out.push(s.dataPlane)
    return out
  }
}

function bind<Req>(
  call: grpc.ServerDuplexStream<Req, Buffer>,
  make: (t: StreamTransport, id: string) => AdsStream & { handle(r: Req): void },
  registry: StreamRegistry,
): void {
  let ended = false
  let congested = false
  const transport: StreamTransport = {
    send: (bytes) => {
      if (!ended && !call.write(bytes)) congested = true
    },
    congested: () => congested,
    close: (status) => {
      if (ended) return
      ended = true
      if (status) call.emit('error', { code: status.code, details: status.message, metadata: new grpc.Metadata() })
      else call.end()
    },
  }
  const stream = make(transport, `s${++streamSeq}`)
  registry.add(stream)
  call.on('drain', () => {
    congested = false
    stream.drained()
  })
  const finish = (reason: string, message?: string) => {
    registry.delete(stream)
    stream.close(message === undefined ? { reason } : { reason, message })
  }
  call.on('data', (req: Req) => {
    try {
      stream.handle(req)
    } catch (e) {
      // A bug must not take the process down; end this stream only.
      transport.close({ code: grpc.status.INTERNAL, message: 'internal error' })
      finish('server-closed', (e as Error).message)
    }
  })
  call.on('end', () => {
    if (!ended) {
      ended = true
      call.end()
    }
    finish('client-closed')
  })
  call.on('cancelled', () => {
    ended = true
    finish('client-closed')
  })
  call.on('error', (e: Error) => {
    ended = true
    finish('transport-error', e.message)
  })
  call.on('close', () => finish('client-closed'))
}

/**
 * Registers ADS (SotW and delta) on a grpc-js server.
 *
 * @example
 * const server = new grpc.Server()
 * const registry = addAdsService(server, { cache })
 * server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {})
 */
export function addAdsService(server: grpc.Server, opts: AdsStreamOptions, registry = new StreamRegistry()): StreamRegistry {
  server.addService(adsServiceDefinition, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) =>
      bind(call, (t, id) => new SotwStream(opts, t, id), registry),
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>) =>
      bind(call, (t, id) => new DeltaStream(opts, t, id), registry),
  })
  return registry
}
