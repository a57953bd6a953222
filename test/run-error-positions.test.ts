/**
 * Issue 10, item 5: a statement of a run that fails names its line in generated/<name>.sql
 * (JSON error.line, and the human "at:" line), with real errors raised by author SQL.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, snapshot } from './harness/db.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';

const SCHEMA = `
  CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
  CREATE TABLE posts (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), title text);
  INSERT INTO users VALUES (1, 'ann@example.com'), (2, 'bob@example.com');
  INSERT INTO posts VALUES (10, 1, 'x'), (11, 1, 'y'), (12, 2, 'z');
`;

const policy = (postsWhere: string) => `version: 1
name: broken
kind: purge
params:
  email: { type: text }
subject:
  table: users
  key: id
  lookup:
    - by: [email]
      where: email = :email
steps:
  - table: posts
    where: user_id IN :subject AND ${postsWhere}
  - table: users
    where: id IN :subject
`;

async function run(postsWhere: string) {
  const db = await createTestDatabase(SCHEMA);
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-pos-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'broken.yaml'), policy(postsWhere));
  const compiled = await purgekit(['compile'], { cwd: dir });
  expect(compiled.code, why(compiled)).toBe(0);
  const before = await snapshot(db.sql);
  const r = await purgekit(['apply', 'broken', '--email', 'ann@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()], { cwd: dir });
  const human = await purgekit(['apply', 'broken', '--email', 'ann@example.com', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { cwd: dir });
  expect(await snapshot(db.sql)).toEqual(before);
  const file = readFileSync(join(dir, 'generated', 'broken.sql'), 'utf8').split('\n');
  return { r, json: validJson(r), human, file };
}

describe('a failed statement names its line in the generated file', () => {
  it('division by zero in a where clause (22012): error.line is the step that runs it', async () => {
    const { r, json, human, file } = await run('id / 0 = 1');
    expect(r.code, why(r)).toBe(1);
    expect(json.error).toMatchObject({ code: '22012', at: expect.stringMatching(/^Step 1 of 2: public\.posts/) });
    const line = (json.error as { line?: string }).line;
    expect(line).toMatch(/^generated\/broken\.sql:\d+$/);
    const n = Number(line!.split(':')[1]);
    // The line is where step 1's statement starts: its heading is just above, its where below.
    expect(file.slice(n - 3, n - 1).join('\n')).toMatch(/-- Step 1 of 2: public\.posts/);
    expect(file.slice(n - 1, n + 8).join('\n')).toContain('id / 0 = 1');
    expect(human.stderr).toContain(`(${line})`);
  });

  it('a cast error (22P02) in a where clause: the same, on the step whose where it is', async () => {
    const { r, json, file } = await run('title::int = 1');
    expect(r.code, why(r)).toBe(1);
    expect(json.error).toMatchObject({ code: '22P02' });
    const n = Number((json.error as { line?: string }).line!.split(':')[1]);
    expect(file.slice(n - 1, n + 8).join('\n')).toContain('title::int = 1');
  });
});

describe('a PostgreSQL error in the author\'s SQL is reported at the policy\'s file:line:col', () => {
  it('apply: an unknown column in a step\'s where (42703) points at it in the policy (JSON error.source, human "in the policy:")', async () => {
    const { r, json, human } = await run('titel = 1');
    expect(r.code, why(r)).toBe(1);
    expect(json.error).toMatchObject({ code: '42703' });
    const source = (json.error as { source?: string }).source;
    // policies/broken.yaml line 14: "    where: user_id IN :subject AND titel = 1"; col of "titel".
    const yamlLine = policy('titel = 1').split('\n')[13]!;
    expect(yamlLine).toContain('titel = 1');
    expect(source).toBe(`policies/broken.yaml:14:${yamlLine.indexOf('titel') + 1}`);
    expect(human.stderr).toContain(`in the policy: ${source}`);
  });

  it('plan: a bad literal behind a :subject reference maps past the replaced reference', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = mkdtempSync(join(tmpdir(), 'purgekit-pos-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'policies'));
    // A block scalar over two lines: the error is on the second, where the printer re-indents it.
    const text = policy('true').replace("    where: user_id IN :subject AND true\n", "    where: |-\n      user_id IN :subject\n        AND id = 'nine'\n");
    writeFileSync(join(dir, 'policies', 'broken.yaml'), text);
    expect((await purgekit(['compile'], { cwd: dir })).code).toBe(0);
    const r = await purgekit(['plan', 'broken', '--email', 'ann@example.com', '--connection', db.url, '--json'], { cwd: dir });
    const json = validJson(r);
    expect(json.error).toMatchObject({ code: '22P02' });
    const lines = text.split('\n');
    const n = lines.findIndex((l) => l.includes("'nine'"));
    expect((json.error as { source?: string }).source).toBe(`policies/broken.yaml:${n + 1}:${lines[n]!.indexOf("'nine'") + 1}`);
  });
});

describe('a lint probe\'s PostgreSQL error is reported where the server points in the author\'s SQL', () => {
  it('PK-L010: the unknown column after a :subject reference, at its own line:col', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = mkdtempSync(join(tmpdir(), 'purgekit-pos-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'policies'));
    const text = policy('titel = 1');
    writeFileSync(join(dir, 'policies', 'broken.yaml'), text);
    const r = await purgekit(['lint', '--connection', db.url, '--reporter', 'gcc'], { cwd: dir });
    expect(r.code, why(r)).toBe(1);
    const line = text.split('\n')[13]!;
    expect(r.stdout + r.stderr).toContain(`policies/broken.yaml:14:${line.indexOf('titel') + 1}: error: steps[0].where: column "titel" does not exist`);
  });
});
