/**
 * Compiles WebAssembly text to bytes for tests (wabt). The wabt instance is created once per
 * test file.
 */
import wabtInit from 'wabt'

let wabt: ReturnType<typeof wabtInit> | undefined

/** `wat` -> module bytes (all post-MVP features our host accepts are enabled). */
export async function wat(source: string): Promise<Uint8Array> {
  wabt ??= wabtInit()
  const w = await wabt
  const m = w.parseWat('test.wat', source, {
    mutable_globals: true,
    sat_float_to_int: true,
    sign_extension: true,
    bulk_memory: true,
    multi_value: true,
    simd: true,
    reference_types: true,
  })
  try {
    m.resolveNames()
    m.validate()
    return new Uint8Array(m.toBinary({}).buffer)
  } finally {
    m.destroy()
  }
}
