/**
 * What the QuickJS host keeps per request: the stream, the fuel left of the request's budget,
 * the effects the current turn produced (applied only when the turn ends cleanly), and the
 * state of an async hook (a hook that returned a promise, e.g. around an HTTP callout).
 */
import type { HttpStream } from '../../pipeline/filter.ts'

/** A local reply requested by the filter, applied at the end of a clean turn. */
export interface PendingReply {
  status: number
  body: string | Uint8Array
  headers: [string, string][]
}

export class StreamState {
  readonly stream: HttpStream
  /** Fuel left of this request's budget (sum over every hook and continuation). */
  fuelLeft: number
  readonly budget: number
  /** Header maps replaced in this turn, by HEADER_KIND (flat name/value arrays). */
  headers: (string[] | undefined)[] = [undefined, undefined, undefined, undefined]
  /** Body replaced in this turn: [request, response]. */
  bodies: (Uint8Array | undefined)[] = [undefined, undefined]
  reply: PendingReply | undefined = undefined
  hasEffects = false
  /** An async hook is in flight (the stream is paused on it). */
  pending = false
  /** The number of the hook call that is pending. */
  call = 0
  /** Set by the prelude when the async hook settles: its status, or its error. */
  settled: number | undefined = undefined
  failed: { name: string; message: string; stack: string } | undefined = undefined
  /** Callouts in flight. */
  inflight = 0
  /** onDone ran: late callout results are dropped. */
  done = false
  /** After an async fail-open: the filter is skipped for the rest of the request. */
  disabled = false

  constructor(stream: HttpStream, budget: number) {
    this.stream = stream
    this.budget = budget
    this.fuelLeft = budget
  }

  clearEffects(): void {
    if (!this.hasEffects) return
    this.headers[0] = this.headers[1] = this.headers[2] = this.headers[3] = undefined
    this.bodies[0] = this.bodies[1] = undefined
    this.reply = undefined
    this.hasEffects = false
  }

  /** Fuel this request used so far. */
  get fuelUsed(): number {
    return this.budget - this.fuelLeft
  }
}
