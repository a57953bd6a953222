/** purgekit counts against a real PostgreSQL: seed 002's table counts before and after maintenance. */
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture } from './harness/db.js';
import { purgekit } from './run-helpers.js';

interface CountsJson {
  version: number;
  database: string;
  estimate: boolean;
  tables: { table: string; rows: number | null; empty: boolean; critical: boolean }[];
  emptyCritical: string[];
}

const catalogDb = () => createTestDatabase(loadFixture('catalog'));
const countsOf = (stdout: string) => JSON.parse(stdout) as CountsJson;

describe('purgekit counts', () => {
  it('counts every table exactly, a partitioned table once with its partitions, quoted names as SQL spells them', async () => {
    const db = await catalogDb();
    await db.sql`DELETE FROM audit.settings`;
    const r = await purgekit(['counts', '--connection', db.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = countsOf(r.stdout);
    expect(out.estimate).toBe(false);
    expect(Object.fromEntries(out.tables.map((t) => [t.table, t.rows]))).toEqual({
      'app."Comment"': 3, 'app."Post"': 3, 'app."Team"': 2, 'app."User"': 3, 'app.events': 3,
      'audit.event_notes': 2, 'audit.login_attempts': 2, 'audit.settings': 0,
    });
    expect(out.tables.filter((t) => t.empty).map((t) => t.table)).toEqual(['audit.settings']);
    expect(r.stderr).toMatch(/audit\.settings +0 +EMPTY/);
  });

  it('fails (exit 4) naming every critical table that is empty; an empty table that is not critical only gets flagged', async () => {
    const db = await catalogDb();
    await db.sql.unsafe('DELETE FROM app."Comment"; DELETE FROM audit.settings');
    const r = await purgekit(['counts', '--connection', db.url, '--critical', 'Comment,app."User"', '--critical', 'audit.settings', '--json']);
    expect(r.code).toBe(4);
    expect(countsOf(r.stdout).emptyCritical).toEqual(['app."Comment"', 'audit.settings']);
    expect(r.stderr).toContain('critical and empty: app."Comment", audit.settings');
    const ok = await purgekit(['counts', '--connection', db.url, '--critical', 'app.User']);
    expect(ok.code).toBe(0);
  });

  it('--estimate reads the statistics instead of scanning, and says when a table was never analyzed', async () => {
    const db = await catalogDb();
    await db.sql`CREATE TABLE audit.fresh (id int)`;
    const r = await purgekit(['counts', '--connection', db.url, '--estimate', '--schema', 'audit', '--json']);
    expect(r.code).toBe(0);
    const rows = Object.fromEntries(countsOf(r.stdout).tables.map((t) => [t.table, t.rows]));
    expect(rows).toEqual({ 'audit.event_notes': 2, 'audit.fresh': null, 'audit.login_attempts': 2, 'audit.settings': 1 });
    expect(r.stderr).toMatch(/audit\.fresh +never analyzed/);
  });

  it('refuses an unknown or ambiguous critical table (exit 2) and an unreachable server (exit 5)', async () => {
    const db = await catalogDb();
    const unknown = await purgekit(['counts', '--connection', db.url, '--critical', 'Usr']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--critical Usr: no such table (did you mean User?)');
    await db.sql`CREATE TABLE audit."User" (id int)`;
    const ambiguous = await purgekit(['counts', '--connection', db.url, '--critical', 'User']);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('--critical User is ambiguous: app."User", audit."User"; name the schema');
    const down = await purgekit(['counts', '--connection', 'postgres://u:S3cret@127.0.0.1:1/x']);
    expect(down.code).toBe(5);
    expect(down.stderr).not.toContain('S3cret');
  });
});
