import { hash } from 'node:crypto'

type Encoding = 'hex' | 'base64url'

// `crypto.hash` (every Node the package supports: engines >= 22.13) hashes in one native call,
// without the Hash object that `createHash().update().digest()` allocates.

/** SHA-256 of a string (UTF-8) or bytes, as a Buffer. */
export const sha256 = (data: string | Buffer): Buffer => hash('sha256', data, 'buffer')

/** SHA-256 of a string (UTF-8), as text in `encoding`. */
export const sha256Text = (data: string, encoding: Encoding): string => hash('sha256', data, encoding)
