import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import type { Socket } from 'node:net'

// What the session-resurrection tests share: a request held open while its session is loaded,
// and the store key a session cookie names.

/**
 * A `POST /slow` over a raw socket whose body is held back: the headers and half the body now,
 * the rest on `finish()`, which resolves the whole raw response.
 */
export function slowPost (host: string, port: number, cookie: string): { finish: () => Promise<string>, socket: Socket } {
  const socket = connect(port, host)
  let data = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { data += chunk })
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write(`POST /slow HTTP/1.1\r\nHost: ${host}:${port}\r\nCookie: ${cookie}\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello`)
  return {
    socket,
    finish: async () => {
      socket.write('world')
      await closed
      return data
    }
  }
}

/** The store key of the session a `sid=<signed id>` cookie names (the SHA-256 of the id: src/methods/session/store-adapter.ts). */
export function sessionStoreKey (cookie: string): string {
  const signed = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
  return `multiauth:sess:${createHash('sha256').update(signed.slice(0, signed.lastIndexOf('.'))).digest('base64url')}`
}
