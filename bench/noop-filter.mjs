// A native filter that does nothing in the two header phases: five of them measure what the
// filter pipeline itself costs a request (stream, executor, hooks), without any sandbox.
export function onRequestHeaders() {}
export function onResponseHeaders() {}
