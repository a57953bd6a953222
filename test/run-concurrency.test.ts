/**
 * purgekit apply next to other sessions: it never hangs behind a lock (lock_timeout; a timeout is
 * transient, exit 7: rolled back, safe to retry), and a
 * concurrent insert of a child row of the subject waits for the run and then fails its foreign
 * key, so no orphan is left.
 */
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { purgekit, sleep, tempAuditLog, validJson, why } from './run-helpers.js';

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

describe('purgekit apply and other sessions', () => {
  it('a row lock held by another session: fails at --lock-timeout (exit 7), rolled back, unchanged', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const holder = await db.sql.reserve();
    try {
      await holder`BEGIN`;
      // Step 5 (oauth_tokens) needs this row: the run waits for it when it locks the steps' rows, parents first, before the first delete.
      const locked = await holder`SELECT id FROM oauth_tokens WHERE user_id = 'auth|alice' FOR UPDATE`;
      expect(locked.length).toBe(1);
      const planArgs = [NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--connection', db.url, '--lock-timeout', '500ms', '--json'];
      // The dry run is read-only and takes no row locks: it is not held up.
      const plan = await purgekit(['plan', ...planArgs]);
      expect(plan.code, why(plan)).toBe(0);
      // A rehearsal takes the same locks as apply, so it times out the same way.
      const rehearse = await purgekit(['plan', '--rehearse', ...planArgs]);
      expect(rehearse.code, why(rehearse)).toBe(7);
      expect(validJson(rehearse).error).toMatchObject({ code: '55P03' });
      const r = await purgekit(['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name,
        '--connection', db.url, '--lock-timeout', '500ms', '--json', '--audit-log', tempAuditLog()]);
      expect(r.code, why(r)).toBe(7);
      expect(r.ms).toBeLessThan(10_000);
      const json = validJson(r);
      // Well under the default lock timeout (5 s): the flag was honoured.
      expect(json.durationMs).toBeLessThan(4_000);
      expect(json).toMatchObject({ outcome: 'rolled-back', error: { code: '55P03', message: expect.stringMatching(/^lock timeout/) } });
      expect(json.error!.at).toMatch(/Step 5 of 15/);
      expect(r.stderr).toMatch(/failed: lock timeout.*rolled back, nothing was changed; safe to retry/);
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('an uncommitted child row of the subject in another session: the subject lock times out, exit 7, unchanged', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const holder = await db.sql.reserve();
    try {
      await holder`BEGIN`;
      // (onboarding_progress has no sequence, so the rollback leaves the snapshot equal.) Its FK check
      // holds FOR KEY SHARE on Carol's user_profiles row, which the run's FOR UPDATE waits for.
      await holder`INSERT INTO onboarding_progress VALUES ('auth|carol', 1)`;
      const r = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name,
        '--connection', db.url, '--lock-timeout', '300ms', '--json', '--audit-log', tempAuditLog()]);
      expect(r.code, why(r)).toBe(7);
      expect(r.ms).toBeLessThan(10_000);
      expect(validJson(r)).toMatchObject({ outcome: 'rolled-back', error: { code: '55P03', message: expect.stringMatching(/lock timeout/) } });
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('--statement-timeout stops a statement that runs too long: exit 7, rolled back, unchanged', async () => {
    const db = await nexus(`CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
      CREATE TRIGGER slow_down BEFORE DELETE ON user_preferences FOR EACH STATEMENT EXECUTE FUNCTION slow_down();`);
    const before = await snapshot(db.sql);
    const r = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url,
      '--statement-timeout', '300ms', '--json', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(7);
    expect(validJson(r)).toMatchObject({ outcome: 'rolled-back', error: { code: '57014', message: expect.stringMatching(/^statement timeout/), at: expect.stringMatching(/Step 10 of 15/) } });
    expect(r.json!.durationMs).toBeLessThan(2_500);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('a child row inserted while the run is under way waits for it, then fails its foreign key: no orphan', async () => {
    // A test-only trigger slows step 10 so that the run is mid-flight, holding the subject lock.
    const db = await nexus(`CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
      CREATE TRIGGER slow_down BEFORE DELETE ON user_preferences FOR EACH STATEMENT EXECUTE FUNCTION slow_down();`);
    const run = purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    await waitFor('the run to reach the slow step', async () => {
      const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event = 'PgSleep'`;
      return row!.n === 1;
    });
    // Steps 1-9 (ai_memories is step 4) have run: this row would be an orphan if it got in.
    const started = Date.now();
    const insert = db.sql`INSERT INTO ai_memories (user_id, note) VALUES ('auth|carol', 'written during the purge')`.then(
      () => ({ ok: true as const, ms: Date.now() - started }),
      (e: { code?: string; message?: string }) => ({ ok: false as const, code: e.code, message: e.message, ms: Date.now() - started }),
    );
    const r = await run;
    const inserted = await insert;
    expect(r.code, why(r)).toBe(0);
    expect(validJson(r)).toMatchObject({ outcome: 'committed' });
    expect(r.stderr).toMatch(/step 10 \(public\.user_preferences\) still running: 1 s/);
    expect(inserted).toMatchObject({ ok: false, code: '23503' });
    expect(inserted.ms).toBeGreaterThan(200);
    const [orphans] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM ai_memories m LEFT JOIN user_profiles u USING (user_id) WHERE u.user_id IS NULL`;
    expect(orphans!.n).toBe(0);
    const [carol] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM user_profiles WHERE user_id = 'auth|carol'`;
    expect(carol!.n).toBe(0);
  });

  it('a grandchild inserted under a parent a later step deletes (ai_messages into a conversation): it waits, the purge commits', async () => {
    // Without the parents locked first, the insert gets in (the conversation is not locked yet),
    // and step 3's delete of the conversation then fails its foreign key: a busy database refused
    // purges (exit 4). A test-only trigger holds step 1 so that the insert lands mid-run.
    const db = await nexus(`CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
      CREATE TRIGGER slow_down BEFORE DELETE ON ai_messages FOR EACH STATEMENT EXECUTE FUNCTION slow_down();`);
    const run = purgekit(['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    await waitFor('the run to reach step 1', async () => {
      const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event = 'PgSleep'`;
      return row!.n === 1;
    });
    const insert = db.sql`INSERT INTO ai_messages (conversation_id, body) SELECT id, 'written during the purge' FROM ai_conversations WHERE title = 'a1'`.then(
      () => ({ ok: true as const }),
      (e: { code?: string }) => ({ ok: false as const, code: e.code }),
    );
    const r = await run;
    expect(r.code, why(r)).toBe(0);
    expect(validJson(r)).toMatchObject({ outcome: 'committed' });
    expect(await insert).toMatchObject({ ok: false, code: '23503' });
    const [left] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM ai_conversations WHERE user_id = 'auth|alice'`;
    expect(left!.n).toBe(0);
  });
});
