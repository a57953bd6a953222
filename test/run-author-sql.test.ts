/**
 * Author SQL may only read, checked where only the live database can tell (issue 9 item 4):
 * a user-defined VOLATILE function stops the run before any author SQL runs (PK011), and a
 * function that switches foreign keys off (session_replication_role = replica) rolls the run
 * back before COMMIT (PK010), in the runner and in the standalone script alike.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';

const SCHEMA = `
  CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
  CREATE TABLE posts (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users (id));
  INSERT INTO users VALUES (1, 'ann@example.com'), (2, 'bob@example.com');
  INSERT INTO posts VALUES (10, 1), (11, 1), (12, 2);
  CREATE TABLE calls (what text);
  -- Marked STABLE, so neither validation nor the catalog check sees it: it switches foreign keys off.
  CREATE FUNCTION quietly() RETURNS boolean STABLE LANGUAGE sql
    AS $$ SELECT set_config('session_replication_role', 'replica', true) IS NOT NULL $$;
  -- VOLATILE by default, though it changes nothing: the kind an author can vouch for.
  CREATE FUNCTION fresh() RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
  -- Honestly VOLATILE: it writes. It must never run.
  CREATE FUNCTION noisy() RETURNS boolean VOLATILE LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO calls VALUES ('noisy'); RETURN true; END $$;
`;

/** A scratch project with one policy, compiled. */
async function project(name: string, yaml: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-sql-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', `${name}.yaml`), yaml);
  const r = await purgekit(['compile'], { cwd: dir });
  expect(r.code, why(r)).toBe(0);
  return dir;
}

const purge = (name: string, where: string, extra = '') => `version: 1
name: ${name}
kind: purge
params:
  email: { type: text }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: email = :email
steps:
  - table: users
    where: ${where}
${extra}`;

async function apply(db: TestDb, dir: string, name: string) {
  const r = await purgekit(['apply', name, '--email', 'ann@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()], { cwd: dir });
  return { r, json: validJson(r) };
}

async function orphans(db: TestDb): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM posts p WHERE NOT EXISTS (SELECT FROM users u WHERE u.id = p.user_id)`;
  return row!.n;
}

describe('author SQL against the live catalog', () => {
  it('a function that sets session_replication_role = replica: rolled back before COMMIT (PK010), no orphans', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = await project('sneaky', purge('sneaky', 'id IN :subject AND quietly()'));
    const before = await snapshot(db.sql);
    const { r, json } = await apply(db, dir, 'sneaky');
    expect(r.code, why(r)).toBe(4);
    expect(json.error?.code).toBe('PK010');
    expect(json.error?.message).toMatch(/session_replication_role origin at the start, replica now/);
    expect(await orphans(db)).toBe(0);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('the standalone script refuses the same way when run by hand (simple protocol, as psql does)', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = await project('sneaky', purge('sneaky', 'id IN :subject AND quietly()'));
    const script = readFileSync(join(dir, 'generated', 'sneaky.sql'), 'utf8');
    const filled = await purgekit(['render', 'sneaky', '--email', 'ann@example.com'], { cwd: dir });
    expect(filled.code, why(filled)).toBe(0);
    expect(script).toContain('PK010');
    const before = await snapshot(db.sql);
    const result = await runSimpleQuery(db.url, filled.stdout);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code: 'PK010' });
    expect(await orphans(db)).toBe(0);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('a session already under replica is refused too: foreign keys would not fire for the whole run', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = await project('plain', purge('plain', 'id IN :subject'));
    const filled = await purgekit(['render', 'plain', '--email', 'ann@example.com'], { cwd: dir });
    const result = await runSimpleQuery(db.url, `SET session_replication_role = replica;\n${filled.stdout}`);
    expect(result.ok ? 'ran' : result.error.code).toBe('PK010');
    expect(await orphans(db)).toBe(0);
  });

  it('a VOLATILE user-defined function: refused before any author SQL runs (PK011, exit 2)', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = await project('noisy', purge('noisy', 'id IN :subject AND noisy()'));
    const before = await snapshot(db.sql);
    const { r, json } = await apply(db, dir, 'noisy');
    expect(r.code, why(r)).toBe(2);
    expect(json.error?.code).toBe('PK011');
    expect(r.stderr).toContain('the policy calls a VOLATILE function (it could change data or settings): public.noisy');
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('verify of a check policy: the same refusal, and the function never ran', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = await project('watch', `version: 1
name: watch
kind: check
expect:
  - name: users
    query: SELECT count(*) FROM users WHERE noisy()
    min: 0
`);
    const r = await purgekit(['verify', 'watch', '--connection', db.url, '--json'], { cwd: dir });
    expect(r.code, why(r)).toBe(2);
    expect(validJson(r).error?.code).toBe('PK011');
    const [calls] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM calls`;
    expect(calls!.n).toBe(0);
  });

  it("the runner's own check: a vouched-for function that moves search_path and covers its tracks in the script's table", async () => {
    const db = await createTestDatabase(`${SCHEMA} DELETE FROM posts WHERE user_id = 1;
      CREATE FUNCTION cover() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN
        PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
        UPDATE pg_temp.purgekit_settings SET search_path = current_setting('search_path');
        RETURN true; END $$;`);
    const dir = await project('cover', purge('cover', 'id IN :subject AND public.cover()', 'allow_functions: [public.cover]\n'));
    const before = await snapshot(db.sql);
    const { r, json } = await apply(db, dir, 'cover');
    expect(r.code, why(r)).toBe(4);
    expect(json.error?.code).toBe('RUNNER');
    expect(json.error?.message).toContain('search_path public, pg_temp at the start, pg_catalog, pg_temp now');
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('allow_functions lets a function the author vouches for run, and the header says so', async () => {
    const db = await createTestDatabase(`${SCHEMA} DELETE FROM posts WHERE user_id = 1;`);
    const dir = await project('vouched', purge('vouched', 'id IN :subject AND fresh()', 'allow_functions: [fresh]\n'));
    expect(readFileSync(join(dir, 'generated', 'vouched.sql'), 'utf8')).toMatch(/^-- Allowed: +fresh \(allow_functions/m);
    const { r } = await apply(db, dir, 'vouched');
    expect(r.code, why(r)).toBe(0);
    const [users] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM users`;
    expect(users!.n).toBe(1);
  });
});
