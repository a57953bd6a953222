#!/usr/bin/env node
/**
 * Patches the `postgres` driver (3.4.x) in node_modules against porsager/postgres#1208: when the
 * server ends a connection (pg_terminate_backend, a restart, a proxy dropping the socket), a
 * write the driver had deferred with setImmediate runs after `socket` was set to null and throws
 * a TypeError from a timer callback, an uncaughtException that no try/catch sees: purgekit
 * crashed with a stack trace instead of rolling back cleanly (exit 7). Upstream PRs #1168, #1176
 * and #1209 propose the same guard; none is released. This applies #1209's version: the write is
 * settled, the pending queries are rejected with CONNECTION_CLOSED (skipping the write alone
 * leaves them waiting forever), and the teardown paths forget the cleared timer so a later write
 * reaches the guard instead of hanging.
 *
 * Run by `npm install` / `npm ci` as the root package's postinstall. Idempotent; a driver that no
 * longer has the unguarded code is left alone; anything unexpected fails the install loudly.
 * test/driver-patch.test.ts checks the result.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const MARK = 'purgekit patch: porsager/postgres#1208';
const require = createRequire(import.meta.url);
// The package's root: its exports do not include package.json, so walk up from its entry point.
let root = dirname(require.resolve('postgres'));
while (!isDriverRoot(root)) {
  if (dirname(root) === root) throw new Error('purgekit: cannot find the postgres package to patch');
  root = dirname(root);
}

function isDriverRoot(dir) {
  const manifest = join(dir, 'package.json');
  return existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'postgres';
}

const UNGUARDED = '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n';
const GUARDED = [
  '  function nextWrite(fn) {',
  `    if (!socket) { // ${MARK}`,
  '      nextWriteTimer !== null && clearImmediate(nextWriteTimer)',
  '      chunk = nextWriteTimer = null',
  "      const err = Errors.connection('CONNECTION_CLOSED', options)",
  '      error(err)',
  '      fn && fn(err)',
  '      return false',
  '    }',
  '    const x = socket.write(chunk, fn)',
  '',
].join('\n');
const TEARDOWN = '    clearImmediate(nextWriteTimer)\n';
const TEARDOWN_FIXED = `    clearImmediate(nextWriteTimer), nextWriteTimer = null, chunk = null // ${MARK}\n`;

let changed = 0;
for (const file of ['src/connection.js', 'cjs/src/connection.js', 'cf/src/connection.js'].map((f) => join(root, f))) {
  if (!existsSync(file)) continue;
  const text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  if (!text.includes(UNGUARDED)) {
    console.warn(`purgekit: ${file}: nextWrite is no longer the unguarded 3.4.x code; left as is (check porsager/postgres#1208)`);
    continue;
  }
  const teardowns = text.split(TEARDOWN).length - 1;
  if (teardowns !== 2) {
    console.error(`purgekit: ${file}: expected 2 teardown clearImmediate(nextWriteTimer) lines, found ${teardowns}; not patched`);
    process.exit(1);
  }
  writeFileSync(file, text.replace(UNGUARDED, GUARDED).replaceAll(TEARDOWN, TEARDOWN_FIXED));
  changed++;
}
if (changed) console.log(`purgekit: patched ${changed} postgres driver file(s) (${MARK})`);
