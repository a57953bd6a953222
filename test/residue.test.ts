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
