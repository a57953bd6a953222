/**
 * --json gives every table as `schema` and `name`, as the database spells them, next to the
 * display form `table` (`public."User"`), which a pipeline would otherwise have to unquote
 * (issue 8, item 15): plan/apply/verify (docs/run-output.schema.json), counts, the backup
 * manifest and restore.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture } from './harness/db.js';
import { project, purgekit, tempAuditLog, validJson, why } from './run-helpers.js';

interface Named {
  table: string;
  schema: string | null;
  name: string | null;
}

/** The display form a pipeline used to get, for comparison: quote_ident(schema).quote_ident(name), simply. */
function display(schema: string, name: string): string {
  const q = (s: string) => (/^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replaceAll('"', '""')}"`);
  return `${q(schema)}.${q(name)}`;
}

function expectNamed(items: readonly Named[], what: string): void {
  expect(items.length, what).toBeGreaterThan(0);
  for (const t of items) {
    expect(t.schema, `${what}: ${t.table}`).toEqual(expect.any(String));
    expect(t.name, `${what}: ${t.table}`).toEqual(expect.any(String));
    expect(display(t.schema!, t.name!), what).toBe(t.table);
  }
}

describe('--json: schema and name of every table', () => {
  it('apply: steps, preserved rules and changed tables of a policy on Prisma names ("User"), the backup manifest, restore --json', async () => {
    const db = await createTestDatabase(loadFixture('seeded'));
    const dir = project();
    const backup = join(mkdtempSync(join(tmpdir(), 'purgekit-names-')), 'b');
    const r = await purgekit(['apply', 'remove-seeded-data', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--backup', backup, '--json'], { cwd: dir });
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r) as unknown as { steps: Named[]; preserved: Named[]; tables: Named[] };
    expectNamed(json.steps, 'steps');
    expectNamed(json.preserved, 'preserved');
    expectNamed(json.tables, 'tables');
    expect(json.steps.find((s) => s.table === 'public."User"')).toMatchObject({ schema: 'public', name: 'User' });

    const manifest = JSON.parse(readFileSync(join(backup, 'manifest.json'), 'utf8')) as { files: Named[] };
    expectNamed(manifest.files, 'manifest files');
    expect(manifest.files.find((f) => f.table === 'public."Session"')).toMatchObject({ schema: 'public', name: 'Session' });

    const back = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url, '--json']);
    expect(back.code, why(back)).toBe(0);
    const restored = JSON.parse(back.stdout) as { command: string; outcome: string; database: string; tables: (Named & { rows: number; reason: string })[] };
    expect(restored).toMatchObject({ command: 'restore', outcome: 'committed', database: db.name });
    expectNamed(restored.tables, 'restore tables');
    expect(restored.tables.find((t) => t.name === 'User')).toMatchObject({ schema: 'public', table: 'public."User"', reason: 'step 4' });
    // Refused (the rows exist again): still one document, an error one.
    const again = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url, '--json']);
    expect(again.code).toBe(4);
    expect(JSON.parse(again.stdout)).toMatchObject({ command: 'restore', outcome: 'error', exitCode: 4, error: { code: 'RestoreRefused' } });
  });

  it('plan: the subject and the reach of ON DELETE CASCADE (fromSchema, fromName); a wipe', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const r = await purgekit(['plan', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--connection', db.url, '--json'], { cwd: dir });
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r) as unknown as { subject: Named; steps: Named[]; reach: (Named & { from: string; fromSchema: string; fromName: string })[] };
    expect(json.subject).toMatchObject({ table: 'public.user_profiles', schema: 'public', name: 'user_profiles' });
    expectNamed([json.subject], 'subject');
    expectNamed(json.steps, 'steps');
    expectNamed(json.reach, 'reach');
    for (const x of json.reach) expect(display(x.fromSchema, x.fromName)).toBe(x.from);

    const wipeDb = await createTestDatabase(loadFixture('supabase'));
    const w = await purgekit(['plan', 'supabase-fresh-start', '--connection', wipeDb.url, '--json'], { cwd: dir });
    expect(w.code, why(w)).toBe(0);
    expectNamed((validJson(w) as unknown as { wipe: Named[] }).wipe, 'wipe');
  });

  it('counts --json', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const r = await purgekit(['counts', '--connection', db.url, '--json']);
    expect(r.code, why(r)).toBe(0);
    const json = JSON.parse(r.stdout) as { tables: Named[] };
    expectNamed(json.tables, 'counts');
    expect(json.tables.find((t) => t.table === 'app."User"')).toMatchObject({ schema: 'app', name: 'User' });
  });
});
