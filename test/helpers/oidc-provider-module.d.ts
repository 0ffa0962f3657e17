// oidc-provider ships no types; this is the small part the tests use.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  interface KoaContext {
    path: string
    status: number
    type: string
    body: unknown
    oidc: any
  }

  export default class Provider {
    constructor (issuer: string, configuration: Record<string, any>)
    Grant: any
    callback (): (req: IncomingMessage, res: ServerResponse) => Promise<void>
    use (middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void
    on (event: string, listener: (ctx: KoaContext, err: Error) => void): void
    interactionDetails (req: IncomingMessage, res: ServerResponse): Promise<{ uid: string, prompt: { name: string }, params: Record<string, unknown> }>
    interactionFinished (req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>
  }
}
