/**
 * supabase-fresh-start (seed 003): TRUNCATE ... RESTART IDENTITY CASCADE of the tenant tables,
 * run as the generated script, on test/fixtures/supabase.sql.
 */
import { describe, expect, it } from 'vitest';
import type postgres from 'postgres';
import { createTestDatabase, hasPsql, runPsql, runSimpleQuery, type TestDb } from './harness/db.js';
import { userSnapshot as snapshot, withOutbox } from './helpers/outbox.js';

import { renderedScript, tempFile } from './helpers/scripts.js';

/** The fixture with purgekit.outbox: the wipe queues its Clerk deletions there (after_commit; test/outbox.test.ts runs them). */
const loadFixture = withOutbox;

const POLICY = 'supabase-fresh-start';

/** The 25 tables of wipe_all_user_data.sql, as the policy lists them. */
const LISTED = [
  'users', 'clients', 'agents', 'calls', 'campaigns', 'campaign_contacts', 'contact_folders', 'contacts',
  'knowledge_bases', 'tools', 'voices', 'webhook_endpoints', 'api_keys', 'idempotency_keys', 'webhook_deliveries',
  'tool_logs', 'application_logs', 'audit_log', 'credit_transactions', 'agent_assistance_messages',
  'agent_assistance_sessions', 'phone_numbers', 'telephony_credentials', 'admin_otps', 'webhook_logs',
];
/** Not listed; emptied because they reference a listed table (directly or through another). */
const CASCADED_LEAVES = ['call_recordings', 'recording_annotations', 'usage_events_2024', 'usage_events_2025_q1', 'usage_events_2025_rest'];
/** Not listed, partitioned: no rows of their own, emptied through their partitions. */
const CASCADED_PARTITIONED = ['usage_events', 'usage_events_2025'];
/** Inheritance child of a listed table: TRUNCATE without ONLY empties it. */
const INHERITED = ['application_logs_archive'];
/** Everything else keeps every row: the keep tables, an unrelated table, and the inheritance
 * child of a table that is only reached by the cascade (the cascade does not descend into it). */
const UNTOUCHED = ['subscription_tiers', 'agent_templates', 'schema_migrations', 'call_recordings_legacy'];

interface ReportRow {
  item: string;
  target: string;
  outcome: string;
  rows: string | null;
  detail: string | null;
}

/** Rows of each ordinary table of public, not counting inheritance children (FROM ONLY). */
async function ownRowCounts(sql: postgres.Sql): Promise<Record<string, number>> {
  const tables = await sql<{ name: string; ident: string }[]>`
    SELECT c.relname AS name, format('%I.%I', n.nspname, c.relname) AS ident
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r'
    ORDER BY 1`;
  const out: Record<string, number> = {};
  for (const { name, ident } of tables) {
    const [r] = await sql.unsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM ONLY ${ident}`);
    out[name] = r!.n;
  }
  return out;
}

function wipeRows(results: Record<string, unknown>[]): Map<string, ReportRow> {
  const rows = (results as unknown as ReportRow[]).filter((r) => r.item === 'wipe');
  // Targets are schema-qualified (public.users), like every table name the runner reports.
  expect(rows.every((r) => r.target.startsWith('public.'))).toBe(true);
  return new Map(rows.map((r) => [r.target.slice('public.'.length), r]));
}

/** Runs the script and checks that it fails with `code` and leaves every row and sequence
 * exactly as they were. */
async function expectRefused(db: TestDb, code: string): Promise<string> {
  const before = await snapshot(db.sql);
  const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.error.code).toBe(code);
  expect(await snapshot(db.sql)).toEqual(before);
  return result.error.message;
}

describe('supabase-fresh-start (seed 003)', () => {
  it('empties the listed tables and everything the cascade reaches, and nothing else (one simple query)', async () => {
    const db = await createTestDatabase(loadFixture('supabase'));
    const before = await ownRowCounts(db.sql);
    // The fixture must make every difference visible: each ordinary table holds rows.
    for (const [table, n] of Object.entries(before)) expect(n, table).toBeGreaterThan(0);
    const snapBefore = await snapshot(db.sql);

    const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
    expect(result).toMatchObject({ ok: true });

    const after = await ownRowCounts(db.sql);
    const emptied = Object.keys(after).filter((t) => after[t] === 0).sort();
    expect(emptied).toEqual([...LISTED, ...CASCADED_LEAVES, ...INHERITED].sort());
    for (const table of UNTOUCHED) expect(after[table], table).toBe(before[table]);
    expect(Object.keys(after).sort()).toEqual([...LISTED, ...CASCADED_LEAVES, ...INHERITED, ...UNTOUCHED].sort());

    // Kept tables: same rows, byte for byte, and their sequences did not move.
    const snapAfter = await snapshot(db.sql);
    for (const key of [
      'public.subscription_tiers', 'public.agent_templates', 'public.schema_migrations', 'public.call_recordings_legacy',
      'seq:public.subscription_tiers_id_seq', 'seq:public.agent_templates_id_seq',
    ]) {
      expect(snapAfter[key], key).toBeDefined();
      expect(snapAfter[key], key).toBe(snapBefore[key]);
    }
  });

  it('reports every table it empties, with the reason it is reached', async () => {
    const db = await createTestDatabase(loadFixture('supabase'));
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
    if (!result.ok) throw new Error(`script failed: ${result.error.code} ${result.error.message}`);
    const report = wipeRows(result.results);

    expect([...report.keys()].sort()).toEqual([...LISTED, ...CASCADED_LEAVES, ...CASCADED_PARTITIONED, ...INHERITED].sort());
    for (const row of report.values()) expect(row.outcome).toBe('emptied');
    for (const table of LISTED) expect(report.get(table)!.detail, table).toBe('listed');
    // The foreign key through which each unlisted table is reached, by name.
    expect(report.get('call_recordings')!.detail).toBe('references calls (foreign key call_recordings_call_id_fkey)');
    expect(report.get('recording_annotations')!.detail).toBe(
      'references call_recordings (foreign key recording_annotations_recording_id_fkey)',
    );
    expect(report.get('usage_events')!.detail).toMatch(/^references clients \(foreign key usage_events_client_id_fkey\); partitioned/);
    expect(report.get('usage_events')!.rows).toBeNull();
    expect(report.get('usage_events_2025')!.detail).toMatch(/partitioned, rows counted in its partitions$/);
    for (const partition of ['usage_events_2024', 'usage_events_2025_q1', 'usage_events_2025_rest']) {
      expect(report.get(partition)!.detail, partition).toMatch(/^(references clients \(foreign key usage_events_client_id_fkey\)|partition of usage_events(_2025)?)$/);
    }
    expect(report.get('application_logs_archive')!.detail).toBe('inheritance child of application_logs');
    for (const table of UNTOUCHED) expect(report.has(table), table).toBe(false);

    const expects = (result.results as unknown as ReportRow[]).filter((r) => r.item.startsWith('expect '));
    expect(expects.map((r) => [r.target, r.outcome])).toEqual([
      ['no user remains', 'ok'],
      ['no client remains', 'ok'],
      ['subscription tiers are still there', 'ok'],
      ['agent templates are still there', 'ok'],
    ]);
  });

  it('reports, per table, exactly the rows that table loses', async () => {
    // call_recordings has an inheritance child the cascade does not empty, and application_logs
    // has one that TRUNCATE empties and reports on its own line: a count that includes the
    // children's rows would claim rows that were kept, or count rows twice.
    const db = await createTestDatabase(loadFixture('supabase'));
    const before = await ownRowCounts(db.sql);
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
    if (!result.ok) throw new Error(`script failed: ${result.error.code} ${result.error.message}`);
    const report = wipeRows(result.results);
    const reported = Object.fromEntries([...LISTED, ...CASCADED_LEAVES, ...INHERITED].map((t) => [t, Number(report.get(t)?.rows)]));
    const lost = Object.fromEntries([...LISTED, ...CASCADED_LEAVES, ...INHERITED].map((t) => [t, before[t]]));
    expect(reported).toEqual(lost);
  });

  it('restarts the sequences of every emptied table, listed or reached, and only those', async () => {
    const db = await createTestDatabase(loadFixture('supabase'));
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
    expect(result).toMatchObject({ ok: true });
    const [ids] = await db.sql<Record<string, number>[]>`
      WITH c AS (INSERT INTO clients (name) VALUES ('First signup') RETURNING id),
           u AS (INSERT INTO users (client_id, email) SELECT id, 'first@new.example' FROM c RETURNING id),
           a AS (INSERT INTO agents (client_id, name) SELECT id, 'Agent' FROM c RETURNING id),
           l AS (INSERT INTO audit_log (action) VALUES ('signup') RETURNING id),
           e AS (INSERT INTO usage_events (client_id, kind, occurred_at) SELECT id, 'call', '2025-05-01' FROM c RETURNING id),
           t AS (INSERT INTO subscription_tiers (name, monthly_price_cents) VALUES ('team', 9900) RETURNING id)
      SELECT (SELECT id FROM c) AS client, (SELECT id FROM u) AS "user", (SELECT id FROM a) AS agent,
             (SELECT id FROM l)::int AS audit, (SELECT id FROM e)::int AS usage_event, (SELECT id FROM t) AS tier`;
    // Listed (serial and bigserial), reached through a partitioned table: back to 1.
    // The kept table continues after its three rows.
    expect(ids).toEqual({ client: 1, user: 1, agent: 1, audit: 1, usage_event: 1, tier: 4 });
    const [call] = await db.sql<{ id: number }[]>`INSERT INTO calls (client_id, agent_id, started_at) VALUES (1, 1, now()) RETURNING id`;
    const [recording] = await db.sql<{ id: number }[]>`INSERT INTO call_recordings (call_id, storage_path) VALUES (${call!.id}, 'rec/new.wav') RETURNING id`;
    // Identity column of a table only reached by the cascade: restarted too.
    expect(recording!.id).toBe(1);
  });

  it.skipIf(!hasPsql())('runs unchanged in psql -v ON_ERROR_STOP=1 -f, and the cascade hits exactly the tables it predicted', async () => {
    const db = await createTestDatabase(loadFixture('supabase'));
    const run = runPsql(db.url, tempFile(await renderedScript(POLICY)));
    expect(run.stderr).not.toMatch(/ERROR/);
    expect(run.status).toBe(0);
    // PostgreSQL names each table it cascades to; purgekit predicted that set before the TRUNCATE.
    const noticed = [...run.stderr.matchAll(/truncate cascades to table "([^"]+)"/g)].map((m) => m[1]).sort();
    expect(noticed).toEqual([...CASCADED_LEAVES, ...CASCADED_PARTITIONED].sort());
    for (const table of [...CASCADED_LEAVES, ...CASCADED_PARTITIONED, ...INHERITED]) expect(run.stdout, table).toContain(` public.${table} `);
    expect(run.stdout).toContain('references calls (foreign key call_recordings_call_id_fkey)');
    expect(run.stdout).toMatch(/\(\d+ rows\)/);

    const after = await ownRowCounts(db.sql);
    for (const table of [...LISTED, ...CASCADED_LEAVES, ...INHERITED]) expect(after[table], table).toBe(0);
    expect(after).toMatchObject({ subscription_tiers: 3, agent_templates: 2, schema_migrations: 2, call_recordings_legacy: 1 });
  });

  it('is not stopped by foreign keys from wiped tables into the keep tables (the cascade follows referencing tables only)', async () => {
    const db = await createTestDatabase(loadFixture('supabase'));
    await db.sql.unsafe(`
      ALTER TABLE clients ADD COLUMN tier_id integer REFERENCES subscription_tiers (id);
      UPDATE clients SET tier_id = 2;
      ALTER TABLE agents ADD COLUMN template_id integer REFERENCES agent_templates (id);
      UPDATE agents SET template_id = 1`);
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
    expect(result).toMatchObject({ ok: true });
    const after = await snapshot(db.sql);
    expect(after['public.subscription_tiers']).toBe(before['public.subscription_tiers']);
    expect(after['public.agent_templates']).toBe(before['public.agent_templates']);
    expect(await ownRowCounts(db.sql)).toMatchObject({ clients: 0, agents: 0, subscription_tiers: 3, agent_templates: 2 });
  });

  describe('refuses, changing nothing, when TRUNCATE ... CASCADE would reach a keep table', () => {
    it('through a foreign key from the keep table to a listed table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe('ALTER TABLE subscription_tiers ADD COLUMN created_by integer REFERENCES users (id)');
      const message = await expectRefused(db, 'PK007');
      expect(message).toBe(
        'the wipe would reach a keep table: subscription_tiers via users <- subscription_tiers (subscription_tiers_created_by_fkey)',
      );
    });

    it('through an unlisted intermediate table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        CREATE TABLE tier_changes (id serial PRIMARY KEY, client_id integer NOT NULL REFERENCES clients (id));
        INSERT INTO tier_changes (client_id) VALUES (1);
        ALTER TABLE agent_templates ADD COLUMN change_id integer REFERENCES tier_changes (id)`);
      const message = await expectRefused(db, 'PK007');
      // The whole foreign-key path, from the listed table to the keep table.
      expect(message).toBe(
        'the wipe would reach a keep table: agent_templates via clients <- tier_changes (tier_changes_client_id_fkey) <- agent_templates (agent_templates_change_id_fkey)',
      );
      expect(message).not.toContain('subscription_tiers');
    });

    it('through a partition of an unlisted partitioned table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe('ALTER TABLE agent_templates ADD COLUMN sample_event bigint REFERENCES usage_events_2024 (id)');
      const message = await expectRefused(db, 'PK007');
      expect(message).toBe(
        'the wipe would reach a keep table: agent_templates via clients <- usage_events_2024 (usage_events_client_id_fkey) <- agent_templates (agent_templates_sample_event_fkey)',
      );
    });

    it('through a foreign key to a partitioned table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        ALTER TABLE subscription_tiers ADD COLUMN event_id bigint, ADD COLUMN event_at timestamptz,
          ADD FOREIGN KEY (event_id, event_at) REFERENCES usage_events (id, occurred_at)`);
      const message = await expectRefused(db, 'PK007');
      expect(message).toMatch(/^the wipe would reach a keep table: subscription_tiers via clients <- usage_events(_\w+)? \(usage_events_client_id_fkey\d*\) <- subscription_tiers \(subscription_tiers_event_id_event_at_fkey\d*\)$/);
    });

    it('names every keep table it would reach', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        ALTER TABLE subscription_tiers ADD COLUMN created_by integer REFERENCES users (id);
        ALTER TABLE agent_templates ADD COLUMN recording_id integer REFERENCES call_recordings (id)`);
      const message = await expectRefused(db, 'PK007');
      expect(message).toBe(
        'the wipe would reach a keep table: agent_templates via calls <- call_recordings (call_recordings_call_id_fkey) <- agent_templates (agent_templates_recording_id_fkey); ' +
          'subscription_tiers via users <- subscription_tiers (subscription_tiers_created_by_fkey)',
      );
    });
  });

  describe('keeps every row of a keep table, including rows held in its partitions or inheritance children', () => {
    it('refuses when the cascade would reach a partition of a partitioned keep table', async () => {
      // The foreign key is declared on one partition only: the cascade empties that partition,
      // and with it part of the keep table, without reaching the keep table itself.
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        DROP TABLE agent_templates;
        CREATE TABLE agent_templates (id integer NOT NULL, region text NOT NULL, client_id integer, prompt text NOT NULL) PARTITION BY LIST (region);
        CREATE TABLE agent_templates_eu PARTITION OF agent_templates FOR VALUES IN ('eu');
        CREATE TABLE agent_templates_us PARTITION OF agent_templates FOR VALUES IN ('us');
        ALTER TABLE agent_templates_us ADD FOREIGN KEY (client_id) REFERENCES clients (id);
        INSERT INTO agent_templates VALUES (1, 'eu', NULL, 'Greet the caller.'), (2, 'us', 1, 'Qualify the lead.')`);
      const message = await expectRefused(db, 'PK007');
      expect(message).toContain('agent_templates_us');
    });

    it('refuses when the cascade would reach an inheritance child of a keep table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        CREATE TABLE agent_templates_custom (client_id integer NOT NULL REFERENCES clients (id)) INHERITS (agent_templates);
        INSERT INTO agent_templates_custom (id, name, prompt, client_id) VALUES (50, 'custom', 'Acme only.', 1)`);
      const message = await expectRefused(db, 'PK007');
      expect(message).toContain('agent_templates_custom');
    });

    it('refuses when a TRUNCATE trigger of a wiped table deletes rows of a keep table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe(`
        CREATE FUNCTION reset_tiers() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          DELETE FROM subscription_tiers WHERE name <> 'free';
          RETURN NULL;
        END $$;
        CREATE TRIGGER users_reset_tiers AFTER TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION reset_tiers()`);
      const before = await snapshot(db.sql);
      const result = await runSimpleQuery(db.url, await renderedScript(POLICY));
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.message).toContain('subscription_tiers');
      expect(await snapshot(db.sql)).toEqual(before);
    });
  });

  describe('refuses, changing nothing, when a table it needs is absent', () => {
    it('a listed table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe('DROP TABLE webhook_logs');
      expect(await expectRefused(db, 'PK008')).toBe('required table is absent: public.webhook_logs (wipe table)');
    });

    it('a keep table', async () => {
      const db = await createTestDatabase(loadFixture('supabase'));
      await db.sql.unsafe('DROP TABLE agent_templates');
      expect(await expectRefused(db, 'PK008')).toBe('required table is absent: public.agent_templates (keep table)');
    });
  });
});
