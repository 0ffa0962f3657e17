import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // Runtime dependencies stay external; users install them with the package.
  splitting: false,
  shims: false,
  // CommonJS: `require('fastify-multiauth')` is the plugin itself, as with Fastify's own
  // plugins, and still carries `.default`, `.fastifyMultiauth` and every named export.
  footer: ({ format }) => format === 'cjs'
    ? { js: 'module.exports = Object.assign(module.exports.default, module.exports);' }
    : {}
})
