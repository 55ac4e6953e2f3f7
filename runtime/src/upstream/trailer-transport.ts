/**
 * The connections of one endpoint for requests that carry trailers (see trailer-call.ts):
 * a keep-alive `node:http`/`node:https` agent for HTTP/1.1 clusters, one `node:http2`
 * session for HTTP/2 clusters. Created on the first such request, so clusters that never
 * see one open nothing. Connections count in the cluster's connection gauge like the pool's.
 */
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { GaugeChild } from '../observability/metrics.ts'
import { tlsClientOptions, type ClusterConfig } from './types.ts'

/** Idle keep-alive connections close after this long, as the undici pools' do. */
const IDLE_MS = 4_000

export interface TrailerTarget {
  readonly host: string
  readonly port: number
  /** `host:port` (IPv6 in brackets). */
  readonly address: string
  readonly servername: string | undefined
}

export class TrailerTransport {
  readonly #target: TrailerTarget
  readonly #cluster: ClusterConfig
  readonly #connections: GaugeChild
  #agent: http.Agent | undefined = undefined
  #session: http2.ClientHttp2Session | undefined = undefined
  #inflight = 0
  #onIdle: (() => void) | undefined = undefined

  constructor(target: TrailerTarget, cluster: ClusterConfig, connections: GaugeChild) {
    this.#target = target
    this.#cluster = cluster
    this.#connections = connections
  }

  get tls(): boolean {
    return this.#cluster.tls !== undefined
  }

  get connectTimeoutMs(): number {
    return this.#cluster.connectTimeoutMs
  }

  /** A call starts using the transport (close waits for it). */
  acquire(): void {
    this.#inflight++
  }

  release(): void {
    if (--this.#inflight === 0 && this.#onIdle !== undefined) this.#onIdle()
  }

  /** HTTP/1.1 clusters: the agent whose sockets the calls use. */
  agent(): http.Agent {
    if (this.#agent !== undefined) return this.#agent
    const tls = this.#cluster.tls
    const opts: https.AgentOptions = {
      keepAlive: true,
      maxSockets: Math.max(1, this.#cluster.maxConnectionsPerEndpoint),
      timeout: IDLE_MS,
      ...(tls ? tlsClientOptions(tls, this.#target.servername) : {}),
    }
    const agent = tls ? new https.Agent(opts) : new http.Agent(opts)
    const create = agent.createConnection as (...args: unknown[]) => Socket | undefined
    const gauge = this.#connections
    // The agent has no connection event: count sockets where it creates them.
    ;(agent as { createConnection: unknown }).createConnection = function (this: http.Agent, ...args: unknown[]) {
      const s = create.apply(this, args)
      if (s) {
        gauge.inc()
        s.once('close', () => gauge.dec())
      }
      return s
    }
    return (this.#agent = agent)
  }

  /** HTTP/2 clusters: the live session, connected on first use and again once it closed or went away. */
  session(): http2.ClientHttp2Session {
    const cur = this.#session
    if (cur !== undefined && !cur.closed && !cur.destroyed) return cur
    const tls = this.#cluster.tls
    const t = this.#target
    const opts: http2.SecureClientSessionOptions = tls ? tlsClientOptions(tls, t.servername) : {}
    const s = http2.connect(`${tls ? 'https' : 'http'}://${t.address}`, opts)
    this.#session = s
    // Streams get the session's failure as their own error; the session must not crash us.
    s.on('error', ignore)
    const gauge = this.#connections
    let connected = false
    const ms = this.#cluster.connectTimeoutMs
    const timer = ms > 0 ? setTimeout(() => s.destroy(new ConnectTimeoutError(ms)), ms) : undefined
    s.once('connect', () => {
      clearTimeout(timer)
      connected = true
      gauge.inc()
    })
    s.once('close', () => {
      clearTimeout(timer)
      if (connected) gauge.dec()
      if (this.#session === s) this.#session = undefined
    })
    s.once('goaway', () => {
      if (this.#session === s) this.#session = undefined
    })
    s.setTimeout(IDLE_MS, () => {
      if (this.#inflight === 0 || this.#session !== s) s.close()
    })
    return s
  }

  /** Closes the connections once the calls using them are done. */
  close(): Promise<void> {
    if (this.#inflight === 0) {
      this.destroy()
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      this.#onIdle = () => {
        this.#onIdle = undefined
        this.destroy()
        resolve()
      }
    })
  }

  /** Closes every connection now; calls still running fail. */
  destroy(): void {
    this.#agent?.destroy()
    this.#agent = undefined
    const s = this.#session
    this.#session = undefined
    if (s !== undefined && !s.destroyed) s.destroy()
  }
}

/** A connect that did not finish within the cluster's `connectTimeoutMs`. */
export class ConnectTimeoutError extends Error {
  readonly code = 'OMNIRELAY_CONNECT_TIMEOUT'
  constructor(ms: number) {
    super(`connect timed out after ${ms} ms`)
    this.name = 'ConnectTimeoutError'
  }
}

function ignore(): void {}
