/**
 * The addresses of a request's downstream connection, read from the socket once per
 * connection and kept on it (the socket for HTTP/1.1, the session for HTTP/2): each of node's
 * socket address getters is a call into the socket handle, and a connection carries many
 * requests.
 *
 * @example
 * const conn = connectionOf(req)
 * conn.remoteAddress // '127.0.0.1'
 */
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'

export interface Connection {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number
}

export const NO_CONNECTION: Connection = { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 }

const kConn = Symbol('omnirelay.connection')

export function connectionOf(req: IncomingMessage | Http2ServerRequest): Connection {
  const owner = (req.httpVersionMajor === 2 ? (req as Http2ServerRequest).stream.session : req.socket) as { [kConn]?: Connection } | undefined
  let c = owner?.[kConn]
  if (c !== undefined) return c
  const s = req.socket
  c = s ? { remoteAddress: s.remoteAddress ?? '', remotePort: s.remotePort ?? 0, localAddress: s.localAddress ?? '', localPort: s.localPort ?? 0 } : NO_CONNECTION
  if (owner) owner[kConn] = c
  return c
}
