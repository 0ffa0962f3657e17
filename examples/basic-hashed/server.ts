// HTTP Basic: a users dict with hashed passwords and `Hello, <user>!` (Flask-HTTPAuth's Basic snippet, ported).
//
//   users = { "john": generate_password_hash("hello"), "susan": generate_password_hash("bye") }
//   @auth.verify_password → the user name when the password matches
//   @app.route('/') @auth.login_required → f"Hello, {auth.current_user()}!"
//
// Run: npx tsx examples/basic-hashed/server.ts   (PORT, default 3000)
import Fastify from 'fastify'
import multiauth, { hashPassword } from '../../src/index.js'

// The user type `request.auth.user` has (in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string }
}

// argon2id hashes (Werkzeug's generate_password_hash in Flask). A real application stores
// them; hashing here at startup keeps the example self-contained.
const users = new Map<string, string>([
  ['john', await hashPassword('hello')],
  ['susan', await hashPassword('bye')]
])

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })

await app.register(multiauth, {
  realm: 'basic-hashed',
  basic: {
    // The plugin checks the hash (argon2id, constant time), and an unknown user costs the
    // same argon2 run as a wrong password; the user is the name, as in the Flask snippet.
    findCredential: (username) => {
      const passwordHash = users.get(username)
      return passwordHash === undefined ? null : { user: { id: username }, passwordHash }
    }
  }
})

app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => `Hello, ${request.auth?.user.id}!`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`basic-hashed example on ${address} (john / hello, susan / bye). Try it with curl:`)
console.log(`curl -s -u john:hello ${address}/ -w ' HTTP %{http_code}\\n'`)
console.log(`curl -s -u john:bye ${address}/ -w ' HTTP %{http_code}\\n'`)
console.log()
