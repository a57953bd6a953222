/**
 * purgekit apply: each check failing on purpose -> exit 4, rolled back, database unchanged
 * (compared with snapshot(): every row and sequence), the failed check named with its numbers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { purgekit, tempAuditLog, validJson, why, type RunJson } from './run-helpers.js';

const NEXUS = 'nexus-purge-user';

async function nexus(setup?: string): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('nexus'));
  if (setup) await db.sql.unsafe(setup);
  return db;
}

/** Applies nexus-purge-user with `args`, expects exit 4 with error `code`, and the database unchanged. */
async function expectCheckFails(db: TestDb, args: string[], code: string, auditLog = tempAuditLog()): Promise<RunJson> {
  const before = await snapshot(db.sql);
  const r = await purgekit(['apply', NEXUS, ...args, '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', auditLog]);
  expect(r.code, why(r)).toBe(4);
  const json = validJson(r);
  expect(json.outcome).toBe('rolled-back');
  expect(json.error?.code).toBe(code);
  expect(r.stderr).toContain('rolled back: nothing was changed');
  expect(r.stderr).toContain(`failed: ${json.error!.message.split('\n')[0]}`);
  expect(await snapshot(db.sql)).toEqual(before);
  return json;
}

const ALICE = ['--email', 'alice@example.com', '--delete-owned-companies'];
const CAROL = ['--email', 'carol@example.com'];

describe('purgekit apply: a failed check rolls back (exit 4) and changes nothing', () => {
  it('a BEFORE DELETE trigger keeps a row a step removes: its foreign key stops the run (23503, exit 4; PK006 is retired)', async () => {
    const db = await nexus(`CREATE FUNCTION keep_tea() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.note = 'likes tea' THEN RETURN NULL; END IF; RETURN OLD; END $$;
      CREATE TRIGGER keep_tea BEFORE DELETE ON ai_memories FOR EACH ROW EXECUTE FUNCTION keep_tea();`);
    const json = await expectCheckFails(db, ALICE, '23503');
    expect(json.error!.message).toMatch(/"ai_memories"/);
    // The step reported what it really removed; the profile's step is where the run stopped.
    expect(json.steps.find((s) => s.step === 4)).toMatchObject({ outcome: 'removed', rows: 0 });
    expect(json.error!.at).toMatch(/Step 13 of 15/);
  });

  it('unplanned cascade: a table referencing user_profiles ON DELETE CASCADE is named (RUNNER)', async () => {
    const db = await nexus(`CREATE TABLE user_notes (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id) ON DELETE CASCADE, body text);
      INSERT INTO user_notes (user_id, body) VALUES ('auth|carol', 'one'), ('auth|carol', 'two'), ('auth|bob', 'keep');`);
    const json = await expectCheckFails(db, CAROL, 'RUNNER');
    expect(json.error!.message).toContain('unplanned change to public.user_notes: 2 deleted');
    // Every step ran (the check is after the last statement), and still nothing was committed.
    expect(json.steps.find((s) => s.step === 13)).toMatchObject({ outcome: 'removed', rows: 1 });
  });

  it('a failed runner check still reports the per-table changes it found in `tables` (JSON and audit log)', async () => {
    // docs/run-output.schema.json: tables is "every table the run changed (apply and rehearse)";
    // the audit record of a failed apply should carry the numbers that failed it.
    const db = await nexus(`CREATE TABLE user_notes (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id) ON DELETE CASCADE, body text);
      INSERT INTO user_notes (user_id, body) VALUES ('auth|carol', 'one'), ('auth|carol', 'two'), ('auth|bob', 'keep');`);
    const audit = tempAuditLog();
    const json = await expectCheckFails(db, CAROL, 'RUNNER', audit);
    const [record] = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { outcome: string; failedCheck: { code: string }; tables: unknown[] });
    expect(record).toMatchObject({ outcome: 'rolled-back', failedCheck: { code: 'RUNNER' } });
    const notes = { table: 'public.user_notes', inserted: 0, updated: 0, deleted: 2, truncated: false, plannedAs: null, removedBySteps: 0 };
    expect(json.tables).toContainEqual({ ...notes, schema: 'public', name: 'user_notes' });
    expect(json.tables).toContainEqual({ table: 'public.user_profiles', schema: 'public', name: 'user_profiles', inserted: 0, updated: 0, deleted: 1, truncated: false, plannedAs: 'step', removedBySteps: 1 });
    expect(record!.tables).toContainEqual(notes);
  });

  it('unplanned cascade two hops down: a table referencing ai_conversations ON DELETE CASCADE (RUNNER)', async () => {
    const db = await nexus(`CREATE TABLE conversation_tags (conversation_id integer NOT NULL REFERENCES ai_conversations (id) ON DELETE CASCADE, tag text);
      INSERT INTO conversation_tags VALUES (1, 'a'), (2, 'b'), (3, 'bob''s');`);
    const json = await expectCheckFails(db, ALICE, 'RUNNER');
    expect(json.error!.message).toContain('unplanned change to public.conversation_tags: 2 deleted');
  });

  it('unplanned cascade into partitions is reported for the partitioned parent (RUNNER)', async () => {
    const db = await nexus(`CREATE TABLE user_events (user_id text NOT NULL REFERENCES user_profiles (user_id) ON DELETE CASCADE, at date NOT NULL) PARTITION BY RANGE (at);
      CREATE TABLE user_events_2024 PARTITION OF user_events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      CREATE TABLE user_events_2025 PARTITION OF user_events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      INSERT INTO user_events VALUES ('auth|carol', '2024-05-01'), ('auth|carol', '2025-05-01'), ('auth|bob', '2025-06-01');`);
    const json = await expectCheckFails(db, CAROL, 'RUNNER');
    expect(json.error!.message).toContain('unplanned change to public.user_events: 2 deleted');
    expect(json.error!.message).not.toContain('user_events_20');
  });

  it('a trigger writing another table: AFTER DELETE on ai_memories inserting into a log (RUNNER)', async () => {
    // No serial column: nextval() is not rolled back, so a sequence would differ after any rollback.
    const db = await nexus(`CREATE TABLE deletion_log (what text, at timestamptz DEFAULT now());
      CREATE FUNCTION log_memory() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO deletion_log (what) VALUES ('memory ' || OLD.id); RETURN NULL; END $$;
      CREATE TRIGGER log_memory AFTER DELETE ON ai_memories FOR EACH ROW EXECUTE FUNCTION log_memory();`);
    const json = await expectCheckFails(db, ALICE, 'RUNNER');
    expect(json.error!.message).toContain('unplanned change to public.deletion_log: 1 inserted');
  });

  it('a trigger that TRUNCATEs another table is an unplanned change (RUNNER)', async () => {
    // TRUNCATE is not counted in pg_stat_xact_user_tables' n_tup_* columns (and it zeroes the counts of DML
    // done before it in the transaction), so a check built on those counters alone does not see it.
    const db = await nexus(`CREATE TABLE cache_entries (key text PRIMARY KEY, value text);
      INSERT INTO cache_entries VALUES ('a', '1'), ('b', '2');
      CREATE FUNCTION flush_cache() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN TRUNCATE cache_entries; RETURN NULL; END $$;
      CREATE TRIGGER flush_cache AFTER DELETE ON oauth_tokens FOR EACH STATEMENT EXECUTE FUNCTION flush_cache();`);
    const json = await expectCheckFails(db, CAROL, 'RUNNER');
    expect(json.error!.message).toContain('public.cache_entries');
  });

  it("a trigger deleting more rows of a step's own table than the step removed (RUNNER)", async () => {
    // Step 5 (oauth_tokens) fires a trigger that deletes Bob's memory: ai_memories loses 2 rows, step 4 removed 1.
    const db = await nexus(`CREATE FUNCTION forget_bob() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM ai_memories WHERE user_id = 'auth|bob'; RETURN NULL; END $$;
      CREATE TRIGGER forget_bob AFTER DELETE ON oauth_tokens FOR EACH STATEMENT EXECUTE FUNCTION forget_bob();`);
    const json = await expectCheckFails(db, ALICE, 'RUNNER');
    expect(json.error!.message).toContain('public.ai_memories: 2 rows deleted in all, but the steps removed 1');
  });

  it('a trigger updating a table of the plan besides its deletes (RUNNER)', async () => {
    const db = await nexus(`CREATE FUNCTION touch_bob() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE ai_conversations SET title = 'touched' WHERE user_id = 'auth|bob'; RETURN NULL; END $$;
      CREATE TRIGGER touch_bob AFTER DELETE ON oauth_tokens FOR EACH STATEMENT EXECUTE FUNCTION touch_bob();`);
    const json = await expectCheckFails(db, CAROL, 'RUNNER');
    expect(json.error!.message).toContain('public.ai_conversations: 1 updated besides');
  });

  it('a trigger updating a preserved table is caught by the script itself (PK005): a preserved row may have stopped matching', async () => {
    const db = await nexus(`CREATE FUNCTION touch_bob() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE user_profiles SET created_at = '2030-01-01' WHERE user_id = 'auth|bob'; RETURN NULL; END $$;
      CREATE TRIGGER touch_bob AFTER DELETE ON oauth_tokens FOR EACH STATEMENT EXECUTE FUNCTION touch_bob();`);
    const json = await expectCheckFails(db, CAROL, 'PK005');
    expect(json.error!.message).toContain('2 rows were deleted or updated there but the steps removed 1');
  });

  it('preserved row hit: a trigger deletes the admin during the purge (PK005)', async () => {
    const db = await nexus(`CREATE FUNCTION drop_admin() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM user_profiles WHERE role = 'admin'; RETURN NULL; END $$;
      CREATE TRIGGER drop_admin AFTER DELETE ON ai_memories FOR EACH STATEMENT EXECUTE FUNCTION drop_admin();`);
    const json = await expectCheckFails(db, CAROL, 'PK005');
    expect(json.error!.message).toMatch(/preserve rule 1 on public\.user_profiles: 2 rows were deleted or updated there but the steps removed 1/);
  });

  it('the subject itself is preserved (PK005), refused before any step', async () => {
    const db = await nexus();
    const json = await expectCheckFails(db, ['--email', 'admin@example.com'], 'PK005');
    expect(json.error!.message).toMatch(/preserve rule 1/);
    expect(json.steps).toEqual([]);
  });

  it('an expectation fails (PK004)', async () => {
    const db = await nexus(`UPDATE user_profiles SET role = 'owner' WHERE role = 'admin'`);
    const json = await expectCheckFails(db, CAROL, 'PK004');
    expect(json.error!.message).toMatch(/an admin remains \(value 0, wanted >= 1\)/);
  });

  it('a required table is absent (PK008)', async () => {
    const db = await nexus('DROP TABLE user_preferences');
    const json = await expectCheckFails(db, CAROL, 'PK008');
    expect(json.error!.message).toContain('public.user_preferences');
  });

  it('a foreign key stops the run (owned company without --delete-owned-companies): exit 4, unchanged', async () => {
    const db = await nexus();
    const json = await expectCheckFails(db, ['--user-id', 'auth|alice'], '23503');
    expect(json.error!.message).toMatch(/foreign key/);
  });
});
