import { describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, rowCounts, runPsql, runSimpleQuery, type TestDb } from './harness/db.js';
import { userSnapshot as snapshot, withOutbox } from './helpers/outbox.js';
import { committedScript, renderedScript, tempFile } from './helpers/scripts.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';

/**
 * Seed 001: Vedfolnir's delete_user_data.py as two policies, run the way an operator would:
 * the rendered script pasted into a SQL editor (one simple-protocol query) or psql -f.
 */
const DELETE = 'vedfolnir-delete-user';
const EXPIRE = 'vedfolnir-expire-sessions';

/** Every table of the fixture, in the delete policy's step order. */
const TABLES = ['images', 'posts', 'job_audit_log', 'caption_generation_tasks', 'caption_generation_user_settings', 'processing_runs',
  'batch_operations', 'user_sessions', 'platform_connections', 'user_audit_log', 'gdpr_audit_log', 'storage_event_log',
  'storage_overrides', 'users'];

type Values = Record<string, string | boolean>;

/** The fixture with purgekit.outbox: the delete policy queues its side effects there (after_commit). */
async function fixture(): Promise<TestDb> {
  return createTestDatabase(withOutbox('vedfolnir'));
}

async function idOf(db: TestDb, username: string): Promise<string> {
  const [row] = await db.sql<{ id: number }[]>`SELECT id FROM users WHERE username = ${username}`;
  return String(row!.id);
}

async function column(db: TestDb, query: string): Promise<unknown[]> {
  return (await db.sql.unsafe<{ v: unknown }[]>(query)).map((r) => r.v);
}

/** Runs the rendered script as a web SQL editor would; returns the closing result set. */
async function run(db: TestDb, policy: string, values: Values): Promise<Record<string, unknown>[]> {
  const result = await runSimpleQuery(db.url, await renderedScript(policy, values));
  if (!result.ok) throw new Error(`script failed: ${result.error.code} ${result.error.message}`);
  return result.results;
}

/** Expects the script to fail with `code` (and `message`) and the database to be byte-for-byte unchanged. */
async function expectRefused(db: TestDb, policy: string, values: Values, code: string, message?: RegExp): Promise<void> {
  const before = await snapshot(db.sql);
  const result = await runSimpleQuery(db.url, await renderedScript(policy, values));
  expect(result).toMatchObject({ ok: false, error: { code } });
  if (message && !result.ok) expect(result.error.message).toMatch(message);
  expect(await snapshot(db.sql)).toEqual(before);
}

function changed(before: Record<string, string>, after: Record<string, string>): string[] {
  return Object.keys(before).filter((k) => before[k] !== after[k]).sort();
}

/** The report rows of the steps, as { table: rows removed }. */
function removedByStep(report: Record<string, unknown>[]): Record<string, number> {
  return Object.fromEntries(
    report.filter((r) => String(r['item']).startsWith('step ') && r['outcome'] === 'removed')
      .map((r) => [String(r['target']).replace(/^public\./, ''), Number(r['rows'])]),
  );
}

describe('vedfolnir-delete-user (seed 001): execution', () => {
  it('deletes alice (by username) and everything she owns, child first; other users keep every row', async () => {
    const db = await fixture();
    const before = await rowCounts(db.sql, TABLES);
    const report = await run(db, DELETE, { username: 'alice' });

    const step = (n: number, table: string, rows: number) => ({ item: `step ${n}`, target: `public.${table}`, outcome: 'removed', rows: String(rows), detail: null });
    expect(report).toEqual([
      { item: 'subject', target: 'public.users', outcome: 'matched', rows: '1', detail: null },
      step(1, 'images', 4),
      step(2, 'posts', 3),
      step(3, 'job_audit_log', 3),
      step(4, 'caption_generation_tasks', 2),
      step(5, 'caption_generation_user_settings', 2),
      step(6, 'processing_runs', 2),
      step(7, 'batch_operations', 1),
      step(8, 'user_sessions', 2),
      step(9, 'platform_connections', 2),
      step(10, 'user_audit_log', 2),
      step(11, 'gdpr_audit_log', 1),
      step(12, 'storage_event_log', 1),
      step(13, 'storage_overrides', 0),
      step(14, 'users', 1),
      { item: 'expect 1', target: 'an active admin remains', outcome: 'ok', rows: null, detail: 'value 1, wanted >= 1' },
      { item: 'expect 2', target: 'the user is gone', outcome: 'ok', rows: null, detail: 'value 0, wanted = 0' },
    ]);

    // The report tells the truth: per table, rows before - rows after = rows the step reported.
    // (images and caption settings would also have gone by cascade; deleted first, they are counted.)
    const after = await rowCounts(db.sql, TABLES);
    expect(Object.fromEntries(TABLES.map((t) => [t, before[t]! - after[t]!]))).toEqual(removedByStep(report));

    // What remains is exactly everyone else's.
    expect(await column(db, 'SELECT username AS v FROM users ORDER BY 1')).toEqual(['admin', 'bob', 'carol', 'olaf']);
    expect(await column(db, 'SELECT name AS v FROM platform_connections ORDER BY 1')).toEqual(['Admin Mastodon', 'Bob Pixelfed']);
    expect(await column(db, 'SELECT post_id AS v FROM posts ORDER BY 1')).toEqual(['admin-m1', 'bob-p1', 'bob-p2']);
    expect(await column(db, 'SELECT local_path AS v FROM images ORDER BY 1')).toEqual(['storage/images/b1.jpg', 'storage/images/b2.jpg', 'storage/images/v1.png']);
    expect(await column(db, 'SELECT id AS v FROM caption_generation_tasks ORDER BY 1')).toEqual(['0d7f3c2e-5a1b-4c8e-9f10-bb0000000001']);
    expect(await column(db, 'SELECT session_id AS v FROM user_sessions ORDER BY 1')).toEqual(['sess-admin', 'sess-bob', 'sess-carol']);
    expect(await column(db, 'SELECT action AS v FROM user_audit_log ORDER BY 1')).toEqual(['login', 'user_created']);
    expect(await column(db, 'SELECT action_type AS v FROM gdpr_audit_log ORDER BY 1')).toEqual(['consent_given']);
    expect(await column(db, 'SELECT event_type AS v FROM storage_event_log ORDER BY id')).toEqual(['limit_reached', 'override_activated', 'override_activated', 'override_deactivated']);
    expect(after).toMatchObject({ job_audit_log: 1, caption_generation_user_settings: 1, processing_runs: 1, batch_operations: 1, storage_overrides: 2 });
    // Nothing that points at alice is left anywhere (user_id columns that are users.id).
    const [left] = await db.sql<{ n: number }[]>`
      SELECT (SELECT count(*) FROM platform_connections WHERE user_id = 2) + (SELECT count(*) FROM caption_generation_tasks WHERE user_id = 2)
           + (SELECT count(*) FROM user_sessions WHERE user_id = 2) + (SELECT count(*) FROM job_audit_log WHERE user_id = 2)
           + (SELECT count(*) FROM storage_event_log WHERE user_id = 2) + (SELECT count(*) FROM posts WHERE user_id LIKE '%/alice')
           + (SELECT count(*) FROM processing_runs WHERE user_id LIKE '%/alice') AS n`;
    expect(Number(left!.n)).toBe(0);
  });

  it('deletes a former admin (by user_id) with the storage override he granted and every event about it', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const report = await run(db, DELETE, { 'user-id': await idOf(db, 'olaf') });
    expect(removedByStep(report)).toEqual({
      images: 0, posts: 0, job_audit_log: 0, caption_generation_tasks: 0, caption_generation_user_settings: 0, processing_runs: 0,
      batch_operations: 0, user_sessions: 0, platform_connections: 0, user_audit_log: 0, gdpr_audit_log: 0,
      storage_event_log: 2, storage_overrides: 1, users: 1,
    });
    expect(changed(before, await snapshot(db.sql))).toEqual(['public.storage_event_log', 'public.storage_overrides', 'public.users']);
    // Event 5 was logged by admin but is about olaf's override: it had to go with the override.
    expect(await column(db, 'SELECT id AS v FROM storage_event_log ORDER BY id')).toEqual([1, 3, 4]);
    expect(await column(db, 'SELECT reason AS v FROM storage_overrides')).toEqual(['conference week']);
  });

  it('uses the first lookup whose parameters are given: user_id wins over username', async () => {
    const db = await fixture();
    await run(db, DELETE, { 'user-id': await idOf(db, 'bob'), username: 'alice' });
    expect(await column(db, 'SELECT username AS v FROM users ORDER BY 1')).toEqual(['admin', 'alice', 'carol', 'olaf']);
  });

  it('skips the storage steps, reported as absent, on a database from before storage limits', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE storage_event_log, storage_overrides`;
    const report = await run(db, DELETE, { username: 'bob' });
    expect(report).toContainEqual({ item: 'step 12', target: 'public.storage_event_log', outcome: 'absent', rows: null, detail: 'optional table is absent; skipped' });
    expect(report).toContainEqual({ item: 'step 13', target: 'public.storage_overrides', outcome: 'absent', rows: null, detail: 'optional table is absent; skipped' });
    expect(report).toContainEqual(expect.objectContaining({ item: 'step 14', outcome: 'removed', rows: '1' }));
    expect(await column(db, 'SELECT username AS v FROM users ORDER BY 1')).toEqual(['admin', 'alice', 'carol', 'olaf']);
  });

  it('rejects a user_id that is not an integer before any SQL exists', async () => {
    await expect(renderedScript(DELETE, { 'user-id': '2 OR true' })).rejects.toThrow(/not a valid integer/);
  });

  it.skipIf(!hasPsql())('runs unchanged in psql -v ON_ERROR_STOP=1 -f, and stops at a failed guard', async () => {
    const db = await fixture();
    const ok = runPsql(db.url, tempFile(await renderedScript(DELETE, { username: 'bob' })));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/step 2 +\| public\.posts +\| removed +\| +2 \|/);
    expect(ok.stdout).toMatch(/step 14 +\| public\.users +\| removed +\| +1 \|/);
    expect(await column(db, 'SELECT username AS v FROM users ORDER BY 1')).toEqual(['admin', 'alice', 'carol', 'olaf']);
    expect(await rowCounts(db.sql, ['posts', 'images', 'platform_connections'])).toEqual({ posts: 4, images: 5, platform_connections: 3 });

    const before = await snapshot(db.sql);
    const refused = runPsql(db.url, tempFile(await renderedScript(DELETE, { username: 'bob' })));
    expect(refused.status).toBe(3);
    expect(refused.stderr).toMatch(/no users row matched/);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('vedfolnir-delete-user (seed 001): every guard raises and the database is unchanged', () => {
  it('no lookup parameter given (PK001)', async () => {
    await expectRefused(await fixture(), DELETE, {}, 'PK001', /no lookup parameters given: set user_id, or username/);
  });

  it('no subject matched (PK002): an unknown id, and a username in the wrong case', async () => {
    const db = await fixture();
    await expectRefused(db, DELETE, { 'user-id': '999' }, 'PK002', /no users row matched/);
    await expectRefused(db, DELETE, { username: 'Alice' }, 'PK002', /no users row matched/);
  });

  it('an expectation fails (PK004): deleting the only active admin', async () => {
    await expectRefused(await fixture(), DELETE, { username: 'admin' }, 'PK004', /^expectation failed: an active admin remains \(value 0, wanted >= 1\)$/);
  });

  it('a BEFORE DELETE trigger keeps a session a step removes: its foreign key stops the run (23503; PK006 is retired)', async () => {
    const db = await fixture();
    await db.sql.unsafe(`CREATE FUNCTION keep_phone_session() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.session_id = 'sess-alice-phone' THEN RETURN NULL; END IF; RETURN OLD; END $$;
      CREATE TRIGGER keep_phone_session BEFORE DELETE ON user_sessions FOR EACH ROW EXECUTE FUNCTION keep_phone_session();`);
    await expectRefused(db, DELETE, { username: 'alice' }, '23503', /"user_sessions"/);
  });

  it('a required table is absent (PK008), named in the message', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE gdpr_audit_log`;
    await expectRefused(db, DELETE, { username: 'alice' }, 'PK008', /required table is absent: public\.gdpr_audit_log \(table of step 11\)$/);
  });

  it('a table the policy does not know references the user: the FK stops the delete (23503)', async () => {
    const db = await fixture();
    await db.sql.unsafe(`CREATE TABLE api_keys (id serial PRIMARY KEY, user_id integer NOT NULL REFERENCES users (id), key_hash text);
      INSERT INTO api_keys (user_id, key_hash) VALUES (2, 'sha256:alice');`);
    await expectRefused(db, DELETE, { username: 'alice' }, '23503', /api_keys/);
  });
});

describe('vedfolnir-expire-sessions (seed 001 --expire-sessions-only)', () => {
  it("removes only the user's sessions; the user and all their data stay", async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const report = await run(db, EXPIRE, { 'user-id': await idOf(db, 'alice') });
    expect(report).toEqual([
      { item: 'subject', target: 'public.users', outcome: 'matched', rows: '1', detail: null },
      { item: 'step 1', target: 'public.user_sessions', outcome: 'removed', rows: '2', detail: null },
      { item: 'expect 1', target: 'the user still exists', outcome: 'ok', rows: null, detail: 'value 1, wanted >= 1' },
    ]);
    expect(changed(before, await snapshot(db.sql))).toEqual(['public.user_sessions']);
    expect(await column(db, 'SELECT session_id AS v FROM user_sessions ORDER BY 1')).toEqual(['sess-admin', 'sess-bob', 'sess-carol']);
  });

  it('finds the user by username too', async () => {
    const db = await fixture();
    const report = await run(db, EXPIRE, { username: 'carol' });
    expect(report).toContainEqual({ item: 'step 1', target: 'public.user_sessions', outcome: 'removed', rows: '1', detail: null });
    expect(await column(db, 'SELECT session_id AS v FROM user_sessions ORDER BY 1')).toEqual(['sess-admin', 'sess-alice-laptop', 'sess-alice-phone', 'sess-bob']);
  });

  it('no lookup parameter given (PK001)', async () => {
    await expectRefused(await fixture(), EXPIRE, {}, 'PK001', /set user_id, or username/);
  });

  it('no subject matched (PK002)', async () => {
    await expectRefused(await fixture(), EXPIRE, { username: 'nobody' }, 'PK002', /no users row matched/);
  });

  it('an expectation fails (PK004): a trigger removes users whose last session ended', async () => {
    const db = await fixture();
    await db.sql.unsafe(`INSERT INTO users (username, email, password_hash) VALUES ('dave', 'dave@example.com', 'x');
      INSERT INTO user_sessions (session_id, user_id) SELECT 'sess-dave', id FROM users WHERE username = 'dave';
      CREATE FUNCTION drop_sessionless_users() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM users u WHERE u.id IN (SELECT user_id FROM gone)
          AND NOT EXISTS (SELECT FROM user_sessions s WHERE s.user_id = u.id);
        RETURN NULL;
      END $$;
      CREATE TRIGGER drop_sessionless_users AFTER DELETE ON user_sessions REFERENCING OLD TABLE AS gone
        FOR EACH STATEMENT EXECUTE FUNCTION drop_sessionless_users();`);
    await expectRefused(db, EXPIRE, { username: 'dave' }, 'PK004', /^expectation failed: the user still exists \(value 0, wanted >= 1\)$/);
  });

  it('a required table is absent (PK008)', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE user_sessions`;
    await expectRefused(db, EXPIRE, { username: 'alice' }, 'PK008', /public\.user_sessions \(table of step 1\)/);
  });
});

describe('vedfolnir-delete-user (seed 001): "final confirmation with exact username" (guard.confirm: [database, subject])', () => {
  // At a terminal (list, select, dry run, proceed?, type the username): test/confirm-subject.test.ts.
  const env = { REDIS_URL: 'redis://127.0.0.1:1', VEDFOLNIR_STORAGE: '/nonexistent' };

  it('apply without a terminal needs --confirm-subject with the exact username: any other is refused (exit 6), nothing changed', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    for (const given of [[], ['Alice'], ['alice '], ['bob']]) {
      const r = await purgekit(['apply', DELETE, '--username', 'alice', '--confirm', db.name, ...given.flatMap((v) => ['--confirm-subject', v]), '--connection', db.url, '--audit-log', tempAuditLog()], { env });
      expect(r.code, why(r)).toBe(6);
      expect(await snapshot(db.sql)).toEqual(before);
    }
    // By id too: the username typed is the user's whom the id finds.
    const byId = await purgekit(['apply', DELETE, '--user-id', await idOf(db, 'bob'), '--confirm', db.name, '--confirm-subject', 'alice', '--connection', db.url, '--audit-log', tempAuditLog()], { env });
    expect(byId.code, why(byId)).toBe(6);
    expect(byId.stderr).toMatch(/does not equal the username of the matched subject/);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('the file says apply asks for the username, and that run by hand it cannot ask (it still runs, as above)', () => {
    const header = committedScript(DELETE).split('\nBEGIN;')[0]!;
    expect(header).toContain('--confirm --confirm-subject <username>');
    expect(header).toContain('-- guard.confirm: subject: purgekit apply shows the username of each matched subject and runs only');
    expect(header).toContain('This file cannot ask: run by hand, it');
  });
});
