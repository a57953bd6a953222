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

describe('lint on a discovered documenso-shaped purge', () => {
  it('PK-L005: an unlinked userId in a table declared in cascades only for a SET NULL key is still flagged', async () => {
    const db = await createTestDatabase(loadFixture('documenso-shaped'));
    const { diagnostics, yaml } = await lintDiscovered(db);
    expect(yaml).toContain('cascades: [DocumentAuditLog]');
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
