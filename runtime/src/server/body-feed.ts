/**
 * The upstream request body when filters read it: a Readable the pipeline pushes filtered
 * bytes into. Backpressure flows back to the downstream socket: when the feed is full the
 * downstream request is paused, and resumed when undici reads again.
 */
import { Readable } from 'node:stream'

export class BodyFeed extends Readable {
  readonly #source: Readable

  constructor(source: Readable) {
    super({ highWaterMark: 65_536 })
    this.#source = source
  }

  override _read(): void {
    if (this.#source.isPaused()) this.#source.resume()
  }

  pushChunk(chunk: Uint8Array): void {
    if (!this.push(chunk)) this.#source.pause()
  }

  pushEnd(): void {
    this.push(null)
  }
}
