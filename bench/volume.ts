/**
 * npm run bench:volume: `purgekit apply nexus-purge-user --subjects-from <file>` for
 * BENCH_VOLUME_SUBJECTS subjects (default 1,000) against one psql process running the raw
 * generated script once per subject (the parameter block filled in by hand), on one embedded
 * PostgreSQL with the nexus fixture and that many extra users, each run on its own copy of the
 * same database (CREATE DATABASE ... TEMPLATE). Targets (issue 11, item 6): purgekit <= 1.0x the
 * psql loop at the default --batch-size; peak RSS of the apply (/usr/bin/time) <= 150 MB at
 * 100,000 subjects.
 *
 *   BENCH_VOLUME_SUBJECTS   subjects (default 1000)
 *   BENCH_VOLUME_BATCHES    --batch-size values to time, comma-separated (default: the default, 50)
 *   BENCH_VOLUME_PSQL       0: no psql loop (the RSS run at 100,000 subjects)
 *   BENCH_VOLUME_NODE_FLAGS flags for the apply's node, e.g. --max-old-space-size=48
 *   BENCH_VOLUME_INDEXES    1: an index on user_id in every table of the fixture that lacks one, as a
 *                           production schema has (without them every batch scans each child
 *                           table whole; at 100,000 users that is most of the time)
 *   BENCH_VOLUME_BY         email (default) or user_id: the subjects file's column. The email
 *                           lookup reads three columns, only one of them indexed: a scan of
 *                           user_profiles per subject, for purgekit and psql alike, which at
 *                           100,000 users is most of the time; user_id is the primary key.
 *
 * The batched cleanup (1M of 5M rows) is bench/cleanup.ts (npm run bench:cleanup).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbedded } from '../test/harness/embedded.js';
import { DEFAULT_BATCH_SIZE } from '../src/volume/batches.js';

const N = Number(process.env['BENCH_VOLUME_SUBJECTS'] ?? 1000);
const SIZES = (process.env['BENCH_VOLUME_BATCHES'] ?? String(DEFAULT_BATCH_SIZE)).split(',').map(Number);
const PSQL = process.env['BENCH_VOLUME_PSQL'] !== '0';
/** Flags for the apply's node (e.g. --max-old-space-size=64, to tell a leak from a lazy collector). */
const NODE_FLAGS = (process.env['BENCH_VOLUME_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
const BY = process.env['BENCH_VOLUME_BY'] === 'user_id' ? 'user_id' : 'email';
const ROOT = join(import.meta.dirname, '..');
const say = (line: string) => process.stderr.write(`${line}\n`);

const server = await startEmbedded();
const dir = mkdtempSync(join(tmpdir(), 'purgekit-bench-volume-'));
try {
  const fixture = readFileSync(join(ROOT, 'test', 'fixtures', 'nexus.sql'), 'utf8');
  const admin = postgres(server.url, { onnotice: () => {} });
  await admin.unsafe('CREATE DATABASE pk_bench_volume_template');
  {
    const sql = postgres(server.url.replace(/\/postgres$/, '/pk_bench_volume_template'), { onnotice: () => {}, max: 1 });
    await sql.unsafe(fixture).simple();
    await sql`INSERT INTO user_profiles (user_id, email) SELECT 'auth|v' || i, 'v' || i || '@example.com' FROM generate_series(1, ${N}) i`;
    await sql`INSERT INTO user_preferences (user_id, theme) SELECT 'auth|v' || i, 'dark' FROM generate_series(1, ${N}) i`;
    await sql`INSERT INTO oauth_tokens (user_id, provider) SELECT 'auth|v' || i, 'google' FROM generate_series(1, ${N}) i`;
    if (process.env['BENCH_VOLUME_INDEXES'] === '1') {
      for (const table of ['ai_memories', 'oauth_tokens', 'user_integrations', 'business_health_snapshots', 'user_organizations', 'company_members', 'companies']) {
        await sql.unsafe(`CREATE INDEX ON ${table} (${table === 'companies' ? 'owner_id' : 'user_id'})`);
      }
      await sql.unsafe('CREATE INDEX ON user_profiles (lower(business_email))');
      await sql.unsafe('CREATE INDEX ON user_profiles (lower(personal_email))');
    }
    await sql`ANALYZE`;
    await sql.end();
  }
  let copies = 0;
  const copy = async () => {
    const name = `pk_bench_volume_${++copies}`;
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE pk_bench_volume_template`);
    return { name, url: server.url.replace(/\/postgres$/, `/${name}`) };
  };
  const keys = Array.from({ length: N }, (_, i) => (BY === 'email' ? `v${i + 1}@example.com` : `auth|v${i + 1}`));
  const subjects = join(dir, 'subjects.csv');
  writeFileSync(subjects, `${BY}\n${keys.join('\n')}\n`);

  // purgekit: the built CLI, as an operator runs it; /usr/bin/time for the peak RSS.
  const runs: { size: number; ms: number; rssMb: number; batches: number }[] = [];
  for (const size of SIZES) {
    const db = await copy();
    const started = performance.now();
    const pk = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...NODE_FLAGS, join(ROOT, 'dist', 'cli.js'), 'apply', 'nexus-purge-user', '--subjects-from', subjects, '--batch-size', String(size),
      '--confirm', db.name, '--connection', db.url, '--audit-log', join(dir, 'audit.jsonl'), '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
    const ms = performance.now() - started;
    const summary = JSON.parse(pk.stdout.trim().split('\n').at(-1)!) as { committed: number; batches: number };
    if (summary.committed !== N) throw new Error(`purgekit committed ${summary.committed} of ${N}:\n${pk.stderr.slice(-2000)}`);
    const rssMb = Number(pk.stderr.trim().split('\n').at(-1)) / 1024;
    runs.push({ size, ms, rssMb, batches: summary.batches });
    say(`purgekit apply --subjects-from --batch-size ${size}: ${(ms / 1000).toFixed(2)} s (${(ms / N).toFixed(2)} ms per subject, ${summary.batches} transactions), peak RSS ${rssMb.toFixed(0)} MB`);
  }

  let psqlMs: number | undefined;
  if (PSQL) {
    // psql: one process, the raw generated script once per subject with its parameter block filled in.
    const db = await copy();
    const script = readFileSync(join(ROOT, 'generated', 'nexus-purge-user.sql'), 'utf8');
    const file = join(dir, 'loop.sql');
    writeFileSync(file, keys.map((k) => script.replace(`NULL::text AS ${BY}`, `'${k}'::text AS ${BY}`)).join('\n'));
    const started = performance.now();
    const ps = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
    psqlMs = performance.now() - started;
    if (ps.status !== 0) throw new Error(`psql failed: ${ps.stderr.slice(-2000)}`);
    say(`psql loop (raw script per subject, one process): ${(psqlMs / 1000).toFixed(2)} s (${(psqlMs / N).toFixed(2)} ms per subject)`);
  }
  await admin.end();

  say(`subjects: ${N}, by ${BY}`);
  for (const r of runs) {
    const ratio = psqlMs === undefined ? undefined : r.ms / psqlMs;
    const target = r.size === DEFAULT_BATCH_SIZE ? ' (target <= 1.0x at the default batch size)' : '';
    say(`--batch-size ${r.size}: ${ratio === undefined ? 'no psql loop run' : `ratio purgekit / psql loop ${ratio.toFixed(2)}x${target}${target && ratio > 1 ? '  MISSED' : ''}`}; peak RSS ${r.rssMb.toFixed(0)} MB (target <= 150 MB at 100,000 subjects${N >= 100_000 && r.rssMb > 150 ? ': MISSED' : ''})`);
  }
  say('batched cleanup (1M of 5M rows): npm run bench:cleanup');
} finally {
  rmSync(dir, { recursive: true, force: true });
  await server.stop();
}
