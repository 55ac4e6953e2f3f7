/**
 * The simulated fleet for convergence.ts, in a worker thread so its heap and
 * event loop are not the server's: the main thread's heap is the server's.
 */
import * as grpc from '@grpc/grpc-js'
import { parentPort, workerData } from 'node:worker_threads'
import { encodeDeltaDiscoveryRequest, type DeltaDiscoveryRequest } from '@omnirelay/runtime/xds/proto/messages.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'

const PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources'
// As an OmniRelay in atomic mode: the four standard types and the end-of-epoch marker.
const TYPES = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Epoch]
const { shared } = workerData as { shared: boolean }
const SHARED = shared

interface Sim {
  client: grpc.Client
  call: grpc.ClientDuplexStream<Buffer, Buffer>
}

/**
 * A data plane reduced to its protocol duty: read type_url (4) and nonce (5) of
 * each DeltaDiscoveryResponse and ACK it. Hand-rolled so the simulated fleet
 * spends little of the shared CPU; a real fleet runs in other processes.
 */
function ackFor(res: Buffer): Buffer {
  let pos = 0
  let typeUrl: Buffer | undefined
  let nonce: Buffer | undefined
  while (pos < res.length) {
    let tag = 0
    let shift = 0
    for (;;) {
      const b = res[pos++]!
      tag |= (b & 0x7f) << shift
      if (b < 0x80) break
      shift += 7
    }
    let len = 0
    shift = 0
    for (;;) {
      const b = res[pos++]!
      len += (b & 0x7f) * 2 ** shift
      if (b < 0x80) break
      shift += 7
    }
    const field = tag >>> 3
    if (field === 4) typeUrl = res.subarray(pos, pos + len)
    else if (field === 5) nonce = res.subarray(pos, pos + len)
    pos += len
  }
  // DeltaDiscoveryRequest { type_url = 2; response_nonce = 6 } (both short: one-byte lengths)
  return Buffer.concat([Buffer.from([0x12, typeUrl!.length]), typeUrl!, Buffer.from([0x32, nonce!.length]), nonce!])
}

function simulate(address: string, i: number): Sim {
  // A distinct channel option gives each simulated data plane its own connection.
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), SHARED ? {} : { 'bench.sim': i })
  const call = client.makeBidiStreamRequest(PATH, (b: Buffer) => b, (b: Buffer) => b)
  call.on('data', (r: Buffer) => call.write(ackFor(r)))
  call.on('error', () => {})
  TYPES.forEach((typeUrl, k) => {
    const req: DeltaDiscoveryRequest = {
      typeUrl, resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '',
    }
    if (k === 0) req.node = { id: `dp-${i}`, cluster: 'bench', metadata: { group: 'fleet' }, userAgentName: 'sim', userAgentVersion: '0', clientFeatures: [] }
    call.write(encodeDeltaDiscoveryRequest(req))
  })
  return { client, call }
}

const sims: Sim[] = []
parentPort!.on('message', (m: { op: 'connect'; address: string; from: number; to: number } | { op: 'close' }) => {
  if (m.op === 'connect') {
    for (let i = m.from; i < m.to; i++) sims.push(simulate(m.address, i))
    parentPort!.postMessage('connected')
  } else {
    for (const s of sims.splice(0)) {
      s.call.cancel()
      s.client.close()
    }
    parentPort!.postMessage('closed')
  }
})
parentPort!.postMessage('ready')
