/**
 * npm run bench:volume: `purgekit apply nexus-purge-user --subjects-from <file>` for
 * BENCH_VOLUME_SUBJECTS subjects (default 1,000) against one psql process running the raw
 * generated script once per subject (the parameter block filled in by hand), on one embedded
 * PostgreSQL with the nexus fixture and that many extra users. Target (issue 11, item 6):
 * purgekit <= 1.0x the psql loop; the apply's peak RSS is printed too (target <= 150 MB at
 * 100,000 subjects: BENCH_VOLUME_SUBJECTS=100000).
 *
 * The batched cleanup (1M of 5M rows) is bench/cleanup.ts (npm run bench:cleanup).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbedded } from '../test/harness/embedded.js';

const N = Number(process.env['BENCH_VOLUME_SUBJECTS'] ?? 1000);
const ROOT = join(import.meta.dirname, '..');
const say = (line: string) => process.stderr.write(`${line}\n`);

const server = await startEmbedded();
const dir = mkdtempSync(join(tmpdir(), 'purgekit-bench-volume-'));
try {
  const fixture = readFileSync(join(ROOT, 'test', 'fixtures', 'nexus.sql'), 'utf8');
  const admin = postgres(server.url, { onnotice: () => {} });
  const urls: string[] = [];
  for (const name of ['pk_bench_volume_purgekit', 'pk_bench_volume_psql']) {
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const url = server.url.replace(/\/postgres$/, `/${name}`);
    const sql = postgres(url, { onnotice: () => {}, max: 1 });
    await sql.unsafe(fixture).simple();
    await sql`INSERT INTO user_profiles (user_id, email) SELECT 'auth|v' || i, 'v' || i || '@example.com' FROM generate_series(1, ${N}) i`;
    await sql`INSERT INTO user_preferences (user_id, theme) SELECT 'auth|v' || i, 'dark' FROM generate_series(1, ${N}) i`;
    await sql`INSERT INTO oauth_tokens (user_id, provider) SELECT 'auth|v' || i, 'google' FROM generate_series(1, ${N}) i`;
    await sql`ANALYZE`;
    await sql.end();
    urls.push(url);
  }
  await admin.end();
  const emails = Array.from({ length: N }, (_, i) => `v${i + 1}@example.com`);
  const subjects = join(dir, 'subjects.csv');
  writeFileSync(subjects, `email\n${emails.join('\n')}\n`);

  // purgekit: the built CLI, as an operator runs it; /usr/bin/time for the peak RSS.
  let started = performance.now();
  const pk = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, join(ROOT, 'dist', 'cli.js'), 'apply', 'nexus-purge-user', '--subjects-from', subjects,
    '--confirm', 'pk_bench_volume_purgekit', '--connection', urls[0]!, '--audit-log', join(dir, 'audit.jsonl'), '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
  const purgekitMs = performance.now() - started;
  const summary = JSON.parse(pk.stdout.trim().split('\n').at(-1)!) as { committed: number; failed: number };
  const rssKb = Number(pk.stderr.trim().split('\n').at(-1));
  if (summary.committed !== N) throw new Error(`purgekit committed ${summary.committed} of ${N}:\n${pk.stderr.slice(-2000)}`);

  // psql: one process, the raw generated script once per subject with its parameter block filled in.
  const script = readFileSync(join(ROOT, 'generated', 'nexus-purge-user.sql'), 'utf8');
  const file = join(dir, 'loop.sql');
  writeFileSync(file, emails.map((e) => script.replace('NULL::text AS email', `'${e}'::text AS email`)).join('\n'));
  started = performance.now();
  const ps = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', urls[1]!, '-f', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const psqlMs = performance.now() - started;
  if (ps.status !== 0) throw new Error(`psql failed: ${ps.stderr.slice(-2000)}`);

  const ratio = purgekitMs / psqlMs;
  say(`subjects: ${N}`);
  say(`purgekit apply --subjects-from: ${(purgekitMs / 1000).toFixed(2)} s (${(purgekitMs / N).toFixed(1)} ms per subject), peak RSS ${(rssKb / 1024).toFixed(0)} MB`);
  say(`psql loop (raw script per subject): ${(psqlMs / 1000).toFixed(2)} s (${(psqlMs / N).toFixed(1)} ms per subject)`);
  say(`ratio purgekit / psql loop: ${ratio.toFixed(2)}x (target <= 1.0x)${ratio <= 1 ? '' : '  MISSED'}`);
  say(`peak RSS: ${(rssKb / 1024).toFixed(0)} MB at ${N} subjects (target <= 150 MB at 100,000)`);
  say('batched cleanup (1M of 5M rows): npm run bench:cleanup');
} finally {
  rmSync(dir, { recursive: true, force: true });
  await server.stop();
}
