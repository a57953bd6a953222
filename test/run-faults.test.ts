/**
 * purgekit apply on a careful operator's worst day: the backend terminated mid-run, signals,
 * an audit log that cannot be written. The database is either unchanged or fully purged, the
 * backup directory is removed or complete, and the output says which.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { describe, expect, inject, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { BIN, project, purgekit, sleep, tempAuditLog, validJson, why, type CliResult, type RunJson } from './run-helpers.js';
import { ROOT } from './helpers/scripts.js';

const NEXUS = 'nexus-purge-user';

async function nexus(setup?: string): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('nexus'));
  if (setup) await db.sql.unsafe(setup);
  return db;
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The purgekit backend of this database, once it waits on a lock. */
async function blockedRun(db: TestDb): Promise<number> {
  let pid = 0;
  await waitFor('the run to wait on the row lock', async () => {
    const [row] = await db.sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
      WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event_type = 'Lock'`;
    pid = row?.pid ?? 0;
    return pid !== 0;
  });
  return pid;
}

function auditRecords(path: string): Record<string, any>[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) : [];
}

describe('the backend terminated mid-apply', () => {
  it('while a step waits on a lock: exit 7, rolled back, --json printed, backup removed, audit attempt and outcome', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const holder = await db.sql.reserve();
    const audit = tempAuditLog();
    const backup = join(audit, '..', 'backup');
    try {
      await holder`BEGIN`;
      await holder`SELECT id FROM oauth_tokens WHERE user_id = 'auth|alice' FOR UPDATE`;
      const run = purgekit(['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name,
        '--connection', db.url, '--lock-timeout', '30s', '--json', '--audit-log', audit, '--backup', backup]);
      const pid = await blockedRun(db);
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      const r = await run;
      expect(r.code, why(r)).toBe(7);
      expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
      const json = validJson(r);
      expect(json).toMatchObject({ outcome: 'rolled-back', exitCode: 7, error: { code: 'CONNECTION_LOST' } });
      expect(r.stderr).toMatch(/connection .*lost.*rolled back.*safe to retry/i);
      expect(existsSync(backup)).toBe(false);
      const records = auditRecords(audit);
      expect(records.map((x) => x['outcome'])).toEqual(['rolled-back']);
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

/** purgekit as a child process the test can signal; resolves like purgekit(). */
function spawnPurgekit(args: string[]): { pid: () => number; signal: (s: NodeJS.Signals) => void; done: Promise<CliResult> } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'DATABASE_URL' && !k.startsWith('PG')) env[k] = v;
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const r: CliResult = { code: code ?? (signal ? 128 : -1), stdout, stderr, ms: Date.now() - started };
      try {
        r.json = JSON.parse(stdout) as RunJson;
      } catch {
        /* left undefined */
      }
      resolve(r);
    });
  });
  return { pid: () => child.pid!, signal: (s) => child.kill(s), done };
}

function applyArgs(db: TestDb, audit: string, extra: string[] = []): string[] {
  return ['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit, ...extra];
}

/** Holds Alice's oauth_tokens row (step 5) in another session while `body` runs. */
async function withRowLock<T>(db: TestDb, body: () => Promise<T>): Promise<T> {
  const holder = await db.sql.reserve();
  try {
    await holder`BEGIN`;
    await holder`SELECT id FROM oauth_tokens WHERE user_id = 'auth|alice' FOR UPDATE`;
    return await body();
  } finally {
    await holder`ROLLBACK`;
    holder.release();
  }
}

describe('signals: SIGINT and SIGTERM while a step runs', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: the statement is cancelled, rolled back, backup removed, audit outcome written, exit ${code}`, async () => {
      // A test-only trigger keeps step 10 (user_preferences) busy: steps 1-9 are backed up and run.
      const db = await nexus(`CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
        CREATE TRIGGER slow_down BEFORE DELETE ON user_preferences FOR EACH STATEMENT EXECUTE FUNCTION slow_down();`);
      const before = await snapshot(db.sql);
      const audit = tempAuditLog();
      const backup = join(audit, '..', 'backup');
      const run = spawnPurgekit(applyArgs(db, audit, ['--backup', backup]));
      await waitFor('the run to reach step 10', async () => {
        const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event = 'PgSleep'`;
        return row!.n === 1;
      });
      expect(readdirSync(backup).length).toBeGreaterThan(5);
      run.signal(signal);
      const r = await run.done;
      expect(r.code, why(r)).toBe(code);
      const json = validJson(r);
      expect(json).toMatchObject({ outcome: 'rolled-back', exitCode: code, error: { code: 'INTERRUPTED', at: expect.stringMatching(/Step 10 of 15/) } });
      expect(r.stderr).toMatch(new RegExp(`${signal}: cancelling the running statement`));
      expect(r.stderr).toMatch(/rolled back: nothing was changed/);
      expect(r.ms).toBeLessThan(20_000); // not the 30 s sleep
      expect(existsSync(backup)).toBe(false);
      expect(auditRecords(audit)).toMatchObject([{ event: 'outcome', outcome: 'rolled-back', exitCode: code, failedCheck: { code: 'INTERRUPTED' } }]);
      expect(await snapshot(db.sql)).toEqual(before);
    });
  }

  it('SIGINT while it waits on a row lock (step 5\'s rows; oauth_tokens is referenced by no foreign key, so its DELETE is what waits): exit 130, unchanged', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const audit = tempAuditLog();
    const r = await withRowLock(db, async () => {
      const run = spawnPurgekit(applyArgs(db, audit, ['--lock-timeout', '30s']));
      await blockedRun(db);
      run.signal('SIGINT');
      return run.done;
    });
    expect(r.code, why(r)).toBe(130);
    expect(validJson(r)).toMatchObject({ outcome: 'rolled-back', error: { code: 'INTERRUPTED', at: expect.stringMatching(/Step 5 of 15: public\.oauth_tokens/) } });
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('the connection lost during COMMIT', () => {
  it('COMMIT sent, the backend terminated before it answered: the server is asked (txid_status), the outcome and the way to check are said', async () => {
    // A deferred constraint trigger runs inside COMMIT: the backend is busy in COMMIT while the test terminates it.
    const db = await nexus(`CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow_commit AFTER DELETE ON user_profiles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();`);
    const before = await snapshot(db.sql);
    const audit = tempAuditLog();
    const backup = join(audit, '..', 'backup');
    const run = purgekit(applyArgs(db, audit, ['--backup', backup]));
    let pid = 0;
    await waitFor('the run to sleep inside COMMIT', async () => {
      const [row] = await db.sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
        WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event = 'PgSleep' AND query ILIKE 'commit%'`;
      pid = row?.pid ?? 0;
      return pid !== 0;
    });
    // The attempt record is on disk before COMMIT is sent.
    const [attempt] = auditRecords(audit);
    expect(attempt).toMatchObject({ event: 'attempt', outcome: 'committing', xid: expect.stringMatching(/^\d+$/), policy: NEXUS });
    expect(attempt!['tables']).toContainEqual(expect.objectContaining({ table: 'public.user_profiles', deleted: 1 }));
    await db.sql`SELECT pg_terminate_backend(${pid})`;
    const r = await run;
    // A terminated backend aborts its transaction; purgekit asked the server, which says so.
    expect(r.code, why(r)).toBe(7);
    const json = validJson(r);
    expect(json).toMatchObject({ outcome: 'rolled-back', error: { code: 'CONNECTION_LOST', at: 'COMMIT' } });
    expect(r.stderr).toMatch(new RegExp(`connection was lost during COMMIT; the server reports transaction ${attempt!['xid']} as aborted`));
    expect(existsSync(backup)).toBe(false);
    const records = auditRecords(audit);
    expect(records.map((x) => [x['event'], x['outcome']])).toEqual([['attempt', 'committing'], ['outcome', 'rolled-back']]);
    expect(records[1]!['runId']).toBe(attempt!['runId']);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('the connection lost during COMMIT, and the server cannot be asked', () => {
  it('outcome unknown: exit 1, the backup is kept, the message gives the query to run and the attempt record', async () => {
    const db = await nexus(`CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow_commit AFTER DELETE ON user_profiles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();`);
    const audit = tempAuditLog();
    const backup = join(audit, '..', 'backup');
    const admin = await db.sql.reserve();
    // ALTER DATABASE must come from another database of the cluster.
    const cluster = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
    try {
      const run = purgekit(applyArgs(db, audit, ['--backup', backup]));
      let pid = 0;
      await waitFor('the run to sleep inside COMMIT', async () => {
        const [row] = await admin<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
          WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event = 'PgSleep' AND query ILIKE 'commit%'`;
        pid = row?.pid ?? 0;
        return pid !== 0;
      });
      // No new connection may reach the database: purgekit cannot ask what became of its COMMIT.
      await cluster.unsafe(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
      await admin`SELECT pg_terminate_backend(${pid})`;
      const r = await run;
      await cluster.unsafe(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
      expect(r.code, why(r)).toBe(1);
      const json = validJson(r);
      const [attempt] = auditRecords(audit);
      expect(json).toMatchObject({ outcome: 'unknown', error: { code: 'CONNECTION_LOST', at: 'COMMIT' } });
      expect(json.error!.message).toMatch(/^OUTCOME UNKNOWN: /);
      expect(json.error!.message).toContain(`SELECT txid_status(${attempt!['xid']})`);
      expect(json.error!.message).toContain(`runId ${attempt!['runId']}`);
      expect(r.stderr).toMatch(/outcome unknown: see above/);
      expect(existsSync(join(backup, 'manifest.json'))).toBe(true);
      expect(auditRecords(audit).map((x) => [x['event'], x['outcome']])).toEqual([['attempt', 'committing'], ['outcome', 'unknown']]);
      // What the message says to run answers it.
      const [status] = await admin<{ s: string }[]>`SELECT txid_status(${attempt!['xid']}::bigint) AS s`;
      expect(status!.s).toBe('aborted');
    } finally {
      await cluster.unsafe(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
      await cluster.end();
      admin.release();
    }
  });
});

describe('the audit log', () => {
  it('under a path whose parent is a file: refused before anything runs (exit 2), nothing changed', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const file = tempAuditLog();
    writeFileSync(file, '');
    const r = await purgekit(applyArgs(db, join(file, 'audit.jsonl')));
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/--audit-log .*audit\.jsonl: cannot write there \(.*ENOTDIR.*\); nothing was run/);
    expect(validJson(r)).toMatchObject({ outcome: 'error', exitCode: 2 });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('under /proc (where recursive mkdir never returns): refused at once, exit 2', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const r = await purgekit(applyArgs(db, '/proc/nope/audit.jsonl'));
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/--audit-log \/proc\/nope\/audit\.jsonl: cannot write there/);
    expect(await snapshot(db.sql)).toEqual(before);
    const backup = await purgekit(applyArgs(db, tempAuditLog(), ['--backup', '/proc/nope/backup']));
    expect(backup.code, why(backup)).not.toBe(0);
    expect(backup.stderr).toMatch(/--backup \/proc\/nope\/backup: cannot write there/);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('a committed apply: an attempt record (with the transaction id) before COMMIT, then its outcome, one runId', async () => {
    const db = await nexus();
    const audit = tempAuditLog();
    const r = await purgekit(applyArgs(db, audit));
    expect(r.code, why(r)).toBe(0);
    const [attempt, outcome, ...rest] = auditRecords(audit);
    expect(rest).toEqual([]);
    expect(attempt).toMatchObject({ event: 'attempt', outcome: 'committing', xid: expect.stringMatching(/^\d+$/), params: { email: expect.stringMatching(/^hmac-sha256:/) } });
    expect(outcome).toMatchObject({ event: 'outcome', outcome: 'committed', exitCode: 0, runId: attempt!['runId'] });
    expect(attempt!['tables']).toEqual(outcome!['tables']);
    const [status] = await db.sql<{ s: string }[]>`SELECT txid_status(${attempt!['xid']}::bigint) AS s`;
    expect(status!.s).toBe('committed');
  });
});

describe('cancel and timeout are told apart (57014)', () => {
  it('pg_cancel_backend from another session: "cancelled by another session", exit 7, not a statement timeout', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const r = await withRowLock(db, async () => {
      const run = purgekit(applyArgs(db, tempAuditLog(), ['--lock-timeout', '30s']));
      const pid = await blockedRun(db);
      await db.sql`SELECT pg_cancel_backend(${pid})`;
      return run;
    });
    expect(r.code, why(r)).toBe(7);
    const json = validJson(r);
    expect(json).toMatchObject({ outcome: 'rolled-back', error: { code: '57014', message: expect.stringMatching(/^cancelled by another session/) } });
    expect(json.error!.message).not.toMatch(/statement timeout/);
    expect(r.stderr).toMatch(/safe to retry/);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('personal values in server messages', () => {
  it('a lookup error that quotes the email (22007): the value is redacted from --json, stderr and the audit log', async () => {
    const db = await nexus();
    const dir = project();
    const file = join(dir, 'policies', `${NEXUS}.yaml`);
    const yaml = readFileSync(file, 'utf8');
    const lookup = 'where: lower(email) = :email OR lower(business_email) = :email OR lower(personal_email) = :email';
    expect(yaml).toContain(lookup);
    writeFileSync(file, yaml.replace(lookup, "where: lower(email) = :email AND created_at > (:email)::timestamptz - interval '100 years'"));
    const compiled = await purgekit(['compile'], { cwd: dir });
    expect(compiled.code, why(compiled)).toBe(0);
    const audit = tempAuditLog();
    const before = await snapshot(db.sql);
    for (const command of [['plan'], ['apply', '--confirm', db.name, '--audit-log', audit]]) {
      const r = await purgekit([...command, NEXUS, '--email', 'Carol@Example.com', '--connection', db.url, '--json'], { cwd: dir });
      expect(r.code, why(r)).not.toBe(0);
      const json = validJson(r);
      expect(json.error).toMatchObject({ code: '22007', message: 'invalid input syntax for type timestamp with time zone: "[redacted :email]"' });
      const everything = `${r.stdout}\n${r.stderr}\n${existsSync(audit) ? readFileSync(audit, 'utf8') : ''}`;
      expect(everything).not.toMatch(/carol@example\.com/i);
      expect(r.stderr).toContain('[redacted :email]');
    }
    expect(auditRecords(audit)).toMatchObject([{ event: 'outcome', failedCheck: { code: '22007', message: expect.stringContaining('[redacted :email]') } }]);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

/** An apply of Carol under `ulimit -f` with the audit log filled so that only `room` more bytes fit. */
async function applyWithAuditRoom(room: (sizes: { attempt: number; outcome: number }) => number, extra: string[] = []): Promise<{ r: CliResult; db: TestDb; audit: string }> {
  // Calibrate: the same purge on a twin database gives records of the same size.
  const twin = await nexus();
  const probe = tempAuditLog();
  const calibration = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', twin.name, '--connection', twin.url, '--audit-log', probe]);
  expect(calibration.code, why(calibration)).toBe(0);
  const [attempt, outcome] = readFileSync(probe, 'utf8').split('\n').filter(Boolean).map((l) => Buffer.byteLength(l) + 1);
  // ulimit -f counts 1 KiB blocks: fill the log up to the room left.
  const blocks = 64;
  const audit = tempAuditLog();
  const filler = blocks * 1024 - room({ attempt: attempt!, outcome: outcome! });
  writeFileSync(audit, `${JSON.stringify({ filler: 'x'.repeat(filler - 15) })}\n`);
  writeFileSync(`${audit}.key`, readFileSync(`${probe}.key`));
  const db = await nexus();
  const r = await new Promise<CliResult>((resolve) => {
    const args = ['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit, ...extra];
    const child = spawn('bash', ['-c', `ulimit -f ${blocks}; exec "$0" "$@"`, process.execPath, BIN, ...args], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: 0, json: JSON.parse(stdout) as RunJson }));
  });
  return { r, db, audit };
}

describe('the audit log fills up', () => {
  it('the outcome record cannot be written after COMMIT (file size limit): COMMITTED with the counts, exit 8, the attempt record is there', async () => {
    const { r, db, audit } = await applyWithAuditRoom((s) => s.attempt + Math.floor(s.outcome / 2));
    expect(r.code, why(r)).toBe(8);
    const json = validJson(r);
    expect(json).toMatchObject({ outcome: 'committed', exitCode: 8, error: { code: 'PENDING', message: expect.stringMatching(/^COMMITTED \(\d+ rows deleted from \d+ tables: .*public\.user_profiles 1/) } });
    expect(r.stderr).toMatch(/COMMITTED .*but writing the audit log's outcome record .*EFBIG/);
    expect(r.stderr).toMatch(/committed in \d+ ms/);
    const [carol] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM user_profiles WHERE user_id = 'auth|carol'`;
    expect(carol!.n).toBe(0);
    // The log holds the attempt, whole; the outcome that did not fit was taken back, not left half-written.
    const lines = readFileSync(audit, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    const records = lines.map((l) => JSON.parse(l) as Record<string, any>);
    expect(records.map((x) => x['event'])).toEqual([undefined, 'attempt']);
    expect(records[1]).toMatchObject({ outcome: 'committing', policy: NEXUS });
  });

  it('the attempt record cannot be written before COMMIT: rolled back, nothing changed, the backup removed', async () => {
    const backup = join(tempAuditLog(), '..', 'backup');
    const { r, db, audit } = await applyWithAuditRoom((s) => Math.floor(s.attempt / 2), ['--backup', backup]);
    // An untouched twin of the fixture: the database must still equal it.
    const before = await snapshot((await nexus()).sql);
    expect(r.code, why(r)).toBe(1);
    expect(validJson(r)).toMatchObject({ outcome: 'rolled-back', error: { code: 'AUDIT', message: expect.stringMatching(/attempt record could not be written.*EFBIG/) } });
    expect(r.stderr).toMatch(/rolled back: nothing was changed/);
    expect(await snapshot(db.sql)).toEqual(before);
    expect(existsSync(backup)).toBe(false);
    expect(readFileSync(audit, 'utf8').split('\n').filter(Boolean)).toHaveLength(1); // the filler only, nothing half-written
  });
});

describe('verify and a lost connection', () => {
  it('the backend of a verify is terminated while its query waits on a lock: exit 7, a --json document, no crash', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const holder = await db.sql.reserve();
    try {
      await holder`BEGIN`;
      await holder`LOCK TABLE users IN ACCESS EXCLUSIVE MODE`;
      const run = purgekit(['verify', 'rephlo-critical-tables', '--connection', db.url, '--lock-timeout', '30s', '--json']);
      const pid = await blockedRun(db);
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      const r = await run;
      expect(r.code, why(r)).toBe(7);
      expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
      expect(validJson(r)).toMatchObject({ command: 'verify', outcome: 'read-only', error: { code: 'CONNECTION_LOST' } });
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
  });
});
