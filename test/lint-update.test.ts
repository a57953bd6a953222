/**
 * lint of steps that keep their rows (anonymize:, detach:) against the live schema
 * (test/fixtures/catalog.sql): PK-L013 located at the column's YAML entry, PK-L003 knowing that a
 * detach before a delete unhooks the rows that would block it, PK-L010 planning the UPDATE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { lintCommand } from '../src/commands/lint.js';
import type { LintDiagnostic } from '../src/lint/diagnostic.js';
import { loadParser } from '../src/sql/parser.js';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';

beforeAll(() => loadParser());

async function lint(db: TestDb, text: string): Promise<{ file: string; exitCode: number; diagnostics: LintDiagnostic[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-update-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'p.yaml');
  writeFileSync(file, text);
  const r = await lintCommand({ paths: [dir], connection: db.url, strict: false, reporter: 'json' });
  return { file, exitCode: r.exitCode, diagnostics: (JSON.parse(r.output) as { diagnostics: LintDiagnostic[] }).diagnostics };
}

const HEAD = `version: 1
name: purge-user
kind: purge
schema: app
params:
  user_id: { type: text }
  key: { type: text }
subject:
  table: User
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
steps:
`;

/** The User purge of test/lint.test.ts, with the cycle broken by a detach step instead of a deferred constraint. */
const DETACHED = `${HEAD}  - table: audit.event_notes
    where: (event_id, event_at) IN (SELECT id, at FROM events WHERE "userId" IN :subject)
  - table: events
    where: '"userId" IN :subject'
  - table: Comment
    where: '"authorId" IN :subject OR "postId" IN (SELECT id FROM "Post" WHERE "authorId" IN :subject)'
  - table: Post
    where: '"authorId" IN :subject'
  - table: User
    detach: ['teamId']
    where: '"teamId" IN (SELECT id FROM "Team" WHERE "ownerId" IN :subject)'
  - table: Team
    where: '"ownerId" IN :subject'
  - table: User
    where: id IN :subject
    cascades: [User]
  - table: audit.login_attempts
    where: '"userId" IN :subject'
`;

describe('lint: anonymize and detach', () => {
  it('PK-L003: a detach of the blocking key before the delete breaks the order constraint (the User <-> Team cycle)', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const r = await lint(db, DETACHED);
    expect(r.diagnostics.filter((d) => d.rule === 'PK-L003' || d.rule === 'PK-L013' || d.rule === 'PK-L010')).toEqual([]);
    // Without the detach step, the cycle is reported as today.
    const without = await lint(db, DETACHED.replace(/  - table: User\n    detach: .*\n    where: .*\n/, ''));
    expect(without.diagnostics.filter((d) => d.rule === 'PK-L003').length).toBe(1);
  });

  it('PK-L013: a primary key column, a missing column, NULL into NOT NULL, a constant into a unique column, detach of a NOT NULL or non-key column; located at the entry', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    const r = await lint(db, `${HEAD}  - table: User
    anonymize:
      id: { with: "'x' || id" }
      emial: { with: hash, key: key }
      role: null
      email: erased@invalid
    where: id IN :subject
  - table: Comment
    detach: [authorId, body]
    where: '"authorId" IN :subject'
  - table: User
    anonymize:
      email: { with: "'erased-' || id" }
      role: { with: default }
      "invitedById": { with: "nosuchcolumn" }
    where: id IN :subject AND role <> 'ADMIN'
  - table: User
    where: id IN :subject
`);
    const l013 = r.diagnostics.filter((d) => d.rule === 'PK-L013').map((d) => `${d.line}:${d.col} ${d.severity} ${d.message}`);
    expect(l013).toEqual([
      '17:11 error steps[0].anonymize.id: app."User".id is part of the primary key of app."User": a step keeps its rows and may not change what identifies them (delete the rows instead)',
      '18:14 error steps[0].anonymize.emial: column emial of app."User" does not exist (did you mean email?)',
      '19:13 error steps[0].anonymize.role: app."User".role is NOT NULL and it would be set NULL: the run would fail (23502); give it a value',
      `20:14 error steps[0].anonymize.email: app."User".email is unique ("User_email_key"): the constant 'erased@invalid' collides as soon as the step updates more than one row (23505); use an expression over the row (its key) or hash`,
      '23:14 error steps[1].detach[0]: app."Comment"."authorId" is NOT NULL and detach sets it NULL: the run would fail (23502); delete the rows instead, or make the column nullable',
      '23:24 error steps[1].detach[1]: app."Comment".body is NOT NULL and detach sets it NULL: the run would fail (23502); delete the rows instead, or make the column nullable',
      '23:24 warning steps[1].detach[1]: app."Comment".body is in no foreign key: detach is for references (use anonymize to overwrite other columns)',
    ]);
    // An expression that does not plan (an unknown column inside it) is PK-L010, at the step.
    expect(r.diagnostics.filter((d) => d.rule === 'PK-L010').map((d) => d.message)).toEqual([expect.stringMatching(/nosuchcolumn/)]);
    expect(r.exitCode).toBe(1);
  });
});
