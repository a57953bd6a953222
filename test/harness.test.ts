import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  dropTestDatabase,
  hasPsql,
  loadFixture,
  rowCounts,
  runPsql,
  runSimpleQuery,
  snapshot,
  type TestDb,
} from './harness/db.js';

// Exercises the awkward cases: mixed-case names, a non-public schema, serial
// sequences, a partitioned table, and a column literally named `t`.
const FIXTURE = `
  CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL);
  CREATE SCHEMA audit;
  CREATE TABLE audit.event (id bigserial PRIMARY KEY, user_id int REFERENCES "User"(id), t text);
  CREATE TABLE audit.log (at date NOT NULL, msg text) PARTITION BY RANGE (at);
  CREATE TABLE audit.log_2024 PARTITION OF audit.log FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE audit.log_2025 PARTITION OF audit.log FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
  INSERT INTO "User"(email) VALUES ('a@x'), ('b@x'), ('c@x');
  INSERT INTO audit.event(user_id, t) VALUES (1, 'login'), (2, 'login'), (1, 'logout');
  INSERT INTO audit.log VALUES ('2024-05-01', 'old'), ('2025-05-01', 'new');
`;

describe('createTestDatabase', () => {
  it('gives each caller its own isolated database', async () => {
    const a = await createTestDatabase(FIXTURE);
    const b = await createTestDatabase();
    expect(a.name).toMatch(/^pk_[0-9a-f]+$/);
    expect(a.name).not.toBe(b.name);
    await a.sql`CREATE TABLE only_in_a (x int)`;
    const [{ n }] = (await b.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('only_in_a', 'User')`) as unknown as [{ n: number }];
    expect(n).toBe(0);
    expect(await rowCounts(a.sql, ['User', 'audit.event', 'audit.log'])).toEqual({
      User: 3,
      'audit.event': 3,
      'audit.log': 2,
    });
  });

  describe('outside a test (beforeAll)', () => {
    let db: TestDb;
    beforeAll(async () => {
      db = await createTestDatabase('CREATE TABLE x (i int); INSERT INTO x VALUES (1)');
    });
    afterAll(async () => {
      await dropTestDatabase(db);
    });
    it('survives across tests until dropTestDatabase', async () => {
      expect(await rowCounts(db.sql, ['x'])).toEqual({ x: 1 });
    });
  });

  let droppedName = '';
  it('registers a drop when called inside a test (part 1)', async () => {
    droppedName = (await createTestDatabase()).name;
  });
  it('registers a drop when called inside a test (part 2)', async () => {
    const db = await createTestDatabase();
    const rows = await db.sql`SELECT 1 FROM pg_database WHERE datname = ${droppedName}`;
    expect(droppedName).not.toBe('');
    expect(rows).toHaveLength(0);
  });

  it('loadFixture resolves test/fixtures relative to the harness, not cwd', () => {
    expect(() => loadFixture('__does_not_exist__')).toThrow(/test[\\/]fixtures[\\/]__does_not_exist__\.sql/);
  });
});

describe('snapshot', () => {
  it('covers tables, partition leaves and sequences with readable keys', async () => {
    const db = await createTestDatabase(FIXTURE);
    const snap = await snapshot(db.sql);
    expect(Object.keys(snap).sort()).toEqual([
      'audit.event',
      'audit.log_2024',
      'audit.log_2025',
      'public.User',
      'seq:audit.event_id_seq',
      'seq:public.User_id_seq',
    ]);
    expect(snap['seq:public.User_id_seq']).toBe('3,true');
  });

  it('is equal for untouched databases with the same content', async () => {
    const a = await createTestDatabase(FIXTURE);
    const b = await createTestDatabase(FIXTURE);
    const before = await snapshot(a.sql);
    expect(await snapshot(a.sql)).toEqual(before);
    expect(await snapshot(b.sql)).toEqual(before);
  });

  it('detects a changed row and a sequence change, and nothing else', async () => {
    const db = await createTestDatabase(FIXTURE);
    const before = await snapshot(db.sql);

    // Touch a column other than \`t\`: proves the hash covers the whole row even
    // though the table has a column with the same name as the row alias.
    await db.sql`UPDATE audit.event SET user_id = 2 WHERE id = 1`;
    const afterUpdate = await snapshot(db.sql);
    expect(changedKeys(before, afterUpdate)).toEqual(['audit.event']);

    await db.sql`SELECT nextval('"User_id_seq"')`;
    const afterNextval = await snapshot(db.sql);
    expect(changedKeys(afterUpdate, afterNextval)).toEqual(['seq:public.User_id_seq']);
  });
});

describe('runSimpleQuery', () => {
  it('runs a multi-statement BEGIN ... COMMIT script and returns the last row set', async () => {
    const db = await createTestDatabase(FIXTURE);
    const res = await runSimpleQuery(
      db.url,
      `BEGIN;
       DELETE FROM audit.event WHERE user_id = 1;
       SELECT count(*)::int AS events FROM audit.event;
       DELETE FROM audit.log WHERE at < '2025-01-01';
       SELECT msg FROM audit.log ORDER BY msg;
       COMMIT;`,
    );
    expect(res).toEqual({ ok: true, results: [{ msg: 'new' }] });
    expect(await rowCounts(db.sql, ['audit.event', 'audit.log'])).toEqual({ 'audit.event': 1, 'audit.log': 1 });
  });

  it('returns the right rows whatever the statement mix', async () => {
    const db = await createTestDatabase();
    const rows = async (text: string) => {
      const r = await runSimpleQuery(db.url, text);
      if (!r.ok) throw new Error(r.error.message);
      return r.results;
    };
    expect(await rows('SELECT 1 AS a')).toEqual([{ a: 1 }]);
    expect(await rows('SELECT 1 AS a; SELECT 2 AS b')).toEqual([{ b: 2 }]);
    expect(await rows('SELECT 1 AS a; COMMIT')).toEqual([{ a: 1 }]);
    expect(await rows('BEGIN; SELECT 1 AS a; COMMIT;')).toEqual([{ a: 1 }]);
    expect(await rows('BEGIN; CREATE TABLE z (i int); COMMIT;')).toEqual([]);
    expect(await rows('SELECT 1 AS a WHERE false; COMMIT')).toEqual([]);
  });

  it('rolls back a failing script entirely and reports the SQLSTATE', async () => {
    const db = await createTestDatabase(FIXTURE);
    const before = await snapshot(db.sql);
    const res = await runSimpleQuery(
      db.url,
      `BEGIN;
       DELETE FROM audit.event;
       DELETE FROM "User";
       UPDATE audit.log SET msg = 'changed';
       SELECT 1 / 0;
       COMMIT;`,
    );
    expect(res).toMatchObject({ ok: false, error: { code: '22012', message: 'division by zero' } });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('rolls back a failing script without explicit BEGIN (implicit transaction)', async () => {
    const db = await createTestDatabase(FIXTURE);
    const before = await snapshot(db.sql);
    const res = await runSimpleQuery(db.url, `DELETE FROM audit.event; SELECT 1 / 0;`);
    expect(res.ok).toBe(false);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('needs max: 1 — the postgres client refuses BEGIN on a pool', async () => {
    const db = await createTestDatabase();
    const pooled = postgres(db.url, { max: 2, onnotice: () => {} });
    try {
      await expect(pooled.unsafe('BEGIN; SELECT 1; COMMIT')).rejects.toMatchObject({ code: 'UNSAFE_TRANSACTION' });
    } finally {
      await pooled.end();
    }
  });

  it('reports connection failures as errors', async () => {
    const db = await createTestDatabase();
    const res = await runSimpleQuery(db.url.replace(db.name, `${db.name}_missing`), 'SELECT 1');
    expect(res).toMatchObject({ ok: false, error: { code: '3D000' } });
  });
});

describe('runPsql', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pk-psql-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it.skipIf(!hasPsql())('runs a file with ON_ERROR_STOP (skipped: psql not on PATH)', async () => {
    const db = await createTestDatabase(FIXTURE);
    const r = runPsql(db.url, write('ok.sql', `BEGIN;\nDELETE FROM audit.event WHERE id = 3;\nCOMMIT;\nSELECT 'done' AS marker;\n`));
    expect(r.stderr).not.toMatch(/ERROR/);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('done');
    expect(await rowCounts(db.sql, ['audit.event'])).toEqual({ 'audit.event': 2 });
  });

  it.skipIf(!hasPsql())('stops at the first error with a failure status (skipped: psql not on PATH)', async () => {
    const db = await createTestDatabase(FIXTURE);
    const before = await snapshot(db.sql);
    const r = runPsql(
      db.url,
      write('bad.sql', `BEGIN;\nDELETE FROM audit.event;\nSELECT 1/0;\nCOMMIT;\nSELECT 'unreachable';\n`),
    );
    expect(r.status).toBe(3); // psql: "error in script with ON_ERROR_STOP"
    expect(r.stderr).toContain('division by zero');
    expect(r.stdout).not.toContain('unreachable');
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

function changedKeys(a: Record<string, string>, b: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}
