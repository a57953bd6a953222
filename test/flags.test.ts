/**
 * Flags in author SQL (:flag, a boolean from the parameter block) and `if:` on preserve rules
 * and expectations: the runner (bound values) and the standalone script (rendered values, run by
 * psql or sent whole as a SQL editor does) honour them alike.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, runPsql, runSimpleQuery } from './harness/db.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';
import { tempFile } from './helpers/scripts.js';

const POLICY = `version: 1
name: owner-orgs
kind: cleanup
params:
  owner: { type: integer }
flags:
  delete_orgs: { default: false, description: Also delete shared organisations }
  keep_admins: { default: false, description: Never delete an organisation named admin }
steps:
  - table: orgs
    where: owner = :owner AND (:delete_orgs OR kind = 'personal')
preserve:
  - table: orgs
    where: name = 'admin'
    if: keep_admins
expect:
  - name: every organisation of the owner is gone
    query: SELECT count(*) FROM orgs WHERE owner = :owner
    equals: 0
    if: delete_orgs
  - name: the owner has no shared organisation, unless delete_orgs
    query: SELECT count(*) FROM orgs WHERE owner = :owner AND kind = 'shared' AND NOT :delete_orgs
    equals: 0
    when: before
`;
const FIXTURE = `CREATE TABLE orgs (id int PRIMARY KEY, owner int NOT NULL, kind text NOT NULL, name text NOT NULL);
INSERT INTO orgs VALUES (1, 7, 'personal', 'p'), (2, 7, 'shared', 's'), (3, 7, 'shared', 'admin'), (4, 8, 'shared', 'x'), (5, 9, 'personal', 'q');`;

/** owner and flags given -> ids left, exit code, expectation outcomes (or the failure). */
const CASES: { owner: string; flags: string[]; left: number[]; code: number; outcome: string[] | RegExp }[] = [
  // Refused unless --delete-orgs: owner 7 has shared organisations.
  { owner: '7', flags: [], left: [1, 2, 3, 4, 5], code: 4, outcome: /the owner has no shared organisation, unless delete_orgs \(value 2, wanted = 0\)/ },
  // keep_admins is not set, so its preserve rule does not apply: org 3 goes too.
  { owner: '7', flags: ['--delete-orgs'], left: [4, 5], code: 0, outcome: ['ok', 'ok'] },
  // keep_admins preserves org 3, so "every organisation of the owner is gone" fails: rolled back.
  { owner: '7', flags: ['--delete-orgs', '--keep-admins'], left: [1, 2, 3, 4, 5], code: 4, outcome: /every organisation of the owner is gone \(value 1, wanted = 0\)/ },
  // No shared organisation: runs without --delete-orgs, and the if: delete_orgs expectation is skipped.
  { owner: '9', flags: [], left: [1, 2, 3, 4], code: 0, outcome: ['ok', 'skipped'] },
];

let project: string;
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'purgekit-flags-'));
  mkdirSync(join(project, 'policies'));
  writeFileSync(join(project, 'policies', 'owner-orgs.yaml'), POLICY);
  const r = await purgekit(['compile'], { cwd: project });
  if (r.code !== 0) throw new Error(why(r));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe(':flag in SQL and if: on preserve and expect', () => {
  for (const c of CASES) {
    const label = `--owner ${c.owner}${c.flags.map((f) => ` ${f}`).join('')}`;
    it(`apply with ${label}: rows left ${JSON.stringify(c.left)}, exit ${c.code}`, async () => {
      const db = await createTestDatabase(FIXTURE);
      const r = await purgekit(['apply', 'owner-orgs', '--owner', c.owner, ...c.flags, '--confirm', '--connection', db.url, '--audit-log', tempAuditLog(), '--json'], { cwd: project });
      expect(r.code, why(r)).toBe(c.code);
      expect((await db.sql<{ id: number }[]>`SELECT id FROM orgs ORDER BY id`).map((x) => x.id)).toEqual(c.left);
      validJson(r);
      if (Array.isArray(c.outcome)) expect(r.json!.expectations.map((e) => e.outcome)).toEqual(c.outcome);
      else expect(r.stderr).toMatch(c.outcome);
    });

    it(`render with ${label}, sent whole through the simple protocol${hasPsql() ? ' and run by psql -f' : ' (psql is not on PATH: not run by psql)'}: the same rows are left`, async () => {
      const rendered = await purgekit(['render', 'owner-orgs', '--owner', c.owner, ...c.flags], { cwd: project });
      expect(rendered.code, why(rendered)).toBe(0);
      const editor = await createTestDatabase(FIXTURE);
      const result = await runSimpleQuery(editor.url, rendered.stdout);
      expect(result.ok, JSON.stringify(result)).toBe(c.code === 0);
      expect((await editor.sql<{ id: number }[]>`SELECT id FROM orgs ORDER BY id`).map((x) => x.id)).toEqual(c.left);
      if (hasPsql()) {
        const db = await createTestDatabase(FIXTURE);
        const psql = runPsql(db.url, tempFile(rendered.stdout));
        expect(psql.status, psql.stderr).toBe(c.code === 0 ? 0 : 3);
        expect((await db.sql<{ id: number }[]>`SELECT id FROM orgs ORDER BY id`).map((x) => x.id)).toEqual(c.left);
      }
    });
  }

  it('plan counts with the flags bound: --delete-orgs counts the shared organisations, --keep-admins spares the admin one', async () => {
    const db = await createTestDatabase(FIXTURE);
    for (const [flags, rows] of [[['--delete-orgs'], 3], [['--delete-orgs', '--keep-admins'], 2]] as const) {
      const r = await purgekit(['plan', 'owner-orgs', '--owner', '7', ...flags, '--connection', db.url, '--json'], { cwd: project });
      expect(r.code, why(r)).toBe(0);
      expect(r.json!.steps.map((s) => s.rows)).toEqual([rows]);
    }
  });

  it('validate: an unknown flag in if: or :name is named, with a did-you-mean', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'purgekit-flags-bad-'));
    try {
      writeFileSync(join(dir, 'bad.yaml'), POLICY.replace('    if: keep_admins', '    if: keep_admin').replace('    if: delete_orgs', '    if: delete_org').replace("(:delete_orgs OR", "(:delete_org OR"));
      const r = await purgekit(['validate', join(dir, 'bad.yaml')]);
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toMatch(/bad\.yaml:\d+:\d+: steps\[0\]\.where: unknown parameter :delete_org \(did you mean :delete_orgs\?\)/);
      expect(r.stderr).toMatch(/bad\.yaml:\d+:\d+: preserve\[0\]\.if: unknown flag "keep_admin" \(did you mean "keep_admins"\?\)/);
      expect(r.stderr).toMatch(/bad\.yaml:\d+:\d+: expect\[0\]\.if: unknown flag "delete_org" \(did you mean "delete_orgs"\?\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
