// After `tsup`: rewrites dist/index.d.cts so that a CommonJS TypeScript application sees
// `require('fastify-multiauth')` as the plugin itself, as the runtime CommonJS build is (see the
// footer in tsup.config.ts), with `.default`, `.fastifyMultiauth` and every named export on it.
// It is the pattern of Fastify's own plugins: a function, a namespace of the same name holding
// the exports, and `export =`. tsup emits an ES-style declaration file for both formats.
import { readFileSync, writeFileSync } from 'node:fs'

const file = new URL('../dist/index.d.cts', import.meta.url)
const source = readFileSync(file, 'utf8')

// A namespace merges with a function, not with a const: declare the plugin as a function of
// exactly the same type.
const pluginConst = /^declare const fastifyMultiauth: (.+);$/m
// tsup (rollup-plugin-dts) ends the file with one export list.
const exportList = /^export \{ ([^}]+) \};\s*$/m

const constMatch = pluginConst.exec(source)
const listMatch = exportList.exec(source)
if (constMatch === null || listMatch === null) {
  throw new Error('scripts/cjs-types.mjs: dist/index.d.cts does not have the expected shape (declare const fastifyMultiauth …; export { … };)')
}
const pluginType = constMatch[1]
// With a second entry (request-user), tsup moves shared types into a chunk and re-exports some of
// them directly (`export { b as GuardOptions } from './types-….cjs'`). An `export =` module can have
// no other export: import them instead, and export them from the namespace with the rest.
const reExports = /^export \{ ([^}]+) \} from ('[^']+');$/gm
const reExported = []
const result = source
  .replace(reExports, (_line, names, from) => {
    for (const name of names.split(',')) reExported.push(name.trim().split(/\s+as\s+/).pop())
    return `import { ${names} } from ${from};`
  })
  .replace(pluginConst, `declare function fastifyMultiauth (...params: Parameters<${pluginType}>): ReturnType<${pluginType}>;`)
  .replace(exportList, () => `declare namespace fastifyMultiauth {\n  export { ${[listMatch[1], ...reExported].join(', ')} };\n}\nexport = fastifyMultiauth;\n`)
writeFileSync(file, result)
