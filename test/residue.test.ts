import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import AjvModule from 'ajv';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';
import { project, purgekit, tempAuditLog, why, type CliResult } from './run-helpers.js';

/**
 * purgekit residue (docs/RESIDUE.md): where a purge policy's subject still appears outside what
 * the policy removes. Each test its own database; the CLI spawned as built (npm run build).
 */
interface Finding {
  table: string;
  column: string;
  kind: string;
  path: string | null;
  value: string;
  source: string;
  digest: string | null;
  rows: number;
  keys: Record<string, string | null>[];
  suggestion: string;
}
interface ResidueJson {
  values: { name: string; source: string; digest: string | null; matching: string[] }[];
  excluded: { table: string; reason: string }[];
  tables: { table: string; status: string; reason?: string; access?: string; matchedRows?: number; columns: string[]; skippedColumns: { column: string; reason: string }[]; bytes: number; estimatedRows: number }[];
  findings: Finding[];
  notScanned: string[];
  complete: boolean;
  exitCode: number;
  subjects: number | null;
}

type AjvCtor = new (options: object) => { compile: (schema: object) => { (data: unknown): boolean; errors?: unknown } };
const Ajv = ((AjvModule as unknown as { default?: AjvCtor }).default ?? AjvModule) as unknown as AjvCtor;
const validateOutput = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(
  JSON.parse(readFileSync(join(ROOT, 'docs', 'residue-output.schema.json'), 'utf8')) as object,
);

async function residue(db: TestDb, args: string[], cwd?: string): Promise<{ r: CliResult; json: ResidueJson }> {
  const r = await purgekit(['residue', ...args, '--connection', db.url, '--json', '--audit-log', tempAuditLog()], cwd ? { cwd } : {});
  let json: ResidueJson;
  try {
    json = JSON.parse(r.stdout) as ResidueJson;
  } catch {
    throw new Error(`stdout is not JSON: ${why(r)}`);
  }
  expect(validateOutput(json) ? [] : validateOutput.errors, 'docs/residue-output.schema.json').toEqual([]);
  expect(json.exitCode).toBe(r.code);
  return { r, json };
}

const ALICE = '5f0c6a1e-2b3d-4c5e-8f70-000000000001';

describe('purgekit residue: what it finds', () => {
  it("seed 002: finds the account's oidc_models rows by the JSON accountId, and suggests a step", async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const { r, json } = await residue(db, ['rephlo-purge-user', '--email', 'Free.User@example.com', '--keys', '10']);
    expect(r.code, why(r)).toBe(4);
    expect(json.subjects).toBe(1);
    expect(json.values.map((v) => [v.name, v.source])).toEqual([['id', 'key'], ['email', 'identifier']]);
    const session = json.findings.filter((f) => f.table === 'public.oidc_models');
    expect(session).toEqual([
      expect.objectContaining({ column: 'payload', kind: 'json', path: 'accountId', value: 'id', source: 'key', rows: 6 }),
    ]);
    // 4 sessions, 1 access token, 1 refresh token: named by their primary key.
    expect(session[0]!.keys.map((k) => k['id']).sort()).toHaveLength(6);
    expect(session[0]!.suggestion).toBe("- table: oidc_models\n  where: payload->>'accountId' IN (SELECT s.id::text FROM :subject AS s)");
    // The tables the policy removes rows from are not searched.
    expect(json.excluded.map((e) => e.table)).toEqual(['public.credit_allocation', 'public.subscriptions', 'public.users']);
    expect(json.tables.map((t) => t.table)).not.toContain('public.users');
    // The value itself appears nowhere in what is printed.
    expect(r.stdout + r.stderr).not.toContain(ALICE);
    expect(r.stdout.toLowerCase() + r.stderr.toLowerCase()).not.toContain('free.user@example.com');
    expect(r.stdout).toMatch(/RESIDUE|"findings"/);
  });
});

/** A schema with residue of every kind, and a purge policy for its users (written to a scratch project). */
const SCHEMA = `
CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, username text);
CREATE TABLE profiles (user_id integer PRIMARY KEY REFERENCES users (id), bio text);
CREATE TABLE sessions (id serial PRIMARY KEY, user_id integer REFERENCES users (id) ON DELETE CASCADE, data jsonb);
CREATE TABLE contacts (id serial PRIMARY KEY, email varchar(200));
CREATE TABLE docs (id serial PRIMARY KEY, body jsonb);
CREATE TABLE logs (id serial PRIMARY KEY, line text);
CREATE TABLE refs (id serial PRIMARY KEY, ref text);
CREATE TABLE tags (id serial PRIMARY KEY, people text[]);
INSERT INTO users VALUES (42, 'alice@example.com', 'alice_w'), (7, 'bob@example.com', 'bobby');
INSERT INTO profiles VALUES (42, 'I am alice@example.com'), (7, 'bob');
INSERT INTO sessions (user_id, data) VALUES (42, '{"user": 42, "email": "alice@example.com"}');
INSERT INTO contacts (email) VALUES ('ALICE@Example.COM'), ('bob@example.com');
INSERT INTO docs (body) VALUES ('{"a": {"b": [{"x": 1}, {"owner": {"id": 42}}]}}'), ('{"owner": {"id": 7}}');
INSERT INTO logs (line) VALUES ('2025-01-01 deleted user alice@example.com on request'), ('bob logged in');
INSERT INTO refs (ref) SELECT 'r' || n FROM generate_series(1, 5000) AS n;
INSERT INTO refs (ref) VALUES ('42');
INSERT INTO tags (people) VALUES ('{carol,alice_w}'), ('{bobby}');
`;

const POLICY = `version: 1
name: purge-app-user
kind: purge
params:
  user_id: { type: integer }
  email: { type: text, normalize: lower }
subject:
  table: users
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
    - by: [email]
      where: lower(email) = :email
  identifiers: [email, username]
steps:
  - table: profiles
    where: user_id IN :subject
  - table: users
    where: id IN :subject
`;

async function app(extra = ''): Promise<{ db: TestDb; policy: string }> {
  const db = await createTestDatabase(SCHEMA + extra);
  await db.sql`ANALYZE`;
  const dir = project();
  const policy = join(dir, 'policies', 'purge-app-user.yaml');
  writeFileSync(policy, POLICY);
  return { db, policy };
}

const only = (json: ResidueJson, table: string) => json.findings.filter((f) => f.table === table);

describe('purgekit residue: match kinds', () => {
  it('finds a JSON value at any depth, a substring in free text, an email ignoring case, an array element', async () => {
    const { db, policy } = await app();
    const { r, json } = await residue(db, [policy, '--user-id', '42']);
    expect(r.code, why(r)).toBe(4);
    expect(json.values.map((v) => v.name)).toEqual(['id', 'email', 'username']);
    expect(only(json, 'public.docs')).toEqual([expect.objectContaining({ column: 'body', kind: 'json', path: 'a.b[*].owner.id', value: 'id', rows: 1, keys: [{ id: '1' }] })]);
    expect(only(json, 'public.docs')[0]!.suggestion).toBe(
      `- table: docs\n  where: 'EXISTS (SELECT FROM jsonb_path_query(body, ''strict $."a"."b"[*]."owner"."id"'') AS j WHERE j #>> ''{}'' IN (SELECT s.id::text FROM :subject AS s))'`,
    );
    expect(only(json, 'public.logs')).toEqual([expect.objectContaining({ column: 'line', kind: 'substring', value: 'email', source: 'identifier', rows: 1 })]);
    expect(only(json, 'public.contacts')).toEqual([expect.objectContaining({ column: 'email', kind: 'case-insensitive', value: 'email', rows: 1, keys: [{ id: '1' }] })]);
    expect(only(json, 'public.contacts')[0]!.suggestion).toBe('- table: contacts\n  where: lower(email) IN (SELECT lower(t.email::text) FROM users AS t WHERE t.id IN :subject)');
    expect(only(json, 'public.tags')).toEqual([expect.objectContaining({ column: 'people', kind: 'array-element', value: 'username', rows: 1 })]);
    expect(only(json, 'public.refs')).toEqual([expect.objectContaining({ column: 'ref', kind: 'exact', value: 'id', rows: 1 })]);
    // bob's rows are not the subject's
    expect(json.findings.reduce((n, f) => n + f.rows, 0)).toBe(5);
  });

  it('does not report the tables the policy deletes from, nor what ON DELETE CASCADE empties from them', async () => {
    const { db, policy } = await app();
    const { json } = await residue(db, [policy, '--email', 'alice@example.com']);
    expect(json.excluded).toEqual([
      { table: 'public.profiles', schema: 'public', name: 'profiles', reason: 'a step of the policy deletes from it' },
      { table: 'public.users', schema: 'public', name: 'users', reason: 'a step of the policy deletes from it' },
      { table: 'public.sessions', schema: 'public', name: 'sessions', reason: 'ON DELETE CASCADE from public.users (sessions_user_id_fkey)' },
    ]);
    const tables = json.findings.map((f) => f.table);
    for (const t of ['public.profiles', 'public.users', 'public.sessions']) expect(tables).not.toContain(t);
    expect(json.tables.map((t) => t.table)).toEqual(['public.contacts', 'public.docs', 'public.logs', 'public.refs', 'public.tags']);
  });

  it('after the purge: --value names what to search for; nothing left is exit 0', async () => {
    const { db, policy } = await app();
    await db.sql`DELETE FROM contacts WHERE id = 1; DELETE FROM docs WHERE id = 1; DELETE FROM logs WHERE id = 1; DELETE FROM refs WHERE ref = '42'; DELETE FROM tags WHERE id = 1`.simple();
    await db.sql`DELETE FROM sessions; DELETE FROM profiles WHERE user_id = 42; DELETE FROM users WHERE id = 42`.simple();
    const { r, json } = await residue(db, [policy, '--value', 'id=42', '--value', 'email=Alice@Example.com', '--value', 'username=alice_w']);
    expect(r.code, why(r)).toBe(0);
    expect(json.subjects).toBe(0);
    expect(json.findings).toEqual([]);
    expect(json.complete).toBe(true);
    expect(r.stderr).toMatch(/no residue/);
  });
});

describe('purgekit residue: cost', () => {
  it('uses a btree index when one answers (EXPLAIN), a pg_trgm index for substrings, a GIN index on jsonb', async () => {
    const { db, policy } = await app(`
      CREATE INDEX refs_ref_idx ON refs (ref);
      CREATE EXTENSION pg_trgm;
      INSERT INTO logs (line) SELECT 'line ' || n || ' nothing to see' FROM generate_series(1, 50000) AS n;
      CREATE INDEX logs_line_trgm ON logs USING gin (line gin_trgm_ops);
      INSERT INTO docs (body) SELECT jsonb_build_object('n', 'x' || n) FROM generate_series(1, 5000) AS n;
      CREATE INDEX docs_body_gin ON docs USING gin (body);
      DELETE FROM profiles WHERE user_id = 42; DELETE FROM sessions; DELETE FROM users WHERE id = 42;`);
    // Exact values only (a bare number): the btree on refs.ref and the GIN on docs.body answer.
    const exact = await residue(db, [policy, '--value', 'id=42', '--include', 'refs', '--include', 'docs']);
    const access = Object.fromEntries(exact.json.tables.map((t) => [t.table, t.access]));
    expect(access['public.refs']).toMatch(/index.*refs_ref_idx/);
    expect(access['public.docs']).toMatch(/bitmap index scan \(docs_body_gin\)/);
    expect(exact.json.findings.map((f) => `${f.table} ${f.kind}`).sort()).toEqual(['public.docs json', 'public.refs exact']);
    // A substring needs a trigram index: logs has one.
    const sub = await residue(db, [policy, '--value', 'email=alice@example.com', '--include', 'logs']);
    expect(sub.json.tables[0]!.access).toMatch(/bitmap index scan \(logs_line_trgm\)/);
    expect(sub.json.findings).toEqual([expect.objectContaining({ table: 'public.logs', kind: 'substring', rows: 1 })]);
    // The same, planned here: what the server does with the statement the scan sends.
    const plan = await db.sql.unsafe(`EXPLAIN SELECT id FROM ONLY public.refs WHERE ref = ANY($1::text[])`, [['42']] as never[]);
    expect(plan.map((p) => Object.values(p)[0]).join('\n')).toMatch(/Index.*refs_ref_idx/);
  });

  it('--estimate reads nothing and says what a scan would read', async () => {
    const { db, policy } = await app();
    const { r, json } = await residue(db, [policy, '--user-id', '42', '--estimate']);
    expect(r.code, why(r)).toBe(0);
    expect(json.findings).toEqual([]);
    const refs = json.tables.find((t) => t.table === 'public.refs')!;
    expect(refs.estimatedRows).toBe(5001);
    expect(refs.bytes).toBeGreaterThan(8192);
    expect(r.stderr).toMatch(/estimate: 5 tables, ~5,009 rows, \d+ kB on disk/);
  });

  it('--max-seconds: a scan stopped by the budget names the table it was in and the tables left', async () => {
    const { db, policy } = await app();
    // logs is locked by another session: its scan waits there until the budget runs out.
    const locker = postgres(db.url, { max: 1, onnotice: () => {} });
    const held = locker.begin(async (tx) => {
      await tx`LOCK TABLE logs IN ACCESS EXCLUSIVE MODE`;
      await new Promise<void>((resolve) => setTimeout(resolve, 6000));
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const { r, json } = await residue(db, [policy, '--user-id', '42', '--max-seconds', '1.5']);
      expect(r.code, why(r)).toBe(4);
      const status = Object.fromEntries(json.tables.map((t) => [t.table, t.status]));
      expect(status).toEqual({ 'public.contacts': 'scanned', 'public.docs': 'scanned', 'public.logs': 'not-scanned', 'public.refs': 'not-scanned', 'public.tags': 'not-scanned' });
      expect(json.notScanned).toEqual(['public.logs', 'public.refs', 'public.tags']);
      expect(json.tables.find((t) => t.table === 'public.logs')!.reason).toMatch(/stopped by the time budget/);
      expect(json.complete).toBe(false);
      expect(r.stderr).toMatch(/time budget used up: 3 tables not scanned: public.logs, public.refs, public.tags/);
    } finally {
      await held;
      await locker.end();
    }
  });
});

describe('purgekit residue: what it cannot read', () => {
  it('reports a table the role cannot read, a column it cannot read, a column that cannot be cast, as skipped with why', async () => {
    const { db, policy } = await app(`
      CREATE TABLE secrets (id serial PRIMARY KEY, note text);
      INSERT INTO secrets (note) VALUES ('alice@example.com');
      CREATE TABLE raw_events (id serial PRIMARY KEY, doc json);
      INSERT INTO raw_events (doc) VALUES ('{"a": "\\u0000"}');`);
    const role = `pk_reader_${db.name.slice(3)}`;
    await db.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'reader'`);
    try {
      await db.sql.unsafe(`GRANT SELECT ON users, docs, logs, refs, tags, raw_events TO ${role}; GRANT SELECT (id) ON contacts TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = 'reader';
      const r = await purgekit(['residue', policy, '--value', 'id=42', '--no-substring', '--connection', url.toString(), '--json']);
      const json = JSON.parse(r.stdout) as ResidueJson;
      expect(r.code, why(r)).toBe(4);
      const byTable = Object.fromEntries(json.tables.map((t) => [t.table, t]));
      expect(byTable['public.secrets']).toMatchObject({ status: 'skipped', reason: 'permission denied: the role may not read this table' });
      expect(byTable['public.contacts']).toMatchObject({ status: 'skipped', reason: 'permission denied: the role may read none of its searchable columns', skippedColumns: [{ column: 'email', reason: 'permission denied: the role may not read this column' }] });
      expect(byTable['public.raw_events']).toMatchObject({ status: 'skipped', skippedColumns: [{ column: 'doc', reason: expect.stringMatching(/cannot be read as jsonb \(22P05/) }] });
      expect(json.complete).toBe(false);
      expect(json.findings.map((f) => f.table).sort()).toEqual(['public.docs', 'public.refs', 'public.tags']);
    } finally {
      await db.sql.unsafe(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});

describe('purgekit residue: bad input (exit 2)', () => {
  it('an unknown --value name, a value of the wrong type, an unknown schema or table', async () => {
    const { db, policy } = await app();
    const run = (args: string[]) => purgekit(['residue', policy, ...args, '--connection', db.url]);
    const unknown = await run(['--value', 'emial=a@b.c']);
    expect(unknown.code, why(unknown)).toBe(2);
    expect(unknown.stderr).toMatch(/--value emial: purge-app-user has no identifying value of that name \(did you mean email\?\); it has id, email, username, user_id/);
    const typed = await run(['--value', 'id=abc']);
    expect(typed.code, why(typed)).toBe(2);
    expect(typed.stderr).toContain(`${policy}:9:8: --value id: the value is not a valid integer (column public.users.id is integer): expected decimal digits with an optional sign`);
    expect(typed.stderr).not.toContain('abc');
    const schema = await run(['--user-id', '42', '--schema', 'pubic']);
    expect(schema.code, why(schema)).toBe(2);
    expect(schema.stderr).toMatch(/--schema pubic: no such schema \(did you mean public\?\)/);
    const table = await run(['--user-id', '42', '--include', 'logz']);
    expect(table.code, why(table)).toBe(2);
    expect(table.stderr).toMatch(/--include logz: no such table \(did you mean logs\?\)/);
    const nothing = await run([]);
    expect(nothing.code, why(nothing)).toBe(2);
  });

  it('an identifier that is not a column of the subject table: located, at lint time and by residue', async () => {
    const { db, policy } = await app();
    writeFileSync(policy, POLICY.replace('identifiers: [email, username]', 'identifiers: [email, usrname]'));
    const r = await purgekit(['residue', policy, '--user-id', '42', '--connection', db.url]);
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toContain(`${policy}:15:24: subject.identifiers[1]: column usrname of public.users does not exist (did you mean username?)`);
    const lint = await purgekit(['lint', policy, '--connection', db.url]);
    expect(lint.stdout).toContain(`${policy}:15:24: error PK-L002`);
    expect(lint.stdout).toMatch(/subject\.identifiers\[1\]: column usrname of public.users does not exist \(did you mean username\?\)/);
  });
});

describe('purgekit residue: the nexus fixture (seed 000)', () => {
  it("finds the analytics table's copied email, a JSON copy of the business email, and the company a flag would have removed", async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const log = tempAuditLog();
    writeFileSync(`${log}.key`, Buffer.alloc(32, 7));
    const r = await purgekit(['residue', 'nexus-purge-user', '--email', 'alice@example.com', '--connection', db.url, '--json', '--audit-log', log]);
    expect(r.code, why(r)).toBe(4);
    const json = JSON.parse(r.stdout) as ResidueJson;
    expect(validateOutput(json) ? [] : validateOutput.errors).toEqual([]);
    const found = json.findings.map((f) => `${f.table}.${f.column} ${f.kind}${f.path ? ` ${f.path}` : ''} ${f.value} ${f.rows}`);
    expect(found).toEqual([
      'public.analytics_events.user_email exact email 1',
      'public.analytics_events.properties json invited.email business_email 1',
      'public.companies.owner_id exact user_id 1',
    ]);
    const hmac = (v: string) => `hmac-sha256:${createHmac('sha256', Buffer.alloc(32, 7)).update(v, 'utf8').digest('hex')}`;
    expect(json.findings[0]!.digest).toBe(hmac('Alice@Example.com'));
    expect(json.values.find((v) => v.name === 'business_email')!.digest).toBe(hmac('alice@corp.example'));
    // With the flag, the policy removes the companies too: not residue.
    const flagged = await purgekit(['residue', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--connection', db.url]);
    expect(flagged.stdout).not.toMatch(/RESIDUE public.companies/);
    expect(flagged.stdout).toMatch(/not searched, the policy removes them: .*public.companies/);
    expect(flagged.stdout).toMatch(/RESIDUE public.analytics_events.user_email: email \(exact\) in 1 row \(id 1\)\n {4}- table: analytics_events\n {6}where: user_email IN \(SELECT t.email::text FROM user_profiles AS t WHERE t.user_id IN :subject\)/);
  });
});

describe('purgekit residue: the suggested step', () => {
  it('added to the policy, the purge removes the residue and a scan after it finds none', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const dir = project();
    const before = await residue(db, ['rephlo-purge-user', '--user-id', ALICE], dir);
    const step = before.json.findings.find((f) => f.table === 'public.oidc_models')!.suggestion;
    const file = join(dir, 'policies', 'rephlo-purge-user.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('steps:\n', `steps:\n${step.replace(/^/gm, '  ')}\n`));
    const compiled = await purgekit(['compile'], { cwd: dir });
    expect(compiled.code, why(compiled)).toBe(0);
    const apply = await purgekit(['apply', 'rephlo-purge-user', '--user-id', ALICE, '--connection', db.url, '--confirm', db.name, '--audit-log', tempAuditLog()], { cwd: dir });
    expect(apply.code, why(apply)).toBe(0);
    const [left] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM oidc_models WHERE payload->>'accountId' = ${ALICE}`;
    expect(left!.n).toBe(0);
    const after = await residue(db, ['rephlo-purge-user', '--value', `id=${ALICE}`, '--value', 'email=free.user@example.com'], dir);
    expect(after.r.code, why(after.r)).toBe(0);
    expect(after.json.findings).toEqual([]);
  });
});
