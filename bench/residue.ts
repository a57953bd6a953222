/**
 * npm run bench:residue: a residue scan (purgekit residue, in-process) against reading the same
 * columns once (`COPY (SELECT cols FROM t) TO STDOUT`, the bytes read and dropped), on one
 * embedded PostgreSQL. Target (issue 14, item 4): the scan costs <= 1.5x the read.
 *
 * The database: a users table and an events table of BENCH_RESIDUE_ROWS rows (default 1,000,000)
 * with the four kinds of searchable column a real one has: a copied email (text), a free-text
 * message, a jsonb payload and a text[] of tags; one user's values hidden in a few rows.
 * No index answers the scan (substrings are searched): it is one sequential pass, the worst case.
 *
 * Rounds alternate the two ways (BENCH_RESIDUE_ROUNDS, default 5, after one warm-up round of
 * each): the medians and their ratio are printed.
 *
 * Environment: BENCH_RESIDUE_ROWS, BENCH_RESIDUE_ROUNDS.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { residueCommand } from '../src/commands/residue.js';
import { startEmbedded } from '../test/harness/embedded.js';

const ROWS = Number(process.env['BENCH_RESIDUE_ROWS'] ?? 1_000_000);
const ROUNDS = Number(process.env['BENCH_RESIDUE_ROUNDS'] ?? 5);
const TARGET = 1.5;

const POLICY = `version: 1
name: bench-purge-user
kind: purge
params:
  email: { type: text, normalize: lower }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: lower(email) = :email
  identifiers: [email, username]
steps:
  - table: users
    where: id IN :subject
`;

const say = (line: string) => process.stderr.write(`${line}\n`);

const server = await startEmbedded();
const dir = mkdtempSync(join(tmpdir(), 'purgekit-bench-residue-'));
try {
  const admin = postgres(server.url, { onnotice: () => {} });
  await admin.unsafe('CREATE DATABASE bench_residue');
  await admin.end();
  const url = server.url.replace(/\/postgres$/, '/bench_residue');
  const sql = postgres(url, { onnotice: () => {}, max: 1 });
  let started = performance.now();
  await sql.unsafe(`
    CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, username text NOT NULL);
    INSERT INTO users SELECT n, 'user' || n || '@example.com', 'user_' || n FROM generate_series(1, 10000) AS n;
    CREATE TABLE events (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL,
      user_email text,
      message text,
      payload jsonb,
      tags text[]
    );
    INSERT INTO events (at, user_email, message, payload, tags)
    SELECT '2025-01-01'::timestamptz + n * interval '1 second',
           'user' || (n % 10000) || '@example.com',
           'request ' || md5(n::text) || ' served in ' || (n % 997) || ' ms for account ' || (n % 10000),
           jsonb_build_object('accountId', (n % 10000)::text, 'client', 'web', 'meta', jsonb_build_object('ip', '10.0.' || (n % 255) || '.' || (n % 251), 'ua', 'Mozilla/5.0')),
           ARRAY['tag' || (n % 50), 'tag' || (n % 7)]
    FROM generate_series(1, ${ROWS}) AS n;
    -- The subject's values, where a purge by foreign keys would leave them.
    UPDATE events SET message = 'deleted user residue.person@example.com on request' WHERE id = ${Math.floor(ROWS / 3)};
    UPDATE events SET payload = jsonb_build_object('accountId', '-1', 'owner', jsonb_build_object('id', 'residue_person')) WHERE id = ${Math.floor(ROWS / 2)};
    INSERT INTO users VALUES (-1, 'Residue.Person@example.com', 'residue_person');`);
  await sql.unsafe('VACUUM ANALYZE');
  const [size] = await sql<{ bytes: string }[]>`SELECT pg_total_relation_size('events')::text AS bytes`;
  say(`loaded ${ROWS.toLocaleString('en-US')} events (${(Number(size!.bytes) / 2 ** 20).toFixed(0)} MB with indexes) in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  mkdirSync(join(dir, 'policies'));
  const policy = join(dir, 'policies', 'bench-purge-user.yaml');
  writeFileSync(policy, POLICY);

  const copy = async () => {
    started = performance.now();
    const stream = await sql.unsafe('COPY (SELECT user_email, message, payload, tags FROM events) TO STDOUT').readable();
    let bytes = 0;
    await pipeline(stream, new Writable({ write: (chunk: Buffer, _e, done) => ((bytes += chunk.length), done()) }));
    return { ms: performance.now() - started, detail: `${(bytes / 2 ** 20).toFixed(0)} MB` };
  };
  const scan = async () => {
    started = performance.now();
    const { output } = await residueCommand({
      target: policy, policiesDir: join(dir, 'policies'), values: { email: 'residue.person@example.com' }, pairs: [], valuePairs: [],
      connection: url, include: ['events'], exclude: [], estimate: false, keys: 5, substring: true, auditLog: join(dir, 'audit.jsonl'), stderr: () => {},
    });
    const ms = performance.now() - started;
    const found = output.findings.map((f) => `${f.column} ${f.kind}`).sort().join(', ');
    const t = output.tables[0]!;
    passes.push(t.status === 'scanned' ? t.ms : NaN);
    return { ms, detail: `the table's pass ${t.status === 'scanned' ? t.ms : '?'} ms (${t.status === 'scanned' ? t.access : t.status}); found: ${found}` };
  };

  const times: Record<'copy' | 'scan', number[]> = { copy: [], scan: [] };
  const passes: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const order = round % 2 ? (['scan', 'copy'] as const) : (['copy', 'scan'] as const);
    for (const way of order) {
      const { ms, detail } = await (way === 'copy' ? copy() : scan());
      if (round > 0) times[way].push(ms);
      say(`  ${round === 0 ? 'warm-up' : `round ${round}`} ${way.padEnd(4)} ${ms.toFixed(0).padStart(6)} ms  ${detail}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const c = median(times.copy);
  const s = median(times.scan);
  const ratio = s / c;
  const p = median(passes.slice(1));
  process.stdout.write(
    `events: ${ROWS.toLocaleString('en-US')} rows, ${(Number(size!.bytes) / 2 ** 20).toFixed(0)} MB\n` +
      `read once (COPY of the 4 searched columns): median ${c.toFixed(0)} ms\n` +
      `residue scan, whole command in-process (policy, lookup, catalog, EXPLAIN, the pass): median ${s.toFixed(0)} ms\n` +
      `  of which the table's one pass (all values, all columns): median ${p.toFixed(0)} ms, ${(p / c).toFixed(2)}x the read\n` +
      `ratio ${ratio.toFixed(2)}x (target <= ${TARGET}x): ${ratio <= TARGET ? 'met' : 'NOT met'}\n`,
  );
  await sql.end();
} finally {
  rmSync(dir, { recursive: true, force: true });
  await server.stop();
}
