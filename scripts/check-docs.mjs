#!/usr/bin/env node
// Type-checks every ```ts block of docs/*.md and README.md, so the docs cannot rot.
//
// Each block becomes one ES module (top-level await allowed) under .docs-check/ inside the
// repository, so it resolves this repository's node_modules; `fastify-multiauth` is mapped
// to src/index.ts. Blocks that augment a module (`declare module ...`, e.g. MultiauthUser)
// get a program of their own, since augmentations are global to a program; all the others
// share one. A block that is partial on purpose is fenced as ```ts nocheck <reason>; a
// nocheck without a reason is an error. scripts/docs-prelude.d.ts declares what snippets may
// take as given (the application's `db`, a `handler`, and `app` for a continuing snippet).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = join(root, '.docs-check')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

const files = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f))
if (existsSync(join(root, 'README.md'))) files.push(join(root, 'README.md'))

const FENCE = /^```(\S*)(.*)$/
const blocks = [] // { source, line, code, name }
const problems = []
let skipped = 0
for (const file of files) {
  const lines = readFileSync(file, 'utf8').split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i])
    if (open === null || open[1] === '') continue
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'))
    if (end < 0) { problems.push(`${relative(root, file)}:${i + 1}: unclosed code fence`); break }
    const lang = open[1]
    const rest = open[2].trim()
    if (lang === 'ts' || lang === 'typescript') {
      if (rest.startsWith('nocheck')) {
        if (rest.slice('nocheck'.length).trim() === '') problems.push(`${relative(root, file)}:${i + 1}: "ts nocheck" needs a reason`)
        skipped++
      } else {
        const name = `${relative(root, file).replace(/[\\/.]/g, '_')}_L${i + 1}.mts`
        blocks.push({ source: relative(root, file), line: i + 2, code: lines.slice(i + 1, end).join('\n'), name })
      }
    }
    i = end
  }
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out)
const compilerOptions = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
  paths: { 'fastify-multiauth': ['../src/index.ts'] }
}
// The .docs-check folder is an ES module scope, as a user's `"type": "module"` app would be.
writeFileSync(join(out, 'package.json'), '{ "type": "module", "private": true }\n')

const shared = []
const alone = []
for (const block of blocks) {
  // `export {}` keeps a block without imports a module (its names stay its own).
  writeFileSync(join(out, block.name), block.code + '\nexport {}\n')
  ;(/^\s*declare module /m.test(block.code) ? alone : shared).push(block)
}
const programs = [shared, ...alone.map((b) => [b])].filter((p) => p.length > 0)
programs.forEach((program, n) => {
  writeFileSync(join(out, `tsconfig.${n}.json`), JSON.stringify({ compilerOptions, files: ['../scripts/docs-prelude.d.ts', ...program.map((b) => b.name)] }, null, 2))
})

const byName = new Map(blocks.map((b) => [b.name, b]))
for (let n = 0; n < programs.length; n++) {
  try {
    execFileSync(process.execPath, [tsc, '-p', `tsconfig.${n}.json`], { cwd: out, encoding: 'utf8', stdio: 'pipe' })
  } catch (err) {
    // Map `file.mts(line,col): error ...` back to the markdown file and line.
    for (const line of String(err.stdout).split('\n')) {
      const m = /^(\S+\.mts)\((\d+),(\d+)\): (.*)$/.exec(line)
      const block = m && byName.get(m[1])
      if (block) problems.push(`${block.source}:${block.line + Number(m[2]) - 1}:${m[3]}: ${m[4]}`)
      else if (line.trim() !== '') problems.push(line)
    }
  }
}
if (problems.length === 0) rmSync(out, { recursive: true, force: true })

console.log(`docs: ${blocks.length} TypeScript blocks checked in ${programs.length} programs, ${skipped} marked nocheck, ${files.length} files`)
if (problems.length > 0) {
  console.error(problems.join('\n'))
  const count = problems.filter((p) => !p.startsWith(' ')).length
  console.error(`docs: ${count} problem(s); the generated files are in .docs-check/`)
  process.exit(1)
}
