/**
 * PK-L012: author SQL calling a function that is VOLATILE in the live database, at the SQL's
 * place in the YAML; quiet for a STABLE function, a built-in and a function in allow_functions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { lintCommand } from '../src/commands/lint.js';
import type { LintDiagnostic } from '../src/lint/diagnostic.js';
import { createTestDatabase } from './harness/db.js';

const SCHEMA = `
  CREATE SCHEMA app;
  CREATE TABLE app.users (id int PRIMARY KEY, email text NOT NULL);
  CREATE FUNCTION app.touch(int) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;            -- VOLATILE by default
  CREATE FUNCTION app.is_active(int) RETURNS boolean STABLE LANGUAGE sql AS $$ SELECT true $$;
  CREATE SCHEMA util;
  CREATE FUNCTION util.bump() RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$;
`;

const policy = (extra = '') => `version: 1
name: p
kind: purge
schema: app
params:
  email: { type: text }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: email = :email AND touch(id)
steps:
  - table: users
    where: id IN :subject AND is_active(id) AND lower(email) <> ''
expect:
  - name: bumped
    query: SELECT util.bump()
    min: 0
${extra}`;

async function lint(url: string, text: string): Promise<LintDiagnostic[]> {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'p.yaml'), text);
  const r = await lintCommand({ paths: [dir], connection: url, strict: false, reporter: 'json' });
  return (JSON.parse(r.output) as { diagnostics: LintDiagnostic[] }).diagnostics.filter((d) => d.rule === 'PK-L012');
}

describe('PK-L012 volatile function', () => {
  it('errors on each VOLATILE function author SQL calls, at its YAML', async () => {
    const db = await createTestDatabase(SCHEMA);
    const found = await lint(db.url, policy());
    expect(found.map((d) => [d.line, d.col, d.severity, d.message])).toEqual([
      [12, 14, 'error', 'subject.lookup[0].where: touch() is VOLATILE in this database (it can change data or settings): the script refuses to run with PK011; declare it STABLE if it only reads, or list it in allow_functions if you vouch for it'],
      [18, 12, 'error', 'expect[0].query: util.bump() is VOLATILE in this database (it can change data or settings): the script refuses to run with PK011; declare it STABLE if it only reads, or list it in allow_functions if you vouch for it'],
    ]);
  });

  it('is quiet for functions the author vouches for', async () => {
    const db = await createTestDatabase(SCHEMA);
    expect(await lint(db.url, policy('allow_functions: [touch, util.bump]\n'))).toEqual([]);
  });
});
