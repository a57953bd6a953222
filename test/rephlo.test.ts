import { describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, loadFixture, rowCounts, runPsql, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';
import { committedScript, renderedScript, tempFile } from './helpers/scripts.js';

/**
 * Seed 002: Rephlo's invalid-session cleanup (accountId inside a JSON payload, no FK) and the
 * "alert on empty critical tables" check, run as pasted into a SQL editor or with psql -f.
 */
const CLEANUP = 'rephlo-invalid-sessions';
const CHECK = 'rephlo-critical-tables';

/** The three sessions the fixture makes invalid: two of deleted accounts, one of a deactivated one. */
const INVALID = ['M4eqyWOjTeK_q2pXz9LrA', 'NgwG1Cvj9D3tB7uYhQ0cE', 'Xk2pL9mN4qR7sT1vW3yZa'];

async function fixture(): Promise<TestDb> {
  return createTestDatabase(loadFixture('rephlo'));
}

async function script(policy: string): Promise<string> {
  return renderedScript(policy, {});
}

async function expectRefused(db: TestDb, policy: string, code: string, message?: RegExp): Promise<string> {
  const before = await snapshot(db.sql);
  const result = await runSimpleQuery(db.url, await script(policy));
  expect(result).toMatchObject({ ok: false, error: { code } });
  if (message && !result.ok) expect(result.error.message).toMatch(message);
  expect(await snapshot(db.sql)).toEqual(before);
  return result.ok ? '' : result.error.message;
}

async function sessions(db: TestDb): Promise<{ id: string; account: string | null }[]> {
  return db.sql<{ id: string; account: string | null }[]>`
    SELECT id, payload->>'accountId' AS account FROM oidc_models WHERE kind = 'Session' ORDER BY id`;
}

describe('rephlo-invalid-sessions (seed 002): execution', () => {
  it('deletes only sessions of missing or deactivated accounts; every other row stays', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const all = await sessions(db);
    const result = await runSimpleQuery(db.url, await script(CLEANUP));
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.results).toEqual([
      { item: 'expect 1', target: 'users is not empty', outcome: 'ok', rows: null, detail: 'value 9, wanted >= 1' },
      { item: 'expect 2', target: 'an active user exists', outcome: 'ok', rows: null, detail: 'value 8, wanted >= 1' },
      { item: 'step 1', target: 'public.oidc_models', outcome: 'removed', rows: '3', detail: null },
      { item: 'expect 3', target: 'no session names a missing or inactive account', outcome: 'ok', rows: null, detail: 'value 0, wanted = 0' },
    ]);
    const after = await snapshot(db.sql);
    expect(Object.keys(before).filter((k) => before[k] !== after[k])).toEqual(['public.oidc_models']);
    expect(await rowCounts(db.sql, ['oidc_models'])).toEqual({ oidc_models: 54 });
    // Exactly the three invalid sessions went; the anonymous one (no accountId yet) stayed.
    expect(await sessions(db)).toEqual(all.filter((s) => !INVALID.includes(s.id)));
    expect((await sessions(db)).filter((s) => s.account === null).map((s) => s.id)).toEqual(['Anon7dQ2fG5hJ8kL0zXcV']);
    // Other kinds naming a deleted account are not sessions: untouched.
    const [others] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM oidc_models WHERE kind <> 'Session'`;
    expect(others!.n).toBe(21);
    expect(await db.sql`SELECT id FROM oidc_models WHERE id IN ('RT4aaaaaaaaaaaaaaaaaa', 'Gdeleted1aaaaaaaaaaaa') ORDER BY id`).toEqual([
      { id: 'Gdeleted1aaaaaaaaaaaa' }, { id: 'RT4aaaaaaaaaaaaaaaaaa' },
    ]);
  });

  it('is idempotent: a second run removes nothing and succeeds', async () => {
    const db = await fixture();
    expect(await runSimpleQuery(db.url, await script(CLEANUP))).toMatchObject({ ok: true });
    const before = await snapshot(db.sql);
    const again = await runSimpleQuery(db.url, await script(CLEANUP));
    expect(again.ok && again.results).toContainEqual({ item: 'step 1', target: 'public.oidc_models', outcome: 'removed', rows: '0', detail: null });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('removes up to max_rows (25) sessions: five more accounts deactivated is 23 sessions', async () => {
    const db = await fixture();
    await db.sql`UPDATE users SET is_active = false WHERE email IN
      ('free.user@example.com', 'pro.user@example.com', 'google.user@example.com', 'ops.user@rephlo.ai', 'support.user@rephlo.ai')`;
    const result = await runSimpleQuery(db.url, await script(CLEANUP));
    expect(result.ok && result.results).toContainEqual({ item: 'step 1', target: 'public.oidc_models', outcome: 'removed', rows: '23', detail: null });
    expect(await rowCounts(db.sql, ['oidc_models'])).toEqual({ oidc_models: 57 - 23 });
  });

  it.skipIf(!hasPsql())('runs unchanged in psql -v ON_ERROR_STOP=1 -f', async () => {
    const db = await fixture();
    const ok = runPsql(db.url, tempFile(await script(CLEANUP)));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/step 1 +\| public\.oidc_models +\| removed +\| +3 \|/);
    expect(await rowCounts(db.sql, ['oidc_models'])).toEqual({ oidc_models: 54 });
  });
});

describe('rephlo-invalid-sessions (seed 002): the data-loss scenario and other guards leave the database unchanged', () => {
  it('users is empty, as in the investigation (PK004, before anything is removed): both before-expectations named', async () => {
    const db = await fixture();
    await db.sql`DELETE FROM users`;
    await expectRefused(db, CLEANUP, 'PK004',
      /^expectation failed: users is not empty \(value 0, wanted >= 1\); an active user exists \(value 0, wanted >= 1\)$/);
    expect(await rowCounts(db.sql, ['oidc_models'])).toEqual({ oidc_models: 57 });
  });

  it('users is not empty but nearly every account is deactivated: max_rows stops a mass logout (PK009)', async () => {
    const db = await fixture();
    await db.sql`UPDATE users SET is_active = false WHERE email <> 'admin.test@rephlo.ai'`;
    // 36 sessions: 4 of admin.test and the anonymous one stay valid, 31 look invalid.
    await expectRefused(db, CLEANUP, 'PK009', /^step 1 \(public\.oidc_models\) would remove 31 rows, more than its max_rows 25$/);
  });

  it('one account past the limit: six more accounts deactivated is 27 sessions (PK009)', async () => {
    const db = await fixture();
    await db.sql`UPDATE users SET is_active = false WHERE email IN ('free.user@example.com', 'pro.user@example.com',
      'google.user@example.com', 'ops.user@rephlo.ai', 'support.user@rephlo.ai', 'analyst.user@rephlo.ai')`;
    await expectRefused(db, CLEANUP, 'PK009', /would remove 27 rows, more than its max_rows 25/);
  });

  it('a required table is absent (PK008)', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE oidc_models`;
    await expectRefused(db, CLEANUP, 'PK008', /^required table is absent: public\.oidc_models \(table of step 1\)$/);
  });

  it('a BEFORE DELETE trigger keeps a session the step removes: the expectation after it fails (PK004; PK006 is retired)', async () => {
    const db = await fixture();
    await db.sql.unsafe(`CREATE FUNCTION keep_former() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.id = 'Xk2pL9mN4qR7sT1vW3yZa' THEN RETURN NULL; END IF; RETURN OLD; END $$;
      CREATE TRIGGER keep_former BEFORE DELETE ON oidc_models FOR EACH ROW EXECUTE FUNCTION keep_former();`);
    await expectRefused(db, CLEANUP, 'PK004', /no session names a missing or inactive account \(value 1, wanted = 0\)/);
  });
});

describe('rephlo-critical-tables (seed 002: alert on empty critical tables)', () => {
  it('writes nothing but its own report table', () => {
    const text = committedScript(CHECK);
    expect(text).not.toMatch(/^\s*(DELETE|UPDATE|TRUNCATE|MERGE)\b/im);
    const inserts = text.match(/INSERT INTO\s+\S+/g) ?? [];
    expect(inserts.length).toBe(4);
    expect(inserts.every((s) => s.endsWith('pg_temp.purgekit_report'))).toBe(true);
  });

  it('runs its expectations in a read-only transaction: a query that would write fails (25006) and changes nothing', async () => {
    const db = await fixture();
    // users becomes a view over a function that also deletes: reading it from a check must not write.
    await db.sql.unsafe(`ALTER TABLE users RENAME TO users_t;
      CREATE FUNCTION users_rows() RETURNS SETOF users_t LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM oauth_clients; RETURN QUERY SELECT * FROM users_t; END $$;
      CREATE VIEW users AS SELECT * FROM users_rows();`);
    await expectRefused(db, CHECK, '25006', /cannot execute DELETE in a read-only transaction/);
    expect(await rowCounts(db.sql, ['oauth_clients'])).toEqual({ oauth_clients: 4 });
  });

  it('passes on a healthy database, reports every count, and changes nothing', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, await script(CHECK));
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.results).toEqual([
      { item: 'expect 1', target: 'users is not empty', outcome: 'ok', rows: null, detail: 'value 9, wanted >= 1' },
      { item: 'expect 2', target: 'oauth_clients is not empty', outcome: 'ok', rows: null, detail: 'value 4, wanted >= 1' },
      { item: 'expect 3', target: 'oidc_models is not empty', outcome: 'ok', rows: null, detail: 'value 57, wanted >= 1' },
      { item: 'expect 4', target: 'models is not empty', outcome: 'ok', rows: null, detail: 'value 5, wanted >= 1' },
    ]);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('fails when users is empty, the state the investigation found (PK004)', async () => {
    const db = await fixture();
    await db.sql`DELETE FROM users`;
    await expectRefused(db, CHECK, 'PK004', /^expectation failed: users is not empty \(value 0, wanted >= 1\)$/);
  });

  it('names every failing expectation, and only those, in one message', async () => {
    const db = await fixture();
    await db.sql`DELETE FROM users`;
    await db.sql`DELETE FROM models`;
    const message = await expectRefused(db, CHECK, 'PK004');
    expect(message).toBe('expectation failed: users is not empty (value 0, wanted >= 1); models is not empty (value 0, wanted >= 1)');
  });

  it('fails, changing nothing, when a critical table does not exist at all', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE models`;
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, await script(CHECK));
    // Today the expectation's own query raises (42P01): a check has no required-table guard.
    expect(result).toMatchObject({ ok: false });
    expect(!result.ok && result.error.message).toMatch(/models/);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it.skipIf(!hasPsql())('runs in psql -v ON_ERROR_STOP=1 -f: exit 0 when healthy, 3 naming the empty table otherwise', async () => {
    const db = await fixture();
    const ok = runPsql(db.url, tempFile(committedScript(CHECK)));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/expect 3 +\| oidc_models is not empty +\| ok +\| +\| value 57, wanted >= 1/);
    await db.sql`DELETE FROM oauth_clients`;
    const before = await snapshot(db.sql);
    const failed = runPsql(db.url, tempFile(committedScript(CHECK)));
    expect(failed.status).toBe(3);
    expect(failed.stderr).toMatch(/expectation failed: oauth_clients is not empty \(value 0, wanted >= 1\)/);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});
