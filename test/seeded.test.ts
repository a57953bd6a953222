/**
 * Seed 004: remove-seeded-data (cleanupProduction.js) and verify-db (verifyDatabase.js), run as
 * the generated scripts on test/fixtures/seeded.sql (a Prisma schema: "User", "Session", ...).
 */
import { describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, loadFixture, rowCounts, runPsql, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';
import { renderedScript, tempFile } from './helpers/scripts.js';

const CLEANUP = 'remove-seeded-data';
const VERIFY = 'verify-db';
const TABLES = ['User', 'Session', 'Payment', 'Report'];

interface ReportRow {
  item: string;
  target: string;
  outcome: string;
  rows: string | null;
  detail: string | null;
}

async function admins(db: TestDb): Promise<unknown[]> {
  return [...(await db.sql`SELECT * FROM "User" WHERE role = 'ADMIN' ORDER BY id`)];
}

/** Runs a policy's script and checks that it fails with `code` and changes no row or sequence. */
async function expectRefused(db: TestDb, policy: string, code: string): Promise<string> {
  const before = await snapshot(db.sql);
  const result = await runSimpleQuery(db.url, await renderedScript(policy));
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.error.code).toBe(code);
  expect(await snapshot(db.sql)).toEqual(before);
  return result.error.message;
}

/** The seeded fixture without the seed script's batch (ids 7-12): what production should hold. */
async function cleanDatabase(): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('seeded'));
  await db.sql.unsafe(`
    DELETE FROM "Payment" WHERE "userId" BETWEEN 7 AND 12;
    DELETE FROM "User" WHERE id BETWEEN 7 AND 12`);
  return db;
}

describe('remove-seeded-data (seed 004, cleanupProduction.js)', () => {
  it('deletes sessions, payments, reports and every user but the admin (one simple query)', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const admin = await admins(db);
    expect(admin).toHaveLength(1);
    const before = await snapshot(db.sql);

    const result = await runSimpleQuery(db.url, await renderedScript(CLEANUP));
    if (!result.ok) throw new Error(`script failed: ${result.error.code} ${result.error.message}`);

    expect(await rowCounts(db.sql, TABLES)).toEqual({ User: 1, Session: 0, Payment: 0, Report: 0 });
    expect(await admins(db)).toEqual(admin);
    // DELETE leaves the sequences alone, and nothing outside the four tables changed.
    const after = await snapshot(db.sql);
    const changed = Object.keys(before).filter((k) => before[k] !== after[k]).sort();
    expect(changed).toEqual(['public.Payment', 'public.Report', 'public.Session', 'public.User']);

    expect((result.results as unknown as ReportRow[]).map((r) => [r.item, r.target, r.outcome, r.rows === null ? null : Number(r.rows)])).toEqual([
      ['expect 1', 'an admin exists before the cleanup', 'ok', null],
      ['preserve 1', 'public."User"', 'preserved', null],
      ['step 1', 'public."Session"', 'removed', 6],
      ['step 2', 'public."Payment"', 'removed', 5],
      ['step 3', 'public."Report"', 'removed', 3],
      ['step 4', 'public."User"', 'removed', 11],
      ['expect 2', 'no non-admin user remains', 'ok', null],
      ['expect 3', 'at least one admin remains', 'ok', null],
    ]);
  });

  it.skipIf(!hasPsql())('runs unchanged in psql -v ON_ERROR_STOP=1 -f', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const admin = await admins(db);
    const run = runPsql(db.url, tempFile(await renderedScript(CLEANUP)));
    expect(run.stderr).not.toMatch(/ERROR/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/step 4\s+\|\s+public\."User"\s+\|\s+removed\s+\|\s+11\b/);
    expect(await rowCounts(db.sql, TABLES)).toEqual({ User: 1, Session: 0, Payment: 0, Report: 0 });
    expect(await admins(db)).toEqual(admin);
  });

  it('refuses, changing nothing, when a trigger deletes the admin during the cleanup', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    await db.sql.unsafe(`
      CREATE FUNCTION drop_admins() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM "User" WHERE role = 'ADMIN';
        RETURN NULL;
      END $$;
      CREATE TRIGGER "Session_drop_admins" AFTER DELETE ON "Session" FOR EACH STATEMENT EXECUTE FUNCTION drop_admins()`);
    const message = await expectRefused(db, CLEANUP, 'PK005');
    expect(message).toMatch(/^preserve rule 1 on public\."User": \d+ rows were deleted or updated there but the steps removed \d+; a cascade or trigger changed others/);
  });

  it('refuses, changing nothing, when ON DELETE CASCADE takes the admin with a deleted row', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    await db.sql.unsafe(`
      ALTER TABLE "User" ADD COLUMN "currentSessionId" TEXT REFERENCES "Session"("id") ON DELETE CASCADE;
      UPDATE "User" SET "currentSessionId" = 'sess_admin' WHERE role = 'ADMIN'`);
    const message = await expectRefused(db, CLEANUP, 'PK005');
    expect(message).toMatch(/^preserve rule 1 on public\."User": \d+ rows were deleted or updated there but the steps removed \d+; a cascade or trigger changed others/);
  });

  it('refuses, changing nothing, when there is no admin to keep (expectation checked before the steps)', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    await db.sql.unsafe(`UPDATE "User" SET role = 'USER' WHERE role = 'ADMIN'`);
    const message = await expectRefused(db, CLEANUP, 'PK004');
    expect(message).toBe('expectation failed: an admin exists before the cleanup (value 0, wanted >= 1)');
  });

  it('refuses, changing nothing, when a table of a step is absent', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    await db.sql.unsafe('DROP TABLE "Report"');
    const message = await expectRefused(db, CLEANUP, 'PK008');
    expect(message).toBe('required table is absent: public."Report" (table of step 3)');
  });
});

describe('verify-db (seed 004, verifyDatabase.js)', () => {
  it('fails on seeded data, naming every failing expectation with its value, and changes nothing', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const message = await expectRefused(db, VERIFY, 'PK004');
    expect(message).toBe(
      'expectation failed: ' +
        'no demo email addresses (value 6, wanted <= 0); ' +
        'no generated usernames (user<number>) (value 3, wanted <= 0); ' +
        'no two users created in the same second (value 1, wanted <= 0)',
    );
  });

  it('passes on a database with only real users and an admin, and changes nothing', async () => {
    const db = await cleanDatabase();
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, await renderedScript(VERIFY));
    if (!result.ok) throw new Error(`script failed: ${result.error.code} ${result.error.message}`);
    expect((result.results as unknown as ReportRow[]).map((r) => [r.item, r.target, r.outcome, r.detail])).toEqual([
      ['expect 1', 'no demo email addresses', 'ok', 'value 0, wanted <= 0'],
      ['expect 2', 'no generated usernames (user<number>)', 'ok', 'value 0, wanted <= 0'],
      ['expect 3', 'no two users created in the same second', 'ok', 'value 0, wanted <= 0'],
      ['expect 4', 'at least one admin account', 'ok', 'value 1, wanted >= 1'],
    ]);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('detects two users created in the same second on their own', async () => {
    const db = await cleanDatabase();
    // 400 ms apart but in the same second: the seed's DATE_TRUNC('second', created_at) query.
    await db.sql.unsafe(`
      INSERT INTO "User" (email, username, created_at) VALUES
        ('a.real@gmail.com', 'areal', '2026-02-01 10:00:00.100'),
        ('b.real@gmail.com', 'breal', '2026-02-01 10:00:00.500'),
        ('c.real@gmail.com', 'creal', '2026-02-01 10:00:01.000')`);
    const message = await expectRefused(db, VERIFY, 'PK004');
    expect(message).toBe('expectation failed: no two users created in the same second (value 1, wanted <= 0)');
  });

  it('fails when no admin account exists', async () => {
    const db = await cleanDatabase();
    await db.sql.unsafe(`UPDATE "User" SET role = 'USER'`);
    const message = await expectRefused(db, VERIFY, 'PK004');
    expect(message).toBe('expectation failed: at least one admin account (value 0, wanted >= 1)');
  });

  it('passes after remove-seeded-data (the seed: verify, clean up, verify again)', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    expect(await runSimpleQuery(db.url, await renderedScript(VERIFY))).toMatchObject({ ok: false, error: { code: 'PK004' } });
    expect(await runSimpleQuery(db.url, await renderedScript(CLEANUP))).toMatchObject({ ok: true });
    const result = await runSimpleQuery(db.url, await renderedScript(VERIFY));
    expect(result).toMatchObject({ ok: true });
    if (result.ok) expect((result.results as unknown as ReportRow[]).every((r) => r.outcome === 'ok')).toBe(true);
  });

  it('cannot change data, even through a function its queries call', async () => {
    // "User" becomes a view over a function that deletes every session as a side effect. A check
    // runs read-only once its working tables exist, so the DELETE fails (25006) instead of
    // committing with the verdict.
    const db = await cleanDatabase();
    await db.sql.unsafe(`
      ALTER TABLE "User" RENAME TO "UserData";
      CREATE FUNCTION users_and_a_side_effect() RETURNS SETOF "UserData" LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM "Session";
        RETURN QUERY SELECT * FROM "UserData";
      END $$;
      CREATE VIEW "User" AS SELECT * FROM users_and_a_side_effect()`);
    const message = await expectRefused(db, VERIFY, '25006');
    expect(message).toMatch(/read-only transaction/);
    expect(await rowCounts(db.sql, ['Session'])).toEqual({ Session: 3 });
  });
});
