/**
 * The real `HttpStream`: what filters see of one request. The pipeline executor owns it
 * and drives it; it can also be built standalone (host unit tests), in which case local
 * replies and resumes are just recorded on the object.
 *
 * @example
 * const stream = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/']]) })
 * const filter = factory.createStream(stream)
 * filter.onRequestHeaders?.(true)
 * stream.localReply?.status // set when the filter replied
 */
import type { Bytes, HttpStream, StreamInfo } from './filter.ts'
import { HeaderMap } from './header-map.ts'
import { clampStatus, toBytes, type LocalReply } from './local-reply.ts'

const EMPTY = new Uint8Array(0)

/** Who drives the stream: told about local replies and resumes. */
export interface StreamOwner {
  onLocalReply(): void
  onResume(): void
}

export class MutableStreamInfo implements StreamInfo {
  requestId = ''
  startMonotonic = 0
  startTime = 0
  protocol = 'HTTP/1.1'
  scheme: 'http' | 'https' = 'http'
  downstreamRemoteAddress = ''
  downstreamRemotePort = 0
  downstreamLocalAddress = ''
  downstreamLocalPort = 0
  tls: StreamInfo['tls'] = undefined
  epoch = 0
  routeName: string | undefined = undefined
  clusterName: string | undefined = undefined
  upstreamAddress: string | undefined = undefined
  responseCode = 0
  localReplyDetails: string | undefined = undefined
  bytesReceived = 0
  bytesSent = 0
}

/** Facts for a stream; fields not given take neutral defaults (handy in tests). */
export function createStreamInfo(init: Partial<StreamInfo> = {}): MutableStreamInfo {
  const info = new MutableStreamInfo()
  info.startMonotonic = performance.now()
  info.startTime = Date.now()
  Object.assign(info, init)
  return info
}

export interface PipelineStreamInit {
  info?: MutableStreamInfo
  requestHeaders?: HeaderMap
  responseHeaders?: HeaderMap
  owner?: StreamOwner
}

export class PipelineStream implements HttpStream {
  readonly info: MutableStreamInfo
  readonly requestHeaders: HeaderMap
  readonly responseHeaders: HeaderMap
  readonly requestTrailers = new HeaderMap()
  readonly responseTrailers = new HeaderMap()
  requestBody: Uint8Array = EMPTY
  responseBody: Uint8Array = EMPTY
  /** The local reply a filter sent, if any (the first one wins). */
  localReply: LocalReply | undefined = undefined
  /** Standalone use: how many times `resume()` was called. */
  resumeCalls = 0
  owner: StreamOwner | undefined

  constructor(init: PipelineStreamInit = {}) {
    this.info = init.info ?? createStreamInfo()
    this.requestHeaders = init.requestHeaders ?? new HeaderMap()
    this.responseHeaders = init.responseHeaders ?? new HeaderMap()
    this.owner = init.owner
  }

  sendLocalReply(status: number, body?: Bytes, headers?: readonly [string, string][], details?: string): boolean {
    if (this.localReply !== undefined) return false
    const hs: [string, string][] = []
    if (headers) for (const [k, v] of headers) hs.push([String(k).toLowerCase(), String(v)])
    this.localReply = { status: clampStatus(status), body: toBytes(body), headers: hs, details }
    this.owner?.onLocalReply()
    return true
  }

  resume(): void {
    this.resumeCalls++
    this.owner?.onResume()
  }
}
