import { serve } from './common.mjs'

// The limit: the same route with no authentication at all.
await serve(async () => ({ unauthenticatedStatus: 200 }))
