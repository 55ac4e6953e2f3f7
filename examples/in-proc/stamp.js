// A QuickJS filter (runs sandboxed in QuickJS, even in-proc): refuses requests without an
// API key under /private, tells the app who the caller is, and stamps responses.
export function onRequestHeaders(req, ctx) {
  const key = req.headers.get('x-api-key')
  if (req.path.startsWith('/private') && key !== 'demo-key') {
    return ctx.reply(401, JSON.stringify({ error: 'missing or wrong x-api-key' }), { 'content-type': 'application/json' })
  }
  req.headers.set('x-caller', key ? 'known' : 'anonymous')
  return 0
}

export function onResponseHeaders(res, ctx) {
  res.headers.set('x-filtered-by', 'omnirelay-in-proc')
  return 0
}
