/**
 * apply --subjects-from --resume: purgekit.journal, written in each subject's transaction. A run
 * killed by SIGKILL, or whose connections are terminated (pg_terminate_backend), then resumed:
 * every subject purged exactly once. The journal holds HMACs only and refuses another file.
 * Batches of 4 subjects (--batch-size 4): a kill lands between or inside batch transactions.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';
import { BIN, purgekit, tempAuditLog, why } from './run-helpers.js';

const NEXUS = 'nexus-purge-user';
const N = 30;

async function nexusWithUsers(): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('nexus'));
  await db.sql`INSERT INTO user_profiles (user_id, email) SELECT 'auth|v' || i, 'v' || i || '@example.com' FROM generate_series(1, ${N}) i`;
  await db.sql`INSERT INTO user_preferences (user_id, theme) SELECT 'auth|v' || i, 'dark' FROM generate_series(1, ${N}) i`;
  return db;
}

function subjectsFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'pk-journal-')), 'subjects.csv');
  writeFileSync(path, `email\n${Array.from({ length: N }, (_, i) => `v${i + 1}@example.com`).join('\n')}\n`);
  return path;
}

async function left(db: TestDb): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM user_profiles WHERE user_id LIKE 'auth|v%'`;
  return row!.n;
}

function summaryOf(stdout: string): Record<string, any> {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
}

/** Spawns an apply and calls `act` once `after` batches have committed (seen on stderr); resolves at exit. */
function applyUntil(args: string[], after: number, act: (kill: () => void) => Promise<void>): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let acted = false;
    child.stdout.resume();
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!acted && (stderr.match(/\): committed,/g) ?? []).length >= after) {
        acted = true;
        act(() => child.kill('SIGKILL')).catch(reject);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe('apply --subjects-from: journal and --resume', () => {
  it('SIGKILL mid-way, then --resume: every subject purged exactly once', async () => {
    const db = await nexusWithUsers();
    const audit = tempAuditLog();
    const file = subjectsFile();
    const args = ['apply', NEXUS, '--subjects-from', file, '--confirm', db.name, '--connection', db.url, '--audit-log', audit, '--json', '--batch-size', '4'];
    const killed = await applyUntil(args, 2, async (kill) => kill());
    expect(killed.signal).toBe('SIGKILL');
    const done = N - (await left(db));
    expect(done).toBeGreaterThanOrEqual(8);
    // Whole batches only: 4 subjects per transaction, 30 subjects.
    expect(done % 4).toBe(0);
    expect(done).toBeLessThan(N);
    // The journal says exactly what was committed: one row per committed subject, with its batch, HMACs only
    // (the audit log's: the email as compared, lower-cased, under the audit log's key).
    const journal = await db.sql<{ line: number; subject: string; outcome: string; batch: number }[]>`SELECT line, subject, outcome, batch FROM purgekit.journal ORDER BY line`;
    expect(journal.filter((j) => j.outcome === 'committed').length).toBe(done);
    for (const j of journal) expect(JSON.parse(j.subject)).toEqual({ email: expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/) });
    expect(new Set(journal.map((j) => j.batch)).size).toBe(done / 4);
    const attempts = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>).filter((r) => r['event'] === 'attempt');
    const audited = new Map(attempts.flatMap((r) => r['subjects'].map((x: { line: number; params: object }) => [x.line, JSON.stringify(x.params)])));
    for (const j of journal) expect(j.subject).toBe(audited.get(j.line));
    expect(JSON.stringify(journal)).not.toContain('@example.com');

    const resumed = await purgekit([...args, '--resume']);
    expect(resumed.code, why(resumed)).toBe(0);
    const summary = summaryOf(resumed.stdout);
    // Not found would mean a subject purged before but not journaled: there is none.
    expect(summary).toMatchObject({ doneBefore: done, committed: N - done, notFound: 0, failed: 0 });
    expect(await left(db)).toBe(0);
    const [count] = await db.sql<{ n: number; lines: number }[]>`SELECT count(*)::int AS n, count(DISTINCT line)::int AS lines FROM purgekit.journal WHERE outcome = 'committed'`;
    expect(count).toEqual({ n: N, lines: N });
    // Resuming a finished file is a no-op.
    const again = await purgekit([...args, '--resume']);
    expect(summaryOf(again.stdout)).toMatchObject({ doneBefore: N, committed: 0, notFound: 0 });
  });

  it('pg_terminate_backend mid-way: the subject under way is retried, then --resume finds nothing left to do twice', async () => {
    const db = await nexusWithUsers();
    const file = subjectsFile();
    const args = ['apply', NEXUS, '--subjects-from', file, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json', '--batch-size', '4'];
    const run = await applyUntil(args, 2, async () => {
      await db.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db.name} AND pid <> pg_backend_pid()`;
    });
    const resumed = await purgekit([...args, '--resume']);
    expect(resumed.code, why(resumed)).toBe(0);
    const summary = summaryOf(resumed.stdout);
    expect(summary['notFound'], `${run.stderr}\n${resumed.stderr}`).toBe(0);
    expect(summary['doneBefore'] + summary['committed']).toBe(N);
    expect(await left(db)).toBe(0);
    const [count] = await db.sql<{ n: number; lines: number }[]>`SELECT count(*)::int AS n, count(DISTINCT line)::int AS lines FROM purgekit.journal WHERE outcome = 'committed'`;
    expect(count).toEqual({ n: N, lines: N });
  });

  it('--resume refuses a journal of another subjects file (exit 6), and with no journal at all', async () => {
    const db = await nexusWithUsers();
    const audit = tempAuditLog();
    const none = await purgekit(['apply', NEXUS, '--subjects-from', subjectsFile(), '--resume', '--confirm', db.name, '--connection', db.url, '--audit-log', audit]);
    expect(none.code, why(none)).toBe(6);
    expect(none.stderr).toMatch(/nothing to resume: purgekit.journal has no run of nexus-purge-user/);
    const first = join(mkdtempSync(join(tmpdir(), 'pk-journal-')), 'a.csv');
    writeFileSync(first, 'email\nv1@example.com\n');
    expect((await purgekit(['apply', NEXUS, '--subjects-from', first, '--confirm', db.name, '--connection', db.url, '--audit-log', audit])).code).toBe(0);
    writeFileSync(first, 'email\nv2@example.com\n');
    const other = await purgekit(['apply', NEXUS, '--subjects-from', first, '--resume', '--confirm', db.name, '--connection', db.url, '--audit-log', audit]);
    expect(other.code, why(other)).toBe(6);
    expect(other.stderr).toMatch(/another plan or subjects file/);
    expect(await left(db)).toBe(N - 1);
  });
});
