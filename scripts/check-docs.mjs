#!/usr/bin/env node
// Type-checks every ```ts block of docs/*.md and README.md, so the docs cannot rot.
//
// Each block becomes one ES module (top-level await allowed) under .docs-check/ inside the
// repository, so it resolves this repository's node_modules; `fastify-multiauth` is mapped
// to src/index.ts and `fastify-multiauth/request-user` to src/request-user.ts. Blocks that
// change the types of other modules get a program of their own, since augmentations are
// global to a program: those that augment a module (`declare module ...`, e.g. MultiauthUser)
// and those that import a module declaring `request.user` (fastify-multiauth/request-user,
// @fastify/jwt, @fastify/passport); all the others share one, in which `request.user` is not
// declared (as in an application that did not opt in), so they use `request.auth.user`. A
// block that is partial on purpose is fenced as ```ts nocheck <reason>; a nocheck without a
// reason is an error. scripts/docs-prelude.d.ts declares what snippets may take as given (the
// application's `db`, a `handler`, and `app` for a continuing snippet).
//
// No block (nocheck ones included) and no file under examples/ may cast a user
// (`user as User`, `request.user as { id: string }`, `<User>request.auth.user`): the user is
// typed by declaring `MultiauthUser` and read from `request.auth.user`, so a cast can only hide
// a mistake. Casts are found in the syntax tree (TypeScript's parser), so `as const`, casts of
// other values, and the words in comments or strings are not taken for one.
//
// A block fenced as ```ts run (the README's quick start) is also run, as printed: started
// with tsx on a free port (PORT), `fastify-multiauth` being src/index.ts, until it listens;
// then the next ```sh run block is run with sh and the real curl (`localhost:3000` pointing at
// that port), and its output must be exactly the block's `#> ` lines; then the server is stopped.
import { execFile, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = join(root, '.docs-check')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

const files = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f))
if (existsSync(join(root, 'README.md'))) files.push(join(root, 'README.md'))

const FENCE = /^```(\S*)(.*)$/
const blocks = [] // { source, line, code, name }
const castChecked = [] // every TypeScript block, nocheck ones included: { source, line, code }
const runs = [] // { server: block, shell: { source, line, code } | undefined }
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
      castChecked.push({ source: relative(root, file), line: i + 2, code: lines.slice(i + 1, end).join('\n') })
      if (rest.startsWith('nocheck')) {
        if (rest.slice('nocheck'.length).trim() === '') problems.push(`${relative(root, file)}:${i + 1}: "ts nocheck" needs a reason`)
        skipped++
      } else {
        const name = `${relative(root, file).replace(/[\\/.]/g, '_')}_L${i + 1}.mts`
        blocks.push({ source: relative(root, file), line: i + 2, code: lines.slice(i + 1, end).join('\n'), name })
        if (rest === 'run') runs.push({ server: blocks.at(-1), shell: undefined })
      }
    } else if (lang === 'sh' && rest === 'run') {
      const run = runs.at(-1)
      if (run === undefined || run.server.source !== relative(root, file) || run.shell !== undefined) problems.push(`${relative(root, file)}:${i + 1}: a "sh run" block must follow its "ts run" block`)
      else run.shell = { source: relative(root, file), line: i + 2, code: lines.slice(i + 1, end).join('\n') }
    }
    i = end
  }
}

/** `user`, `request.user`, `request.auth?.user`, `record['user']`, `(request.user!)`: the expression a cast applies to. */
function isUserValue (node) {
  while (ts.isParenthesizedExpression(node) || ts.isNonNullExpression(node) || ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) node = node.expression
  if (ts.isIdentifier(node)) return node.text === 'user'
  if (ts.isPropertyAccessExpression(node)) return node.name.text === 'user'
  if (ts.isElementAccessExpression(node)) return ts.isStringLiteralLike(node.argumentExpression) && node.argumentExpression.text === 'user'
  return false
}

/** `User`, `MultiauthUser`, `AppUser`, `import('fastify-multiauth').MultiauthUser`, `User | null`: a user type. */
function isUserType (node) {
  if (ts.isParenthesizedTypeNode(node)) return isUserType(node.type)
  if (ts.isUnionTypeNode(node)) return node.types.some(isUserType)
  const name = ts.isTypeReferenceNode(node)
    ? (ts.isQualifiedName(node.typeName) ? node.typeName.right : node.typeName).text
    : ts.isImportTypeNode(node) && node.qualifier !== undefined
      ? (ts.isQualifiedName(node.qualifier) ? node.qualifier.right : node.qualifier).text
      : undefined
  return name !== undefined && /User$/.test(name)
}

/** The casts of a user in `code`: `[{ line (0-based), text }]`. */
function userCasts (code, fileName) {
  const source = ts.createSourceFile(fileName, code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const found = []
  const visit = (node) => {
    if ((ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) && (isUserValue(node.expression) || isUserType(node.type))) {
      // One report per cast: `user as unknown as User` is one cast, not two.
      found.push({ line: source.getLineAndCharacterOfPosition(node.getStart(source)).line, text: node.getText(source).replace(/\s+/g, ' ') })
      return
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

const castAdvice = 'declare MultiauthUser and read request.auth.user (docs/getting-started.md, "Typing the user") instead of casting'
for (const block of castChecked) {
  for (const cast of userCasts(block.code, 'block.ts')) problems.push(`${block.source}:${block.line + cast.line}: a cast of a user (\`${cast.text}\`): ${castAdvice}`)
}
const exampleFiles = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((entry) => entry.isDirectory()
  ? (entry.name === 'node_modules' ? [] : exampleFiles(join(dir, entry.name)))
  : /\.[mc]?ts$/.test(entry.name) ? [join(dir, entry.name)] : [])
const examples = existsSync(join(root, 'examples')) ? exampleFiles(join(root, 'examples')) : []
for (const file of examples) {
  for (const cast of userCasts(readFileSync(file, 'utf8'), file)) problems.push(`${relative(root, file)}:${cast.line + 1}: a cast of a user (\`${cast.text}\`): ${castAdvice}`)
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
  paths: { 'fastify-multiauth': ['../src/index.ts'], 'fastify-multiauth/request-user': ['../src/request-user.ts'] }
}
// The .docs-check folder is an ES module scope, as a user's `"type": "module"` app would be.
writeFileSync(join(out, 'package.json'), '{ "type": "module", "private": true }\n')

// Modules whose types declare `request.user` (two declarations of one property cannot share a program).
const DECLARES_REQUEST_USER = /['"](?:fastify-multiauth\/request-user|@fastify\/jwt|@fastify\/passport)['"]/
const shared = []
const alone = []
for (const block of blocks) {
  // `export {}` keeps a block without imports a module (its names stay its own).
  writeFileSync(join(out, block.name), block.code + '\nexport {}\n')
  ;(/^\s*declare module /m.test(block.code) || DECLARES_REQUEST_USER.test(block.code) ? alone : shared).push(block)
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

async function freePort () {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject)
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
  })
}

const portOpen = async (port) => await new Promise((resolve) => {
  const socket = connect(port, 'localhost')
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
})

/**
 * Starts a "ts run" block as a user would (tsx, an ES module), runs its "sh run" block against
 * it and compares the output with the `#> ` lines. Bounded: 60 s to listen, 60 s for the shell.
 */
async function runBlock ({ server, shell }) {
  const where = `${server.source}:${server.line - 1}`
  if (shell === undefined) return [`${where}: a "ts run" block needs a "sh run" block after it (the commands that try it)`]
  const port = await freePort()
  const file = join(out, `run_${server.name}`)
  // The published package name maps to the source, as for the type check.
  writeFileSync(file, server.code
    .replaceAll("'fastify-multiauth'", `'${pathToFileURL(join(root, 'src', 'index.ts')).href}'`)
    .replaceAll("'fastify-multiauth/request-user'", `'${pathToFileURL(join(root, 'src', 'request-user.ts')).href}'`))
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    const deadline = Date.now() + 60_000
    while (!(await portOpen(port))) {
      if (child.exitCode !== null || Date.now() > deadline) return [`${where}: the block did not start listening (exit ${child.exitCode}): ${stderr.trim()}`]
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // A command followed by `#> ` lines gets a newline after its output (curl -s prints none),
    // so that two outputs never share a line.
    const lines = shell.code.split('\n')
    const expected = lines.filter((l) => l.startsWith('#> ')).map((l) => l.slice(3) + '\n').join('')
    const script = lines.map((l, i) => l.startsWith('#') || l.trim() === '' || !(lines[i + 1] ?? '').startsWith('#> ') ? l : `${l}; echo`)
      .join('\n').replaceAll('localhost:3000', `localhost:${port}`)
    let actual
    try {
      actual = (await promisify(execFile)('sh', ['-c', script], { cwd: out, timeout: 60_000, encoding: 'utf8' })).stdout
    } catch (err) {
      return [`${shell.source}:${shell.line - 1}: the commands failed: ${err.message}`]
    }
    // Compared line by line, blank lines aside (whether a command's output ends with a newline is not the point).
    if (actual.split('\n').filter(Boolean).join('\n') !== expected.split('\n').filter(Boolean).join('\n')) return [`${shell.source}:${shell.line - 1}: the commands printed\n${actual}but the block says (#> lines)\n${expected}`]
    return []
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

if (problems.length === 0) {
  for (const run of runs) problems.push(...await runBlock(run))
}
if (problems.length === 0) rmSync(out, { recursive: true, force: true })

console.log(`docs: ${blocks.length} TypeScript blocks checked in ${programs.length} programs, ${skipped} marked nocheck, ${runs.length} run with their commands, ${files.length} files; ${castChecked.length} blocks and ${examples.length} example files checked for casts of a user`)
if (problems.length > 0) {
  console.error(problems.join('\n'))
  const count = problems.filter((p) => !p.startsWith(' ')).length
  console.error(`docs: ${count} problem(s); the generated files are in .docs-check/`)
  process.exit(1)
}
