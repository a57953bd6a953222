/**
 * What the run path loads. Every plan and apply imports the runner, few policies have a redis
 * side effect, and the Redis client costs ~100 ms to load, so it is loaded when a redis job runs.
 * A reviewed generated file runs from its plan artifact (generated/<name>.plan.json): neither
 * the SQL parser (libpg-query, its WASM ~0.4 s) nor the formatter is loaded; a changed policy
 * takes the full path (parser loaded) and is refused as stale.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture } from './harness/db.js';
import { PACKAGES_HOOK as HOOK } from './helpers/packagesHook.js';
import { ROOT } from './helpers/scripts.js';
import { BIN, project, tempAuditLog, why } from './run-helpers.js';

/** The Redis client's CommonJS modules in the cache of a fresh node that imported these. */
function redisLoadedBy(...specifiers: string[]): string[] {
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    for (const m of ${JSON.stringify(specifiers)}) await import(m);
    console.log(JSON.stringify(Object.keys(require.cache)));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as string[]).filter((p) => /[\\/]node_modules[\\/](@redis|redis)[\\/]/.test(p));
}

const dist = (module: string) => pathToFileURL(join(ROOT, 'dist', module)).href;

/** The CLI in a scratch project, with the hook: its exit code, stderr, and the packages it loaded. */
function traced(cwd: string, args: string[]): Promise<{ code: number; stderr: string; packages: Set<string> }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { NO_COLOR: '1', PATH: process.env['PATH'] ?? '' };
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const packages = new Set([...stderr.matchAll(/^\[pkg\] (\S+)$/gm)].map((m) => m[1]!));
      resolve({ code: code ?? -1, stderr: stderr.replace(/^\[pkg\] .*\n/gm, ''), packages });
    });
  });
}

const NEXUS = 'nexus-purge-user';
const PARSER = 'libpg-query';
const FORMATTER = 'sql-formatter';

describe('the run path', () => {
  it('plan and apply do not load the Redis client', () => {
    expect(redisLoadedBy(dist('commands/run.js'), dist('cli/run.js'), dist('outbox/runner.js'))).toEqual([]);
    // The same probe sees the client once it is imported: the assertion above can fail.
    expect(redisLoadedBy('redis').length).toBeGreaterThan(0);
  });

  it('plan and apply of a reviewed file load neither the SQL parser nor the formatter', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const plan = await traced(dir, ['plan', NEXUS, '--email', 'alice@example.com', '--connection', db.url]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.packages.has('postgres'), 'the hook sees what the run loads').toBe(true);
    expect(plan.packages.has(PARSER)).toBe(false);
    expect(plan.packages.has(FORMATTER)).toBe(false);
    // Nor the YAML library and the schema: the policy's options come from the artifact too.
    expect([...plan.packages].filter((p) => p === 'yaml' || p === 'ajv')).toEqual([]);

    const apply = await traced(dir, ['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stderr).toMatch(/committed/i);
    expect(apply.packages.has(PARSER)).toBe(false);
    expect(apply.packages.has(FORMATTER)).toBe(false);

    // The generated file named as the target, too.
    const byFile = await traced(dir, ['plan', join('generated', `${NEXUS}.sql`), '--email', 'bob@example.com', '--connection', db.url]);
    expect(byFile.code, byFile.stderr).toBe(0);
    expect(byFile.packages.has(PARSER)).toBe(false);
  });

  it('a changed policy loads the parser and is refused as stale; an edited artifact is only a slower way to the same file', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const artifact = join(dir, 'generated', `${NEXUS}.plan.json`);
    // An edited artifact (a step dropped, its checksum recomputed or not) is not trusted: the
    // policy is validated and compiled from its source, the file is current, the run goes on.
    const doc = JSON.parse(readFileSync(artifact, 'utf8')) as { policy: { steps: unknown[] } };
    doc.policy.steps.pop();
    writeFileSync(artifact, JSON.stringify(doc, null, 2));
    const edited = await traced(dir, ['plan', NEXUS, '--email', 'alice@example.com', '--connection', db.url]);
    expect(edited.code, edited.stderr).toBe(0);
    expect(edited.packages.has(PARSER)).toBe(true);
    expect(edited.stderr).toMatch(/public\.user_profiles/);

    appendFileSync(join(dir, 'policies', `${NEXUS}.yaml`), '# a comment changes the source sha256\n');
    const stale = await traced(dir, ['apply', NEXUS, '--email', 'alice@example.com', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()]);
    expect(stale.code, why({ ...stale, stdout: '', ms: 0 })).toBe(2);
    expect(stale.stderr).toMatch(/stale: the runner executes only the reviewed generated file/);
    expect(stale.packages.has(PARSER)).toBe(true);
  });
});
