/**
 * purgekit verify <check policy>: the expectations, read-only; exit 4 if any fails.
 */
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot } from './harness/db.js';
import { purgekit, validJson, why } from './run-helpers.js';

const CHECK = 'rephlo-critical-tables';

describe('purgekit verify', () => {
  it('passes on the rephlo fixture (exit 0), fails with users emptied (exit 4, the failed check named), changes nothing', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const before = await snapshot(db.sql);
    const ok = await purgekit(['verify', CHECK, '--connection', db.url, '--json']);
    expect(ok.code, why(ok)).toBe(0);
    const passed = validJson(ok);
    expect(passed).toMatchObject({ command: 'verify', mode: 'verify', kind: 'check', outcome: 'read-only', error: null, subject: null, steps: [], tables: [] });
    expect(passed.expectations.map((e) => [e.name, e.outcome])).toEqual([
      ['users is not empty', 'ok'], ['oauth_clients is not empty', 'ok'], ['oidc_models is not empty', 'ok'], ['models is not empty', 'ok'],
    ]);
    expect(ok.stderr).toMatch(/expect: users is not empty: ok \(value 9, wanted >= 1\)/);
    expect(await snapshot(db.sql)).toEqual(before);

    await db.sql`DELETE FROM users`; // subscriptions and credit_allocation go with it (ON DELETE CASCADE)
    const emptied = await snapshot(db.sql);
    const failed = await purgekit(['verify', CHECK, '--connection', db.url, '--json']);
    expect(failed.code, why(failed)).toBe(4);
    const json = validJson(failed);
    // Read-only: nothing was written, so nothing was rolled back either.
    expect(json).toMatchObject({ outcome: 'read-only', error: { code: 'PK004', message: expect.stringContaining('users is not empty') } });
    expect(json.error!.message).not.toContain('oauth_clients');
    // A pipeline gets every expectation's value and outcome, the failed one and those that held.
    expect(json.expectations.map((e) => [e.name, e.outcome, e.detail])).toEqual([
      ['users is not empty', 'failed', 'value 0, wanted >= 1'],
      ['oauth_clients is not empty', 'ok', expect.stringMatching(/^value \d+, wanted >= 1$/)],
      ['oidc_models is not empty', 'ok', expect.stringMatching(/^value \d+, wanted >= 1$/)],
      ['models is not empty', 'ok', expect.stringMatching(/^value \d+, wanted >= 1$/)],
    ]);
    expect(failed.stderr).toMatch(/expect: users is not empty: failed \(value 0, wanted >= 1\)/);
    expect(failed.stderr).toMatch(/users is not empty/);
    expect(await snapshot(db.sql)).toEqual(emptied);
  });

  it('verify runs check policies only: a purge policy is a usage error (exit 2); plan/apply refuse a check policy', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const purge = await purgekit(['verify', 'nexus-purge-user', '--email', 'carol@example.com', '--connection', db.url]);
    expect(purge.code, why(purge)).toBe(2);
    expect(purge.stderr).toContain('verify runs check policies');
    const plan = await purgekit(['plan', CHECK, '--connection', db.url]);
    expect(plan.code, why(plan)).toBe(2);
    expect(plan.stderr).toContain(`purgekit verify ${CHECK}`);
  });

  it('verify is read-only: a check query that writes through a function fails instead of writing', async () => {
    // A check query may call a function; the transaction is read-only, so a volatile function that writes cannot.
    const db = await createTestDatabase(loadFixture('rephlo'));
    await db.sql.unsafe(`CREATE TABLE touched (at timestamptz);
      CREATE FUNCTION models_count() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN INSERT INTO touched VALUES (now()); RETURN (SELECT count(*) FROM models); END $$;
      ALTER TABLE models RENAME TO models_real; CREATE VIEW models AS SELECT * FROM models_real WHERE models_count() > 0;`);
    const before = await snapshot(db.sql);
    const r = await purgekit(['verify', CHECK, '--connection', db.url, '--json']);
    expect(r.code, why(r)).not.toBe(0);
    expect(r.json?.error?.code).toBe('25006'); // read_only_sql_transaction
    expect(await snapshot(db.sql)).toEqual(before);
  });
});
