/**
 * An apply with --backup killed at each of its statements, in every way an operator's worst day
 * kills it: the backend terminated (pg_terminate_backend), SIGINT, SIGTERM, SIGKILL. After each
 * kill: the database is unchanged or fully purged (a snapshot of every table), the backup
 * directory is removed or complete (manifest present, restorable) — or, after a SIGKILL, left
 * incomplete and refused by restore —, the audit log has the attempt and its outcome where the
 * process could write them, and the output (--json on stdout, exit code) says which.
 *
 * The run is stopped at a chosen statement by the fixture's own triggers (not purgekit's): a
 * BEFORE DELETE row trigger on each step's table, and a deferred constraint trigger that runs
 * inside COMMIT, take pg_advisory_xact_lock(k) while the test's session holds lock k; the copy
 * of step 2's cascade rows waits on a table lock the test holds, the locking of the steps' rows
 * before the first delete on a row lock. The test waits until
 * pg_locks shows the purgekit backend waiting there, then kills. Every case starts from a fresh
 * database made from one template.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { createTestDatabase, dropTestDatabase, snapshot, type TestDb } from './harness/db.js';
import { BIN, purgekit, sleep, tempAuditLog, validJson, why, type CliResult, type RunJson } from './run-helpers.js';

const POLICY = 'fault-matrix';

const FIXTURE = `
  CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
  CREATE TABLE sessions (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), token text NOT NULL);
  CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), total numeric NOT NULL);
  CREATE TABLE order_items (id serial PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id) ON DELETE CASCADE, sku text NOT NULL);
  INSERT INTO users (email) VALUES ('ann@example.com'), ('bob@example.com');
  INSERT INTO sessions (user_id, token) VALUES (1, 'a1'), (1, 'a2'), (2, 'b1');
  INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20), (2, 30);
  INSERT INTO order_items (order_id, sku) VALUES (1, 'x'), (1, 'y'), (2, 'z'), (3, 'w');

  -- Test-only stopping points: each takes an advisory lock the test may be holding.
  CREATE FUNCTION fault_point() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN PERFORM pg_advisory_xact_lock(TG_ARGV[0]::bigint); RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NULL END; END $$;
  CREATE TRIGGER fault_point BEFORE DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION fault_point(901);
  CREATE TRIGGER fault_point BEFORE DELETE ON orders FOR EACH ROW EXECUTE FUNCTION fault_point(902);
  CREATE TRIGGER fault_point BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION fault_point(903);
  CREATE CONSTRAINT TRIGGER fault_commit AFTER DELETE ON users DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fault_point(904);`;

const POLICY_YAML = `version: 1
name: ${POLICY}
kind: purge
params:
  email: { type: text }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: email = :email
steps:
  - table: sessions
    where: user_id IN :subject
  - table: orders
    where: user_id IN :subject
    cascades: [order_items]
  - table: users
    where: id IN :subject
`;

/** Where the run is stopped: what the test's session holds, and how the waiting backend shows in pg_locks. */
interface Moment {
  readonly name: string;
  readonly hold: string;
  readonly waiting: string;
  /** The statement the run was in, as --json's error.at names it. */
  readonly at: RegExp;
  /** Backup files on disk when the run is stopped (no manifest yet, except at COMMIT). */
  readonly filesAtKill: number;
  readonly commit?: true;
}

const advisory = (k: number) => `l.locktype = 'advisory' AND l.objid = ${k}`;
const MOMENTS: readonly Moment[] = [
  { name: "locking the steps' rows parents first (before the first delete)", hold: 'SELECT FROM orders WHERE id = 1 FOR UPDATE', waiting: `l.locktype IN ('transactionid', 'tuple')`, at: /^Step 2 of 3: public\.orders \(locking its rows/, filesAtKill: 0 },
  { name: 'step 1 (sessions) DELETE', hold: 'SELECT pg_advisory_xact_lock(901)', waiting: advisory(901), at: /^Step 1 of 3: public\.sessions$/, filesAtKill: 1 },
  { name: "step 2's backup copy of its ON DELETE CASCADE rows (order_items)", hold: 'LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE', waiting: `l.locktype = 'relation' AND l.relation = 'order_items'::regclass`, at: /^Step 2 of 3: public\.orders$/, filesAtKill: 1 },
  { name: 'step 2 (orders, cascading to order_items) DELETE', hold: 'SELECT pg_advisory_xact_lock(902)', waiting: advisory(902), at: /^Step 2 of 3: public\.orders$/, filesAtKill: 3 },
  { name: 'step 3 (users) DELETE', hold: 'SELECT pg_advisory_xact_lock(903)', waiting: advisory(903), at: /^Step 3 of 3: public\.users$/, filesAtKill: 4 },
  { name: 'COMMIT (a deferred constraint trigger)', hold: 'SELECT pg_advisory_xact_lock(904)', waiting: advisory(904), at: /^COMMIT$/, filesAtKill: 4, commit: true },
];

type Kill = 'terminate' | 'SIGINT' | 'SIGTERM' | 'SIGKILL';

let template: string;
let project: string;
let before: Record<string, string>;
let purged: Record<string, string>;

function urlFor(name: string): string {
  const u = new URL(inject('pgAdminUrl'));
  u.pathname = `/${name}`;
  return u.toString();
}

/** A copy of the template. */
async function copyOfTemplate(): Promise<TestDb> {
  const name = `pk_${randomBytes(8).toString('hex')}`;
  const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  return { name, url: urlFor(name), sql: postgres(urlFor(name), { max: 3, onnotice: () => {} }) };
}

/** A fresh copy of the template, dropped when the test finishes. */
async function freshDatabase(): Promise<TestDb> {
  const db = await copyOfTemplate();
  onTestFinished(() => dropTestDatabase(db));
  return db;
}

beforeAll(async () => {
  const tpl = await createTestDatabase(FIXTURE);
  template = tpl.name;
  before = await snapshot(tpl.sql);
  await tpl.sql.end();
  project = mkdtempSync(join(tmpdir(), 'purgekit-matrix-'));
  mkdirSync(join(project, 'policies'));
  writeFileSync(join(project, 'policies', `${POLICY}.yaml`), POLICY_YAML);
  const compiled = await purgekit(['compile'], { cwd: project });
  expect(compiled.code, why(compiled)).toBe(0);
  // The fully purged state: the same apply, undisturbed, on another copy.
  const db = await copyOfTemplate();
  try {
    const r = await purgekit(['apply', POLICY, '--email', 'ann@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', join(project, 'audit.jsonl')], { cwd: project });
    expect(r.code, why(r)).toBe(0);
    expect(r.json!.tables.map((t) => [t.table, t.deleted])).toEqual([
      ['public.order_items', 3],
      ['public.orders', 2],
      ['public.sessions', 2],
      ['public.users', 1],
    ]);
    purged = await snapshot(db.sql);
  } finally {
    await dropTestDatabase(db);
  }
});

afterAll(async () => {
  if (template) {
    const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).finally(() => admin.end());
  }
  if (project) rmSync(project, { recursive: true, force: true });
});

/** purgekit apply as a child process: stderr readable while it runs, signals sent by the test. */
function start(db: TestDb, audit: string, backup: string) {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'DATABASE_URL' && !k.startsWith('PG')) env[k] = v;
  const args = ['apply', POLICY, '--email', 'ann@example.com', '--confirm', db.name, '--connection', db.url, '--lock-timeout', '60s', '--json', '--audit-log', audit, '--backup', backup];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: project, env: { ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const started = Date.now();
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const r: CliResult & { signal: NodeJS.Signals | null } = { code: code ?? -1, signal, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - started };
      try {
        r.json = JSON.parse(out.stdout) as RunJson;
      } catch {
        /* left undefined */
      }
      resolve(r);
    });
  });
  return { child, out, done };
}

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function auditRecords(path: string): Record<string, any>[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) : [];
}

const files = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

/** What the test saw of one killed run. */
interface Observed {
  r: CliResult & { signal: NodeJS.Signals | null };
  records: Record<string, any>[];
  backup: string;
  after: Record<string, string>;
  db: TestDb;
}

async function killAt(moment: Moment, kill: Kill): Promise<Observed> {
  const db = await freshDatabase();
  const audit = tempAuditLog();
  const backup = join(dirname(audit), 'backup');
  const holder = await db.sql.reserve();
  let held = false;
  const release = async () => {
    if (held) await holder`ROLLBACK`;
    held = false;
  };
  try {
    await holder`BEGIN`;
    await holder.unsafe(moment.hold);
    held = true;
    const run = start(db, audit, backup);
    let pid = 0;
    await waitFor(`the run to wait at ${moment.name}`, async () => {
      const [row] = await db.sql.unsafe<{ pid: number }[]>(`SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
        WHERE a.datname = current_database() AND a.application_name = 'purgekit' AND NOT l.granted AND ${moment.waiting}`);
      pid = row?.pid ?? 0;
      return pid !== 0;
    });
    // Stopped where the test meant: mid-backup before COMMIT, the backup complete inside COMMIT.
    const onDisk = files(backup);
    expect(onDisk.filter((f) => f.endsWith('.copy'))).toHaveLength(moment.filesAtKill);
    expect(onDisk.includes('manifest.json')).toBe(Boolean(moment.commit));
    expect(auditRecords(audit).map((x) => x['event'])).toEqual(moment.commit ? ['attempt'] : []);
    if (kill === 'terminate') await db.sql`SELECT pg_terminate_backend(${pid})`;
    else run.child.kill(kill);
    if (moment.commit && (kill === 'SIGINT' || kill === 'SIGTERM')) {
      // Once COMMIT is sent a signal cannot take it back: the run goes on once the lock is free.
      await waitFor('the signal to be handled', () => run.out.stderr.includes(`${kill}: `));
      await release();
    }
    const r = await run.done;
    await release();
    // A killed client's backend finishes on its own (the released lock lets it see the closed socket).
    await waitFor('the purgekit backend to end', async () => {
      const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.name} AND application_name = 'purgekit'`;
      return row!.n === 0;
    });
    return { r, records: auditRecords(audit), backup, after: await snapshot(db.sql), db };
  } finally {
    await release();
    holder.release();
  }
}

/** restore of a complete backup puts the database back as it was. */
async function restores(o: Observed): Promise<void> {
  expect(files(o.backup)).toContain('manifest.json');
  const back = await purgekit(['restore', o.backup, '--confirm', o.db.name, '--connection', o.db.url]);
  expect(back.code, why(back)).toBe(0);
  expect(await snapshot(o.db.sql)).toEqual(before);
}

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

describe('an apply with --backup killed at each statement', () => {
  for (const moment of MOMENTS.filter((m) => !m.commit)) {
    describe(`at ${moment.name}`, () => {
      it('backend terminated: exit 7, rolled back, said so; backup removed; audit outcome; database unchanged', async () => {
        const o = await killAt(moment, 'terminate');
        expect(o.r.code, why(o.r)).toBe(7);
        expect(validJson(o.r)).toMatchObject({ outcome: 'rolled-back', error: { code: 'CONNECTION_LOST', at: expect.stringMatching(moment.at) } });
        expect(o.r.stderr).toMatch(/rolled back.*safe to retry/i);
        expect(o.r.stderr).not.toMatch(/TypeError|\n\s+at /);
        expect(existsSync(o.backup)).toBe(false);
        expect(o.records).toMatchObject([{ event: 'outcome', outcome: 'rolled-back', exitCode: 7, failedCheck: { code: 'CONNECTION_LOST' } }]);
        expect(o.after).toEqual(before);
      });

      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        it(`${signal}: exit ${SIGNAL_EXIT[signal]}, cancelled and rolled back, said so; backup removed; audit outcome; database unchanged`, async () => {
          const o = await killAt(moment, signal);
          expect(o.r.code, why(o.r)).toBe(SIGNAL_EXIT[signal]);
          expect(validJson(o.r)).toMatchObject({ outcome: 'rolled-back', error: { code: 'INTERRUPTED', at: expect.stringMatching(moment.at) } });
          expect(o.r.stderr).toMatch(/rolled back: nothing was changed/);
          expect(existsSync(o.backup)).toBe(false);
          expect(o.records).toMatchObject([{ event: 'outcome', outcome: 'rolled-back', exitCode: SIGNAL_EXIT[signal], failedCheck: { code: 'INTERRUPTED' } }]);
          expect(o.after).toEqual(before);
        });
      }

      it('SIGKILL: no output, no audit record; the backup is left without a manifest and restore refuses it; database unchanged', async () => {
        const o = await killAt(moment, 'SIGKILL');
        expect(o.r.signal).toBe('SIGKILL');
        expect(o.r.stdout).toBe('');
        expect(o.records).toEqual([]);
        expect(files(o.backup)).toHaveLength(moment.filesAtKill);
        expect(files(o.backup)).not.toContain('manifest.json');
        const back = await purgekit(['restore', o.backup, '--confirm', o.db.name, '--connection', o.db.url]);
        expect(back.code, why(back)).toBe(4);
        expect(back.stderr).toMatch(/manifest/);
        expect(o.after).toEqual(before);
      });
    });
  }

  describe('at COMMIT (a deferred constraint trigger: the attempt record and the whole backup are on disk)', () => {
    const moment = MOMENTS.find((m) => m.commit)!;

    it('backend terminated: the server is asked and says aborted: exit 7; backup removed; audit attempt then outcome; database unchanged', async () => {
      const o = await killAt(moment, 'terminate');
      expect(o.r.code, why(o.r)).toBe(7);
      const [attempt] = o.records;
      expect(validJson(o.r)).toMatchObject({ outcome: 'rolled-back', error: { code: 'CONNECTION_LOST', at: 'COMMIT' } });
      expect(o.r.stderr).toContain(`the server reports transaction ${attempt!['xid']} as aborted`);
      expect(existsSync(o.backup)).toBe(false);
      expect(o.records.map((x) => [x['event'], x['outcome'], x['runId']])).toEqual([
        ['attempt', 'committing', attempt!['runId']],
        ['outcome', 'rolled-back', attempt!['runId']],
      ]);
      expect(o.after).toEqual(before);
    });

    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      it(`${signal} once COMMIT is sent: it cannot be taken back: committed, exit 0, said so; backup complete and restorable; audit attempt then outcome`, async () => {
        const o = await killAt(moment, signal);
        expect(o.r.code, why(o.r)).toBe(0);
        expect(validJson(o.r)).toMatchObject({ outcome: 'committed', error: null, backup: { files: 4, rows: 8 } });
        expect(o.r.stderr).toContain(`${signal}: COMMIT was already sent and cannot be taken back: waiting for its answer`);
        expect(o.r.stderr).not.toMatch(/rolling back/);
        expect(o.records.map((x) => [x['event'], x['outcome']])).toEqual([
          ['attempt', 'committing'],
          ['outcome', 'committed'],
        ]);
        expect(o.after).toEqual(purged);
        await restores(o);
      });
    }

    it('SIGKILL: no output; the attempt record is the only trace and txid_status says committed; fully purged; backup complete and restorable', async () => {
      const o = await killAt(moment, 'SIGKILL');
      expect(o.r.signal).toBe('SIGKILL');
      expect(o.r.stdout).toBe('');
      expect(o.records).toMatchObject([{ event: 'attempt', outcome: 'committing', xid: expect.stringMatching(/^\d+$/) }]);
      const [status] = await o.db.sql<{ s: string }[]>`SELECT txid_status(${o.records[0]!['xid']}::bigint) AS s`;
      expect(status!.s).toBe('committed');
      expect(o.after).toEqual(purged);
      await restores(o);
    });
  });
});
