import type { MultiauthStore } from '../stores/types.js'
import type { AuthMethod, MethodName } from '../core/types.js'

/** What every method factory receives besides its own options. */
export interface MethodContext {
  /** Validated realm, safe inside a quoted-string. */
  realm: string
  /** The shared store (in-memory unless the application passed one); a custom store is already bounded and mapped (src/stores/guarded.ts). */
  store: MultiauthStore
  /** True when the application passed `store`, so it can read what is written there (API-key usage is written only then). */
  applicationStore?: boolean
  /** Upper bound in ms for one application callback or store call (`callbackTimeout`); 0 disables. Use it through src/core/callbacks.ts. Also bounds Basic's wait for an argon2 slot. */
  timeoutMs: number
  /** All configured methods, filled before any `setup` runs (e.g. Basic's `allowToken` uses `token`). */
  methods: ReadonlyMap<MethodName, AuthMethod>
}
