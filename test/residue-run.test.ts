import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';
import { project, purgekit, tempAuditLog, validJson, why, type CliResult, type RunJson } from './run-helpers.js';

/**
 * plan|apply --residue (issue 14, item 2; docs/RESIDUE.md "In a run"): the subject's values read
 * in the purge's transaction before its deletes, the scan inside the rehearsal before its
 * ROLLBACK, or after the apply's COMMIT. Seed 002's shape: rephlo-purge-user leaves the account's
 * oidc_models rows (payload->>'accountId', no foreign key). Real PostgreSQL, the CLI as built.
 */
interface Residue {
  scan: string;
  reason: string | null;
  subjects: number | null;
  values: { name: string; source: string }[];
  excluded: { table: string; reason: string }[];
  tables: { table: string; status: string }[];
  findings: { table: string; column: string; kind: string; path: string | null; value: string; rows: number; suggestion: string }[];
  notScanned: string[];
  complete: boolean;
}
type WithResidue = RunJson & { residue?: Residue };

const ALICE = '5f0c6a1e-2b3d-4c5e-8f70-000000000001';
const SESSIONS = `SELECT count(*)::int AS n FROM oidc_models WHERE payload->>'accountId' = '${ALICE}'`;

async function run(db: TestDb, command: 'plan' | 'apply', args: string[], cwd?: string): Promise<{ r: CliResult; json: WithResidue }> {
  const extra = command === 'apply' ? ['--confirm', db.name, '--audit-log', tempAuditLog()] : [];
  const r = await purgekit([command, 'rephlo-purge-user', '--user-id', ALICE, ...args, ...extra, '--connection', db.url, '--json'], cwd ? { cwd } : {});
  return { r, json: validJson(r) as WithResidue };
}

const count = async (db: TestDb, text: string) => ((await db.sql.unsafe(text)) as unknown as { n: number }[])[0]!.n;
const where = (json: WithResidue) => json.residue!.findings.map((f) => `${f.table}.${f.column} ${f.kind} ${f.path ?? ''} ${f.value} ${f.rows}`.replace('  ', ' '));

/** The policy with the suggested step added first (the subject rows still exist when it runs), compiled. */
async function fixedProject(suggestion: string): Promise<string> {
  const dir = project();
  const file = join(dir, 'policies', 'rephlo-purge-user.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace('steps:\n', `steps:\n${suggestion.replace(/^/gm, '  ')}\n`));
  const compiled = await purgekit(['compile'], { cwd: dir });
  expect(compiled.code, why(compiled)).toBe(0);
  return dir;
}

describe('plan --rehearse --residue: residue found before anything is committed', () => {
  it("finds seed 002's sessions by their JSON accountId after the steps ran, and rolls back", async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const { r, json } = await run(db, 'plan', ['--rehearse', '--residue']);
    expect(r.code, why(r)).toBe(0);
    expect(json.outcome).toBe('rolled-back');
    expect(json.residue!.scan).toBe('in-transaction');
    expect(json.residue!.subjects).toBe(1);
    expect(json.residue!.values.map((v) => [v.name, v.source])).toEqual([['id', 'key'], ['email', 'identifier']]);
    expect(where(json)).toEqual(['public.oidc_models.payload json accountId id 6']);
    expect(json.residue!.findings[0]!.suggestion).toBe("- table: oidc_models\n  where: payload->>'accountId' IN (SELECT s.id::text FROM :subject AS s)");
    // After the steps nothing is skipped: the policy's own tables are searched too (their rows are gone).
    expect(json.residue!.tables.map((t) => t.table)).toEqual(expect.arrayContaining(['public.users', 'public.oidc_models']));
    expect(json.residue!.excluded).toEqual([]);
    expect(json.residue!.complete).toBe(true);
    expect(r.stderr).toMatch(/RESIDUE public\.oidc_models\.payload at accountId: id \(json\) in 6 rows/);
    expect(r.stdout + r.stderr).not.toContain(ALICE);
    // Rolled back: the user and the sessions are still there.
    expect(await count(db, `SELECT count(*)::int AS n FROM users WHERE id = '${ALICE}'`)).toBe(1);
    expect(await count(db, SESSIONS)).toBe(6);
    // --fail-on-residue: a check failed, nothing committed: exit 4.
    const failing = await run(db, 'plan', ['--rehearse', '--residue', '--fail-on-residue']);
    expect(failing.r.code, why(failing.r)).toBe(4);
    expect(failing.json.error).toMatchObject({ code: 'RESIDUE' });
    expect(failing.json.error!.message).toMatch(/public\.oidc_models\.payload .*nothing was committed/);
  });

  it('plan --residue (dry run): what the policy removes is not searched, as with purgekit residue', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const { r, json } = await run(db, 'plan', ['--residue']);
    expect(r.code, why(r)).toBe(0);
    expect(json.outcome).toBe('read-only');
    expect(json.residue!.excluded.map((e) => e.table)).toEqual(['public.credit_allocation', 'public.subscriptions', 'public.users']);
    expect(where(json)).toEqual(['public.oidc_models.payload json accountId id 6']);
  });

  it('the fixed policy (the suggested step added) finds none, and --max-seconds 0 names the tables left', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const before = await run(db, 'plan', ['--rehearse', '--residue']);
    const dir = await fixedProject(before.json.residue!.findings[0]!.suggestion);
    const fixed = await run(db, 'plan', ['--rehearse', '--residue', '--fail-on-residue'], dir);
    expect(fixed.r.code, why(fixed.r)).toBe(0);
    expect(fixed.json.residue!.findings).toEqual([]);
    expect(fixed.json.residue!.complete).toBe(true);
    expect(fixed.r.stderr).toMatch(/no residue: none of the values appears/);
    // The budget stops the scan inside the rehearsal; the transaction still rolls back cleanly.
    const budget = await run(db, 'plan', ['--rehearse', '--residue', '--max-seconds', '0'], dir);
    expect(budget.r.code, why(budget.r)).toBe(0);
    expect(budget.json.outcome).toBe('rolled-back');
    expect(budget.json.residue!.complete).toBe(false);
    expect(budget.json.residue!.notScanned).toEqual(budget.json.residue!.tables.map((t) => t.table));
    expect(await count(db, SESSIONS)).toBe(6);
  });
});

describe('apply --residue: after COMMIT, what is left', () => {
  it('reports the sessions the purge left; exit 0 without --fail-on-residue', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const { r, json } = await run(db, 'apply', ['--residue']);
    expect(r.code, why(r)).toBe(0);
    expect(json.outcome).toBe('committed');
    expect(json.residue!.scan).toBe('after-commit');
    expect(where(json)).toEqual(['public.oidc_models.payload json accountId id 6']);
    expect(await count(db, `SELECT count(*)::int AS n FROM users WHERE id = '${ALICE}'`)).toBe(0);
  });

  it('--fail-on-residue: a finding exits 9 (committed, residue found); the fixed policy exits 0', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const { r, json } = await run(db, 'apply', ['--residue', '--fail-on-residue']);
    expect(r.code, why(r)).toBe(9);
    expect(json.outcome).toBe('committed');
    expect(json.error).toMatchObject({ code: 'RESIDUE' });
    expect(json.error!.message).toMatch(/^COMMITTED, but the residue scan found .* public\.oidc_models\.payload/);

    const other = await createTestDatabase(loadFixture('rephlo'));
    const dir = await fixedProject(json.residue!.findings[0]!.suggestion);
    const fixed = await run(other, 'apply', ['--residue', '--fail-on-residue'], dir);
    expect(fixed.r.code, why(fixed.r)).toBe(0);
    expect(fixed.json.residue!.findings).toEqual([]);
    expect(await count(other, SESSIONS)).toBe(0);
  });

  it('an apply that does not commit scans nothing; bad scan options are usage errors before anything runs', async () => {
    const db = await createTestDatabase(loadFixture('rephlo'));
    const usage = async (args: string[], message: RegExp) => {
      const r = await purgekit(['apply', 'rephlo-purge-user', '--user-id', ALICE, ...args, '--confirm', db.name, '--audit-log', tempAuditLog(), '--connection', db.url]);
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toMatch(message);
    };
    await usage(['--fail-on-residue'], /--fail-on-residue goes with --residue/);
    await usage(['--include', 'oidc_models'], /--include goes with --residue/);
    await usage(['--residue', '--include', 'oidc_modles'], /--include oidc_modles: no such table \(did you mean oidc_models\?\)/);
    await usage(['--residue', '--schema', 'pubic'], /--schema pubic: no such schema/);
    await usage(['--residue', '--max-seconds', 'soon'], /--max-seconds: expected a number/);
    const cleanup = await purgekit(['plan', 'rephlo-invalid-sessions', '--residue', '--connection', db.url]);
    expect(cleanup.code, why(cleanup)).toBe(2);
    expect(cleanup.stderr).toMatch(/--residue: rephlo-invalid-sessions is a cleanup policy/);
    expect(await count(db, `SELECT count(*)::int AS n FROM users WHERE id = '${ALICE}'`)).toBe(1);

    // A guard refuses (wrong --confirm): nothing committed, so no scan.
    const refused = await purgekit(['apply', 'rephlo-purge-user', '--user-id', ALICE, '--residue', '--confirm', 'other', '--audit-log', tempAuditLog(), '--connection', db.url, '--json']);
    expect(refused.code, why(refused)).toBe(6);
  });
});
