/**
 * plan|apply <purge policy> --subjects-from: many subjects in one run, through the built CLI
 * against real PostgreSQL (nexus fixture): found, not found, preserved, multi-match, a transient
 * lock timeout retried, --stop-on-error, and every bad input of the subjects file located
 * before anything is deleted.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvModule from 'ajv';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/scripts.js';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { project, purgekit, tempAuditLog, why } from './run-helpers.js';
import { appendFileSync } from 'node:fs';

const NEXUS = 'nexus-purge-user';

async function nexus(): Promise<TestDb> {
  return createTestDatabase(loadFixture('nexus'));
}

function file(text: string, name = 'subjects.csv'): string {
  const path = join(mkdtempSync(join(tmpdir(), 'pk-subjects-')), name);
  writeFileSync(path, text);
  return path;
}

async function users(db: TestDb): Promise<string[]> {
  return (await db.sql<{ user_id: string }[]>`SELECT user_id FROM user_profiles ORDER BY 1`).map((r) => r.user_id);
}

type AjvCtor = new (options: object) => { compile: (schema: object) => { (data: unknown): boolean; errors?: unknown } };
const Ajv = ((AjvModule as unknown as { default?: AjvCtor }).default ?? AjvModule) as unknown as AjvCtor;
const validLine = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(readFileSync(join(ROOT, 'docs', 'volume-output.schema.json'), 'utf8')) as object);

/** The --json lines, each checked against docs/volume-output.schema.json. */
function jsonLines(stdout: string): Record<string, any>[] {
  const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
  for (const l of lines) expect(validLine(l) ? [] : validLine.errors, JSON.stringify(l)).toEqual([]);
  return lines;
}

describe('apply --subjects-from', () => {
  it('found, not found, preserved and multi-match: the good ones committed, the bad ones reported by line, exit = worst code', async () => {
    const db = await nexus();
    const audit = tempAuditLog();
    const subjects = file('email\nalice@example.com\nnobody@example.com\nadmin@example.com\nshared@example.com\ncarol@example.com\n');
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--audit-log', audit, '--json']);
    const lines = jsonLines(r.stdout);
    const byLine = Object.fromEntries(lines.filter((l) => l['kind'] === 'subject').map((l) => [l['line'], l]));
    expect(byLine[2]).toMatchObject({ outcome: 'committed', exitCode: 0 });
    expect(byLine[3]).toMatchObject({ outcome: 'not-found', exitCode: 0 });
    expect(byLine[4]).toMatchObject({ outcome: 'failed' });
    expect(byLine[5]).toMatchObject({ outcome: 'failed', exitCode: 3 });
    expect(byLine[6]).toMatchObject({ outcome: 'committed' });
    expect(await users(db)).toEqual(['auth|admin', 'auth|bob', 'auth|dup1', 'auth|dup2']);
    const summary = lines.at(-1)!;
    expect(summary).toMatchObject({ kind: 'summary', subjects: 5, committed: 2, notFound: 1, failed: 2 });
    expect(r.code, why(r)).toBe(summary['exitCode']);
    expect(r.code).toBeGreaterThanOrEqual(3);
    expect(r.stderr).toMatch(new RegExp(`${subjects}:4: FAILED`));
    expect(r.stderr).toMatch(new RegExp(`${subjects}:5: FAILED \\(exit 3`));
    // The audit log: a single run's records per batch (one run id, the batch's number, its subjects as HMACs), and the run's summary.
    // Batch 1 (lines 2-6) is refused by the guard for lines 4 and 5; batch 2 runs the others and commits.
    const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const committed = records.filter((x) => x['event'] === 'outcome' && x['outcome'] === 'committed');
    expect(committed).toHaveLength(1);
    expect(committed[0]).toMatchObject({ batch: 2, params: {} });
    expect(committed[0]!['subjects'].map((s: { line: number }) => s.line)).toEqual([2, 3, 6]);
    for (const s of committed[0]!['subjects']) expect(s.params.email).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(new Set(records.map((x) => x['runId'])).size).toBe(1);
    expect(records.at(-1)).toMatchObject({ event: 'volume-summary', committed: 2, notFound: 1, failed: 2 });
    expect(readFileSync(audit, 'utf8')).not.toContain('carol@example.com');
    // Re-running the finished file is a no-op for the subjects done: they are not found now.
    const again = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--audit-log', audit, '--json']);
    const summary2 = jsonLines(again.stdout).at(-1)!;
    expect(summary2).toMatchObject({ committed: 0, notFound: 3, failed: 2 });
  });

  it('a stale generated file is refused once, before connecting and before any subject runs', async () => {
    const dir = project();
    appendFileSync(join(dir, 'policies', `${NEXUS}.yaml`), '# an edit after review\n');
    const subjects = file('email\nalice@example.com\ncarol@example.com\n');
    // Nothing listens on port 1: reaching the database would be exit 5, not the stale plan's 2.
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--confirm', 'x', '--connection', 'postgres://u@127.0.0.1:1/db', '--audit-log', tempAuditLog()], { cwd: dir });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr.match(/nexus-purge-user\.sql.*stale/g)).toHaveLength(1);
  });

  it('a server that cannot be reached is exit 5, naming the target, not an unexpected error', async () => {
    const subjects = file('email\nalice@example.com\n');
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--confirm', 'x', '--connection', 'postgres://u@127.0.0.1:1/db', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(5);
    expect(r.stderr).toContain('cannot connect to');
    expect(r.stderr).not.toContain('unexpected error');
  });

  it('--stop-on-error stops at the first failed subject; JSON lines work the same', async () => {
    const db = await nexus();
    const subjects = file('{"email":"admin@example.com"}\n{"email":"carol@example.com"}\n', 'subjects.jsonl');
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--stop-on-error', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json']);
    expect(r.code, why(r)).not.toBe(0);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ subjects: 2, failed: 1, skipped: 1, committed: 0 });
    expect(await users(db)).toContain('auth|carol');
    expect(r.stderr).toMatch(/--stop-on-error: stopping after .*:1/);
  });

  it('plan --subjects-from is read-only and says what each subject would purge', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const r = await purgekit(['plan', NEXUS, '--subjects-from', file('user_id\nauth|bob\nauth|nobody\n'), '--connection', db.url, '--json']);
    expect(r.code, why(r)).toBe(0);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ readOnly: 1, notFound: 1 });
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('a lock timeout is retried with backoff, then the subject commits', async () => {
    const db = await nexus();
    // Another session holds a row lock on carol for a moment longer than one try.
    const holder = db.sql.reserve ? await db.sql.reserve() : undefined;
    await holder!`BEGIN`;
    await holder!`SELECT * FROM user_profiles WHERE user_id = 'auth|carol' FOR UPDATE`;
    const run = purgekit(['apply', NEXUS, '--subjects-from', file('email\ncarol@example.com\n'), '--lock-timeout', '300ms', '--retries', '5',
      '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json']);
    // Hold the lock until the run has waited on it, timed out and come back for it (a retry):
    // watched on the server, not guessed with a fixed delay (a loaded machine starts the CLI late).
    const waiting = async () => (await db.sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.name} AND wait_event_type = 'Lock'`)[0]!['n'] > 0;
    const until = async (want: boolean) => { for (let i = 0; i < 600 && (await waiting()) !== want; i++) await new Promise((r) => setTimeout(r, 50)); };
    await until(true);
    await until(false);
    await until(true);
    await holder!`ROLLBACK`;
    holder!.release();
    const r = await run;
    expect(r.code, why(r)).toBe(0);
    const [subject] = jsonLines(r.stdout);
    expect(subject).toMatchObject({ outcome: 'committed' });
    expect(subject!["tries"], r.stderr + r.stdout).toBeGreaterThan(1);
    expect(r.stderr).toMatch(/transient failure .*; retry 1 of 5/);
  });
});

describe('--subjects-from: bad input is located and deletes nothing', () => {
  const cases: [string, string, RegExp][] = [
    ['missing column', 'name\nalice\n', /:1: unknown column "name"/],
    ['a column that covers no lookup', 'delete_owned_companies\ntrue\n', /:1: unknown column|:1: missing column/],
    ['unknown column, did you mean', 'emial\nalice@example.com\n', /:1: unknown column "emial" \(did you mean email\?\)/],
    ['blank line', 'email\ncarol@example.com\n\nalice@example.com\n', /:3: blank line/],
    ['BOM', '\uFEFFemail\ncarol@example.com\n', /:1: the file starts with a byte order mark/],
    ['CRLF', 'email\r\ncarol@example.com\r\n', /:1: the line ends with CRLF/],
    ['unterminated quote', 'email\ncarol@example.com\n"alice@example.com\n', /:3: unterminated quote/],
    ['wrong number of values', 'email\ncarol@example.com\na,b\n', /:3: 2 values, the header names 1 columns/],
    ['bad JSON line', '{"email":"carol@example.com"}\n{"email":\n', /:2: not a JSON object/],
    ['empty file', '', /:1: the file is empty/],
  ];
  it.each(cases)('%s', async (_, text, message) => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const path = file(text);
    const r = await purgekit(['apply', NEXUS, '--subjects-from', path, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(`${path}:`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('--subjects-from: typed params are checked before connecting', () => {
  it.each([
    ['rephlo-purge-user', 'user_id\n6f1c0d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f\nnot-a-uuid\n', /:3: user_id: "not-a-uuid" is not a valid uuid/],
    ['vedfolnir-delete-user', 'user_id\n12\n1.5\n', /:3: user_id: "1.5" is not a valid integer/],
  ])('%s', async (policy, text, message) => {
    // Nothing listens on port 1: the error comes from reading the file, before any connection.
    const r = await purgekit(['apply', policy, '--subjects-from', file(text), '--confirm', 'x', '--connection', 'postgres://u@127.0.0.1:1/x', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
