/**
 * Steps that keep their rows (anonymize:, detach:): the same policy through plan, rehearse and
 * apply (the runner), and as the standalone script (psql -f, and sent whole through the simple
 * protocol as a SQL editor does): rows updated and reported, preserve rules honoured, the runner's
 * change check expecting the updates, --backup keeping the old values and restore putting them back.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, runPsql, runSimpleQuery, type TestDb } from './harness/db.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';
import { tempFile } from './helpers/scripts.js';

export const ERASE_POLICY = `version: 1
name: erase-user
kind: purge
params:
  email: { type: text }
  hash_key: { type: text, description: secret key of the hash masker (never in the policy) }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: email = :email
steps:
  - table: events
    description: Analytics stay, the person goes.
    anonymize:
      email: { with: "'erased-' || id || '@invalid'" }
      ip: null
      name: { with: redact }
      actor: { with: hash, key: hash_key }
      kind: anonymized
    where: user_id IN :subject
    max_rows: 100
  - table: comments
    detach: [author_id]
    where: author_id IN :subject
  - table: users
    where: id IN :subject
preserve:
  - table: events
    where: kind = 'audit'
`;

export const ERASE_FIXTURE = `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE comments (id int PRIMARY KEY, author_id int REFERENCES users (id), body text NOT NULL);
CREATE TABLE events (id int PRIMARY KEY, user_id int, email text, ip inet, name text, actor text, kind text NOT NULL);
INSERT INTO users VALUES (1, 'alice@example.com', 'Alice'), (2, 'bob@example.com', 'Bob');
INSERT INTO comments VALUES (1, 1, 'hi'), (2, 1, 'there'), (3, 2, 'bob here');
INSERT INTO events VALUES
  (1, 1, 'alice@example.com', '10.0.0.1', 'Alice Smith 2', 'alice', 'login'),
  (2, 1, 'alice@example.com', '10.0.0.2', 'Alice', 'alice', 'audit'),
  (3, 2, 'bob@example.com', '10.0.0.3', 'Bob', 'bob', 'login'),
  (4, 1, 'alice@example.com', '10.0.0.4', 'A. S.', 'alice', 'click');`;

const KEY = 's3cret';
const hashOf = (value: string) => createHash('sha256').update(`${KEY}:${value}`, 'utf8').digest('hex');

type Row = Record<string, unknown>;
async function state(db: TestDb): Promise<{ users: Row[]; comments: Row[]; events: Row[] }> {
  return {
    users: [...(await db.sql`SELECT id, email FROM users ORDER BY id`)],
    comments: [...(await db.sql`SELECT id, author_id, body FROM comments ORDER BY id`)],
    events: [...(await db.sql`SELECT id, user_id, email, host(ip) AS ip, name, actor, kind FROM events ORDER BY id`)],
  };
}

/** What the purge of alice leaves: her events anonymized (the audit one preserved), her comments detached, her row gone. */
const AFTER = {
  users: [{ id: 2, email: 'bob@example.com' }],
  comments: [{ id: 1, author_id: null, body: 'hi' }, { id: 2, author_id: null, body: 'there' }, { id: 3, author_id: 2, body: 'bob here' }],
  events: [
    { id: 1, user_id: 1, email: 'erased-1@invalid', ip: null, name: 'xxxxx xxxxx 0', actor: hashOf('alice'), kind: 'anonymized' },
    { id: 2, user_id: 1, email: 'alice@example.com', ip: '10.0.0.2', name: 'Alice', actor: 'alice', kind: 'audit' },
    { id: 3, user_id: 2, email: 'bob@example.com', ip: '10.0.0.3', name: 'Bob', actor: 'bob', kind: 'login' },
    { id: 4, user_id: 1, email: 'erased-4@invalid', ip: null, name: 'x. x.', actor: hashOf('alice'), kind: 'anonymized' },
  ],
};

let project: string;
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'purgekit-anonymize-'));
  mkdirSync(join(project, 'policies'));
  writeFileSync(join(project, 'policies', 'erase-user.yaml'), ERASE_POLICY);
  const r = await purgekit(['compile'], { cwd: project });
  if (r.code !== 0) throw new Error(why(r));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

const run = (command: string[], db: TestDb, extra: string[] = []) =>
  purgekit([...command, 'erase-user', '--email', 'alice@example.com', '--hash-key', KEY, '--connection', db.url, '--json', ...extra], { cwd: project });

describe('anonymize and detach steps', () => {
  it('apply: rows updated and reported (updated), preserved rows untouched, no unplanned change; exit 0', async () => {
    const db = await createTestDatabase(ERASE_FIXTURE);
    const r = await run(['apply'], db, ['--confirm', db.name, '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r);
    expect(json.steps.map((s) => [s.step, s.table, s.outcome, s.rows])).toEqual([
      [1, 'public.events', 'updated', 2],
      [2, 'public.comments', 'updated', 2],
      [3, 'public.users', 'removed', 1],
    ]);
    expect(json.tables).toContainEqual(expect.objectContaining({ table: 'public.events', updated: 2, deleted: 0, plannedAs: 'step', updatedBySteps: 2 }));
    expect(json.tables).toContainEqual(expect.objectContaining({ table: 'public.comments', updated: 2, deleted: 0, plannedAs: 'step', updatedBySteps: 2 }));
    expect(await state(db)).toEqual(AFTER);
    expect(r.stderr).toMatch(/updated/);
  });

  it('plan counts the rows it would update and changes nothing; rehearse updates for real and rolls back', async () => {
    const db = await createTestDatabase(ERASE_FIXTURE);
    const before = await state(db);
    const plan = await run(['plan'], db);
    expect(plan.code, why(plan)).toBe(0);
    expect(plan.json!.steps.map((s) => [s.outcome, s.rows])).toEqual([['would update', 2], ['would update', 2], ['would remove', 1]]);
    const rehearse = await run(['plan', '--rehearse'], db);
    expect(rehearse.code, why(rehearse)).toBe(0);
    expect(rehearse.json!.steps.map((s) => [s.outcome, s.rows])).toEqual([['updated', 2], ['updated', 2], ['removed', 1]]);
    expect(await state(db)).toEqual(before);
  });

  it('the hash masker without its key stops the run (PK001, exit 2), nothing changed', async () => {
    const db = await createTestDatabase(ERASE_FIXTURE);
    const before = await state(db);
    const r = await purgekit(['apply', 'erase-user', '--email', 'alice@example.com', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { cwd: project });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/the hash of actor needs its secret key, param hash_key \(--hash-key\)/);
    expect(await state(db)).toEqual(before);
  });

  it('max_rows counts updated rows: more than allowed raises PK009 and rolls back', async () => {
    const db = await createTestDatabase(`${ERASE_FIXTURE}\nINSERT INTO events SELECT g, 1, 'a@b', NULL, 'n', 'alice', 'login' FROM generate_series(10, 110) AS g;`);
    const before = await state(db);
    const r = await run(['apply'], db, ['--confirm', db.name, '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(4);
    expect(r.stderr).toMatch(/step 1 \(public\.events\) would update 103 rows, more than its max_rows 100/);
    expect(await state(db)).toEqual(before);
  });

  it('a detach of a column made NOT NULL since the policy was written fails cleanly: 23502, rolled back, exit 4', async () => {
    const db = await createTestDatabase(`${ERASE_FIXTURE}\nALTER TABLE comments ALTER COLUMN author_id SET NOT NULL;`);
    const before = await state(db);
    const r = await run(['apply'], db, ['--confirm', db.name, '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(4);
    expect(validJson(r).error).toMatchObject({ code: '23502' });
    expect(r.stderr).toMatch(/author_id/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await state(db)).toEqual(before);
  });

  it('a trigger that updates other rows of an anonymized table is caught (here by the preserve check of that table): rolled back', async () => {
    const db = await createTestDatabase(`${ERASE_FIXTURE}
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF pg_trigger_depth() = 1 THEN UPDATE events SET name = name WHERE id = 3; END IF; RETURN NULL; END $$;
CREATE TRIGGER touch AFTER UPDATE ON events FOR EACH STATEMENT EXECUTE FUNCTION touch();`);
    const before = await state(db);
    const r = await run(['apply'], db, ['--confirm', db.name, '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(4);
    expect(r.stderr).toMatch(/preserve rule 1 on public\.events: 3 rows were deleted or updated there but the steps removed 2/);
    expect(await state(db)).toEqual(before);
  });

  it('--backup keeps the old values of the updated rows; restore puts them back (and the deleted row)', async () => {
    const db = await createTestDatabase(ERASE_FIXTURE);
    const before = await state(db);
    const dir = join(mkdtempSync(join(tmpdir(), 'purgekit-anon-backup-')), 'b');
    try {
      const r = await run(['apply'], db, ['--confirm', db.name, '--audit-log', tempAuditLog(), '--backup', dir]);
      expect(r.code, why(r)).toBe(0);
      expect(await state(db)).toEqual(AFTER);
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: { table: string; rows: number; columns: string[]; update?: { key: string[]; columns: string[] } }[] };
      expect(manifest.files.map((f) => [f.table, f.rows, f.update ?? null])).toEqual([
        ['public.events', 2, { key: ['id'], columns: ['email', 'ip', 'name', 'actor', 'kind'] }],
        ['public.comments', 2, { key: ['id'], columns: ['author_id'] }],
        ['public.users', 1, null],
      ]);
      // Only the key and the overwritten columns are kept of an updated row.
      expect(manifest.files[1]!.columns).toEqual(['id', 'author_id']);
      const restored = await purgekit(['restore', dir, '--confirm', db.name, '--connection', db.url]);
      expect(restored.code, why(restored)).toBe(0);
      expect(await state(db)).toEqual(before);
      // Twice: the rows' values are back, so the deleted row is there again and restore refuses.
      const again = await purgekit(['restore', dir, '--confirm', db.name, '--connection', db.url]);
      expect(again.code).not.toBe(0);
      expect(await state(db)).toEqual(before);
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  it(`the standalone script, rendered, sent whole through the simple protocol${hasPsql() ? ' and run by psql -f' : ' (psql is not on PATH: not run by psql)'}: the same rows are left`, async () => {
    const rendered = await purgekit(['render', 'erase-user', '--email', 'alice@example.com', '--hash-key', KEY], { cwd: project });
    expect(rendered.code, why(rendered)).toBe(0);
    const editor = await createTestDatabase(ERASE_FIXTURE);
    const result = await runSimpleQuery(editor.url, rendered.stdout);
    expect(result.ok, JSON.stringify(result)).toBe(true);
    if (result.ok) {
      expect(result.results.filter((row) => String(row['item']).startsWith('step')).map((row) => [row['item'], row['outcome'], Number(row['rows'])])).toEqual([
        ['step 1', 'updated', 2],
        ['step 2', 'updated', 2],
        ['step 3', 'removed', 1],
      ]);
    }
    expect(await state(editor)).toEqual(AFTER);
    if (hasPsql()) {
      const db = await createTestDatabase(ERASE_FIXTURE);
      const psql = runPsql(db.url, tempFile(rendered.stdout));
      expect(psql.status, psql.stderr).toBe(0);
      expect(psql.stdout).toMatch(/step 1 .*updated/);
      expect(await state(db)).toEqual(AFTER);
    }
  });
});

describe('nexus-purge-user --anonymize (seed 000)', () => {
  it("keeps the user's analytics events, actor hashed, email and IP gone; without it they are deleted", async () => {
    const { loadFixture } = await import('./harness/db.js');
    const events = async (db: TestDb) => [...(await db.sql`SELECT id::int AS id, actor_id, actor_email, host(ip) AS ip, event FROM product_events ORDER BY id`)];
    const db = await createTestDatabase(loadFixture('nexus'));
    const r = await purgekit(['apply', 'nexus-purge-user', '--user-id', 'auth|alice', '--delete-owned-companies', '--anonymize', '--anonymize-key', KEY, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json']);
    expect(r.code, why(r)).toBe(0);
    expect(validJson(r).steps.slice(-2).map((s) => [s.table, s.outcome, s.rows])).toEqual([['public.product_events', 'removed', 0], ['public.product_events', 'updated', 2]]);
    expect(await events(db)).toEqual([
      { id: 1, actor_id: hashOf('auth|alice'), actor_email: null, ip: null, event: 'signup' },
      { id: 2, actor_id: hashOf('auth|alice'), actor_email: null, ip: null, event: 'upgrade' },
      { id: 3, actor_id: 'auth|bob', actor_email: 'bob@example.com', ip: '10.1.0.3', event: 'signup' },
    ]);
    const plain = await createTestDatabase(loadFixture('nexus'));
    const d = await purgekit(['apply', 'nexus-purge-user', '--user-id', 'auth|alice', '--delete-owned-companies', '--confirm', plain.name, '--connection', plain.url, '--audit-log', tempAuditLog()]);
    expect(d.code, why(d)).toBe(0);
    expect((await events(plain)).map((e) => e['id'])).toEqual([3]);
  });
});
