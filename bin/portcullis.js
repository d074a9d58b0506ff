#!/usr/bin/env node
// Thin shim over the compiled CLI (src/cli.ts → dist/src/cli.js); run `npm run build` first.
let cli
try {
  cli = await import('../dist/src/cli.js')
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    // "Cannot find package 'fastify'": node_modules is missing; "Cannot find module …/dist/…": not built.
    process.stderr.write(String(err.message).includes('Cannot find package')
      ? 'portcullis: run npm ci first (dependencies are not installed)\n'
      : 'portcullis: dist/ is missing; run `npm run build` first\n')
    process.exit(1)
  }
  throw err
}
const code = await cli.main(process.argv.slice(2))
// A failed command exits at once; ioredis may leave a connect timer running after a refused connection.
if (code !== 0) process.exit(code)
process.exitCode = 0
