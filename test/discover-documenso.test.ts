/**
 * purgekit discover on a documenso-shaped schema (test/fixtures/documenso-shaped.sql): the
 * discovered user purge validates, compiles, applies, removes what the database's own cascade
 * would, and also the 1:1 rows the removed rows pointed at that nothing references any more
 * (document contents, organisation and team settings), without growing the orphans.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { compileCommand } from '../src/commands/compile.js';
import { discoverCommand } from '../src/commands/discover.js';
import { renderCommand } from '../src/commands/render.js';
import { restoreCommand } from '../src/commands/restore.js';
import { runCommand } from '../src/commands/run.js';
import { loadParser } from '../src/sql/parser.js';
import { validateFiles } from '../src/validate/validateFiles.js';
import { createTestDatabase, loadFixture, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';

beforeAll(() => loadParser());

/** Rows of each 1:1 / owned parent table that no foreign key points at. */
const ORPHANS: Record<string, string> = {
  DocumentMeta: `SELECT count(*)::int AS n FROM "DocumentMeta" m WHERE NOT EXISTS (SELECT FROM "Envelope" e WHERE e."documentMetaId" = m.id)`,
  DocumentData: `SELECT count(*)::int AS n FROM "DocumentData" d WHERE NOT EXISTS (SELECT FROM "EnvelopeItem" i WHERE i."documentDataId" = d.id)`,
  OrganisationClaim: `SELECT count(*)::int AS n FROM "OrganisationClaim" c WHERE NOT EXISTS (SELECT FROM "Organisation" o WHERE o."organisationClaimId" = c.id)`,
  OrganisationGlobalSettings: `SELECT count(*)::int AS n FROM "OrganisationGlobalSettings" s WHERE NOT EXISTS (SELECT FROM "Organisation" o WHERE o."organisationGlobalSettingsId" = s.id)`,
  TeamGlobalSettings: `SELECT count(*)::int AS n FROM "TeamGlobalSettings" s WHERE NOT EXISTS (SELECT FROM "Team" t WHERE t."teamGlobalSettingsId" = s.id)`,
};

async function orphans(db: TestDb): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [table, query] of Object.entries(ORPHANS)) out[table] = (await db.sql.unsafe<[{ n: number }]>(query))[0].n;
  return out;
}

describe('purgekit discover: a documenso-shaped schema', () => {
  it('the discovered user purge applies and leaves no orphaned 1:1 rows', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
    const dir = await project(yaml);
    const before = await orphans(db);
    expect(before).toEqual({ DocumentMeta: 1, DocumentData: 0, OrganisationClaim: 1, OrganisationGlobalSettings: 0, TeamGlobalSettings: 0 });

    // The dry run reads the same sets: it predicts what apply removes.
    const plan = await apply(dir, db, { id: '1' }, 'plan');
    expect(plan.exitCode, plan.log).toBe(0);
    // Only what can surprise the run is said per table: tables whose own step runs first are one line.
    expect(plan.output.reach.filter((r) => !r.declared && !r.ownStep)).toEqual([]);
    expect(plan.log).not.toContain('not declared in cascades');
    expect(plan.log.split('\n').filter((l) => l.startsWith('may change only rows their own steps leave: '))).toHaveLength(1);
    expect(plan.output.reach.map((r) => r.table)).toContain('public."DocumentAuditLog"');
    const run = await apply(dir, db, { id: '1' });
    expect(run.exitCode, run.log).toBe(0);
    // Except the owned parents' steps: in a dry run nothing was deleted, so every row is still referenced.
    const owned = ['AvatarImage', 'DocumentData', 'DocumentMeta', 'OrganisationClaim', 'OrganisationGlobalSettings', 'TeamGlobalSettings'].map((t) => `public."${t}"`);
    expect(plan.output.steps.map((s) => [s.table, s.rows])).toEqual(run.output.steps.map((s) => [s.table, owned.includes(s.table) && s.rows !== null && s.outcome === 'removed' ? 0 : s.rows]));
    // AvatarImage is referenced only from purged tables but not 1:1 (it could be a shared lookup table): opt-in.
    expect(run.output.steps.find((s) => s.table === 'public."AvatarImage"')).toMatchObject({ outcome: 'skipped', rows: null });
    expect(run.output.steps.find((s) => s.table === 'public."DocumentData"')?.rows).toBe(5);
    expect(await orphans(db)).toEqual(before);
    // What alice's rows pointed at and nobody else does is gone; what others still use stays.
    expect(await db.sql`SELECT id FROM "DocumentMeta" ORDER BY id`).toEqual([{ id: 'm4' }, { id: 'm_orphan' }]);
    expect(await db.sql`SELECT id FROM "DocumentData" ORDER BY id`).toEqual([{ id: 'd5' }]);
    expect(await db.sql`SELECT id FROM "OrganisationClaim" ORDER BY id`).toEqual([{ id: 'oc2' }, { id: 'oc_unused' }]);
    expect(await db.sql`SELECT id FROM "OrganisationGlobalSettings" ORDER BY id`).toEqual([{ id: 'ogs2' }]);
    expect(await db.sql`SELECT id FROM "TeamGlobalSettings" ORDER BY id`).toEqual([{ id: 'tgs2' }]);
    expect(await db.sql`SELECT id FROM "User" ORDER BY id`).toEqual([{ id: 2 }, { id: 3 }]);
    expect(await db.sql`SELECT id FROM "Envelope" ORDER BY id`).toEqual([{ id: 'e4' }]);
    expect(await db.sql`SELECT id FROM "Folder" ORDER BY id`).toEqual([{ id: 'f4' }]);
  });

  it('an owned parent that is not 1:1 goes only on request, and a row someone else uses stays', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
    const dir = await project(yaml);
    const run = await apply(dir, db, { id: '1', 'remove-unreferenced-avatar-image': true });
    expect(run.exitCode, run.log).toBe(0);
    // o1's logo went with o1 and t1; the image alice shares with carol stays, and so does bob's.
    expect(await db.sql`SELECT id FROM "AvatarImage" ORDER BY id`).toEqual([{ id: 'av_bob' }, { id: 'av_shared' }]);
  });

  it('the standalone script (rendered, run as one simple-protocol batch like psql) does the same', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
    const dir = await project(yaml);
    const script = await renderCommand('purge-user', { policiesDir: join(dir, 'policies'), values: { id: '1' }, pairs: [] });
    const before = await orphans(db);
    const result = await runSimpleQuery(db.url, script);
    expect(result.ok, JSON.stringify(result)).toBe(true);
    expect(await orphans(db)).toEqual(before);
    expect(await db.sql`SELECT id FROM "DocumentMeta" ORDER BY id`).toEqual([{ id: 'm4' }, { id: 'm_orphan' }]);
    expect(await db.sql`SELECT id FROM "User" ORDER BY id`).toEqual([{ id: 2 }, { id: 3 }]);
  });

  it('applies with --backup (the self-referencing Folder cascade included), and restore gives identical tables', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
    const dir = await project(yaml);
    const before = await snapshot(db.sql);
    const backup = join(dir, 'backup');
    const run = await apply(dir, db, { id: '1' }, 'apply', backup);
    expect(run.exitCode, run.log).toBe(0);
    expect(run.output.backup).not.toBeNull();
    expect(await snapshot(db.sql)).not.toEqual(before);
    await restoreCommand({ dir: backup, connection: db.url, confirm: db.name, say: () => {} });
    // Every table is as it was, but for sequences (a restore does not rewind them) and the columns
    // ON DELETE SET NULL changed, which a backup does not hold (docs/BACKUP.md): there only the rows.
    const nulled = ['public.DocumentAuditLog', 'public.OrganisationGlobalSettings', 'public.SiteSettings'];
    const comparable = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).filter(([k]) => !k.startsWith('seq:') && !nulled.includes(k)));
    expect(comparable(await snapshot(db.sql))).toEqual(comparable(before));
    expect(await db.sql`SELECT (SELECT count(*) FROM "DocumentAuditLog")::int AS logs, (SELECT count(*) FROM "OrganisationGlobalSettings")::int AS settings`).toEqual([{ logs: 3, settings: 2 }]);
  });

  it('writes each path once: the generated SQL stays short', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
    const dir = await project(yaml);
    const sql = readFileSync(join(dir, 'generated', 'purge-user.sql'), 'utf8');
    // The Envelope <- Team <- Organisation path is spelled out once, in the set that names it.
    expect(yaml.split('"ownerUserId" IN').length - 1).toBe(1);
    // 1,413 lines before sets (each path inlined into every step below it), 1,146 with sets and a
    // ~25-line DO block per step; 577 with one statement per step (docs/FORMATS.md).
    expect(sql.split('\n').length).toBeLessThan(650);
    // (A detach step of a SET NULL reference reads its parent's rows by their path when the parent has no set.)
    expect(yaml.replace(/^ {4}detach: .*\n {4}where: .*\n/gm, '')).not.toMatch(/^ {4}where: .*IN \(SELECT /m);
  });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-documenso-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function project(yaml: string): Promise<string> {
  const dir = tempDir();
  const name = /^name: (.+)$/m.exec(yaml)![1]!;
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', `${name}.yaml`), yaml.replace('databases: ["*_dev", "*_test"]', 'databases: ["pk_*"]'));
  const { diagnostics } = await validateFiles([join(dir, 'policies')]);
  expect(diagnostics).toEqual([]);
  await compileCommand([join(dir, 'policies')], join(dir, 'generated'));
  return dir;
}

async function apply(dir: string, db: TestDb, values: Record<string, string | boolean>, command: 'plan' | 'apply' = 'apply', backup?: string) {
  const log: string[] = [];
  const name = readdirSync(join(dir, 'policies'))[0]!.replace(/\.yaml$/, '');
  const { output, exitCode } = await runCommand(command, {
    target: name,
    policiesDir: join(dir, 'policies'),
    generatedDir: join(dir, 'generated'),
    values,
    pairs: [],
    connection: db.url,
    lockTimeout: '5s',
    statementTimeout: '1min',
    confirm: db.name,
    auditLog: join(dir, 'audit.jsonl'),
    stderr: (line) => log.push(line),
    color: false,
    ...(backup ? { backup } : {}),
  });
  return { output, exitCode, log: log.join('\n') };
}
