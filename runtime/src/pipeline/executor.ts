/**
 * Drives one request through a filter chain, phase by phase, exactly as the contract in
 * `phases.ts` and `filter.ts` says:
 *
 * - request phases run filters in chain order, response phases in reverse order (Envoy's
 *   decoder/encoder order), and a filter is called only for phases it subscribed to;
 * - `Pause` in a headers/trailers hook (or a body hook at end of stream) holds the stream
 *   until `resume()` or a local reply; `Pause` in a body hook before the end buffers that
 *   filter's bytes (StopIterationAndBuffer), bounded by its body limit (413 on requests);
 * - a local reply stops iteration and wins over whatever status the hook returned;
 * - a throwing hook gets its filter's failure policy: fail-closed and reload answer with a
 *   stable JSON 5xx naming the filter and the code; fail-open skips the filter for the rest
 *   of the request;
 * - `finish()` calls onLog then onDone on every filter exactly once.
 *
 * The transport (edge/sidecar server, or the in-proc middleware) is the `PipelineSink`:
 * the executor tells it when to go upstream, what body bytes to forward, when to write
 * the response head, and when a local reply replaces the response.
 */
import type { Limits } from '../config/types.ts'
import type { ChainEntry, FilterChain } from './chain.ts'
import { FilterError, FilterErrorCode, type StreamFilter } from './filter.ts'
import { hostReply, type LocalReply } from './local-reply.ts'
import { FilterStatus, Phase } from './phases.ts'
import type { PipelineStream, StreamOwner } from './stream.ts'
import { runBegin, runEnd } from '../sandbox/call-clock.ts'

const EMPTY = new Uint8Array(0)
/** Internal: iteration ended (local reply sent or request failed). */
const STOP = -1

export interface PipelineSink {
  /** Request headers passed every filter: start the upstream request (or call the app). */
  requestHeadersDone(): void
  /** Filtered request body bytes; only called for chains with body phases. */
  requestData(chunk: Uint8Array, end: boolean): void
  /** Request trailers passed every filter (only when a filter subscribed to them). */
  requestTrailersDone(): void
  /** Response headers (in `stream.responseHeaders`) passed every filter: write them. */
  responseHeadersDone(): void
  /** Filtered response body bytes; only called for chains with body phases. */
  responseData(chunk: Uint8Array, end: boolean): void
  /** Response trailers (in `stream.responseTrailers`) passed every filter: write them and end. */
  responseTrailersDone(): void
  /** A local reply replaces the response (or resets the stream if the head was already sent). */
  localReply(reply: LocalReply): void
  /** Request bytes queued while a phase was held have been passed on (resume reading downstream). */
  requestQueueDrained?(): void
}

interface Held {
  phase: number
  /** The filter that paused. */
  filter: number
  /** Where iteration goes on. */
  next: number
  data: Uint8Array
}

type PipelineLimits = Pick<Limits, 'maxBodyBytes' | 'filterPauseTimeoutMs'>

export class PipelineRun implements StreamOwner {
  readonly stream: PipelineStream
  readonly #chain: FilterChain
  readonly #entries: readonly ChainEntry[]
  readonly #sink: PipelineSink
  readonly #limits: PipelineLimits
  readonly #filters: (StreamFilter | undefined)[]
  /** Filters skipped for the rest of the request (fail-open after a failure). */
  readonly #disabled: boolean[]
  /** Per-filter buffered body bytes while the filter returns Pause before end of stream. */
  #reqBufs: (Uint8Array | undefined)[] | undefined
  #respBufs: (Uint8Array | undefined)[] | undefined
  #inHook = false
  #resumeRequested = false
  #replied = false
  #finished = false
  #reqHeadersDone = false
  #reqEnd = false
  #pendingReq: Uint8Array[] | undefined
  #pendingReqSize = 0
  #pendingReqEnd = false
  #respHeadersDone = false
  #respEnd = false
  #pendingResp: Uint8Array[] | undefined
  #pendingRespSize = 0
  #pendingRespEnd = false
  #pendingRespTrailers = false
  #reqHeld: Held | undefined
  #respHeld: Held | undefined
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(chain: FilterChain, stream: PipelineStream, sink: PipelineSink, limits: PipelineLimits) {
    this.#chain = chain
    this.#entries = chain.entries
    this.stream = stream
    this.#sink = sink
    this.#limits = limits
    stream.owner = this
    const n = chain.entries.length
    this.#filters = new Array(n)
    this.#disabled = new Array<boolean>(n).fill(false)
  }

  /** Request body bytes waiting for a held phase to continue (the transport pauses reading above a watermark). */
  get queuedRequestBytes(): number {
    return this.#pendingReqSize
  }

  /** Whether a local reply has replaced the response. */
  get replied(): boolean {
    return this.#replied
  }

  get finished(): boolean {
    return this.#finished
  }

  /** Creates the per-request filters and runs the request headers phase. */
  start(endOfStream: boolean): void {
    runBegin()
    try {
      this.#reqEnd = endOfStream
      const es = this.#entries
      for (let i = 0; i < es.length; i++) {
        try {
          this.#filters[i] = es[i]!.factory.createStream(this.stream)
        } catch (err) {
          if (this.#fail(i, err) === STOP) return
        }
      }
      this.#iterate(Phase.RequestHeaders, 0)
    } finally {
      runEnd()
    }
  }

  // ---- inputs from the transport ----

  /** Request body bytes as they arrive from downstream (chains with body phases only). */
  requestData(chunk: Uint8Array, end: boolean): void {
    runBegin()
    try {
      if (this.#replied || this.#finished) return
      if (end) this.#reqEnd = true
      if (!this.#reqHeadersDone || this.#reqHeld) {
        this.#queueReq(chunk, end)
        return
      }
      this.#reqBody(0, chunk, end)
    } finally {
      runEnd()
    }
  }

  /** Request trailers arrived (already in `stream.requestTrailers`). */
  requestTrailers(): void {
    runBegin()
    try {
      if (this.#replied || this.#finished) return
      this.#iterate(Phase.RequestTrailers, 0)
    } finally {
      runEnd()
    }
  }

  /** The upstream (or app) answered: `flat` is lower-case wire headers without `:status`. */
  responseHeaders(status: number, flat: string[], endOfStream: boolean): void {
    runBegin()
    try {
      if (this.#replied || this.#finished) return
      flat.unshift(':status', String(status))
      this.stream.responseHeaders.replaceAll(flat)
      this.stream.info.responseCode = status
      this.#respEnd = endOfStream
      this.#iterate(Phase.ResponseHeaders, this.#entries.length - 1)
    } finally {
      runEnd()
    }
  }

  responseData(chunk: Uint8Array, end: boolean): void {
    runBegin()
    try {
      if (this.#replied || this.#finished) return
      if (end) this.#respEnd = true
      if (!this.#respHeadersDone || this.#respHeld) {
        this.#queueResp(chunk, end)
        return
      }
      this.#respBody(this.#entries.length - 1, chunk, end)
    } finally {
      runEnd()
    }
  }

  /** Response trailers arrived (already in `stream.responseTrailers`). */
  responseTrailers(): void {
    runBegin()
    try {
      if (this.#replied || this.#finished) return
      if (!this.#respHeadersDone || this.#respHeld) {
        this.#pendingRespTrailers = true
        return
      }
      this.#iterate(Phase.ResponseTrailers, this.#entries.length - 1)
    } finally {
      runEnd()
    }
  }

  /**
   * Ends the stream: onLog (filters subscribed to Log) then onDone on every filter, once.
   * Safe to call more than once; only the first call does anything.
   */
  finish(): void {
    runBegin()
    try {
      if (this.#finished) return
      this.#finished = true
      this.#clearTimer()
      const es = this.#entries
      const fs = this.#filters
      for (let i = 0; i < es.length; i++) {
        const f = fs[i]
        if (!f || this.#disabled[i] || !(es[i]!.phases & Phase.Log) || !f.onLog) continue
        try {
          f.onLog()
        } catch (err) {
          es[i]!.stats.failure(errorCode(err)).inc()
        }
      }
      for (let i = 0; i < es.length; i++) {
        try {
          fs[i]?.onDone?.()
        } catch (err) {
          es[i]!.stats.failure(errorCode(err)).inc()
        }
      }
      this.stream.owner = undefined
    } finally {
      runEnd()
    }
  }

  // ---- StreamOwner ----

  onLocalReply(): void {
    // Inside a hook the reply is taken when the hook returns; outside (async work) now.
    if (this.#inHook || this.#replied || this.#finished) return
    this.#deliverReply(this.stream.localReply!)
  }

  onResume(): void {
    runBegin()
    try {
      if (this.#inHook) {
        this.#resumeRequested = true
        return
      }
      if (this.#replied || this.#finished) return
      const held = this.#reqHeld ?? this.#respHeld
      if (!held) return
      this.#continueHeld(held)
    } finally {
      runEnd()
    }
  }

  // ---- iteration ----

  #continueHeld(held: Held): void {
    this.#clearTimer()
    if (held === this.#reqHeld) this.#reqHeld = undefined
    else this.#respHeld = undefined
    if (held.phase === Phase.RequestBody) this.#reqBody(held.next, held.data, true)
    else if (held.phase === Phase.ResponseBody) this.#respBody(held.next, held.data, true)
    else this.#iterate(held.phase, held.next)
  }

  /** Headers and trailers phases: request ones in order, response ones in reverse. */
  #iterate(phase: number, from: number): void {
    const es = this.#entries
    const step = phase >= Phase.ResponseHeaders ? -1 : 1
    for (let i = from; i >= 0 && i < es.length; i += step) {
      if (!(es[i]!.phases & phase) || this.#disabled[i]) continue
      const s = this.#invoke(i, phase, 0, phase === Phase.RequestHeaders ? this.#reqEnd : phase === Phase.ResponseHeaders ? this.#respEnd : true)
      if (s === STOP) return
      if (s === FilterStatus.Pause) {
        this.#hold({ phase, filter: i, next: i + step, data: EMPTY })
        return
      }
    }
    switch (phase) {
      case Phase.RequestHeaders:
        this.#reqHeadersDone = true
        this.#sink.requestHeadersDone()
        this.#flushReq()
        break
      case Phase.RequestTrailers:
        this.#sink.requestTrailersDone()
        break
      case Phase.ResponseHeaders:
        this.#respHeadersDone = true
        this.#sink.responseHeadersDone()
        this.#flushResp()
        break
      case Phase.ResponseTrailers:
        this.#sink.responseTrailersDone()
        break
    }
  }

  #reqBody(from: number, chunk: Uint8Array, end: boolean): void {
    const es = this.#entries
    const stream = this.stream
    for (let i = from; i < es.length; i++) {
      if (!(es[i]!.phases & Phase.RequestBody) || this.#disabled[i]) continue
      const bufs = (this.#reqBufs ??= new Array(es.length))
      const prev = bufs[i]
      let data = prev ? concat(prev, chunk) : chunk
      bufs[i] = undefined
      stream.requestBody = data
      const s = this.#invoke(i, Phase.RequestBody, data.length, end)
      data = stream.requestBody
      stream.requestBody = EMPTY
      if (s === STOP) return
      if (s === FilterStatus.Pause) {
        if (!end) {
          if (data.length > es[i]!.maxBodyBytes) return this.#tooLarge(i, 413)
          bufs[i] = data
          return
        }
        this.#hold({ phase: Phase.RequestBody, filter: i, next: i + 1, data })
        return
      }
      chunk = data
    }
    this.#sink.requestData(chunk, end)
  }

  #respBody(from: number, chunk: Uint8Array, end: boolean): void {
    const es = this.#entries
    const stream = this.stream
    for (let i = from; i >= 0; i--) {
      if (!(es[i]!.phases & Phase.ResponseBody) || this.#disabled[i]) continue
      const bufs = (this.#respBufs ??= new Array(es.length))
      const prev = bufs[i]
      let data = prev ? concat(prev, chunk) : chunk
      bufs[i] = undefined
      stream.responseBody = data
      const s = this.#invoke(i, Phase.ResponseBody, data.length, end)
      data = stream.responseBody
      stream.responseBody = EMPTY
      if (s === STOP) return
      if (s === FilterStatus.Pause) {
        if (!end) {
          if (data.length > es[i]!.maxBodyBytes) return this.#tooLarge(i, 500)
          bufs[i] = data
          return
        }
        this.#hold({ phase: Phase.ResponseBody, filter: i, next: i - 1, data })
        return
      }
      chunk = data
    }
    this.#sink.responseData(chunk, end)
    if (end) return
  }

  /** Calls one hook; returns its status, or STOP when the request ended (reply or failure). */
  #invoke(i: number, phase: number, size: number, end: boolean): number {
    const f = this.#filters[i]
    if (!f) return FilterStatus.Continue
    const e = this.#entries[i]!
    let s: number | undefined
    this.#inHook = true
    this.#resumeRequested = false
    try {
      e.stats.calls.inc()
      switch (phase) {
        case Phase.RequestHeaders:
          s = f.onRequestHeaders?.(end)
          break
        case Phase.RequestBody:
          s = f.onRequestBody?.(size, end)
          break
        case Phase.RequestTrailers:
          s = f.onRequestTrailers?.()
          break
        case Phase.ResponseHeaders:
          s = f.onResponseHeaders?.(end)
          break
        case Phase.ResponseBody:
          s = f.onResponseBody?.(size, end)
          break
        case Phase.ResponseTrailers:
          s = f.onResponseTrailers?.()
          break
      }
    } catch (err) {
      this.#inHook = false
      if (this.stream.localReply && !this.#replied) return this.#deliverReply(this.stream.localReply)
      return this.#fail(i, err)
    }
    this.#inHook = false
    if (this.#replied) return STOP
    if (this.stream.localReply) return this.#deliverReply(this.stream.localReply)
    // Anything but Pause (including garbage from a misbehaving host) means go on.
    if (s === FilterStatus.Pause && !this.#resumeRequested) return FilterStatus.Pause
    return FilterStatus.Continue
  }

  #hold(held: Held): void {
    if (held.phase <= Phase.RequestTrailers) this.#reqHeld = held
    else this.#respHeld = held
    this.#clearTimer()
    this.#timer = setTimeout(onPauseTimeout, this.#limits.filterPauseTimeoutMs, this, held)
    this.#timer.unref?.()
  }

  /** A held filter took too long: treat it as a failure of that filter. */
  pauseTimedOut(held: Held): void {
    runBegin()
    try {
      this.#timer = undefined
      if (this.#replied || this.#finished || (held !== this.#reqHeld && held !== this.#respHeld)) return
      const name = this.#entries[held.filter]!.name
      if (this.#fail(held.filter, new FilterError(name, FilterErrorCode.Timeout, 'paused stream was not resumed in time')) === STOP) return
      this.#continueHeld(held)
    } finally {
      runEnd()
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  /** Applies the filter's failure policy; returns Continue (fail-open) or STOP. */
  #fail(i: number, err: unknown): number {
    const e = this.#entries[i]!
    const code = errorCode(err)
    e.stats.failure(code).inc()
    if (e.failurePolicy === 'fail-open') {
      this.#disabled[i] = true
      e.stats.skipped.inc()
      return FilterStatus.Continue
    }
    const status = code === FilterErrorCode.Unavailable ? 503 : code === FilterErrorCode.Timeout ? 504 : 500
    const reply = hostReply(status, 'filter_failed', { code, filter: e.name })
    reply.details = `filter_failed:${e.name}:${code}`
    return this.#deliverReply(reply)
  }

  #tooLarge(i: number, status: number): void {
    const e = this.#entries[i]!
    e.stats.failure(FilterErrorCode.BodyTooLarge).inc()
    const reply = hostReply(status, 'body_too_large', { filter: e.name })
    this.#deliverReply(reply)
  }

  #deliverReply(reply: LocalReply): number {
    if (this.#replied || this.#finished) return STOP
    this.#replied = true
    this.#clearTimer()
    this.#reqHeld = this.#respHeld = undefined
    this.#pendingReq = this.#pendingResp = undefined
    this.stream.info.localReplyDetails = reply.details ?? 'filter_local_reply'
    this.stream.info.responseCode = reply.status
    this.#sink.localReply(reply)
    return STOP
  }

  // ---- bytes that arrive while a phase is held ----

  #queueReq(chunk: Uint8Array, end: boolean): void {
    if (end) this.#pendingReqEnd = true
    if (chunk.length === 0) return
    this.#pendingReqSize += chunk.length
    if (this.#pendingReqSize > this.#limits.maxBodyBytes) {
      this.#deliverReply(hostReply(413, 'body_too_large'))
      return
    }
    ;(this.#pendingReq ??= []).push(chunk)
  }

  #flushReq(): void {
    if (this.#replied || this.#reqHeld) return
    const pending = this.#pendingReq
    const end = this.#pendingReqEnd
    if (!pending && !end) return
    this.#pendingReq = undefined
    this.#pendingReqSize = 0
    this.#pendingReqEnd = false
    if (!this.#chain.bodies) return
    this.#reqBody(0, pending ? concatAll(pending) : EMPTY, end)
    if (!this.#replied) this.#sink.requestQueueDrained?.()
  }

  #queueResp(chunk: Uint8Array, end: boolean): void {
    if (end) this.#pendingRespEnd = true
    if (chunk.length === 0) return
    this.#pendingRespSize += chunk.length
    if (this.#pendingRespSize > this.#limits.maxBodyBytes) {
      this.#deliverReply(hostReply(500, 'body_too_large'))
      return
    }
    ;(this.#pendingResp ??= []).push(chunk)
  }

  #flushResp(): void {
    if (this.#replied || this.#respHeld) return
    const pending = this.#pendingResp
    const end = this.#pendingRespEnd
    const trailers = this.#pendingRespTrailers
    this.#pendingResp = undefined
    this.#pendingRespSize = 0
    this.#pendingRespEnd = false
    this.#pendingRespTrailers = false
    if (pending || end) this.#respBody(this.#entries.length - 1, pending ? concatAll(pending) : EMPTY, end)
    if (trailers && !this.#replied && !this.#respHeld) this.#iterate(Phase.ResponseTrailers, this.#entries.length - 1)
  }
}

function onPauseTimeout(run: PipelineRun, held: Held): void {
  run.pauseTimedOut(held)
}

function errorCode(err: unknown): string {
  return err instanceof FilterError ? err.code : FilterErrorCode.Thrown
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b
  if (b.length === 0) return a
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

function concatAll(list: Uint8Array[]): Uint8Array {
  if (list.length === 1) return list[0]!
  let n = 0
  for (const c of list) n += c.length
  const out = new Uint8Array(n)
  let o = 0
  for (const c of list) {
    out.set(c, o)
    o += c.length
  }
  return out
}
