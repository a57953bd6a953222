/**
 * purgekit plan | plan --rehearse | apply, through the built CLI against real PostgreSQL:
 * what a successful run removes, reports (--json, validated against its schema) and leaves.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { startApi } from './helpers/sidecars.js';
import { withOutbox } from './helpers/outbox.js';
import { createTestDatabase, loadFixture, rowCounts, snapshot, type TestDb } from './harness/db.js';
import { rowsOf } from './helpers/nexus.js';
import { purgekit, recordedChecksum, tempAuditLog, validJson, why, type RunJson } from './run-helpers.js';

const NEXUS = 'nexus-purge-user';

async function nexus(): Promise<TestDb> {
  return createTestDatabase(loadFixture('nexus'));
}


const NEXUS_TABLES = ['user_profiles', 'companies', 'company_members', 'ai_conversations', 'ai_messages', 'ai_memories', 'oauth_tokens',
  'user_integrations', 'business_health_snapshots', 'onboarding_progress', 'user_preferences', 'user_organizations', 'product_events'];

function stepRows(json: RunJson): Record<string, number | null> {
  return Object.fromEntries(json.steps.map((s) => [`${s.step} ${s.table}`, s.rows]));
}

describe('purgekit apply (nexus-purge-user)', () => {
  it('purges a user by email with owned companies: exit 0, committed, JSON valid against its schema', async () => {
    const db = await nexus();
    const audit = tempAuditLog();
    const r = await purgekit(['apply', NEXUS, '--email', 'ALICE@example.com', '--delete-owned-companies', '--confirm', db.name,
      '--connection', db.url, '--json', '--audit-log', audit]);
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r);

    // The database: exactly as the generated script leaves it (test/nexus.test.ts).
    expect(await rowsOf(db, 'auth|alice')).toBe(0);
    expect(await rowCounts(db.sql, ['user_profiles', 'ai_messages', 'ai_conversations', 'companies', 'company_members'])).toEqual({
      user_profiles: 5, ai_messages: 1, ai_conversations: 1, companies: 1, company_members: 2,
    });
    expect(await rowsOf(db, 'auth|bob')).toBe(5);

    expect(json).toMatchObject({
      version: 1, command: 'apply', mode: 'apply', policy: NEXUS, kind: 'purge', outcome: 'committed', exitCode: 0, error: null,
      planSha256: recordedChecksum(NEXUS),
      database: { database: db.name },
      subject: { table: 'public.user_profiles', matched: 1 },
    });
    expect(json.steps.map((s) => [s.step, s.table, s.outcome, s.rows])).toEqual([
      [1, 'public.ai_messages', 'removed', 3],
      [2, 'public.ai_message_attachments', 'absent', null],
      [3, 'public.ai_conversations', 'removed', 2],
      [4, 'public.ai_memories', 'removed', 1],
      [5, 'public.oauth_tokens', 'removed', 1],
      [6, 'public.user_integrations', 'removed', 1],
      [7, 'public.business_health_snapshots', 'removed', 2],
      [8, 'public.onboarding_progress', 'removed', 1],
      [9, 'public.company_members', 'removed', 1],
      [10, 'public.user_preferences', 'removed', 1],
      [11, 'public.user_organizations', 'removed', 1],
      [12, 'public.companies', 'removed', 1],
      [13, 'public.user_profiles', 'removed', 1],
      // Without --anonymize the user's analytics events go; the anonymize step is skipped.
      [14, 'public.product_events', 'removed', 2],
      [15, 'public.product_events', 'skipped', null],
    ]);
    for (const s of json.steps.filter((s) => s.outcome === 'removed')) expect(s.ms, `step ${s.step} time`).toEqual(expect.any(Number));
    // Bob's membership of Alice's company went by the declared cascade: 2 deleted, 1 of them by step 9.
    expect(json.tables).toContainEqual({ table: 'public.company_members', schema: 'public', name: 'company_members', inserted: 0, updated: 0, deleted: 2, truncated: false, plannedAs: 'cascade', removedBySteps: 1 });
    expect(json.tables).toContainEqual({ table: 'public.user_profiles', schema: 'public', name: 'user_profiles', inserted: 0, updated: 0, deleted: 1, truncated: false, plannedAs: 'step', removedBySteps: 1 });
    expect(json.tables.every((t) => t.plannedAs !== null)).toBe(true);
    // Preserved rows are vouched for from pg_stat, not counted (a count would scan the table).
    expect(json.preserved).toEqual([{ rule: 'preserve 1', table: 'public.user_profiles', schema: 'public', name: 'user_profiles', rows: null }]);
    expect(json.expectations).toEqual([{ name: 'an admin remains', outcome: 'ok', detail: expect.stringContaining('value 1') }]);
    // Human output goes to stderr.
    expect(r.stderr).toMatch(/committed in \d+ ms/);
    expect(r.stderr).toContain('cascade: public.company_members');
  });

  it('plan (dry run) changes nothing and predicts exactly what apply then removes', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const countsBefore = await rowCounts(db.sql, NEXUS_TABLES);
    const args = [NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--connection', db.url, '--json'];

    const plan = await purgekit(['plan', ...args]);
    expect(plan.code, why(plan)).toBe(0);
    const planned = validJson(plan);
    expect(planned).toMatchObject({ command: 'plan', mode: 'plan', outcome: 'read-only', error: null, subject: { matched: 1 } });
    expect(planned.steps.filter((s) => s.outcome !== 'absent' && s.outcome !== 'skipped').every((s) => s.outcome === 'would remove')).toBe(true);
    expect(planned.steps.find((s) => s.step === 1)).toMatchObject({ table: 'public.ai_messages', outcome: 'would remove', rows: 3 });
    expect(await snapshot(db.sql)).toEqual(before);
    expect(plan.stderr).toMatch(/read-only \(plan\): nothing was changed/);

    const rehearse = await purgekit(['plan', '--rehearse', ...args]);
    expect(rehearse.code, why(rehearse)).toBe(0);
    const rehearsed = validJson(rehearse);
    expect(rehearsed).toMatchObject({ command: 'plan', mode: 'rehearse', outcome: 'rolled-back', error: null });
    expect(rehearse.stderr).toMatch(/same locks/);
    // Exact counts, the declared cascade included.
    expect(rehearsed.tables).toContainEqual({ table: 'public.company_members', schema: 'public', name: 'company_members', inserted: 0, updated: 0, deleted: 2, truncated: false, plannedAs: 'cascade', removedBySteps: 1 });
    expect(await snapshot(db.sql)).toEqual(before);

    const apply = await purgekit(['apply', ...args, '--confirm', db.name, '--audit-log', tempAuditLog()]);
    expect(apply.code, why(apply)).toBe(0);
    const applied = validJson(apply);
    expect(stepRows(applied)).toEqual(stepRows(planned));
    expect(stepRows(rehearsed)).toEqual(stepRows(planned));
    expect(rehearsed.tables).toEqual(applied.tables);

    // And the tables lost exactly those rows (+1 company_members row by the cascade, which plan cannot count by steps).
    const countsAfter = await rowCounts(db.sql, NEXUS_TABLES);
    for (const s of planned.steps) {
      if (s.outcome === 'absent' || s.outcome === 'skipped') continue;
      const table = s.table.replace(/^public\./, '');
      const lost = countsBefore[table]! - countsAfter[table]!;
      expect(lost, table).toBe((s.rows ?? 0) + (table === 'company_members' ? 1 : 0));
    }
  });

  it('plan names the tables a declared cascade can reach (company_members via companies), without changing them', async () => {
    // Issue 3, plan: "rows each step would remove, tables a cascade or TRUNCATE can reach". Bob's membership
    // of Alice's company goes by ON DELETE CASCADE from step 12; the dry run should say so.
    const db = await nexus();
    const before = await snapshot(db.sql);
    const plan = await purgekit(['plan', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--connection', db.url, '--json']);
    expect(plan.code, why(plan)).toBe(0);
    validJson(plan);
    expect(plan.stderr).toMatch(/cascade[^\n]*company_members|company_members[^\n]*cascade/);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('several subjects: exit 3 and nothing changed; --force-multi purges both', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const audit = tempAuditLog();
    const refused = await purgekit(['apply', NEXUS, '--email', 'shared@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit]);
    expect(refused.code, why(refused)).toBe(3);
    const json = validJson(refused);
    expect(json).toMatchObject({ outcome: 'rolled-back', error: { code: 'PK003', message: expect.stringMatching(/2 user_profiles rows matched/) } });
    // The guard raised, but what was found before it is still reported.
    expect(json.subject).toEqual({ table: 'public.user_profiles', schema: 'public', name: 'user_profiles', matched: 2 });
    expect(refused.stderr).toContain('--force-multi');
    const planned = await purgekit(['plan', NEXUS, '--email', 'shared@example.com', '--connection', db.url, '--json']);
    expect(planned.code, why(planned)).toBe(3);
    expect(validJson(planned)).toMatchObject({ outcome: 'read-only', subject: { table: 'public.user_profiles', matched: 2 }, error: { code: 'PK003' } });
    expect(await snapshot(db.sql)).toEqual(before);

    const forced = await purgekit(['apply', NEXUS, '--email', 'shared@example.com', '--force-multi', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit]);
    expect(forced.code, why(forced)).toBe(0);
    expect(validJson(forced)).toMatchObject({ outcome: 'committed', subject: { matched: 2 } });
    expect((await rowsOf(db, 'auth|dup1')) + (await rowsOf(db, 'auth|dup2'))).toBe(0);
    expect(await rowCounts(db.sql, ['user_profiles'])).toEqual({ user_profiles: 4 });
  });

  it('no subject matched: exit 0, nothing-matched, nothing changed', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const r = await purgekit(['apply', NEXUS, '--email', 'nobody@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(0);
    expect(validJson(r)).toMatchObject({ outcome: 'nothing-matched', error: { code: 'PK002' } });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('an absent optional table is reported absent (plan and apply); present, it is purged', async () => {
    const db = await nexus();
    const plan = await purgekit(['plan', NEXUS, '--email', 'carol@example.com', '--connection', db.url, '--json']);
    expect(plan.code, why(plan)).toBe(0);
    expect(validJson(plan).steps.find((s) => s.step === 2)).toMatchObject({ table: 'public.ai_message_attachments', outcome: 'absent', rows: null });
    expect(plan.stderr).toMatch(/ai_message_attachments\s+\|?\s*absent/);

    const apply = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    expect(apply.code, why(apply)).toBe(0);
    expect(validJson(apply).steps.find((s) => s.step === 2)).toMatchObject({ outcome: 'absent', rows: null });
    expect(await rowsOf(db, 'auth|carol')).toBe(0);

    const other = await nexus();
    await other.sql.unsafe(`CREATE TABLE ai_message_attachments (id serial PRIMARY KEY, conversation_id integer NOT NULL REFERENCES ai_conversations (id));
      INSERT INTO ai_message_attachments (conversation_id) VALUES (1), (1), (3);`);
    const present = await purgekit(['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', other.name, '--connection', other.url, '--json', '--audit-log', tempAuditLog()]);
    expect(present.code, why(present)).toBe(0);
    expect(validJson(present).steps.find((s) => s.step === 2)).toMatchObject({ outcome: 'removed', rows: 2 });
    expect(await rowCounts(other.sql, ['ai_message_attachments'])).toEqual({ ai_message_attachments: 1 });
  });
});

describe('purgekit apply (wipe and cleanup policies)', () => {
  it('supabase-fresh-start: a wipe commits, lists every table it reaches, keeps the keep tables', async () => {
    // Its after_commit deletes the Clerk organizations and users (test/outbox.test.ts): a local API stands in for Clerk.
    const db = await createTestDatabase(withOutbox('supabase'));
    const clerk = await startApi();
    onTestFinished(() => clerk.stop());
    const keptBefore = await rowCounts(db.sql, ['subscription_tiers', 'agent_templates', 'schema_migrations']);
    const r = await purgekit(['apply', 'supabase-fresh-start', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()], {
      env: { CLERK_API_URL: clerk.url, CLERK_SECRET_KEY: 'sk_test_x' },
    });
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r);
    expect(json).toMatchObject({ kind: 'wipe', outcome: 'committed', error: null, subject: null, steps: [] });
    const reached = json.wipe.map((w) => w.table.replace(/^public\./, ''));
    for (const t of ['users', 'clients', 'calls', 'webhook_logs', 'call_recordings', 'recording_annotations', 'usage_events', 'application_logs_archive']) {
      expect(reached, t).toContain(t);
    }
    for (const t of ['subscription_tiers', 'agent_templates', 'schema_migrations', 'call_recordings_legacy']) expect(reached, t).not.toContain(t);
    expect(json.wipe.find((w) => w.table.endsWith('call_recordings'))!.reason).toMatch(/references calls/);
    expect(json.tables.filter((t) => t.plannedAs === null)).toEqual([]);
    expect(json.expectations.every((e) => e.outcome === 'ok')).toBe(true);
    expect(await rowCounts(db.sql, ['users', 'clients', 'call_recordings', 'usage_events'])).toEqual({ users: 0, clients: 0, call_recordings: 1, usage_events: 0 });
    // call_recordings counts its inheritance child (call_recordings_legacy), which the cascade does not empty.
    expect(await rowCounts(db.sql, ['subscription_tiers', 'agent_templates', 'schema_migrations'])).toEqual(keptBefore);
  });

  it('a wipe names its tables in `wipe` as `steps` and `tables` do (schema-qualified), so the runner can match them', async () => {
    // analyseChanges marks a changed table plannedAs 'wipe' when its "schema.table" name is among the wipe
    // report's targets; the report writes regclass::text under search_path (bare "users"), so it never matches.
    const db = await createTestDatabase(loadFixture('supabase'));
    const r = await purgekit(['plan', 'supabase-fresh-start', '--connection', db.url, '--json']);
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r);
    expect(json.wipe.length).toBeGreaterThan(25);
    expect(json.wipe.map((w) => w.table).filter((t) => !t.startsWith('public.'))).toEqual([]);
  });

  it('remove-seeded-data: a cleanup commits and keeps the admin (ON DELETE CASCADE / SET NULL relations present)', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const r = await purgekit(['apply', 'remove-seeded-data', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r);
    expect(json).toMatchObject({ kind: 'cleanup', outcome: 'committed', error: null });
    expect(json.steps.map((s) => [s.table, s.outcome, s.rows])).toEqual([
      ['public."Session"', 'removed', 6],
      ['public."Payment"', 'removed', 5],
      ['public."Report"', 'removed', 3],
      ['public."User"', 'removed', 11],
    ]);
    expect(json.tables.filter((t) => t.plannedAs === null)).toEqual([]);
    expect(await rowCounts(db.sql, ['User', 'Session', 'Payment', 'Report'])).toEqual({ User: 1, Session: 0, Payment: 0, Report: 0 });
    const [admin] = await db.sql<{ username: string }[]>`SELECT username FROM "User"`;
    expect(admin!.username).toBe('admin');
  });
});
