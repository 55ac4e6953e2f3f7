import net from 'node:net'

/** A TCP relay on port 0 whose connections a test can cut, to simulate a broken stream. */
export async function cutProxy(target: () => number) {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((down) => {
    const up = net.connect(target(), '127.0.0.1')
    sockets.add(down).add(up)
    down.pipe(up).pipe(down)
    const drop = () => {
      down.destroy()
      up.destroy()
      sockets.delete(down)
      sockets.delete(up)
    }
    down.on('error', drop).on('close', drop)
    up.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
