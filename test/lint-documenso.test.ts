/**
 * purgekit lint on the policy discover writes for a documenso-shaped schema
 * (test/fixtures/documenso-shaped.sql): what a new user sees on a real Prisma schema.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { discoverCommand } from '../src/commands/discover.js';
import { lintCommand } from '../src/commands/lint.js';
import type { LintDiagnostic } from '../src/lint/diagnostic.js';
import { loadParser } from '../src/sql/parser.js';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';

beforeAll(() => loadParser());

async function lintDiscovered(db: TestDb): Promise<{ diagnostics: LintDiagnostic[]; yaml: string }> {
  const { yaml } = await discoverCommand({ connection: db.url, table: 'User', key: 'id' });
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-documenso-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'purge-user.yaml'), yaml);
  const { output } = await lintCommand({ paths: [dir], connection: db.url, strict: false, reporter: 'json' });
  return { diagnostics: (JSON.parse(output) as { diagnostics: LintDiagnostic[] }).diagnostics, yaml };
}

describe('lint groups repeated findings', () => {
  const wipe = (extra = '') => `version: 1\nname: wipe-users\nkind: wipe\nwipe:\n  tables: [User]\n${extra}`;
  async function lintText(db: TestDb, text: string, options: { reporter: 'text' | 'json'; verbose?: boolean }) {
    const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-group-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'wipe-users.yaml'), text);
    return (await lintCommand({ paths: [dir], connection: db.url, strict: false, ...options })).output;
  }

  it('a wipe reaching many tables: one line in text (every finding with --verbose or in json), none once reviewed in wipe.reach', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const json = JSON.parse(await lintText(db, wipe(), { reporter: 'json' })) as { diagnostics: LintDiagnostic[] };
    const reached = json.diagnostics.filter((d) => d.rule === 'PK-L008');
    expect(reached.length).toBeGreaterThan(10);
    const text = await lintText(db, wipe(), { reporter: 'text' });
    const lines = text.trimEnd().split('\n');
    expect(lines.filter((l) => l.includes('PK-L008'))).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^.*wipe-users\\.yaml:5:12: warning PK-L008: ${reached.length} findings of wipe-reaches-unlisted, grouped; the first: TRUNCATE \\.\\.\\. CASCADE also empties `));
    expect(lines[lines.length - 1]).toBe(`${reached.length} warnings in 1 policy`);
    const verbose = await lintText(db, wipe(), { reporter: 'text', verbose: true });
    expect(verbose.split('\n').filter((l) => l.includes('PK-L008'))).toHaveLength(reached.length);

    const names = reached.map((d) => /also empties (public\.\S+), which/.exec(d.message)![1]!.replace('public.', '').replaceAll('"', ''));
    const reviewed = await lintText(db, wipe(`  reach: [${names.join(', ')}]\n`), { reporter: 'text' });
    expect(reviewed).toBe('no problems in 1 policy\n');
  });
});

describe('lint on a discovered documenso-shaped purge', () => {
  it('PK-L005: an unlinked userId in a table only detached (its SET NULL key) is still flagged', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { diagnostics, yaml } = await lintDiscovered(db);
    expect(yaml).toMatch(/- table: DocumentAuditLog\n.*\n {4}detach: \[envelopeId\]/);
    expect(diagnostics.filter((d) => d.rule === 'PK-L005').map((d) => d.message)).toEqual([
      'public."DocumentAuditLog"."userId" is named like a key of public."User" but no foreign key says so, and no step removes from public."DocumentAuditLog": if its rows belong to the subject, add a step for DocumentAuditLog (a foreign key would let lint check it)',
    ]);
  });

  it('every where, set and lookup plans against the live schema (no PK-L010), and no error', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { diagnostics } = await lintDiscovered(db);
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });
});
