/**
 * For `node --import <this>`: names on stderr (`[pkg] <name>` lines) every npm package the
 * process resolves (bench/startup.ts, test/load-path.test.ts): ESM imports through a resolve
 * hook (which runs on a thread of its own, so it writes synchronously, before a process.exit()
 * can drop the line), CommonJS require()s through the CommonJS resolver.
 */
export const PACKAGES_HOOK = `data:text/javascript,${encodeURIComponent(`
import { register, createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const note = (path) => { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(path); if (m) writeSync(2, '[pkg] ' + m[1] + '\\n'); };
const Module = createRequire(process.cwd() + '/')('node:module');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) { const path = resolveFilename.apply(this, args); note(path); return path; };
register('data:text/javascript,' + encodeURIComponent(\`
import { writeSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /node_modules\\\\/((?:@[^/]+\\\\/)?[^/]+)\\\\//.exec(r.url);
  if (m) writeSync(2, '[pkg] ' + m[1] + '\\\\n');
  return r;
}\`));
`)}`;

