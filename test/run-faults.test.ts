/**
 * purgekit apply on a careful operator's worst day: the backend terminated mid-run, signals,
 * an audit log that cannot be written. The database is either unchanged or fully purged, the
 * backup directory is removed or complete, and the output says which.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { purgekit, sleep, tempAuditLog, validJson, why } from './run-helpers.js';

const NEXUS = 'nexus-purge-user';

async function nexus(setup?: string): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('nexus'));
  if (setup) await db.sql.unsafe(setup);
  return db;
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The purgekit backend of this database, once it waits on a lock. */
async function blockedRun(db: TestDb): Promise<number> {
  let pid = 0;
  await waitFor('the run to wait on the row lock', async () => {
    const [row] = await db.sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
      WHERE datname = ${db.name} AND application_name = 'purgekit' AND wait_event_type = 'Lock'`;
    pid = row?.pid ?? 0;
    return pid !== 0;
  });
  return pid;
}

function auditRecords(path: string): Record<string, any>[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) : [];
}

describe('the backend terminated mid-apply', () => {
  it('while a step waits on a lock: exit 7, rolled back, --json printed, backup removed, audit attempt and outcome', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const holder = await db.sql.reserve();
    const audit = tempAuditLog();
    const backup = join(audit, '..', 'backup');
    try {
      await holder`BEGIN`;
      await holder`SELECT id FROM oauth_tokens WHERE user_id = 'auth|alice' FOR UPDATE`;
      const run = purgekit(['apply', NEXUS, '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name,
        '--connection', db.url, '--lock-timeout', '30s', '--json', '--audit-log', audit, '--backup', backup]);
      const pid = await blockedRun(db);
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      const r = await run;
      expect(r.code, why(r)).toBe(7);
      expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
      const json = validJson(r);
      expect(json).toMatchObject({ outcome: 'rolled-back', exitCode: 7, error: { code: 'CONNECTION_LOST' } });
      expect(r.stderr).toMatch(/connection .*lost.*rolled back.*safe to retry/i);
      expect(existsSync(backup)).toBe(false);
      const records = auditRecords(audit);
      expect(records.map((x) => x['outcome'])).toEqual(['rolled-back']);
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
    expect(await snapshot(db.sql)).toEqual(before);
  });
});
