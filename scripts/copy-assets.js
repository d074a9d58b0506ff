// tsc does not copy non-TypeScript files: the Lua script must sit next to its compiled loader.
import { cpSync, readdirSync } from 'node:fs'

for (const f of readdirSync('src/lib')) {
  if (f.endsWith('.lua')) cpSync(`src/lib/${f}`, `dist/src/lib/${f}`)
}
