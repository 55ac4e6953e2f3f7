/**
 * A bare ADS client for protocol tests: sends exactly the requests a test
 * writes and queues every response, so tests can assert nonces, versions and
 * silence (what the server must NOT send).
 */
import * as grpc from '@grpc/grpc-js'
import {
  decodeDeltaDiscoveryResponse,
  decodeDiscoveryResponse,
  encodeDeltaDiscoveryRequest,
  encodeDiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type XdsNode,
} from '@omnirelay/runtime/xds/proto/messages.ts'

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService'

export function node(id: string, metadata: XdsNode['metadata'] = {}, clientFeatures: string[] = []): XdsNode {
  return { id, cluster: 'test', metadata, userAgentName: 'raw', userAgentVersion: '0', clientFeatures }
}

class RawStream<Req, Res> {
  readonly #call: grpc.ClientDuplexStream<Req, Res>
  readonly #queue: Res[] = []
  readonly #waiters: ((r: Res) => void)[] = []
  ended: Promise<grpc.StatusObject>

  constructor(call: grpc.ClientDuplexStream<Req, Res>) {
    this.#call = call
    call.on('data', (r: Res) => {
      const w = this.#waiters.shift()
      if (w) w(r)
      else this.#queue.push(r)
    })
    call.on('error', () => {})
    this.ended = new Promise((resolve) => call.on('status', resolve))
  }

  send(req: Req): void {
    this.#call.write(req)
  }

  /** The next response, or a rejection after `ms`. */
  next(ms = 2000): Promise<Res> {
    const r = this.#queue.shift()
    if (r !== undefined) return Promise.resolve(r)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(w)
        if (i !== -1) this.#waiters.splice(i, 1)
        reject(new Error(`no response within ${ms} ms`))
      }, ms)
      const w = (x: Res) => {
        clearTimeout(timer)
        resolve(x)
      }
      this.#waiters.push(w)
    })
  }

  /** Resolves true if nothing arrives within `ms`. */
  async silent(ms = 150): Promise<boolean> {
    try {
      await this.next(ms)
      return false
    } catch {
      return true
    }
  }

  close(): void {
    this.#call.cancel()
  }
}

export class SotwRaw extends RawStream<DiscoveryRequest, DiscoveryResponse> {
  request(r: Partial<DiscoveryRequest> & { typeUrl: string }): void {
    this.send({ versionInfo: '', resourceNames: [], responseNonce: '', ...r })
  }
  ack(res: DiscoveryResponse, names: string[] = []): void {
    this.request({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: names })
  }
}

export class DeltaRaw extends RawStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  request(r: Partial<DeltaDiscoveryRequest> & { typeUrl: string }): void {
    this.send({ resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '', ...r })
  }
  ack(res: DeltaDiscoveryResponse): void {
    this.request({ typeUrl: res.typeUrl, responseNonce: res.nonce })
  }
}

export function rawClient(address: string) {
  const client = new grpc.Client(address, grpc.credentials.createInsecure())
  return {
    sotw: () =>
      new SotwRaw(client.makeBidiStreamRequest(`${SERVICE}/StreamAggregatedResources`, encodeDiscoveryRequest, decodeDiscoveryResponse)),
    delta: () =>
      new DeltaRaw(client.makeBidiStreamRequest(`${SERVICE}/DeltaAggregatedResources`, encodeDeltaDiscoveryRequest, decodeDeltaDiscoveryResponse)),
    close: () => client.close(),
  }
}
