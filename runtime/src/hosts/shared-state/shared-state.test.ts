import { describe, expect, it } from 'vitest'
import { createSharedData, createSharedQueues } from './index.ts'

const b = (s: string) => new TextEncoder().encode(s)

describe('createSharedData', () => {
  it('gets, sets and checks CAS tokens', () => {
    const d = createSharedData()
    expect(d.get('k')).toBeUndefined()
    expect(d.set('k', b('1'), 0)).toBe(true)
    const first = d.get('k')!
    expect(first.cas).toBeGreaterThan(0)
    expect(d.set('k', b('2'), first.cas)).toBe(true)
    expect(d.set('k', b('3'), first.cas)).toBe(false)
    expect(new TextDecoder().decode(d.get('k')!.value)).toBe('2')
    expect(d.set('new', b('x'), 12345)).toBe(true)
  })

  it('copies values and bounds total bytes', () => {
    const d = createSharedData({ maxBytes: 10 })
    const v = b('abc')
    d.set('k', v, 0)
    v[0] = 0
    expect(d.get('k')!.value[0]).toBe(97)
    expect(() => d.set('big', b('0123456789'), 0)).toThrow(expect.objectContaining({ code: 'quota_exceeded' }))
  })
})

describe('createSharedQueues', () => {
  it('registers, resolves, enqueues, dequeues in order and notifies on the next turn', async () => {
    const q = createSharedQueues()
    const id = q.register('vm', 'events')
    expect(q.register('vm', 'events')).toBe(id)
    expect(q.resolve('vm', 'events')).toBe(id)
    expect(q.resolve('other', 'events')).toBeUndefined()
    let calls = 0
    const off = q.onEnqueue(id, () => calls++)
    expect(q.enqueue(id, b('a'))).toBe(true)
    expect(q.enqueue(id, b('b'))).toBe(true)
    expect(calls).toBe(0)
    await new Promise((r) => setImmediate(r))
    expect(calls).toBe(1) // coalesced: one notification per turn, the consumer drains
    off()
    expect(new TextDecoder().decode(q.dequeue(id) as Uint8Array)).toBe('a')
    expect(new TextDecoder().decode(q.dequeue(id) as Uint8Array)).toBe('b')
    expect(q.dequeue(id)).toBeUndefined()
    expect(q.dequeue(999)).toBeNull()
    expect(q.enqueue(999, b('x'))).toBe(false)
  })

  it('bounds total bytes', () => {
    const q = createSharedQueues({ maxBytes: 4 })
    const id = q.register('vm', 'q')
    q.enqueue(id, b('abc'))
    expect(() => q.enqueue(id, b('de'))).toThrow(expect.objectContaining({ code: 'quota_exceeded' }))
    q.dequeue(id)
    expect(q.enqueue(id, b('de'))).toBe(true)
  })

  it('bounds depth', () => {
    const q = createSharedQueues({ maxDepth: 2 })
    const id = q.register('vm', 'q')
    q.enqueue(id, b('1'))
    q.enqueue(id, b('2'))
    expect(() => q.enqueue(id, b('3'))).toThrow(expect.objectContaining({ code: 'quota_exceeded' }))
    for (let i = 0; i < 3000; i++) {
      q.dequeue(id)
      q.enqueue(id, b(String(i)))
    }
    expect(new TextDecoder().decode(q.dequeue(id) as Uint8Array)).toBe('2998')
  })
})
