import { describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, loadFixture, rowCounts, runPsql, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';
import { rowsOf } from './helpers/nexus.js';
import { renderedScript, tempFile } from './helpers/scripts.js';

/** Seed 000: purge one Nexus user and everything they own; every guard of a purge script. */
const POLICY = 'nexus-purge-user';

async function fixture(): Promise<TestDb> {
  return createTestDatabase(loadFixture('nexus'));
}


/** Runs the rendered script as a web SQL editor would and expects it to fail with `code`, changing nothing. */
async function expectRefused(db: TestDb, values: Record<string, string | boolean>, code: string, message?: RegExp): Promise<void> {
  const before = await snapshot(db.sql);
  const result = await runSimpleQuery(db.url, await renderedScript(POLICY, values));
  expect(result).toMatchObject({ ok: false, error: { code } });
  if (message && !result.ok) expect(result.error.message).toMatch(message);
  expect(await snapshot(db.sql)).toEqual(before);
}

describe('nexus-purge-user (seed 000): execution', () => {
  it('purges a user found by any email, case-insensitively, with owned companies when the flag is set', async () => {
    const db = await fixture();
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY, { email: 'ALICE@example.com', 'delete-owned-companies': true }));
    expect(result).toMatchObject({ ok: true });
    expect(await rowsOf(db, 'auth|alice')).toBe(0);
    expect(await rowCounts(db.sql, ['user_profiles', 'ai_messages', 'ai_conversations', 'companies', 'company_members'])).toEqual({
      user_profiles: 5, ai_messages: 1, ai_conversations: 1, companies: 1, company_members: 2,
    });
    // Bob's membership of Alice's company went with the company (ON DELETE CASCADE); his own rows stay.
    expect(await rowsOf(db, 'auth|bob')).toBe(5);
    const report = result.ok ? result.results : [];
    expect(report).toContainEqual({ item: 'subject', target: 'public.user_profiles', outcome: 'matched', rows: '1', detail: null });
    expect(report).toContainEqual({ item: 'step 1', target: 'public.ai_messages', outcome: 'removed', rows: '3', detail: null });
    expect(report).toContainEqual(expect.objectContaining({ item: 'step 2', outcome: 'absent' }));
    expect(report).toContainEqual(expect.objectContaining({ item: 'step 12', target: 'public.companies', outcome: 'removed', rows: '1' }));
    expect(report).toContainEqual(expect.objectContaining({ item: 'expect 1', outcome: 'ok' }));
  });

  it('finds by business or personal email too, and by user id before email', async () => {
    const db = await fixture();
    expect(await runSimpleQuery(db.url, await renderedScript(POLICY, { email: 'bob@HOME.example', 'delete-owned-companies': true }))).toMatchObject({ ok: true });
    expect(await rowsOf(db, 'auth|bob')).toBe(0);
    // Both given: the first lookup (user_id) wins, the email is ignored.
    expect(await runSimpleQuery(db.url, await renderedScript(POLICY, { 'user-id': 'auth|carol', email: 'admin@example.com' }))).toMatchObject({ ok: true });
    expect(await rowsOf(db, 'auth|carol')).toBe(0);
    expect(await rowCounts(db.sql, ['user_profiles'])).toEqual({ user_profiles: 4 });
  });

  it('skips owned companies without the flag, so the owner cannot be removed: the FK fails and nothing changes', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY, { 'user-id': 'auth|alice' }));
    expect(result).toMatchObject({ ok: false, error: { code: '23503' } });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('deletes from an optional table when it exists', async () => {
    const db = await fixture();
    await db.sql.unsafe(`CREATE TABLE ai_message_attachments (id serial PRIMARY KEY, conversation_id integer NOT NULL REFERENCES ai_conversations (id));
      INSERT INTO ai_message_attachments (conversation_id) VALUES (1), (1), (3);`);
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY, { email: 'alice@example.com', 'delete-owned-companies': true }));
    expect(result.ok && result.results).toContainEqual(expect.objectContaining({ item: 'step 2', outcome: 'removed', rows: '2' }));
    expect(await rowCounts(db.sql, ['ai_message_attachments'])).toEqual({ ai_message_attachments: 1 });
  });

  it('purges several matching users only with force_multi', async () => {
    const db = await fixture();
    await expectRefused(db, { email: 'shared@example.com' }, 'PK003', /2 user_profiles rows matched/);
    expect(await runSimpleQuery(db.url, await renderedScript(POLICY, { email: 'shared@example.com', 'force-multi': true }))).toMatchObject({ ok: true });
    expect((await rowsOf(db, 'auth|dup1')) + (await rowsOf(db, 'auth|dup2'))).toBe(0);
  });

  it.skipIf(!hasPsql())('runs unchanged in psql -v ON_ERROR_STOP=1 -f, and stops at a failed guard', async () => {
    const db = await fixture();
    const ok = runPsql(db.url, tempFile(await renderedScript(POLICY, { email: 'carol@example.com' })));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/step 13 +\| public\.user_profiles +\| removed +\| +1/);
    expect(await rowsOf(db, 'auth|carol')).toBe(0);
    const before = await snapshot(db.sql);
    const refused = runPsql(db.url, tempFile(await renderedScript(POLICY, { email: 'nobody@example.com' })));
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/no user_profiles row matched/);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('nexus-purge-user (seed 000): every guard raises and the database is unchanged', () => {
  it('no lookup parameter given (PK001)', async () => {
    await expectRefused(await fixture(), {}, 'PK001', /set user_id, or email/);
  });

  it('no subject matched (PK002)', async () => {
    await expectRefused(await fixture(), { email: 'nobody@example.com' }, 'PK002');
  });

  it('the subject is a preserved row (PK005)', async () => {
    await expectRefused(await fixture(), { email: 'admin@example.com' }, 'PK005', /preserve rule 1/);
  });

  it('a trigger removes a preserved row during the purge (PK005)', async () => {
    const db = await fixture();
    await db.sql.unsafe(`CREATE FUNCTION drop_admin() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM user_profiles WHERE role = 'admin'; RETURN NULL; END $$;
      CREATE TRIGGER drop_admin AFTER DELETE ON ai_memories FOR EACH STATEMENT EXECUTE FUNCTION drop_admin();`);
    await expectRefused(db, { email: 'carol@example.com' }, 'PK005', /preserve rule 1 on public\.user_profiles: 2 rows were deleted or updated there but the steps removed 1/);
  });

  it('a BEFORE DELETE trigger keeps a row the step removes: the row left behind fails its foreign key (23503; PK006 is retired)', async () => {
    const db = await fixture();
    // A BEFORE DELETE trigger that silently keeps some rows. Each step is one DELETE now (no count
    // before it to compare with, docs/FORMATS.md): the kept memory still references alice, so
    // deleting her profile fails its foreign key and nothing changes.
    await db.sql.unsafe(`CREATE FUNCTION keep_tea() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.note = 'likes tea' THEN RETURN NULL; END IF; RETURN OLD; END $$;
      CREATE TRIGGER keep_tea BEFORE DELETE ON ai_memories FOR EACH ROW EXECUTE FUNCTION keep_tea();`);
    await expectRefused(db, { email: 'alice@example.com', 'delete-owned-companies': true }, '23503', /"ai_memories"/);
  });

  it('an expectation fails (PK004)', async () => {
    const db = await fixture();
    await db.sql`UPDATE user_profiles SET role = 'owner' WHERE role = 'admin'`;
    await expectRefused(db, { email: 'carol@example.com' }, 'PK004', /an admin remains \(value 0, wanted >= 1\)/);
  });

  it('a required table is absent (PK008), named in the message', async () => {
    const db = await fixture();
    await db.sql`DROP TABLE user_preferences`;
    await expectRefused(db, { email: 'carol@example.com' }, 'PK008', /public\.user_preferences \(table of step 10\)/);
  });

  it('a row referencing the subject is locked out until COMMIT (FOR UPDATE on the subject)', async () => {
    const db = await fixture();
    const script = await renderedScript(POLICY, { email: 'carol@example.com' });
    // Run everything up to the steps in one session, keep the transaction open, try an insert from another.
    const upToSteps = script.slice(0, script.indexOf('-- Step 1 of'));
    const held = await db.sql.reserve();
    await held.unsafe(upToSteps);
    const other = db.sql`INSERT INTO ai_memories (user_id, note) VALUES ('auth|carol', 'late') RETURNING id`;
    const waited = await Promise.race([other.then(() => 'inserted'), new Promise((r) => setTimeout(() => r('waiting'), 500))]);
    expect(waited).toBe('waiting');
    await held.unsafe('ROLLBACK');
    held.release();
    expect((await other).length).toBe(1);
  });
});
