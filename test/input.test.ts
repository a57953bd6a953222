/**
 * Values from the command line: one check of every value for its type, shared by render, plan
 * and apply (exit 2 naming the param, before anything runs), and no value that Node made up
 * from bytes that are not UTF-8.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, snapshot } from './harness/db.js';
import { BIN, purgekit, tempAuditLog, why } from './run-helpers.js';
import { checkValue } from '../src/values.js';
import type { ParamType } from '../src/policy.js';

/** Accepted: each must also be accepted by the server, as the runner binds it. */
const ACCEPTED: Record<Exclude<ParamType, 'text'>, string[]> = {
  integer: ['0', '-2147483648', '2147483647', '+7', '007'],
  bigint: ['-9223372036854775808', '9223372036854775807'],
  numeric: ['0', '-1.5', '.5', '5.', '1e3', '1.5E-7', '12345678901234567890.123456789', `1${'0'.repeat(999)}`],
  uuid: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC999C0B4EF8BB6D6BB9BD380A11'],
  boolean: ['true', 'FALSE', 't', 'f', 'yes', 'no', 'y', 'n', 'on', 'off', '1', '0'],
  date: ['2024-02-29', '0001-01-01', '9999-12-31', 'infinity', '-infinity', 'epoch'],
  timestamptz: ['2025-01-31', '2025-01-31T13:45', '2025-01-31 13:45:59', '2025-01-31T13:45:59.123456Z', '2025-01-31T13:45:00+02:00', '2025-01-31T13:45:00-0530', '2025-01-31 13:45:00 +02', 'infinity', 'epoch'],
};
const REFUSED: [ParamType, string, RegExp][] = [
  ['timestamptz', 'now', /depends on when it is read/],
  ['timestamptz', 'today', /depends on when it is read/],
  ['timestamptz', '', /empty/],
  ['timestamptz', '2025-13-01', /no month 13/],
  ['timestamptz', '2025-02-30T10:00:00Z', /no day 30/],
  ['timestamptz', '2025-01-01T24:00:00Z', /time of day/],
  ['timestamptz', 'Jan 1 2025', /ISO 8601/],
  ['timestamptz', '2025-01-01T10:00:00+16:00', /offset/],
  ['date', 'tomorrow', /depends on when it is read/],
  ['date', '2023-02-29', /no day 29/],
  ['date', '01/02/2025', /ISO 8601/],
  ['integer', '99999999999', /out of range/],
  ['integer', '2147483648', /out of range/],
  ['integer', '1.0', /decimal digits/],
  ['integer', ' 1', /spaces/],
  ['bigint', '9223372036854775808', /out of range/],
  ['numeric', 'NaN', /decimal number/],
  ['numeric', '1e1001', /exponent/],
  ['numeric', '.', /decimal number/],
  ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', /hexadecimal/],
  ['boolean', 'maybe', /true or false/],
  ['text', 'a\0b', /NUL/],
  ['text', '\uD800', /surrogate/],
];

describe('checkValue: the one validation of param values', () => {
  it.each(REFUSED)('%s %j is refused', (type, value, why) => {
    expect(checkValue(type, value)).toMatch(why);
  });

  it('every accepted value is accepted by PostgreSQL as the runner binds it ($1::text::<type>)', async () => {
    const db = await createTestDatabase();
    for (const [type, values] of Object.entries(ACCEPTED) as [ParamType, string[]][]) {
      for (const value of values) {
        expect(checkValue(type, value), `${type} ${value}`).toBeUndefined();
        await expect(db.sql.unsafe(`SELECT $1::text::${type} AS v`, [value]), `${type} ${value}`).resolves.toHaveLength(1);
      }
    }
  });
});

const POLICY = `version: 1
name: typed-values
kind: cleanup
params:
  since: { type: timestamptz }
  n: { type: integer }
  label: { type: text }
steps:
  - table: events
    where: at >= :since AND n = :n AND label = :label
`;
const FIXTURE = `CREATE TABLE events (id int PRIMARY KEY, at timestamptz, n int, label text);
INSERT INTO events VALUES (1, '2025-01-01Z', 1, E'\\uFFFD'), (2, '2025-01-01Z', 1, E'x\\uFFFDy'), (3, '2025-01-01Z', 1, 'keep');`;

let project: string;
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'purgekit-input-'));
  mkdirSync(join(project, 'policies'));
  writeFileSync(join(project, 'policies', 'typed-values.yaml'), POLICY);
  const r = await purgekit(['compile'], { cwd: project });
  if (r.code !== 0) throw new Error(why(r));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

const good = { since: '2024-01-01T00:00:00Z', n: '1', label: 'keep' };
function args(values: Record<string, string>): string[] {
  return Object.entries({ ...good, ...values }).flatMap(([k, v]) => ['--param', `${k}=${v}`]);
}

describe('typed values are refused before anything runs, by render, plan and apply alike (exit 2, the param named)', () => {
  for (const [name, value, message] of [
    ['since', 'now', /--since: "now" is not a valid timestamptz: "now" depends on when it is read/],
    ['since', 'infinity-ish', /--since: "infinity-ish" is not a valid timestamptz: expected ISO 8601/],
    ['since', '2025-13-01', /--since: "2025-13-01" is not a valid timestamptz: there is no month 13/],
    ['since', '', /--since: "" is not a valid timestamptz: the value is empty/],
    ['n', '99999999999', /--n: "99999999999" is not a valid integer: out of range/],
  ] as const) {
    it(`${name}=${JSON.stringify(value)}`, async () => {
      const db = await createTestDatabase(FIXTURE);
      const before = await snapshot(db.sql);
      for (const command of [['render'], ['plan', '--connection', db.url], ['apply', '--confirm', '--connection', db.url, '--audit-log', tempAuditLog()]]) {
        const r = await purgekit([command[0]!, 'typed-values', ...command.slice(1), ...args({ [name]: value })], { cwd: project });
        expect(r.code, `${command[0]}: ${why(r)}`).toBe(2);
        expect(r.stderr, command[0]).toMatch(message);
        expect(r.stdout, command[0]).toBe('');
      }
      expect(await snapshot(db.sql)).toEqual(before);
    });
  }

  it('epoch, infinity and an ISO timestamp with microseconds run (they mean the same instant everywhere)', async () => {
    const db = await createTestDatabase(FIXTURE);
    for (const since of ['epoch', '-infinity', '2024-12-31T23:59:59.999999Z']) {
      const r = await purgekit(['plan', 'typed-values', '--connection', db.url, '--json', ...args({ since })], { cwd: project });
      expect(r.code, why(r)).toBe(0);
      expect(r.json!.steps[0]!.rows).toBe(1);
    }
  });
});

/** The CLI with argv given as raw bytes (a shell passes them through; Node decodes them). */
function purgekitRaw(argBytes: string, cwd: string, url?: string): { code: number; stdout: string; stderr: string } {
  const script = `exec "${process.execPath}" "${BIN}" "$@" ${argBytes}`;
  const r = spawnSync('/bin/sh', ['-c', script, 'sh', ...(url ? ['--connection', url] : [])], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', DATABASE_URL: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('values that are not valid UTF-8', () => {
  it('a byte that is not UTF-8 (Node makes it U+FFFD) is refused by render and apply, and the U+FFFD row survives', async () => {
    const db = await createTestDatabase(FIXTURE);
    const before = await snapshot(db.sql);
    for (const bad of [`$(printf '\\377')`, `x$(printf '\\303')y`]) {
      const rendered = purgekitRaw(`render typed-values --param since=epoch --param n=1 --param "label=${bad}"`, project);
      expect(rendered.code, rendered.stderr).toBe(2);
      expect(rendered.stderr).toMatch(/--label: the value contains U\+FFFD.*--param-escaped/);
      expect(rendered.stdout).toBe('');
      const applied = purgekitRaw(`apply typed-values --confirm --audit-log ${tempAuditLog()} --param since=epoch --param n=1 --param "label=${bad}"`, project, db.url);
      expect(applied.code, applied.stderr).toBe(2);
      expect(applied.stderr).toMatch(/--label: the value contains U\+FFFD/);
      const typed = purgekitRaw(`plan typed-values --since epoch --n 1 --label "${bad}"`, project, db.url);
      expect(typed.code, typed.stderr).toBe(2);
    }
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('U+FFFD given on purpose, as \\uFFFD with --param-escaped, is accepted: plan matches exactly that row', async () => {
    const db = await createTestDatabase(FIXTURE);
    const r = await purgekit(['plan', 'typed-values', '--connection', db.url, '--json', '--param', 'since=epoch', '--param', 'n=1', '--param-escaped', 'label=x\\uFFFDy'], { cwd: project });
    expect(r.code, why(r)).toBe(0);
    expect(r.json!.steps[0]!.rows).toBe(1);
    const applied = await purgekit(['apply', 'typed-values', '--confirm', '--audit-log', tempAuditLog(), '--connection', db.url, '--param', 'since=epoch', '--param', 'n=1', '--param-escaped', 'label=x\\uFFFDy'], { cwd: project });
    expect(applied.code, why(applied)).toBe(0);
    expect((await db.sql<{ id: number }[]>`SELECT id FROM events ORDER BY id`).map((x) => x.id)).toEqual([1, 3]);
    const rendered = await purgekit(['render', 'typed-values', '--param', 'since=epoch', '--param', 'n=1', '--param-escaped', 'label=x\\uFFFDy'], { cwd: project });
    expect(rendered.code, why(rendered)).toBe(0);
    expect(rendered.stdout).toContain(`'x\uFFFDy'::text AS label`);
    const broken = await purgekit(['render', 'typed-values', '--param', 'since=epoch', '--param', 'n=1', '--param-escaped', 'label=a"b'], { cwd: project });
    expect(broken.code, why(broken)).toBe(2);
    expect(broken.stderr).toMatch(/--param-escaped label: not a valid escaped value/);
  });
});
