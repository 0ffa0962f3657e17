// autocannon ships no types; the suite uses only this much of it.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'
  interface Options {
    url: string
    connections?: number
    duration?: number
    amount?: number
    timeout?: number
    headers?: Record<string, string>
    requests?: Array<Record<string, unknown>>
  }
  interface Result { statusCodeStats: Record<string, { count: number }>, errors: number, timeouts: number, non2xx: number }
  type Instance = EventEmitter & PromiseLike<Result> & { stop: () => void }
  function autocannon (options: Options): Instance
  export default autocannon
}
