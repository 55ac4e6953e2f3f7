/**
 * Maps a Wasm module's imports to the capabilities they need. Interim table until the Wasm
 * host's own map (runtime/src/hosts/wasm/capabilities.ts) lands; then this delegates to it so
 * admission, load and the host agree on one table.
 */
import type { Capability } from '../pipeline/filter.ts'

const BY_IMPORT: Record<string, Capability | null> = {
  proxy_log: 'log',
  proxy_get_log_level: 'log',
  proxy_get_header_map_value: 'headers:read',
  proxy_get_header_map_pairs: 'headers:read',
  proxy_get_header_map_size: 'headers:read',
  proxy_add_header_map_value: 'headers:write',
  proxy_replace_header_map_value: 'headers:write',
  proxy_remove_header_map_value: 'headers:write',
  proxy_set_header_map_pairs: 'headers:write',
  // Buffers also carry plugin configuration and callout responses: which buffer is read is
  // only known per call, so the host checks body access at call time, not here.
  proxy_get_buffer_bytes: null,
  proxy_get_buffer_status: null,
  proxy_set_buffer_bytes: 'body:write',
  proxy_send_local_response: 'local-reply',
  proxy_get_property: 'properties',
  proxy_set_property: 'properties',
  proxy_define_metric: 'metrics',
  proxy_increment_metric: 'metrics',
  proxy_record_metric: 'metrics',
  proxy_get_metric: 'metrics',
  proxy_get_shared_data: 'shared-data',
  proxy_set_shared_data: 'shared-data',
  proxy_register_shared_queue: 'shared-queue',
  proxy_resolve_shared_queue: 'shared-queue',
  proxy_enqueue_shared_queue: 'shared-queue',
  proxy_dequeue_shared_queue: 'shared-queue',
  proxy_set_tick_period_milliseconds: 'timers',
  proxy_http_call: 'http-callout',
  proxy_dispatch_http_call: 'http-callout',
}

/** Capabilities the imports need, sorted and unique. Unknown `env` imports need nothing here: the host refuses them at link time. */
export function requiredCapabilities(imports: readonly { module: string; name: string }[]): Capability[] {
  const out = new Set<Capability>()
  for (const i of imports) {
    const cap = BY_IMPORT[i.name]
    if (cap) out.add(cap)
  }
  return [...out].sort()
}
