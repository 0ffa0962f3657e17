import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts', 'src/request-user.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node22',
  // Runtime dependencies stay external; users install them with the package.
  splitting: false,
  shims: false,
  // src/peer.ts loads optional peers with createRequire(import.meta.url); CommonJS has no
  // import.meta, and createRequire takes the module's own path just as well. (tsup's shim builds
  // a URL from 'file:' + __filename, which breaks on a path containing '#' or '%'.)
  esbuildOptions (options, { format }) {
    if (format === 'cjs') options.define = { ...options.define, 'import.meta.url': '__filename' }
  },
  // CommonJS: `require('fastify-multiauth')` is the plugin itself, as with Fastify's own
  // plugins, and still carries `.default`, `.fastifyMultiauth` and every named export. Only the
  // entry with a default export: `fastify-multiauth/request-user` has none (and exports nothing).
  footer: ({ format }) => format === 'cjs'
    ? { js: 'if (typeof module.exports.default === "function") module.exports = Object.assign(module.exports.default, module.exports);' }
    : {}
})
