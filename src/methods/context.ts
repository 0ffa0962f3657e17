import type { MultiauthStore } from '../stores/types.js'
import type { AuthMethod, MethodName } from '../types.js'

/** What every method factory receives besides its own options. */
export interface MethodContext {
  /** Validated realm, safe inside a quoted-string. */
  realm: string
  /** The shared store (in-memory unless the application passed one). */
  store: MultiauthStore
  /** All configured methods, filled before any `setup` runs (e.g. Basic's `allowToken` uses `token`). */
  methods: ReadonlyMap<MethodName, AuthMethod>
  /** The plugin's `timeout` in ms (0 or absent: none); also bounds Basic's wait for an argon2 slot. */
  timeoutMs?: number
}
