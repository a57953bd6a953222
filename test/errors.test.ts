/**
 * The SQLSTATE -> typed error mapping of src/core/errors.ts, against errors a real PostgreSQL
 * raises: each failure is provoked for real (a lock held by another session, a statement that
 * outlives statement_timeout, a guard's RAISE), and databaseError() must give its class, kind,
 * exit code and the driver's error as cause.
 */
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import {
  BackupError, CancelledError, ConnectionError, ConnectionLostError, DatabaseError, DeadlockError, ExitCode, GuardCode, GuardError,
  IntegrityError, LiteralError, LockTimeoutError, PurgekitError, RefusedError, RestoreRefused, SerializationError, StalePlanError,
  StatementTimeoutError, UsageError, databaseError, guardOf, type GuardName,
} from '../src/index.js';
import { createTestDatabase, type TestDb } from './harness/db.js';

/** A client of its own: one session, ended when the test finishes. */
function session(db: TestDb): postgres.Sql {
  return postgres(db.url, { max: 1, onnotice: () => {} });
}

/** The error a promise rejects with (the test fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected the statement to fail');
}

async function waitFor(what: string, condition: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The backend pid of a session once it runs pg_sleep. */
async function sleepingPid(admin: postgres.Sql, db: TestDb): Promise<number> {
  let pid = 0;
  await waitFor('the session to sleep', async () => {
    const [row] = await admin<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = ${db.name} AND query LIKE 'SELECT pg_sleep%'`;
    pid = row?.pid ?? 0;
    return pid !== 0;
  });
  return pid;
}

function expectTyped(e: DatabaseError, cause: unknown, sqlState: string): void {
  expect(e).toBeInstanceOf(DatabaseError);
  expect(e).toBeInstanceOf(PurgekitError);
  expect(e.cause).toBe(cause);
  expect(e.sqlState).toBe(sqlState);
  expect(e.message).toBe((cause as Error).message);
}

describe('databaseError maps what PostgreSQL raises', () => {
  it('55P03 lock_timeout: LockTimeoutError, transient', async () => {
    const db = await createTestDatabase('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);');
    const holder = session(db);
    const waiter = session(db);
    try {
      await holder.begin(async (tx) => {
        await tx`SELECT * FROM t WHERE id = 1 FOR UPDATE`;
        await waiter`SET lock_timeout = '50ms'`;
        const cause = await rejection(waiter`SELECT * FROM t WHERE id = 1 FOR UPDATE`);
        const e = databaseError(cause);
        expect(e).toBeInstanceOf(LockTimeoutError);
        expectTyped(e, cause, '55P03');
        expect(e).toMatchObject({ kind: 'lock-timeout', code: 'lock-timeout', exitCode: ExitCode.transient });
      });
    } finally {
      await Promise.all([holder.end(), waiter.end()]);
    }
  });

  it('57014 statement_timeout: StatementTimeoutError, told apart from a cancel by the message', async () => {
    const db = await createTestDatabase();
    const s = session(db);
    try {
      await s`SET statement_timeout = '50ms'`;
      const cause = await rejection(s`SELECT pg_sleep(5)`);
      const e = databaseError(cause);
      expect(e).toBeInstanceOf(StatementTimeoutError);
      expectTyped(e, cause, '57014');
      expect(e).toMatchObject({ kind: 'statement-timeout', exitCode: ExitCode.transient });
    } finally {
      await s.end();
    }
  });

  it('57014 pg_cancel_backend: CancelledError, not a timeout', async () => {
    const db = await createTestDatabase();
    const s = session(db);
    try {
      const sleeping = rejection(s`SELECT pg_sleep(30)`);
      const pid = await sleepingPid(db.sql, db);
      await db.sql`SELECT pg_cancel_backend(${pid})`;
      const cause = await sleeping;
      const e = databaseError(cause);
      expect(e).toBeInstanceOf(CancelledError);
      expectTyped(e, cause, '57014');
      expect(e).toMatchObject({ kind: 'cancelled', exitCode: ExitCode.transient });
    } finally {
      await s.end();
    }
  });

  it('a session whose backend was terminated: ConnectionLostError', async () => {
    const db = await createTestDatabase();
    const s = session(db);
    const reserved = await s.reserve(); // a reserved connection is not silently replaced by a new one
    try {
      const [row] = await reserved<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      const pid = row!.pid;
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      await waitFor('the backend to be gone', async () => {
        const [left] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid}`;
        return left!.n === 0;
      });
      const cause = await rejection(reserved`SELECT 1`);
      const e = databaseError(cause);
      expect(e).toBeInstanceOf(ConnectionLostError);
      expect(e.cause).toBe(cause);
      expect(e).toMatchObject({ kind: 'connection-lost', exitCode: ExitCode.transient });
    } finally {
      reserved.release();
      await s.end({ timeout: 0 });
    }
  });

  it('40001 under REPEATABLE READ: SerializationError', async () => {
    const db = await createTestDatabase('CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0);');
    const a = session(db);
    const b = session(db);
    try {
      const cause = await rejection(
        a.begin('ISOLATION LEVEL REPEATABLE READ', async (tx) => {
          await tx`SELECT n FROM t WHERE id = 1`;
          await b`UPDATE t SET n = 1 WHERE id = 1`;
          await tx`UPDATE t SET n = 2 WHERE id = 1`;
        }),
      );
      const e = databaseError(cause);
      expect(e).toBeInstanceOf(SerializationError);
      expectTyped(e, cause, '40001');
      expect(e.exitCode).toBe(ExitCode.transient);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('40P01 two sessions locking rows in opposite order: DeadlockError', async () => {
    const db = await createTestDatabase('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);');
    const a = session(db);
    const b = session(db);
    try {
      let bLocked!: () => void;
      const bHolds = new Promise<void>((r) => (bLocked = r));
      const outcomes = await Promise.allSettled([
        a.begin(async (tx) => {
          await tx`SELECT * FROM t WHERE id = 1 FOR UPDATE`;
          await bHolds;
          await tx`SELECT * FROM t WHERE id = 2 FOR UPDATE`;
        }),
        b.begin(async (tx) => {
          await tx`SELECT * FROM t WHERE id = 2 FOR UPDATE`;
          bLocked();
          await waitFor('a to wait for row 2', async () => {
            const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.name} AND wait_event_type = 'Lock'`;
            return row!.n > 0;
          });
          await tx`SELECT * FROM t WHERE id = 1 FOR UPDATE`;
        }),
      ]);
      const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(failed).toHaveLength(1); // the server breaks the deadlock by failing one of them
      const cause = failed[0]!.reason as Error;
      const e = databaseError(cause);
      expect(e).toBeInstanceOf(DeadlockError);
      expectTyped(e, cause, '40P01');
      expect(e.exitCode).toBe(ExitCode.transient);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it("a guard's RAISE ... ERRCODE = 'PK00x': GuardError naming the guard, with its exit code", async () => {
    const db = await createTestDatabase();
    const exits: Record<GuardName, number> = {
      noLookup: ExitCode.usage, noSubject: ExitCode.ok, multipleSubjects: ExitCode.multipleSubjects, expectFailed: ExitCode.checkFailed,
      preserveViolated: ExitCode.checkFailed, countMismatch: ExitCode.checkFailed, keepReached: ExitCode.checkFailed,
      tableMissing: ExitCode.checkFailed, tooManyRows: ExitCode.checkFailed, settingsChanged: ExitCode.checkFailed, volatileFunction: ExitCode.usage,
      applyOnly: ExitCode.usage,
    };
    for (const [guard, code] of Object.entries(GuardCode) as [GuardName, string][]) {
      const cause = await rejection(
        db.sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '${code}', MESSAGE = 'guard ${guard}', HINT = 'a hint'; END $$`),
      );
      const e = databaseError(cause);
      expect(e, code).toBeInstanceOf(GuardError);
      expectTyped(e, cause, code);
      expect(e).toMatchObject({ guard, kind: 'guard', message: `guard ${guard}`, hint: 'a hint', exitCode: exits[guard] });
      expect(guardOf(code)).toBe(guard);
    }
  });

  it('23505 unique violation: IntegrityError with the detail; a syntax error is a plain DatabaseError with its position', async () => {
    const db = await createTestDatabase('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);');
    const unique = await rejection(db.sql`INSERT INTO t VALUES (1)`);
    const e = databaseError(unique);
    expect(e).toBeInstanceOf(IntegrityError);
    expectTyped(e, unique, '23505');
    expect(e.detail).toMatch(/Key \(id\)=\(1\) already exists/);
    expect(e.exitCode).toBe(ExitCode.checkFailed);

    const syntax = await rejection(db.sql.unsafe('SELECT FROM WHERE'));
    const other = databaseError(syntax);
    expect(other.constructor).toBe(DatabaseError);
    expect(other).toMatchObject({ kind: 'other', sqlState: '42601', position: 13, exitCode: ExitCode.unexpected });
  });
});

describe('error classes', () => {
  it('are all PurgekitErrors with a stable code and exit code', () => {
    const cases: [PurgekitError, string, number][] = [
      [new UsageError('x'), 'usage', ExitCode.usage],
      [new LiteralError('x'), 'unrenderable-literal', ExitCode.usage],
      [new StalePlanError('generated/a.sql', 'edited'), 'stale-plan', ExitCode.usage],
      [new RefusedError('x'), 'refused', ExitCode.refused],
      [new RestoreRefused('x'), 'restore-refused', ExitCode.checkFailed],
      [new ConnectionError('x'), 'cannot-connect', ExitCode.cannotConnect],
      [new BackupError('x'), 'backup-failed', ExitCode.unexpected],
    ];
    for (const [e, code, exit] of cases) {
      expect(e).toBeInstanceOf(PurgekitError);
      expect(e.name).toBe(e.constructor.name);
      expect([e.code, e.exitCode]).toEqual([code, exit]);
    }
    expect(new StalePlanError('generated/a.sql', 'edited')).toMatchObject({ file: 'generated/a.sql', message: 'generated/a.sql: edited' });
  });
});
