import * as crypto from 'node:crypto'

type Encoding = 'hex' | 'base64url'

// `crypto.hash` (Node ≥ 20.12) hashes in one native call, without the Hash object that
// `createHash().update().digest()` allocates; older Node 20 releases take the long way.
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash

/** SHA-256 of a string (UTF-8) or bytes, as a Buffer. */
export const sha256: (data: string | Buffer) => Buffer = oneShot !== undefined
  ? (data) => oneShot('sha256', data, 'buffer')
  : (data) => crypto.createHash('sha256').update(data).digest()

/** SHA-256 of a string (UTF-8), as text in `encoding`. */
export const sha256Text: (data: string, encoding: Encoding) => string = oneShot !== undefined
  ? (data, encoding) => oneShot('sha256', data, encoding)
  : (data, encoding) => crypto.createHash('sha256').update(data).digest(encoding)
