/**
 * purgekit discover against real PostgreSQL: for each fixture, the discovered policy validates,
 * compiles, and its generated script, applied to one root row, removes exactly what the database
 * itself would remove if every blocking foreign key cascaded (the oracle below), and nothing else.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type postgres from 'postgres';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readCatalog, type Catalog, type ForeignKey } from '../src/catalog/catalog.js';
import { compileCommand } from '../src/commands/compile.js';
import { discoverCommand, schemaRef } from '../src/commands/discover.js';
import { runCommand } from '../src/commands/run.js';
import { discover } from '../src/discover/discover.js';
import { paramNameOf } from '../src/discover/resolve.js';
import { ExitCode, UsageError } from '../src/core/errors.js';
import { loadParser } from '../src/sql/parser.js';
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js';
import { validateFiles } from '../src/validate/validateFiles.js';
import { validatePolicy } from '../src/validate/validatePolicy.js';
import { parsePolicyText } from '../src/load/loadPolicy.js';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';

beforeAll(() => loadParser());

/**
 * Self-references of every kind, and a subject key (email) that no foreign key references:
 *   accounts.referrer_id  nullable NO ACTION: not followed, a precondition (detach first)
 *   messages.reply_to     ON DELETE CASCADE: followed recursively (replies in other threads go too)
 *   folders.parent_id     nullable NO ACTION on a child table: not followed; sub-folders of the
 *                         same account go in the same statement, so the precondition excludes them
 *   parts.assembly_id     NOT NULL RESTRICT: followed recursively, in one statement
 *   shares                a composite key to a composite unique key
 */
const EDGE = `
CREATE TABLE accounts (id integer PRIMARY KEY, email text NOT NULL UNIQUE, referrer_id integer REFERENCES accounts (id));
CREATE TABLE threads (id integer PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id), topic text NOT NULL, UNIQUE (account_id, topic));
CREATE TABLE messages (id integer PRIMARY KEY, thread_id integer NOT NULL REFERENCES threads (id), reply_to integer REFERENCES messages (id) ON DELETE CASCADE);
CREATE TABLE folders (id integer PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id), parent_id integer REFERENCES folders (id));
CREATE TABLE parts (id integer PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id), assembly_id integer NOT NULL REFERENCES parts (id) ON DELETE RESTRICT);
CREATE TABLE shares (id integer PRIMARY KEY, owner integer NOT NULL, topic text NOT NULL, FOREIGN KEY (owner, topic) REFERENCES threads (account_id, topic));
INSERT INTO accounts VALUES (1, 'a@example.com', NULL), (2, 'b@example.com', NULL), (3, 'c@example.com', 2);
INSERT INTO threads VALUES (10, 1, 'hello'), (20, 2, 'hello');
INSERT INTO messages VALUES (100, 10, NULL), (101, 10, 100), (200, 20, 101), (201, 20, 200), (202, 20, NULL);
INSERT INTO folders VALUES (1, 1, NULL), (2, 1, 1), (3, 2, NULL), (4, 2, 3);
INSERT INTO parts VALUES (1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 2, 4);
INSERT INTO shares VALUES (1, 1, 'hello'), (2, 2, 'hello');
`;

/**
 * The oracle (every NO ACTION key made CASCADE) would follow "teamId" around the cycle and purge
 * the team's other members: it sees the database as the policy's detach step leaves it.
 */
const DETACH_TEAMS = (owner: string) =>
  `UPDATE app."User" SET "teamId" = NULL WHERE "teamId" IN (SELECT id FROM app."Team" WHERE "ownerId" IN (${quoteLiteral(owner)}))`;

interface Case {
  readonly fixture: string;
  readonly table: string;
  readonly key: string;
  readonly value: string;
  /** Run inside the oracle's transaction first (what the policy's detach steps do that a cascade would not). */
  readonly oracleBefore?: string;
  /** Rows each step must remove (by the report), when the case pins them. */
  readonly steps?: readonly [string, number | null][];
}

const CASES: readonly Case[] = [
  {
    // The User <-> Team cycle, broken by a detach step of "teamId" (no hand-run UPDATE), and the
    // ON DELETE SET NULL self-reference "invitedById" made explicit by a detach step.
    fixture: 'catalog', table: 'app.User', key: 'id', value: 'u2', oracleBefore: DETACH_TEAMS('u2'),
    steps: [['app."Comment"', 3], ['app."Post"', 2], ['app."User"', 1], ['app."Team"', 1], ['audit.event_notes', 1], ['app.events', 2], ['app."User"', 1], ['app."User"', 1]],
  },
  { fixture: 'catalog', table: 'app.User', key: 'id', value: 'u3' },
  { fixture: 'catalog', table: 'app.User', key: 'id', value: 'u1', oracleBefore: DETACH_TEAMS('u1') },
  { fixture: 'nexus', table: 'user_profiles', key: 'user_id', value: 'auth|alice' },
  { fixture: 'vedfolnir', table: 'users', key: 'id', value: '2' },
  { fixture: 'vedfolnir', table: 'users', key: 'id', value: '5' },
  { fixture: 'seeded', table: 'User', key: 'id', value: '7' },
  { fixture: 'seeded', table: 'User', key: 'id', value: '8' },
  { fixture: 'rephlo', table: 'users', key: 'id', value: '5f0c6a1e-2b3d-4c5e-8f70-000000000002' },
  // Inheritance (application_logs_archive), sub-partitions (usage_events), SET NULL (application_logs).
  { fixture: 'supabase', table: 'clients', key: 'id', value: '1' },
  { fixture: 'supabase', table: 'users', key: 'id', value: '1' },
  // Foreign keys declared on each partition of payment, folded into one edge each.
  { fixture: 'pagila-shaped', table: 'customer', key: 'customer_id', value: '1', steps: [['public.payment', 3], ['public.rental', 2], ['public.customer', 1], ['public.staff', null]] },
  {
    fixture: 'edge', table: 'accounts', key: 'email', value: 'a@example.com',
    // Each nullable self-reference (folders.parent_id, accounts.referrer_id) is detached by a step first.
    steps: [['public.folders', 0], ['public.folders', 2], ['public.parts', 3], ['public.messages', 4], ['public.shares', 1], ['public.threads', 1], ['public.accounts', 0], ['public.accounts', 1]],
  },
];

const fixtureSql = (name: string) => (name === 'edge' ? EDGE : loadFixture(name));

describe('purgekit discover: the policy purges one root row completely and touches nothing else', () => {
  for (const c of CASES) {
    it(`${c.fixture}: ${c.table} ${c.key} = ${c.value}`, async () => {
      const db = await createTestDatabase(fixtureSql(c.fixture));
      const { yaml } = await discoverCommand({ connection: db.url, table: c.table, key: c.key });
      const dir = await project(yaml);

      const catalog = await readCatalog(db.sql);
      const root = rootOf(catalog, c.table);
      const referencing = await referencingRows(db.sql, catalog, root, c.key, c.value);
      expect(referencing.length, 'the root row has dependents, so the case tests something').toBeGreaterThan(0);
      const expected = await oracle(db, root, c.key, c.value, c.oracleBefore);
      const before = await rowsByTable(db.sql);
      expect(expected.rows, 'the oracle removes something').not.toEqual(before);

      const run = await apply(dir, db, { [paramNameOf(c.key)]: c.value });
      expect(run.exitCode, run.log).toBe(0);
      expect(run.output.outcome).toBe('committed');
      if (c.steps) expect(run.output.steps.map((s) => [s.table, s.rows])).toEqual(c.steps);

      // Nothing else changed: every table, row for row, is what the database's own cascade leaves.
      expect(await rowsByTable(db.sql)).toEqual(expected.rows);
      expect(await snapshot(db.sql)).toEqual(expected.snapshot);
      // No row that referenced the root through any foreign-key path is left as it was.
      for (const path of referencing) {
        const [{ n }] = await db.sql.unsafe<[{ n: number }]>(`SELECT count(*)::int AS n FROM ${path.table} t WHERE t.*::text = ANY($1::text[])`, [path.rows]);
        expect(n, `rows of ${path.table} reaching the root through ${path.via}`).toBe(0);
      }
    });
  }

  it('catalog: the User <-> Team cycle purged end to end from discover\'s output (discover -> policy -> compile -> apply), no hand-run UPDATE', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'app.User', key: 'id' });
    expect(yaml).not.toMatch(/UPDATE /);
    expect(yaml).toContain(`    detach: [teamId]\n    where: '"teamId" IN (SELECT id FROM app."Team" WHERE "ownerId" IN :subject)'\n`);
    const dir = await project(yaml);
    // u1 owns team 1, which u3 is in; u2 was invited by u1.
    const run = await apply(dir, db, { id: 'u1' });
    expect(run.exitCode, run.log).toBe(0);
    expect(run.output.steps.filter((s) => s.outcome === 'updated').map((s) => [s.table, s.rows])).toEqual([['app."User"', 2], ['app."User"', 1]]);
    expect(await db.sql`SELECT id, "teamId", "invitedById" FROM app."User" ORDER BY id`).toEqual([
      { id: 'u2', teamId: 2, invitedById: null },
      { id: 'u3', teamId: null, invitedById: 'u2' },
    ]);
    expect(await db.sql`SELECT id, "ownerId" FROM app."Team" ORDER BY id`).toEqual([{ id: 2, ownerId: 'u2' }]);
  });

  it('edge: a nullable self-reference to the subject is detached by its own step, in the same run', async () => {
    const db = await createTestDatabase(EDGE);
    const { yaml } = await discoverCommand({ connection: db.url, table: 'accounts', key: 'email' });
    const dir = await project(yaml);
    const run = await apply(dir, db, { email: 'b@example.com' });
    expect(run.exitCode, run.log).toBe(0);
    expect(run.output.steps.find((s) => s.outcome === 'updated' && s.table === 'public.accounts')).toMatchObject({ rows: 1 });
    expect(await db.sql`SELECT id, referrer_id FROM accounts ORDER BY id`).toEqual([{ id: 1, referrer_id: null }, { id: 3, referrer_id: null }]);
  });
});

describe('purgekit discover: the YAML', () => {
  it('catalog fixture, app.User by id: golden file (UPDATE_GOLDEN=1 rewrites it)', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const yaml = discover(await readCatalog(db.sql), { table: 'User', schema: 'app', key: 'id', name: 'purge-user' });
    const golden = join(ROOT, 'test', 'golden-discover', 'catalog-user.yaml');
    if (process.env['UPDATE_GOLDEN'] === '1') {
      mkdirSync(dirname(golden), { recursive: true });
      writeFileSync(golden, yaml);
    }
    expect(yaml).toBe(readFileSync(golden, 'utf8'));
  });

  it('is deterministic: the same catalog, read twice, in any order, gives the same bytes', async () => {
    const db = await createTestDatabase(loadFixture('vedfolnir'));
    const catalog = await readCatalog(db.sql);
    const shuffled: Catalog = { tables: new Map([...catalog.tables].reverse()), foreignKeys: [...catalog.foreignKeys].reverse() };
    const options = { table: 'users', key: 'id', name: 'purge-users' };
    expect(discover(shuffled, options)).toBe(discover(await readCatalog(db.sql), options));
  });

  it('names a table outside the policy schema as schema.name and quotes SQL identifiers as the database spells them', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'app.User', key: 'id' });
    expect(yaml).toMatch(/^schema: app$/m);
    expect(yaml).toMatch(/^ {2}- table: audit\.event_notes$/m);
    // Each path is written once, in a set that later steps read (a composite key as a list).
    expect(yaml).toContain(`  events:\n    table: events\n    key: [id, at]\n    where: '"userId" IN :subject'\n`);
    expect(yaml).toContain('where: (event_id, event_at) IN :events');
    expect(yaml).toContain(`  posts:\n    table: Post\n    key: id\n    where: '"authorId" IN :subject'\n`);
    expect(yaml).toContain(`where: '"authorId" IN :subject OR "postId" IN :posts'`);
    expect(yaml).toMatch(/^ {2}id: \{ type: text, description: .*\}$/m);
  });

  it('pagila: a key declared on each partition is one edge of the partitioned table, written once', async () => {
    const db = await createTestDatabase(loadFixture('pagila-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'customer', key: 'customer_id' });
    expect(yaml).toContain('    description: References public.customer by customer_id; public.rental by rental_id.\n    where: customer_id IN :subject OR rental_id IN :rentals\n');
    expect(yaml.match(/No index covers customer_id/g)).toHaveLength(1);
    expect(yaml).toContain('# Partitioned: the delete reaches its 6 partitions (public.payment_p2022_01 to');
    // staff is only referenced from purged tables but is no 1:1 row: a lookup table, removed only on request.
    expect(yaml).toContain('  remove_unreferenced_staff: { default: false,');
    expect(yaml).toMatch(/- table: staff\n(.*\n)+? {4}if: remove_unreferenced_staff\n/);
  });

  it('maps the key column type to the param type', async () => {
    const db = await createTestDatabase(`${loadFixture('vedfolnir')}\nCREATE TABLE stamps (at timestamp PRIMARY KEY);`);
    expect((await discoverCommand({ connection: db.url, table: 'users', key: 'id' })).yaml).toMatch(/^ {2}id: \{ type: integer,/m);
    expect((await discoverCommand({ connection: db.url, table: 'users', key: 'email' })).yaml).toMatch(/^ {2}email: \{ type: text,/m);
    const stamps = (await discoverCommand({ connection: db.url, table: 'stamps', key: 'at' })).yaml;
    expect(stamps).toMatch(/^ {2}at: \{ type: text,/m);
    expect(stamps).toContain('where: at = CAST(:at AS timestamp without time zone)');
  });
});

describe('purgekit discover: cycles the fixtures do not have (synthetic catalogs, no database)', () => {
  it('breaks a three-table cycle at its one nullable key, even when that key is not the one into the root', () => {
    // r.b_id -> b (nullable), b.a_id -> a, a.r_id -> r: following the cycle from r would come back to r.
    const catalog = syntheticCatalog({ r: ['id', 'b_id?'], a: ['id', 'r_id'], b: ['id', 'a_id'] }, [
      ['r', 'b_id', 'b'], ['a', 'r_id', 'r'], ['b', 'a_id', 'a'],
    ]);
    const yaml = discover(catalog, { table: 'r', key: 'id', name: 'purge-r' });
    expect(valid(yaml)).toEqual([]);
    expect(stepTables(yaml)).toEqual(['r', 'b', 'a', 'r']);
    expect(yaml).toContain("  - table: r\n    description: Keeps the public.r rows that point at removed public.b rows through b_id, without the link.\n    detach: [b_id]\n");
    expect(yaml).toContain('    where: b_id IN (SELECT id FROM public.b WHERE a_id IN :as)\n');
  });

  it('a nullable key into the root that closes a cycle leaves the rest of the cycle alone', () => {
    // a.r_id -> r (nullable) is the only way in: with it broken, a and b are not purged, only detached.
    const catalog = syntheticCatalog({ r: ['id', 'b_id'], a: ['id', 'r_id?'], b: ['id', 'a_id'] }, [
      ['r', 'b_id', 'b'], ['a', 'r_id', 'r'], ['b', 'a_id', 'a'],
    ]);
    const yaml = discover(catalog, { table: 'r', key: 'id', name: 'purge-r' });
    expect(valid(yaml)).toEqual([]);
    expect(stepTables(yaml)).toEqual(['a', 'r']);
    expect(yaml).toContain('    detach: [r_id]\n    where: r_id IN :subject\n');
  });

  it('a cycle of NOT NULL keys cannot be ordered: it is said so, and a precondition fails the run while such rows exist', () => {
    const catalog = syntheticCatalog({ r: ['id', 'a_id'], a: ['id', 'r_id'] }, [['r', 'a_id', 'a'], ['a', 'r_id', 'r']]);
    const yaml = discover(catalog, { table: 'r', key: 'id', name: 'purge-r' });
    expect(valid(yaml)).toEqual([]);
    expect(yaml).toContain('closes a cycle of NOT NULL foreign keys (public.a, public.r)');
    expect(yaml).toMatch(/- name: no public\.\w row points at a removed public\.\w row through \w_id\n {4}when: before/);
  });
});

describe('purgekit discover: usage errors', () => {
  it('an unknown table, with a did-you-mean across schemas and capitals', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    await expect(discoverCommand({ connection: db.url, table: 'User', key: 'id' })).rejects.toThrow(
      new UsageError('--table User: no table User in schema public (which has no tables) (did you mean app.User?)'),
    );
    await expect(discoverCommand({ connection: db.url, table: 'app.user', key: 'id' })).rejects.toThrow(
      new UsageError('--table app.user: no table user in schema app (did you mean app.User?)'),
    );
    await expect(discoverCommand({ connection: db.url, table: 'Usr', schema: 'app', key: 'id' })).rejects.toThrow(/did you mean User\?/);
  });

  it('an unknown key column, and a bad policy name', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    await expect(discoverCommand({ connection: db.url, table: 'app.User', key: 'ID' })).rejects.toThrow(
      new UsageError('--key ID: app."User" has no column ID (did you mean id?)'),
    );
    await expect(discoverCommand({ connection: db.url, table: 'app.User', key: 'id', name: 'Purge_User' })).rejects.toThrow(UsageError);
  });

  it('a server that is not there: ConnectionError (exit 5)', async () => {
    await expect(discoverCommand({ connection: 'postgres://nobody@127.0.0.1:1/none', table: 'users', key: 'id' })).rejects.toMatchObject({
      exitCode: ExitCode.cannotConnect,
    });
  });

  it('--out writes the file, and never overwrites one', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const out = join(tempDir(), 'purge-user.yaml');
    const result = await discoverCommand({ connection: db.url, table: 'User', key: 'id', out });
    expect(result.path).toBe(out);
    expect(readFileSync(out, 'utf8')).toBe(result.yaml);
    await expect(discoverCommand({ connection: db.url, table: 'User', key: 'id', out })).rejects.toThrow(/exists; discover does not overwrite/);
  });

  it('points editors at the schema of the purgekit that wrote it, relative to the file written', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const dir = tempDir();
    mkdirSync(join(dir, 'db', 'policies'), { recursive: true });
    const out = join(dir, 'db', 'policies', 'purge-user.yaml');
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id', out });
    const ref = /^# yaml-language-server: \$schema=(.+)$/m.exec(yaml)![1]!;
    expect(existsSync(join(dirname(out), ref)), ref).toBe(true);
    expect(readFileSync(join(dirname(out), ref), 'utf8')).toBe(readFileSync(join(ROOT, 'schema', 'policy.schema.json'), 'utf8'));
    // Printed to stdout: relative to a file in ./policies of the working directory.
    expect(schemaRef(undefined, join(ROOT))).toBe('../schema/policy.schema.json');
    expect(schemaRef(undefined, join(ROOT, 'demo'))).toBe('../../schema/policy.schema.json');
  });
});

// ---------------------------------------------------------------------------------------------

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-discover-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A scratch project holding the discovered policy, its guard widened to the test databases
 * (pk_*), validated and compiled as a user would.
 */
async function project(yaml: string): Promise<string> {
  const dir = tempDir();
  const name = /^name: (.+)$/m.exec(yaml)![1]!;
  mkdirSync(join(dir, 'policies'));
  const guarded = yaml.replace('databases: ["*_dev", "*_test"]', 'databases: ["*_dev", "*_test", "pk_*"]');
  expect(guarded).not.toBe(yaml);
  writeFileSync(join(dir, 'policies', `${name}.yaml`), guarded);
  const { diagnostics } = await validateFiles([join(dir, 'policies')]);
  expect(diagnostics).toEqual([]);
  await compileCommand([join(dir, 'policies')], join(dir, 'generated'));
  expect(existsSync(join(dir, 'generated', `${name}.sql`))).toBe(true);
  return dir;
}

async function apply(dir: string, db: TestDb, values: Record<string, string>) {
  const log: string[] = [];
  const name = readdirSync(join(dir, 'policies'))[0]!.replace(/\.yaml$/, '');
  const { output, exitCode } = await runCommand('apply', {
    target: name,
    policiesDir: join(dir, 'policies'),
    generatedDir: join(dir, 'generated'),
    values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k.replaceAll('_', '-'), v])),
    pairs: [],
    connection: db.url,
    lockTimeout: '5s',
    statementTimeout: '1min',
    confirm: db.name,
    auditLog: join(dir, 'audit.jsonl'),
    stderr: (line) => log.push(line),
    color: false,
  });
  return { output, exitCode, log: log.join('\n') };
}

function rootOf(catalog: Catalog, table: string): string {
  const [schema, name] = table.includes('.') ? table.split('.') : ['public', table];
  return [...catalog.tables.values()].find((t) => t.schema === schema && t.name === name)!.qualified;
}

type Rows = Record<string, string[]>;

/** Every row of every table, as text, sorted: comparable and readable in a diff. */
async function rowsByTable(sql: postgres.Sql | postgres.TransactionSql): Promise<Rows> {
  const tables = await sql<{ ident: string }[]>`
    SELECT format('%I.%I', n.nspname, c.relname) AS ident
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    ORDER BY 1`;
  const out: Rows = {};
  for (const { ident } of tables) {
    const rows = await sql.unsafe<{ r: string }[]>(`SELECT t.*::text AS r FROM ONLY ${ident} t`);
    out[ident] = rows.map((x) => x.r).sort();
  }
  return out;
}

/**
 * What a purge of the root row must leave, computed by the database itself: inside a transaction
 * that is rolled back, every NO ACTION/RESTRICT foreign key becomes ON DELETE CASCADE (SET NULL
 * ones stay), and the root row is deleted.
 */
async function oracle(db: TestDb, root: string, key: string, value: string, before?: string): Promise<{ rows: Rows; snapshot: Record<string, string> }> {
  let result: { rows: Rows; snapshot: Record<string, string> } | undefined;
  const rollback = new Error('rollback');
  await db.sql
    .begin(async (tx) => {
      const fks = await tx<{ table: string; name: string; def: string }[]>`
        SELECT conrelid::regclass::text AS table, conname AS name, pg_get_constraintdef(oid) AS def
        FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 AND confdeltype IN ('a', 'r') ORDER BY 1, 2`;
      for (const fk of fks) {
        await tx.unsafe(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
        await tx.unsafe(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.def.replace(' ON DELETE RESTRICT', '')} ON DELETE CASCADE`);
      }
      if (before) await tx.unsafe(before);
      await tx.unsafe(`DELETE FROM ${root} WHERE ${quoteIdent(key)} = ${quoteLiteral(value)}`);
      result = { rows: await rowsByTable(tx), snapshot: await snapshot(tx as unknown as postgres.Sql) };
      throw rollback;
    })
    .catch((e: unknown) => {
      if (e !== rollback) throw e;
    });
  return result!;
}

/**
 * Rows that reference the root row through a chain of foreign keys, one entry per chain (every
 * simple path; a chain ends at a SET NULL/SET DEFAULT key, whose rows stay, detached).
 */
async function referencingRows(sql: postgres.Sql, catalog: Catalog, root: string, key: string, value: string) {
  const out: { table: string; via: string; rows: string[] }[] = [];
  const walk = async (table: string, condition: string, path: readonly ForeignKey[]) => {
    for (const fk of catalog.foreignKeys.filter((f) => f.references === table)) {
      const columns = fk.columns.map(quoteIdent).join(', ');
      const where = `(${columns}) IN (SELECT ${fk.referencedColumns.map(quoteIdent).join(', ')} FROM ${table} WHERE ${condition})`;
      const rows = (await sql.unsafe<{ r: string }[]>(`SELECT t.*::text AS r FROM ${fk.table} t WHERE ${where}`)).map((x) => x.r);
      const via = [...path, fk].map((f) => `${f.table}(${f.columns.join(', ')})`).join(' -> ');
      if (rows.length) out.push({ table: fk.table, via, rows });
      const visited = fk.table === root || path.some((f) => f.table === fk.table);
      if (rows.length && !visited && (fk.onDelete === 'no action' || fk.onDelete === 'restrict' || fk.onDelete === 'cascade')) {
        await walk(fk.table, where, [...path, fk]);
      }
    }
  };
  await walk(root, `${quoteIdent(key)} = ${quoteLiteral(value)}`, []);
  return out;
}

/** A catalog from table -> columns ('name?' is nullable; 'id' is the primary key) and [table, column, referenced table] keys. */
function syntheticCatalog(tables: Record<string, string[]>, keys: [string, string, string][]): Catalog {
  const qualified = (t: string) => `public.${t}`;
  const columns = (t: string) => tables[t]!.map((c) => ({ name: c.replace('?', ''), type: 'integer', nullable: c.endsWith('?') }));
  return {
    tables: new Map(Object.keys(tables).map((t) => [qualified(t), {
      qualified: qualified(t), schema: 'public', name: t, partitioned: false, partitions: [], estimatedRows: 0,
      columns: columns(t),
      indexes: [{ name: `${t}_pkey`, columns: ['id'], unique: true, partial: false }],
    }])),
    foreignKeys: keys.map(([t, c, r]) => ({
      name: `${t}_${c}_fkey`, table: qualified(t), columns: [c], references: qualified(r), referencedColumns: ['id'],
      onDelete: 'no action' as const, nullable: columns(t).find((x) => x.name === c)!.nullable, indexed: true,
    })),
  };
}

function valid(yaml: string): readonly { message: string }[] {
  const result = validatePolicy(parsePolicyText('policies/x.yaml', yaml));
  return result.ok ? [] : result.diagnostics;
}

function stepTables(yaml: string): string[] {
  return [...yaml.matchAll(/^ {2}- table: (.+)$/gm)].map((m) => m[1]!);
}
