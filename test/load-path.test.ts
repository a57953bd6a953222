/**
 * What the run path loads: every plan and apply imports the runner, few policies have a redis
 * side effect, and the Redis client costs ~100 ms to load, so it is loaded when a redis job runs.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/scripts.js';

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

describe('the run path', () => {
  it('plan and apply do not load the Redis client', () => {
    expect(redisLoadedBy(dist('commands/run.js'), dist('cli/run.js'), dist('outbox/runner.js'))).toEqual([]);
    // The same probe sees the client once it is imported: the assertion above can fail.
    expect(redisLoadedBy('redis').length).toBeGreaterThan(0);
  });
});
