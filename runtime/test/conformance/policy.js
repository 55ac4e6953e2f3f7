// The conformance policy, as a JS filter module. The same file runs as a QuickJS filter and as
// a native filter; as/assembly/index.ts is the same policy in AssemblyScript. Change all three
// together, and add a corpus case for every change.

export function onRequestHeaders(req, ctx) {
  const h = req.headers
  const path = req.path
  ctx.metrics.increment('policy_requests')
  if (req.method === 'TRACE') {
    ctx.metrics.increment('policy_denied')
    return ctx.reply(405, { error: 'method_not_allowed', method: 'TRACE' })
  }
  if (path.startsWith('/admin')) {
    ctx.metrics.increment('policy_denied')
    return ctx.reply(403, { error: 'forbidden', path })
  }
  if (h.has('x-block')) {
    ctx.metrics.increment('policy_denied')
    return ctx.reply(403, { error: 'blocked' })
  }
  h.remove('x-internal-secret')
  h.remove('proxy-authorization')
  h.add('x-policy', 'v1')
  const authority = req.authority
  if (authority !== undefined) h.set('x-forwarded-host', authority)
  if (path.startsWith('/api/')) h.set('x-api', '1')
  const old = h.get('x-old')
  if (old !== undefined) {
    h.set('x-new', old)
    h.remove('x-old')
  }
  const ua = h.get('user-agent')
  if (ua !== undefined && ua.includes('bot')) h.set('x-bot', '1')
  h.set('x-path-length', String(path.length))
  const tenant = h.get('x-tenant')
  if (tenant !== undefined) h.set('x-tenant-checked', 'tenant-' + tenant)
}

export function onResponseHeaders(res, ctx) {
  res.headers.remove('server')
  res.headers.set('x-served-by', 'omnirelay')
}
