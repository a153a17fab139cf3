/**
 * Copies stubs/**\/*.stub into build/stubs next to the compiled stubs/main.js (whose
 * `import.meta.dirname` is the stubs root).
 */
import { cpSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'

const source = 'stubs'
const target = join('build', 'stubs')
let copied = 0
for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.stub')) continue
  const from = join(entry.parentPath, entry.name)
  cpSync(from, join(target, relative(source, from)))
  copied++
}
console.log(`copied ${copied} stubs to ${target}`)
