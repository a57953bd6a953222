/**
 * The postgres driver is patched at install (scripts/patch-postgres.mjs, the root package's
 * postinstall) against porsager/postgres#1208: a query on a connection whose backend was
 * terminated must reject with CONNECTION_CLOSED, not crash the process from a timer callback.
 * This is the issue's own deterministic repro, in a child process so that a crash is visible.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';

const REPRO = `
import postgres from 'postgres';
const url = process.argv[1];
const sql = postgres(url, { max: 2, onnotice() {} });
const killer = postgres(url, { max: 1, onnotice() {} });
const reserved = await sql.reserve();
const [{ pid }] = await reserved\`SELECT pg_backend_pid() AS pid\`;
await killer\`SELECT pg_terminate_backend(\${pid})\`;
// Let the driver see the socket close first: a query sent in the same instant may instead meet
// ECONNRESET on the still-open socket, a race that makes the repro flaky. Unpatched, the next
// query's deferred write then finds socket === null and throws the TypeError every time.
await new Promise((r) => setTimeout(r, 300));
const codes = [];
for (let i = 0; i < 3; i++) await reserved\`SELECT 1\`.then(() => codes.push('ok'), (e) => codes.push(e.code));
console.log(JSON.stringify(codes));
reserved.release();
await sql.end({ timeout: 0 });
await killer.end();
`;

describe('the postgres driver patch', () => {
  it('is applied to every build of the driver in node_modules', () => {
    for (const build of ['src', 'cjs/src']) {
      const text = readFileSync(join(ROOT, 'node_modules', 'postgres', build, 'connection.js'), 'utf8');
      expect(text, `${build}/connection.js: run npm install (postinstall) or node scripts/patch-postgres.mjs`).toContain('purgekit patch: porsager/postgres#1208');
    }
  });

  it('a reserved connection whose backend is terminated: every later query rejects, the process survives', async () => {
    const db = await createTestDatabase();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', REPRO, db.url], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).not.toMatch(/TypeError|reading 'write'/);
    expect(r.status, r.stderr).toBe(0);
    const codes = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
    expect(codes).toHaveLength(3);
    expect(codes.every((c) => c !== 'ok')).toBe(true);
    expect(codes.slice(1)).toEqual(['CONNECTION_CLOSED', 'CONNECTION_CLOSED']);
  });

  it('the patch script is idempotent', () => {
    const before = readFileSync(join(ROOT, 'node_modules', 'postgres', 'src', 'connection.js'), 'utf8');
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'patch-postgres.mjs')], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(ROOT, 'node_modules', 'postgres', 'src', 'connection.js'), 'utf8')).toBe(before);
  });
});
