/**
 * Every param type arrives in PostgreSQL with the value the operator typed, whichever way the
 * script runs: rendered and run by psql, rendered and sent whole through the simple protocol (as
 * a web SQL editor does), and bound by purgekit plan, apply and verify. A check policy compares
 * each param to a literal; a cleanup policy deletes, per type, the one row whose column equals
 * the param and keeps a decoy row whose value is close to it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, hasPsql, runPsql, runSimpleQuery } from './harness/db.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';
import { tempFile } from './helpers/scripts.js';

/** name -> [type, value as typed, literal the server must see it equal to, column, decoy literal]. */
const TYPES = {
  t: ['text', `it's a \\ "quote" :x $$`, `E'it''s a \\\\ "quote" :x $$'`, 'c_text', `'it''s a'`],
  i: ['integer', '-2147483648', '-2147483648', 'c_int', '-2147483647'],
  big: ['bigint', '9223372036854775807', '9223372036854775807', 'c_big', '9223372036854775806'],
  n: ['numeric', '12345678901234567890.123456789', '12345678901234567890.123456789', 'c_num', '12345678901234567890.123456788'],
  u: ['uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid`, 'c_uuid', `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'`],
  b: ['boolean', 'true', 'true', 'c_bool', 'false'],
  d: ['date', '2024-02-29', `'2024-02-29'::date`, 'c_date', `'2024-02-28'`],
  ts: ['timestamptz', '2025-03-30T01:30:00.123456+02:00', `'2025-03-29 23:30:00.123456+00'::timestamptz`, 'c_ts', `'2025-03-29 23:30:00.123457+00'`],
} as const;
const NAMES = Object.keys(TYPES) as (keyof typeof TYPES)[];

const params = NAMES.map((n) => `  ${n}: { type: ${TYPES[n][0]} }`).join('\n');
const CHECK = `version: 1
name: typed-check
kind: check
params:
${params}
expect:
${NAMES.map((n) => `  - name: ${n} arrives
    query: SELECT CASE WHEN :${n} = ${TYPES[n][2]} THEN 1 ELSE 0 END
    equals: 1`).join('\n')}
`;
const CLEANUP = `version: 1
name: typed-cleanup
kind: cleanup
params:
${params}
steps:
${NAMES.map((n) => `  - table: typed
    where: ${TYPES[n][3]} = :${n}
    max_rows: 1`).join('\n')}
expect:
  - name: only the decoys remain
    query: SELECT count(*) FROM typed WHERE kind = 'target'
    equals: 0
`;
const COLUMNS = NAMES.map((n) => TYPES[n][3]);
const PURGE = `version: 1
name: typed-purge
kind: purge
params:
${params}
subject:
  table: people
  key: id
  lookup:
    - by: [${NAMES.join(', ')}]
      where: ${NAMES.map((n) => `${TYPES[n][3]} = :${n}`).join(' AND ')}
steps:
  - table: people
    where: id IN :subject
`;
/** people: the subject row holds every value; each decoy differs from it in one column only. */
const PEOPLE = `CREATE TABLE people (id int PRIMARY KEY, kind text NOT NULL, ${COLUMNS.map((c, i) => `${c} ${['text', 'integer', 'bigint', 'numeric', 'uuid', 'boolean', 'date', 'timestamptz'][i]}`).join(', ')});
INSERT INTO people VALUES (0, 'subject', ${NAMES.map((n) => TYPES[n][2]).join(', ')});
${NAMES.map((n, k) => `INSERT INTO people VALUES (${k + 1}, 'decoy', ${NAMES.map((m) => (m === n ? TYPES[m][4] : TYPES[m][2])).join(', ')});`).join('\n')}`;
const FIXTURE = `${PEOPLE}
CREATE TABLE typed (id serial PRIMARY KEY, kind text NOT NULL, c_text text, c_int integer, c_big bigint, c_num numeric,
  c_uuid uuid, c_bool boolean, c_date date, c_ts timestamptz);
${NAMES.map((n) => `INSERT INTO typed (kind, ${TYPES[n][3]}) VALUES ('target', ${TYPES[n][2]}), ('decoy', ${TYPES[n][4]});`).join('\n')}`;

const ARGS = NAMES.flatMap((n) => ['--param', `${n}=${TYPES[n][1]}`]);

let project: string;
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'purgekit-types-'));
  mkdirSync(join(project, 'policies'));
  writeFileSync(join(project, 'policies', 'typed-check.yaml'), CHECK);
  writeFileSync(join(project, 'policies', 'typed-cleanup.yaml'), CLEANUP);
  writeFileSync(join(project, 'policies', 'typed-purge.yaml'), PURGE);
  const r = await purgekit(['compile'], { cwd: project });
  if (r.code !== 0) throw new Error(why(r));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

async function remaining(db: Awaited<ReturnType<typeof createTestDatabase>>): Promise<string[]> {
  return (await db.sql<{ kind: string }[]>`SELECT kind FROM typed ORDER BY id`).map((r) => r.kind);
}

describe('param types: the same value arrives by every route', () => {
  it('verify binds every type (text, integer, bigint, numeric, uuid, boolean, date, timestamptz) to the value typed', async () => {
    const db = await createTestDatabase();
    const r = await purgekit(['verify', 'typed-check', ...ARGS, '--connection', db.url, '--json'], { cwd: project });
    expect(r.json?.expectations.map((e) => [e.name, e.outcome]), why(r)).toEqual(NAMES.map((n) => [`${n} arrives`, 'ok']));
    expect(r.code, why(r)).toBe(0);
  });

  it('verify with b=false: a false boolean arrives as false (the check fails, exit 4)', async () => {
    const db = await createTestDatabase();
    const args = ARGS.map((a) => (a === 'b=true' ? 'b=false' : a));
    const r = await purgekit(['verify', 'typed-check', ...args, '--connection', db.url, '--json'], { cwd: project });
    expect(r.code, why(r)).toBe(4);
    expect(r.stderr).toMatch(/b arrives/);
    // Only b failed: the failure names it alone; every expectation is still listed with its outcome.
    expect(r.json!.error!.message).not.toMatch(/\bi arrives/);
    expect(r.stderr).toMatch(/expect: i arrives: ok/);
  });

  it('plan counts, per type, exactly the one target row; apply deletes exactly those and keeps every decoy', async () => {
    const db = await createTestDatabase(FIXTURE);
    const plan = await purgekit(['plan', 'typed-cleanup', ...ARGS, '--connection', db.url, '--json'], { cwd: project });
    expect(plan.code, why(plan)).toBe(0);
    expect(plan.json!.steps.map((s) => s.rows)).toEqual(NAMES.map(() => 1));
    const apply = await purgekit(['apply', 'typed-cleanup', ...ARGS, '--confirm', '--connection', db.url, '--audit-log', tempAuditLog(), '--json'], { cwd: project });
    expect(apply.code, why(apply)).toBe(0);
    expect(apply.json!.steps.map((s) => [s.outcome, s.rows])).toEqual(NAMES.map(() => ['removed', 1]));
    expect(await remaining(db)).toEqual(NAMES.map(() => 'decoy'));
  });

  it('purge: the lookup binds every type and finds the one subject row, not a decoy that differs in one column', async () => {
    const db = await createTestDatabase(FIXTURE);
    const plan = await purgekit(['plan', 'typed-purge', ...ARGS, '--connection', db.url, '--json'], { cwd: project });
    expect(plan.code, why(plan)).toBe(0);
    expect(plan.json!.subject).toMatchObject({ matched: 1 });
    const apply = await purgekit(['apply', 'typed-purge', ...ARGS, '--confirm', '--connection', db.url, '--audit-log', tempAuditLog(), '--json'], { cwd: project });
    expect(apply.code, why(apply)).toBe(0);
    expect((await db.sql<{ kind: string }[]>`SELECT kind FROM people ORDER BY id`).map((r) => r.kind)).toEqual(NAMES.map(() => 'decoy'));
    const rendered = await purgekit(['render', 'typed-purge', ...ARGS], { cwd: project });
    const editor = await createTestDatabase(FIXTURE);
    expect(await runSimpleQuery(editor.url, rendered.stdout)).toMatchObject({ ok: true });
    expect((await editor.sql<{ kind: string }[]>`SELECT kind FROM people ORDER BY id`).map((r) => r.kind)).toEqual(NAMES.map(() => 'decoy'));
  });

  it('render, sent whole through the simple protocol (a web SQL editor): the check passes and the cleanup removes exactly the targets', async () => {
    const db = await createTestDatabase(FIXTURE);
    const check = await purgekit(['render', 'typed-check', ...ARGS], { cwd: project });
    expect(check.code, why(check)).toBe(0);
    const checked = await runSimpleQuery(db.url, check.stdout);
    expect(checked).toMatchObject({ ok: true });
    const cleanup = await purgekit(['render', 'typed-cleanup', ...ARGS], { cwd: project });
    expect(cleanup.code, why(cleanup)).toBe(0);
    expect(await runSimpleQuery(db.url, cleanup.stdout)).toMatchObject({ ok: true });
    expect(await remaining(db)).toEqual(NAMES.map(() => 'decoy'));
  });

  it.skipIf(!hasPsql())('render, run by psql -v ON_ERROR_STOP=1 -f (skipped when psql is not on PATH): the check passes and the cleanup removes exactly the targets', async () => {
    const db = await createTestDatabase(FIXTURE);
    const check = await purgekit(['render', 'typed-check', ...ARGS], { cwd: project });
    const checked = runPsql(db.url, tempFile(check.stdout));
    expect(checked.status, checked.stderr).toBe(0);
    const cleanup = await purgekit(['render', 'typed-cleanup', ...ARGS], { cwd: project });
    const cleaned = runPsql(db.url, tempFile(cleanup.stdout));
    expect(cleaned.status, cleaned.stderr).toBe(0);
    expect(await remaining(db)).toEqual(NAMES.map(() => 'decoy'));
  });

});
