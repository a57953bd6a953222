/**
 * --subjects-from --batch-size: several subjects per transaction, through the built CLI against
 * real PostgreSQL (nexus fixture). A step that fails for one subject (a foreign key) fails its
 * batch, whose subjects then run one per transaction; two lines naming one person; plan in
 * batches; --backup: one restorable directory per batch; a policy whose steps read a param
 * directly is not batched.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { POLICIES } from './helpers/scripts.js';
import { withOutbox } from './helpers/outbox.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';
import { resolvePolicy } from '../src/commands/resolvePolicy.js';
import { unbatchable } from '../src/volume/batchable.js';

const NEXUS = 'nexus-purge-user';

async function nexus(extra = 0): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('nexus'));
  if (extra) {
    await db.sql`INSERT INTO user_profiles (user_id, email) SELECT 'auth|v' || i, 'v' || i || '@example.com' FROM generate_series(1, ${extra}) i`;
    await db.sql`INSERT INTO user_preferences (user_id, theme) SELECT 'auth|v' || i, 'dark' FROM generate_series(1, ${extra}) i`;
  }
  return db;
}

function file(text: string, name = 'subjects.csv'): string {
  const path = join(mkdtempSync(join(tmpdir(), 'pk-batches-')), name);
  writeFileSync(path, text);
  return path;
}

function lines(stdout: string): Record<string, any>[] {
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
}

async function users(db: TestDb): Promise<string[]> {
  return (await db.sql<{ user_id: string }[]>`SELECT user_id FROM user_profiles ORDER BY 1`).map((r) => r.user_id);
}

describe('--batch-size', () => {
  it('a step that fails for one subject (bob owns a company: 23503) fails its batch; its subjects run again one per transaction, only bob fails', async () => {
    const db = await nexus(6);
    const audit = tempAuditLog();
    const subjects = file(`email\n${['v1', 'v2', 'bob', 'v3', 'carol', 'v4', 'v5', 'v6'].map((u) => `${u}@example.com`).join('\n')}\n`);
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--batch-size', '4', '--confirm', db.name, '--connection', db.url, '--audit-log', audit, '--json']);
    const out = lines(r.stdout);
    const batches = out.filter((l) => l['kind'] === 'batch');
    // Batch 1 (lines 2-5) fails on bob's company; lines 2-5 run again alone (batches 2-5); batch 6 is lines 6-9.
    expect(batches.map((b) => [b['batch'], b['lines'], b['outcome']])).toEqual([
      [1, [2, 3, 4, 5], 'failed'],
      [2, [2], 'committed'],
      [3, [3], 'committed'],
      [4, [4], 'failed'],
      [5, [5], 'committed'],
      [6, [6, 7, 8, 9], 'committed'],
    ]);
    expect(batches[0]!['error']).toMatch(/foreign key|companies/);
    const bob = out.find((l) => l['kind'] === 'subject' && l['line'] === 4)!;
    expect(bob).toMatchObject({ outcome: 'failed', exitCode: 4, batch: 4 });
    expect(out.at(-1)).toMatchObject({ kind: 'summary', subjects: 8, committed: 7, failed: 1, batches: 6, batchSize: 4, exitCode: 4 });
    expect(r.code, why(r)).toBe(4);
    expect(r.stderr).toMatch(/batch 1 \(4 subjects, lines 2-5\): FAILED \(exit 4\): .*; rolled back, its 4 subjects run again one per transaction/);
    expect(batches[0]!['rerun']).toBe('one-per-transaction');
    expect(await users(db)).toEqual(['auth|admin', 'auth|alice', 'auth|bob', 'auth|dup1', 'auth|dup2']);
    // The journal: every committed line once, with the batch that committed it; bob failed.
    const journal = await db.sql<{ line: number; outcome: string; batch: number | null }[]>`SELECT line, outcome, batch FROM purgekit.journal ORDER BY line`;
    expect(journal.map((j) => [j.line, j.outcome, j.batch])).toEqual([
      [2, 'committed', 2], [3, 'committed', 3], [4, 'failed', null], [5, 'committed', 5],
      [6, 'committed', 6], [7, 'committed', 6], [8, 'committed', 6], [9, 'committed', 6],
    ]);
    // The audit log: one outcome record per transaction, all with the run's one id and their batch number.
    const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const outcomes = records.filter((x) => x['event'] === 'outcome');
    expect(outcomes.map((x) => [x['batch'], x['outcome'], x['subjects'].length])).toEqual([
      [1, 'rolled-back', 4], [2, 'committed', 1], [3, 'committed', 1], [4, 'rolled-back', 1], [5, 'committed', 1], [6, 'committed', 4],
    ]);
    expect(new Set(records.map((x) => x['runId'])).size).toBe(1);
    expect(JSON.stringify(records)).not.toMatch(/v\d@example\.com|carol@/);
  });

  it('two lines naming one person in a batch: the person is purged once, both lines are committed', async () => {
    const db = await nexus();
    const subjects = file('{"user_id":"auth|alice"}\n{"email":"ALICE@example.com"}\n{"email":"carol@example.com"}\n', 'subjects.jsonl');
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json']);
    expect(r.code, why(r)).toBe(0);
    const out = lines(r.stdout);
    expect(out.filter((l) => l['kind'] === 'subject').map((l) => [l['line'], l['outcome'], l['matched']])).toEqual([[1, 'committed', 1], [2, 'committed', 1], [3, 'committed', 1]]);
    expect(out.at(-1)).toMatchObject({ committed: 3, batches: 1 });
    expect(await users(db)).toEqual(['auth|admin', 'auth|bob', 'auth|dup1', 'auth|dup2']);
  });

  it('plan in batches: read-only, each subject with what its lookups matched', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const r = await purgekit(['plan', NEXUS, '--subjects-from', file('email\nbob@example.com\nnobody@example.com\nshared@example.com\n'), '--force-multi', '--connection', db.url, '--json']);
    expect(r.code, why(r)).toBe(0);
    const out = lines(r.stdout);
    expect(out.filter((l) => l['kind'] === 'subject').map((l) => [l['line'], l['outcome'], l['matched']])).toEqual([[2, 'read-only', 1], [3, 'not-found', 0], [4, 'read-only', 2]]);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('--backup: one backup directory per committed batch, each restorable on its own', async () => {
    const db = await nexus(5);
    const backup = join(mkdtempSync(join(tmpdir(), 'pk-batches-backup-')), 'backup');
    const subjects = file(`email\n${[1, 2, 3, 4, 5].map((i) => `v${i}@example.com`).join('\n')}\n`);
    const r = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--batch-size', '3', '--backup', backup, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json']);
    expect(r.code, why(r)).toBe(0);
    const batches = lines(r.stdout).filter((l) => l['kind'] === 'batch');
    expect(batches.map((b) => b['backup'])).toEqual([join(backup, 'batch-000001-line-2'), join(backup, 'batch-000002-line-5')]);
    expect(readdirSync(backup).sort()).toEqual(['batch-000001-line-2', 'batch-000002-line-5']);
    expect((await users(db)).filter((u) => u.startsWith('auth|v'))).toEqual([]);
    const restored = await purgekit(['restore', batches[0]!['backup'], '--confirm', db.name, '--connection', db.url]);
    expect(restored.code, why(restored)).toBe(0);
    expect((await users(db)).filter((u) => u.startsWith('auth|v'))).toEqual(['auth|v1', 'auth|v2', 'auth|v3']);
    const [prefs] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM user_preferences WHERE user_id LIKE 'auth|v%'`;
    expect(prefs!.n).toBe(3);
    // A backup directory that is not empty is refused before anything runs.
    const again = await purgekit(['apply', NEXUS, '--subjects-from', subjects, '--backup', backup, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()]);
    expect(again.code, why(again)).not.toBe(0);
    expect(again.stderr).toMatch(/not empty/);
    expect(existsSync(join(backup, 'batch-000001-line-2'))).toBe(true);
  });

  it('after_commit in a batch: jobs queued for every subject of the batch (its own captured id); Redis down after COMMIT is exit 8, the subjects committed', async () => {
    const db = await createTestDatabase(withOutbox('vedfolnir'));
    const storage = mkdtempSync(join(tmpdir(), 'pk-batches-storage-'));
    const r = await purgekit(['apply', 'vedfolnir-delete-user', '--subjects-from', file('username\nbob\ncarol\n'), '--confirm', db.name, '--confirm-subject', 'bob', '--confirm-subject', 'carol', '--connection', db.url, '--audit-log', tempAuditLog(), '--json'],
      { env: { REDIS_URL: 'redis://127.0.0.1:1', VEDFOLNIR_STORAGE: storage } });
    expect(r.code, why(r)).toBe(8);
    const out = lines(r.stdout);
    expect(out.filter((l) => l['kind'] === 'subject').map((l) => [l['line'], l['outcome'], l['exitCode']])).toEqual([[2, 'committed', 8], [3, 'committed', 8]]);
    expect(out.at(-1)).toMatchObject({ committed: 2, failed: 0, batches: 1, exitCode: 8 });
    const [left] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM users WHERE username IN ('bob', 'carol')`;
    expect(left!.n).toBe(0);
    // One files and one redis job per subject: the files jobs ran (their captured values are cleared once done), the redis ones wait.
    const jobs = await db.sql<{ kind: string; status: string; id: string | null }[]>`SELECT kind, status, captured->>'id' AS id FROM purgekit.outbox ORDER BY 1, 3`;
    expect(jobs.map((j) => [j.kind, j.status === 'done' ? 'done' : 'waiting', j.id])).toEqual([['files', 'done', null], ['files', 'done', null], ['redis', 'waiting', '3'], ['redis', 'waiting', '4']]);
  });

  it('the erasure ledger gets one row per subject of a batch (read from the batch\'s subject table)', async () => {
    const db = await nexus(3);
    const env = { PURGEKIT_LEDGER_KEY: 'k'.repeat(40) };
    const r = await purgekit(['apply', NEXUS, '--subjects-from', file('email\nv1@example.com\nv2@example.com\nnobody@example.com\nv3@example.com\n'), '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog(), '--json'], { env });
    expect(r.code, why(r)).toBe(0);
    expect(lines(r.stdout).at(-1)).toMatchObject({ committed: 3, notFound: 1, batches: 1 });
    const [ledger] = await db.sql<{ n: number; subjects: number }[]>`SELECT count(*)::int AS n, count(DISTINCT subject)::int AS subjects FROM purgekit.ledger WHERE entry = 'erased'`;
    expect(ledger).toEqual({ n: 3, subjects: 3 });
  });

  it('--batch-size must be a whole number from 1 to 10000 (exit 2, before connecting)', async () => {
    for (const bad of ['0', '2.5', 'many']) {
      const r = await purgekit(['apply', NEXUS, '--subjects-from', file('email\ncarol@example.com\n'), '--batch-size', bad, '--confirm', 'x', '--connection', 'postgres://u@127.0.0.1:1/db', '--audit-log', tempAuditLog()]);
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toMatch(/--batch-size .*: expected a whole number from 1 to 10000/);
    }
  });

  it('a policy whose steps read a param directly (not through :subject) is not batched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pk-batches-policy-'));
    cpSync(join(POLICIES, `${NEXUS}.yaml`), join(dir, `${NEXUS}.yaml`));
    expect(unbatchable((await resolvePolicy(NEXUS, dir)).policy)).toBeUndefined();
    const yaml = readFileSync(join(dir, `${NEXUS}.yaml`), 'utf8');
    writeFileSync(join(dir, `${NEXUS}.yaml`), yaml.replace('where: user_id IN :subject', 'where: user_id IN :subject OR email = :email'));
    expect(unbatchable((await resolvePolicy(NEXUS, dir)).policy)).toMatch(/^steps\.\d+\.where reads a param directly/);
  });
});
