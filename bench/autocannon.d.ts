// The part of autocannon's API the TypeScript benches use (the package ships no types).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export interface AutocannonRequest {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
    /** Called for every response to this request, before the instance's `response` event. */
    onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string>) => void
  }

  export interface AutocannonOptions {
    url: string
    connections?: number
    pipelining?: number
    /** Seconds. */
    duration?: number
    /** Seconds before a request counts as a timeout. */
    timeout?: number
    /** Each connection sends these in turn, over and over. */
    requests?: AutocannonRequest[]
  }

  export interface AutocannonResult {
    requests: { total: number, average: number }
    errors: number
    timeouts: number
    non2xx: number
    duration: number
  }

  /** Emits `response` (client, status, bytes, latency ms) and `reqError` (error); a promise of the result. */
  export interface AutocannonInstance extends EventEmitter, PromiseLike<AutocannonResult> {
    stop: () => void
  }

  export default function autocannon (options: AutocannonOptions): AutocannonInstance
}
