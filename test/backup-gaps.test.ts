/**
 * A backup must hold every row the run deletes. Rows it cannot follow (a self-referencing
 * ON DELETE CASCADE several levels deep) fail the run instead of committing with a gap.
 */
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, snapshot } from './harness/db.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';

function scratchProject(policy: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-gaps-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'tree.yaml'), policy);
  return dir;
}

describe('backup completeness', () => {
  it('a self-referencing cascade three levels deep: the run fails (RUNNER) instead of committing a backup with a gap', async () => {
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
    expect(r.code, why(r)).toBe(4);
    expect(r.json?.error?.code).toBe('RUNNER');
    expect(r.json?.error?.message).toContain('public.nodes: 3 deleted, 2 backed up');
    expect(await snapshot(db.sql)).toEqual(before);
    expect(existsSync(backup)).toBe(false);
    // Without --backup nothing needs copying, and the declared cascade is allowed.
    const plain = await purgekit(['apply', 'tree', '--confirm', '--connection', db.url, '--audit-log', tempAuditLog()], { cwd: project });
    expect(plain.code, why(plain)).toBe(0);
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
