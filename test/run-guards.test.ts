/**
 * purgekit plan | apply: what refuses to run and what never gets printed. Connection failures
 * (exit 5), guards (exit 6), the reviewed-file rule (exit 2), passwords, the audit log.
 */
import { existsSync, readFileSync, rmSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, rowCounts, snapshot, type TestDb } from './harness/db.js';
import { project, purgekit, recordedChecksum, tempAuditLog, validJson, why, type CliResult } from './run-helpers.js';

const NEXUS = 'nexus-purge-user';
const PASSWORD = 'S3cr3t-pw';

async function nexus(): Promise<TestDb> {
  return createTestDatabase(loadFixture('nexus'));
}

function auditText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

function auditRecords(path: string, event: 'attempt' | 'outcome' | 'all' = 'outcome'): Record<string, any>[] {
  return auditText(path).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).filter((r) => event === 'all' || r['event'] === event);
}

/** Every place a run can write text: its stdout, its stderr, and the audit log. */
function everything(r: CliResult, auditLog?: string): string {
  return `${r.stdout}\n${r.stderr}\n${auditLog ? auditText(auditLog) : ''}`;
}

/** The harness URL with another password (same host, port, user, database). */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

describe('purgekit cannot connect: exit 5', () => {
  it('unreachable server: exit 5, says it cannot connect, never prints the password', async () => {
    const audit = tempAuditLog();
    for (const command of [['plan', NEXUS, '--email', 'a@example.com'], ['apply', NEXUS, '--email', 'a@example.com', '--confirm', 'db', '--audit-log', audit]]) {
      const r = await purgekit([...command, '--connection', `postgres://u:${PASSWORD}@127.0.0.1:1/db`, '--json']);
      expect(r.code, why(r)).toBe(5);
      expect(r.stderr).toMatch(/cannot connect to db \(u@127\.0\.0\.1:1\)/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(everything(r, audit)).not.toContain(PASSWORD);
    }
  });

  it('a percent-encoded password appears neither encoded nor decoded', async () => {
    const r = await purgekit(['plan', NEXUS, '--email', 'a@example.com', '--connection', 'postgres://u:S3cr%3At%40pw@127.0.0.1:1/db']);
    expect(r.code, why(r)).toBe(5);
    expect(everything(r)).not.toMatch(/S3cr%3At%40pw|S3cr:t@pw|S3cr:t%40pw|S3cr%3At@pw/);
  });

  it('a wrong password against the real server: exit 5, the password is not printed', async ({ skip }) => {
    const db = await nexus();
    if (!new URL(db.url).password) skip(); // a server that trusts the test role would not check any password
    const audit = tempAuditLog();
    const r = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', withPassword(db.url, PASSWORD), '--json', '--audit-log', audit]);
    expect(r.code, why(r)).toBe(5);
    expect(r.stderr).toMatch(/cannot connect to pk_\w+ .*password authentication failed/);
    expect(everything(r, audit)).not.toContain(PASSWORD);
  });

  it('a connection string without a scheme never prints any part of the password', async () => {
    // postgres.js reads "u:S3cr3t-pw@127.0.0.1:1/db" as a database name and goes to localhost:5432.
    const r = await purgekit(['plan', NEXUS, '--email', 'a@example.com', '--connection', `u:${PASSWORD}@127.0.0.1:1/db`]);
    expect(r.code, why(r)).not.toBe(0);
    expect(everything(r)).not.toMatch(/3cr3t-pw|S3cr3t/);
  });
});

describe('purgekit apply guards: exit 6, nothing changed', () => {
  it('a database not allowed by guard.databases (policy compiled in a scratch project)', async () => {
    const db = await nexus();
    const dir = project();
    const file = join(dir, 'policies', `${NEXUS}.yaml`);
    const yaml = readFileSync(file, 'utf8');
    expect(yaml).toMatch(/databases: \[[^\]]*\]/);
    writeFileSync(file, yaml.replace(/databases: \[[^\]]*\]/, 'databases: ["*_prod"]'));
    const compiled = await purgekit(['compile'], { cwd: dir });
    expect(compiled.code, why(compiled)).toBe(0);
    expect(compiled.stderr).toContain(`generated/${NEXUS}.sql`);

    const before = await snapshot(db.sql);
    const audit = tempAuditLog();
    const r = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit], { cwd: dir });
    expect(r.code, why(r)).toBe(6);
    expect(validJson(r)).toMatchObject({ outcome: 'refused', error: { code: 'GUARD', message: `database "${db.name}" is not allowed by this policy's guard (databases: *_prod)` } });
    expect(r.stderr).toContain('refused: nothing was changed');
    // Said once, not once as the refusal and again as "failed: ...".
    expect(r.stderr.split('is not allowed by this policy').length - 1, r.stderr).toBe(1);
    expect(r.stderr).not.toContain('failed:');
    // A rehearsal runs for real too, so the guard applies to it.
    const rehearse = await purgekit(['plan', '--rehearse', NEXUS, '--email', 'carol@example.com', '--connection', db.url, '--json'], { cwd: dir });
    expect(rehearse.code, why(rehearse)).toBe(6);
    expect(await snapshot(db.sql)).toEqual(before);
    expect(auditRecords(audit)).toMatchObject([{ outcome: 'refused', exitCode: 6 }]);
  });

  it('apply without --confirm, with an empty --confirm (no TTY), with the wrong database name', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const base = ['apply', NEXUS, '--email', 'carol@example.com', '--connection', db.url, '--json', '--audit-log', tempAuditLog()];
    const missing = await purgekit(base);
    expect(missing.code, why(missing)).toBe(6);
    expect(validJson(missing).error).toMatchObject({ code: 'GUARD', message: expect.stringContaining('add --confirm') });
    const empty = await purgekit([...base, '--confirm']);
    expect(empty.code, why(empty)).toBe(6);
    expect(validJson(empty).error!.message).toContain(`needs --confirm ${db.name}`);
    const wrong = await purgekit([...base, '--confirm', 'pk_someotherdb']);
    expect(wrong.code, why(wrong)).toBe(6);
    expect(validJson(wrong).error!.message).toBe(`--confirm "pk_someotherdb" does not match the database "${db.name}"`);
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe('purgekit runs only the reviewed generated file: exit 2 otherwise', () => {
  it('a hand-edited generated file is refused, also when named directly; --dangerously-run-unreviewed runs the policy as compiled, not the edit', async () => {
    const db = await nexus();
    const dir = project();
    const file = join(dir, 'generated', `${NEXUS}.sql`);
    const text = readFileSync(file, 'utf8');
    // The edit adds a statement that would also remove Bob's memory.
    const edited = text.replace('-- Step 1 of 15', 'DELETE FROM ai_memories;\n\n-- Step 1 of 15');
    expect(edited).not.toBe(text);
    writeFileSync(file, edited);
    const before = await snapshot(db.sql);
    const args = ['--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()];

    for (const target of [NEXUS, `generated/${NEXUS}.sql`]) {
      const r = await purgekit(['apply', target, ...args], { cwd: dir });
      expect(r.code, `${target}: ${why(r)}`).toBe(2);
      expect(r.stderr).toContain('hand-edited');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const plan = await purgekit(['plan', NEXUS, '--email', 'carol@example.com', '--connection', db.url], { cwd: dir });
    expect(plan.code, why(plan)).toBe(2);
    expect(await snapshot(db.sql)).toEqual(before);

    const forced = await purgekit(['apply', NEXUS, ...args, '--dangerously-run-unreviewed', '--json'], { cwd: dir });
    expect(forced.code, why(forced)).toBe(0);
    expect(forced.stderr).toMatch(/warning: .*nexus-purge-user\.sql is hand-edited; running the policy as compiled now, unreviewed/);
    expect(validJson(forced)).toMatchObject({ outcome: 'committed', planSha256: recordedChecksum(NEXUS) });
    const [carol] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM user_profiles WHERE user_id = 'auth|carol'`;
    expect(carol!.n).toBe(0);
    // The edited statement did not run: Bob's and Alice's memories are still there.
    expect(await rowCounts(db.sql, ['ai_memories'])).toEqual({ ai_memories: 2 });
  });

  it('a stale generated file (policy edited since) and a missing one are refused', async () => {
    const db = await nexus();
    const before = await snapshot(db.sql);
    const dir = project();
    appendFileSync(join(dir, 'policies', `${NEXUS}.yaml`), '# an edit after review\n');
    const args = ['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()];
    const stale = await purgekit(args, { cwd: dir });
    expect(stale.code, why(stale)).toBe(2);
    expect(stale.stderr).toMatch(/nexus-purge-user\.sql.*stale.*purgekit compile/);
    rmSync(join(dir, 'generated', `${NEXUS}.sql`));
    const missing = await purgekit(args, { cwd: dir });
    expect(missing.code, why(missing)).toBe(2);
    expect(missing.stderr).toContain('missing');
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('usage errors exit 2 before connecting: no lookup parameter, an unknown option, a check policy given to apply', async () => {
    const unreachable = ['--connection', `postgres://u:${PASSWORD}@127.0.0.1:1/db`];
    const noLookup = await purgekit(['plan', NEXUS, ...unreachable]);
    expect(noLookup.code, why(noLookup)).toBe(2);
    expect(noLookup.stderr).toContain('needs --user-id, or --email');
    const unknown = await purgekit(['plan', NEXUS, '--emial', 'x@example.com', ...unreachable]);
    expect(unknown.code, why(unknown)).toBe(2);
    expect(unknown.stderr).toContain('unknown option --emial');
    const check = await purgekit(['apply', 'rephlo-critical-tables', '--confirm', 'x', ...unreachable]);
    expect(check.code, why(check)).toBe(2);
    expect(check.stderr).toContain('purgekit verify rephlo-critical-tables');
    const timeout = await purgekit(['plan', NEXUS, '--email', 'x@example.com', '--lock-timeout', 'soon', ...unreachable]);
    expect(timeout.code, why(timeout)).toBe(2);
  });
});

describe('passwords and the audit log', () => {
  it('the real password appears nowhere: a committed apply, a failed one, DATABASE_URL and PG* variables', async ({ skip }) => {
    const db = await nexus();
    const password = decodeURIComponent(new URL(db.url).password);
    if (!password) skip(); // TEST_DATABASE_URL without a password: nothing to leak
    expect(password.length).toBeGreaterThan(3); // the embedded server's is 32 random hex digits
    const audit = tempAuditLog();
    const failed = await purgekit(['apply', NEXUS, '--email', 'shared@example.com', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit]);
    expect(failed.code, why(failed)).toBe(3);
    expect(everything(failed, audit)).not.toContain(password);

    const viaEnv = await purgekit(['apply', NEXUS, '--email', 'carol@example.com', '--confirm', db.name, '--json', '--audit-log', audit], { env: { DATABASE_URL: db.url } });
    expect(viaEnv.code, why(viaEnv)).toBe(0);
    expect(validJson(viaEnv).database.database).toBe(db.name);
    expect(everything(viaEnv, audit)).not.toContain(password);

    const u = new URL(db.url);
    const pg = { PGHOST: u.hostname, PGPORT: u.port, PGUSER: decodeURIComponent(u.username), PGPASSWORD: password, PGDATABASE: db.name };
    const viaPg = await purgekit(['apply', NEXUS, '--email', 'bob@example.com', '--delete-owned-companies', '--confirm', db.name, '--json', '--audit-log', audit], { env: pg });
    expect(viaPg.code, why(viaPg)).toBe(0);
    expect(validJson(viaPg).database).toMatchObject({ database: db.name, port: Number(u.port) });
    expect(everything(viaPg, audit)).not.toContain(password);
    expect(auditRecords(audit).map((r) => r['outcome'])).toEqual(['rolled-back', 'committed', 'committed']);
  });

  it('one JSON line per apply (refused, rolled back, committed) with policy, plan sha256, database, outcome, steps; emails only as HMAC', async () => {
    const db = await nexus();
    const audit = tempAuditLog();
    const run = (args: string[]) => purgekit(['apply', NEXUS, ...args, '--connection', db.url, '--audit-log', audit]);
    expect((await run(['--email', 'carol@example.com'])).code).toBe(6); // refused: no --confirm
    expect((await run(['--email', 'shared@example.com', '--confirm', db.name])).code).toBe(3); // rolled back
    expect((await run(['--email', 'carol@example.com', '--confirm', db.name])).code).toBe(0); // committed
    expect(auditRecords(audit)).toHaveLength(3);
    // A plan is not an apply: no record.
    expect((await purgekit(['plan', NEXUS, '--email', 'bob@example.com', '--connection', db.url])).code).toBe(0);

    const text = auditText(audit);
    const records = auditRecords(audit);
    expect(records).toHaveLength(3);
    expect(records.map((r) => r['outcome'])).toEqual(['refused', 'rolled-back', 'committed']);
    expect(records.map((r) => r['exitCode'])).toEqual([6, 3, 0]);
    // Only the committed run reached COMMIT: its attempt record came first, with the same runId.
    const all = auditRecords(audit, 'all');
    expect(all.map((r) => `${r['event']} ${r['outcome']}`)).toEqual(['outcome refused', 'outcome rolled-back', 'attempt committing', 'outcome committed']);
    expect(all[2]!['runId']).toBe(all[3]!['runId']);
    for (const r of records) {
      expect(r).toMatchObject({
        policy: NEXUS,
        planSha256: recordedChecksum(NEXUS),
        database: { name: db.name, host: expect.any(String), port: expect.any(Number) },
        osUser: os.userInfo().username,
        startedAt: expect.any(String),
        finishedAt: expect.any(String),
        steps: expect.any(Array),
        params: { email: expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/) },
      });
    }
    expect(records[0]!['failedCheck']).toMatchObject({ code: 'GUARD' });
    expect(records[1]!['failedCheck']).toMatchObject({ code: 'PK003' });
    expect(records[2]!['steps']).toContainEqual({ step: 13, table: 'public.user_profiles', outcome: 'removed', rows: 1 });
    expect(records[2]!['tables']).toContainEqual(expect.objectContaining({ table: 'public.user_profiles', deleted: 1 }));
    // The same email gives the same pseudonym, so runs can be correlated; the clear text is nowhere.
    expect(records[2]!['params'].email).toBe(records[0]!['params'].email);
    expect(records[1]!['params'].email).not.toBe(records[0]!['params'].email);
    for (const clear of ['carol@example.com', 'shared@example.com', 'carol', 'shared@']) expect(text).not.toContain(clear);
    // The HMAC key sits beside the log, readable by its owner only; the log too.
    expect(statSync(`${audit}.key`).mode & 0o777).toBe(0o600);
    expect(statSync(audit).mode & 0o077).toBe(0);
  });

  it('an email is pseudonymised after its normalize (lower), so one person has one pseudonym however it is typed', async () => {
    // nexus-purge-user declares email { normalize: lower }: Carol@Example.com and carol@example.com are the
    // same subject, and the audit log promises that the same email gives the same digest.
    const db = await nexus();
    const audit = tempAuditLog();
    const run = (email: string) => purgekit(['apply', NEXUS, '--email', email, '--connection', db.url, '--audit-log', audit]);
    expect((await run('Carol@Example.com')).code).toBe(6); // refused (no --confirm): still audited
    expect((await run('carol@example.com')).code).toBe(6);
    const [upper, lower] = auditRecords(audit);
    expect(auditText(audit)).not.toMatch(/carol@example\.com/i);
    expect(upper!['params'].email).toBe(lower!['params'].email);
  });
});
