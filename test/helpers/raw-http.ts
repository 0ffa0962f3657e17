import { connect } from 'node:net'

/**
 * Sends bytes exactly as given over a real TCP socket (no client library rewrites or
 * de-duplicates headers) and resolves the status code and raw response head.
 */
export async function rawRequest (port: number, head: string, timeoutMs = 5000): Promise<{ status: number, raw: string }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('raw request timed out')) }, timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', (err) => {
      // A server that answers before reading the whole request and then closes (Node 24 refusing
      // oversized headers with 431) resets the connection after its answer: 'close' still
      // resolves that answer. Before, the reset failed these tests on Node 24.
      if (/^HTTP\/1\.1 \d{3}/.test(data)) return
      clearTimeout(timer)
      reject(err)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data)
      if (match === null) reject(new Error(`no HTTP status in ${JSON.stringify(data.slice(0, 200))}`))
      else resolve({ status: Number(match[1]), raw: data })
    })
    socket.write(head, 'latin1')
  })
}
