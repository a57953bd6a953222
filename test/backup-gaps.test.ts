/**
 * A backup must hold every row the run deletes, each row once: ON DELETE CASCADE followed to
 * every level (a self-reference too), and rows the step's own where removes never copied again
 * as cascade rows (issue 8, item 2).
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, snapshot, type TestDb } from './harness/db.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';

function scratchProject(policy: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-gaps-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'tree.yaml'), policy);
  return dir;
}

describe('backup completeness', () => {
  it('a self-referencing cascade three levels deep from a step that takes only the root: every level is in the backup, and it restores', async () => {
    const db = await createTestDatabase(`
      CREATE TABLE nodes (id int PRIMARY KEY, parent int REFERENCES nodes (id) ON DELETE CASCADE);
      INSERT INTO nodes VALUES (1, NULL), (2, 1), (3, 2), (4, NULL);`);
    const project = scratchProject(`version: 1
name: tree
kind: cleanup
steps:
  - table: nodes
    where: id = 1
    cascades: [nodes]
`);
    expect((await purgekit(['compile'], { cwd: project })).code).toBe(0);
    const before = await snapshot(db.sql);
    const backup = join(mkdtempSync(join(tmpdir(), 'purgekit-gaps-bk-')), 'b');
    const r = await purgekit(['apply', 'tree', '--confirm', '--connection', db.url, '--audit-log', tempAuditLog(), '--backup', backup, '--json'], { cwd: project });
    expect(r.code, why(r)).toBe(0);
    expect(files(backup)).toEqual([
      { table: 'public.nodes', rows: 2, reason: 'step 1 cascade via nodes_parent_fkey' },
      { table: 'public.nodes', rows: 1, reason: 'step 1' },
    ]);
    expect(await db.sql`SELECT id FROM nodes`).toEqual([{ id: 4 }]);
    const back = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url]);
    expect(back.code, why(back)).toBe(0);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('a table reached along two cascade paths is copied once, and the backup restores', async () => {
    const db = await createTestDatabase(`
      CREATE TABLE a (id int PRIMARY KEY);
      CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a (id) ON DELETE CASCADE);
      CREATE TABLE c (id int PRIMARY KEY, a int REFERENCES a (id) ON DELETE CASCADE, b int REFERENCES b (id) ON DELETE CASCADE);
      INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (10, 1), (20, 2); INSERT INTO c VALUES (100, 1, 10), (200, 2, 20);`);
    const project = scratchProject(`version: 1
name: tree
kind: cleanup
steps:
  - table: a
    where: id = 1
    cascades: [b, c]
`);
    expect((await purgekit(['compile'], { cwd: project })).code).toBe(0);
    const before = await snapshot(db.sql);
    const backup = join(mkdtempSync(join(tmpdir(), 'purgekit-gaps-bk-')), 'b');
    const r = await purgekit(['apply', 'tree', '--confirm', '--connection', db.url, '--audit-log', tempAuditLog(), '--backup', backup], { cwd: project });
    expect(r.code, why(r)).toBe(0);
    const back = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url]);
    expect(back.code, why(back)).toBe(0);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

/** A documenso-shaped tree: "Folder"."parentId" REFERENCES "Folder" ON DELETE CASCADE, documents in folders, recipients of documents. */
const FOLDERS = `
  CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
  CREATE TABLE "Folder" (
    id text PRIMARY KEY, name text NOT NULL,
    "userId" int NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    "parentId" text REFERENCES "Folder" (id) ON DELETE CASCADE);
  CREATE TABLE "Document" (
    id serial PRIMARY KEY, title text NOT NULL,
    "userId" int NOT NULL REFERENCES "User" (id) ON DELETE CASCADE,
    "folderId" text REFERENCES "Folder" (id) ON DELETE CASCADE);
  CREATE TABLE "Recipient" (id serial PRIMARY KEY, email text NOT NULL, "documentId" int NOT NULL REFERENCES "Document" (id) ON DELETE CASCADE);
  INSERT INTO "User" (email) VALUES ('alice@example.com'), ('bob@example.com');
  -- Alice: a tree four levels deep with two branches; Bob: his own tree, and a document in Alice's.
  INSERT INTO "Folder" VALUES
    ('a1', 'root', 1, NULL), ('a2', 'level 2', 1, 'a1'), ('a3', 'level 3', 1, 'a2'), ('a4', 'level 4', 1, 'a3'),
    ('a5', 'level 2b', 1, 'a1'), ('a6', 'other root', 1, NULL),
    ('b1', 'bob root', 2, NULL), ('b2', 'bob level 2', 2, 'b1');
  INSERT INTO "Document" (title, "userId", "folderId") VALUES
    ('in a1', 1, 'a1'), ('in a4', 1, 'a4'), ('in a5', 1, 'a5'), ('loose', 1, NULL),
    ('bob in a3', 2, 'a3'), ('bob in b2', 2, 'b2');
  INSERT INTO "Recipient" (email, "documentId") VALUES ('r1@example.com', 1), ('r2@example.com', 2), ('r3@example.com', 5), ('r4@example.com', 6);`;

function files(dir: string): { table: string; rows: number; reason: string }[] {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: { table: string; rows: number; reason: string }[] };
  return manifest.files.map(({ table, rows, reason }) => ({ table, rows, reason }));
}

async function applyAndRestore(db: TestDb, project: string, args: string[]): Promise<{ table: string; rows: number; reason: string }[]> {
  expect((await purgekit(['compile'], { cwd: project })).code).toBe(0);
  const before = await snapshot(db.sql);
  const backup = join(mkdtempSync(join(tmpdir(), 'purgekit-gaps-bk-')), 'b');
  const r = await purgekit(['apply', 'tree', ...args, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--backup', backup, '--json'], { cwd: project });
  expect(r.code, why(r)).toBe(0);
  expect(await snapshot(db.sql)).not.toEqual(before);
  const back = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url]);
  expect(back.code, why(back)).toBe(0);
  expect(await snapshot(db.sql)).toEqual(before);
  return files(backup);
}

describe('backup of a self-referencing ON DELETE CASCADE (documenso "Folder"."parentId")', () => {
  it('the policy discover writes (each step takes the whole tree): applies with --backup and restores to identical tables', async () => {
    const db = await createTestDatabase(FOLDERS);
    const project = scratchProject('');
    rmSync(join(project, 'policies', 'tree.yaml'));
    const d = await purgekit(['discover', '--table', 'User', '--key', 'id', '--name', 'tree', '--connection', db.url]);
    expect(d.code, why(d)).toBe(0);
    // The test databases are named pk_<hex>.
    writeFileSync(join(project, 'policies', 'tree.yaml'), d.stdout.replace(/databases: \[.*\]/, 'databases: ["pk_*"]'));
    const backedUp = await applyAndRestore(db, project, ['--id', '1']);
    const rows = (table: string) => backedUp.filter((f) => f.table === table).reduce((n, f) => n + f.rows, 0);
    // Every one of Alice's folders once, her documents and Bob's inside her tree, their recipients.
    expect(rows('public."Folder"')).toBe(6);
    expect(rows('public."Document"')).toBe(5);
    expect(rows('public."Recipient"')).toBe(3);
    expect(rows('public."User"')).toBe(1);
  });

  it('a step whose where takes the whole tree, with the cascade declared: nothing copied twice', async () => {
    const db = await createTestDatabase(FOLDERS);
    const project = scratchProject(`version: 1
name: tree
kind: cleanup
steps:
  - table: Recipient
    where: '"documentId" IN (SELECT id FROM "Document" WHERE "folderId" IN (WITH RECURSIVE t AS (SELECT id FROM "Folder" WHERE id = ''a1'' UNION SELECT f.id FROM "Folder" f JOIN t ON f."parentId" = t.id) SELECT id FROM t))'
  - table: Document
    where: '"folderId" IN (WITH RECURSIVE t AS (SELECT id FROM "Folder" WHERE id = ''a1'' UNION SELECT f.id FROM "Folder" f JOIN t ON f."parentId" = t.id) SELECT id FROM t)'
  - table: Folder
    where: id IN (WITH RECURSIVE t AS (SELECT id FROM "Folder" WHERE id = 'a1' UNION SELECT f.id FROM "Folder" f JOIN t ON f."parentId" = t.id) SELECT id FROM t)
    cascades: [Folder]
`);
    const backedUp = await applyAndRestore(db, project, []);
    expect(backedUp.filter((f) => f.rows > 0)).toEqual([
      { table: 'public."Recipient"', rows: 3, reason: 'step 1' },
      { table: 'public."Document"', rows: 4, reason: 'step 2' },
      { table: 'public."Folder"', rows: 5, reason: 'step 3' },
    ]);
  });

  it('a step that takes only the root: the whole subtree and what hangs off it come along by cascade, each row once', async () => {
    const db = await createTestDatabase(FOLDERS);
    const project = scratchProject(`version: 1
name: tree
kind: cleanup
steps:
  - table: Folder
    where: id = 'a1'
    cascades: [Folder, Document, Recipient]
`);
    const backedUp = await applyAndRestore(db, project, []);
    const rows = (table: string) => backedUp.filter((f) => f.table === table).reduce((n, f) => n + f.rows, 0);
    expect(backedUp.filter((f) => f.reason === 'step 1')).toEqual([{ table: 'public."Folder"', rows: 1, reason: 'step 1' }]);
    expect(rows('public."Folder"')).toBe(5);
    expect(rows('public."Document"')).toBe(4);
    expect(rows('public."Recipient"')).toBe(3);
  });
});
