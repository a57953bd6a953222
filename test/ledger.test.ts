/**
 * The erasure ledger (src/ledger, docs/LEDGER.md): purgekit.ledger written in the purge's own
 * transaction, `ledger check` after "restoring an older dump" of the database (COPY of every
 * table out and back in: the Debian pg_dump refuses the embedded server's version), an
 * un-erasure by `purgekit restore`, `ledger replay`, and bad input.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';
import { project, purgekit, tempAuditLog, why } from './run-helpers.js';
import { subjectDigest, ledgerKeyFrom } from '../src/ledger/key.js';
import { copyFields, parseSince } from '../src/ledger/check.js';

const KEY = 'test-ledger-key-0123456789abcdef-0123456789';
const ENV = { PURGEKIT_LEDGER_KEY: KEY };
const POLICY = 'nexus-purge-user';

type Dump = Map<string, string>;

/** "pg_dump" of the tables of these schemas: each table's rows as COPY text. */
async function dump(db: TestDb, schemas = ['public']): Promise<Dump> {
  const tables = await db.sql<{ t: string }[]>`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname IN ${db.sql(schemas)} ORDER BY 1`;
  const out: Dump = new Map();
  for (const { t } of tables) {
    let text = '';
    for await (const chunk of await db.sql.unsafe(`COPY ${t} TO STDOUT`).readable()) text += (chunk as Buffer).toString('utf8');
    out.set(t, text);
  }
  return out;
}

/** "Restore" of a dump: every table of it emptied and loaded again, referenced tables first (no superuser needed). */
async function restoreDump(db: TestDb, d: Dump): Promise<void> {
  const fks = await db.sql<{ t: string; ref: string }[]>`
    SELECT conrelid::regclass::text AS t, confrelid::regclass::text AS ref FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid`;
  const name = (t: string) => t.replace(/^public\./, '');
  const depth = (t: string, seen: string[] = []): number =>
    Math.max(0, ...fks.filter((f) => f.t === name(t) && !seen.includes(f.ref)).map((f) => 1 + depth(`public.${f.ref}`, [...seen, f.ref])));
  const ordered = [...d.keys()].sort((a, b) => depth(a) - depth(b));
  await db.sql.begin(async (tx) => {
    await tx.unsafe(`TRUNCATE ${[...d.keys()].join(', ')}`);
    for (const t of ordered) {
      const text = d.get(t)!;
      if (!text) continue;
      const w = await tx.unsafe(`COPY ${t} FROM STDIN`).writable();
      await new Promise<void>((resolve, reject) => w.end(text, () => resolve()).on('error', reject));
    }
  });
}

async function present(db: TestDb): Promise<string[]> {
  const rows = await db.sql<{ user_id: string }[]>`SELECT user_id FROM user_profiles WHERE user_id IN ('auth|alice', 'auth|bob') ORDER BY 1`;
  return rows.map((r) => r.user_id);
}

const ledgerRows = (db: TestDb) => db.sql<{ entry: string; subject: string; policy: string; subject_table: string; key_columns: string[] }[]>`SELECT entry, subject, policy, subject_table, key_columns FROM purgekit.ledger ORDER BY recorded_at, entry`;

function backupDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'pk-ledger-')), 'backup');
}

describe('the erasure ledger', () => {
  it('purge A and B, restore an older dump: check finds both; B restored by purgekit restore is left alone; replay erases A again', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const audit = tempAuditLog();
    const run = (args: string[], env: Record<string, string> = ENV) => purgekit([...args, '--connection', db.url], { env });
    const apply = (user: string, backup: string) => run(['apply', POLICY, '--user-id', user, '--delete-owned-companies', '--confirm', db.name, '--audit-log', audit, '--backup', backup]);
    const check = async (...extra: string[]) => {
      const r = await run(['ledger', 'check', POLICY, '--json', ...extra]);
      return { ...r, doc: JSON.parse(r.stdout) as { found: { subject: string; erasedBy: string; key?: string[] }[]; scanned: number; erased: number; exitCode: number } };
    };
    const before = await dump(db);

    const backupA = backupDir();
    const a = await apply('auth|alice', backupA);
    expect(a.code, why(a)).toBe(0);
    expect(a.stderr).toMatch(/ledger: created purgekit.ledger/);
    expect(a.stderr).toMatch(/ledger: 1 subject written to purgekit.ledger as erased/);
    const backupB = backupDir();
    const b = await apply('auth|bob', backupB);
    expect(b.code, why(b)).toBe(0);
    expect(b.stderr).not.toMatch(/created purgekit.ledger/);

    // One row per subject: HMACs only, under the subject's table; no key value in clear.
    const rows = await ledgerRows(db);
    expect(rows.map((r) => [r.entry, r.policy, r.subject_table, r.key_columns])).toEqual([
      ['erased', POLICY, 'public.user_profiles', ['user_id']],
      ['erased', POLICY, 'public.user_profiles', ['user_id']],
    ]);
    const key = ledgerKeyFrom(ENV)!;
    expect(rows.map((r) => r.subject)).toEqual([subjectDigest(key, 'public.user_profiles', ['auth|alice']), subjectDigest(key, 'public.user_profiles', ['auth|bob'])]);
    expect(JSON.stringify(await db.sql`SELECT * FROM purgekit.ledger`)).not.toMatch(/alice|bob/);
    // The backup's manifest carries the digests (for restore's un-erasure), no key value.
    const manifestB = JSON.parse(readFileSync(join(backupB, 'manifest.json'), 'utf8')) as { ledger: { subjects: string[] } };
    expect(manifestB.ledger.subjects).toEqual([rows[1]!.subject]);
    const after = await dump(db);

    // Nothing erased is in the database: check is quiet.
    const none = await check();
    expect(none.code, why(none)).toBe(0);
    expect(none.doc).toMatchObject({ found: [], erased: 2 });

    // Last week's dump comes back: both subjects are in the database again.
    await restoreDump(db, before);
    expect(await present(db)).toEqual(['auth|alice', 'auth|bob']);
    const both = await check('--show-keys');
    expect(both.code, why(both)).toBe(10);
    expect(both.doc.found.map((f) => f.key).sort()).toEqual([['auth|alice'], ['auth|bob']]);
    expect(both.doc.scanned).toBe(6);
    expect(both.stderr).toMatch(/2 erased subjects are in public.user_profiles again/);
    // Without --show-keys, no key value on stdout or stderr.
    const quiet = await check();
    expect(quiet.stdout + quiet.stderr).not.toMatch(/auth\|(alice|bob)/);

    // Back to today; B is brought back on purpose from its backup: an explicit undo.
    await restoreDump(db, after);
    const restored = await run(['restore', backupB, '--confirm', db.name, '--json']);
    expect(restored.code, why(restored)).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ outcome: 'committed', unerased: 1 });
    expect(restored.stderr).toMatch(/ledger: 1 subject recorded as restored/);
    expect(await present(db)).toEqual(['auth|bob']);
    const bobBack = await check();
    expect(bobBack.code, why(bobBack)).toBe(0);

    // The older dump again: only A is reported (B's latest entry is its un-erasure).
    await restoreDump(db, before);
    const onlyA = await check();
    expect(onlyA.code, why(onlyA)).toBe(10);
    expect(onlyA.doc.found.map((f) => f.subject)).toEqual([rows[0]!.subject]);

    // replay purges A again, through the many-subjects path, with the usual checks and audit log.
    const replay = await run(['ledger', 'replay', POLICY, '--flag', 'delete_owned_companies', '--confirm', db.name, '--audit-log', audit, '--json']);
    expect(replay.code, why(replay)).toBe(0);
    const summary = JSON.parse(replay.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({ kind: 'summary', committed: 1, failed: 0 });
    expect(await present(db)).toEqual(['auth|bob']);
    const done = await check();
    expect(done.code, why(done)).toBe(0);
    expect(done.doc.found).toEqual([]);
    // A's second erasure is in the ledger too.
    expect((await ledgerRows(db)).map((r) => r.entry)).toEqual(['erased', 'erased', 'restored', 'erased']);
    // Nothing left to replay.
    const again = await run(['ledger', 'replay', POLICY, '--confirm', db.name, '--audit-log', audit]);
    expect(again.code, why(again)).toBe(0);
    expect(again.stderr).toMatch(/nothing to do/);

    // A manifest whose ledger entry was edited is refused, and nothing is restored.
    const manifestA = join(backupA, 'manifest.json');
    const edited = JSON.parse(readFileSync(manifestA, 'utf8')) as { ledger: { subjects: string[] } };
    edited.ledger.subjects = ['auth|alice'];
    writeFileSync(manifestA, JSON.stringify(edited));
    const refused = await run(['restore', backupA, '--confirm', db.name]);
    expect(refused.code, why(refused)).toBe(4);
    expect(refused.stderr).toMatch(/"ledger" is not what apply writes/);
    expect(await present(db)).toEqual(['auth|bob']);
  });

  it('--subjects-from writes one ledger row per subject; --since narrows check to later erasures', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const file = join(mkdtempSync(join(tmpdir(), 'pk-ledger-')), 'subjects.csv');
    writeFileSync(file, 'user_id\nauth|carol\nauth|dup1\nauth|dup2\n');
    const init = await purgekit(['ledger', 'init', '--connection', db.url]);
    expect(init.code, why(init)).toBe(0);
    const r = await purgekit(['apply', POLICY, '--subjects-from', file, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { env: ENV });
    expect(r.code, why(r)).toBe(0);
    expect((await ledgerRows(db)).length).toBe(3);
    const future = await purgekit(['ledger', 'check', POLICY, '--since', '2999-01-01', '--json', '--connection', db.url], { env: ENV });
    expect(future.code, why(future)).toBe(0);
    expect(JSON.parse(future.stdout)).toMatchObject({ erased: 0, since: '2999-01-01T00:00:00.000Z' });
    const week = await purgekit(['ledger', 'check', POLICY, '--since', '7d', '--json', '--connection', db.url], { env: ENV });
    expect(JSON.parse(week.stdout)).toMatchObject({ erased: 3, found: [] });

    // A key with what COPY text escapes (backslash, tab, newline) and non-ASCII: the same digest both ways.
    const odd = 'auth|we\\ird\ttab\nnl é 😀';
    await db.sql`INSERT INTO user_profiles (user_id, email) VALUES (${odd}, 'odd@example.com')`;
    const jsonl = join(mkdtempSync(join(tmpdir(), 'pk-ledger-')), 'odd.jsonl');
    writeFileSync(jsonl, `${JSON.stringify({ user_id: odd })}\n`);
    const purged = await purgekit(['apply', POLICY, '--subjects-from', jsonl, '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { env: ENV });
    expect(purged.code, why(purged)).toBe(0);
    await db.sql`INSERT INTO user_profiles (user_id, email) VALUES (${odd}, 'odd@example.com')`;
    const back = await purgekit(['ledger', 'check', POLICY, '--json', '--show-keys', '--connection', db.url], { env: ENV });
    expect(back.code, why(back)).toBe(10);
    expect(JSON.parse(back.stdout).found.map((f: { key: string[] }) => f.key)).toEqual([[odd]]);
  });

  it('a whole dump restored (the ledger of its day with it): ledger import of an export brings back the erasures since', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const audit = tempAuditLog();
    const run = (args: string[]) => purgekit([...args, '--connection', db.url], { env: ENV });
    const apply = (user: string) => run(['apply', POLICY, '--user-id', user, '--delete-owned-companies', '--confirm', db.name, '--audit-log', audit]);
    expect((await apply('auth|carol')).code).toBe(0);
    const lastWeek = await dump(db, ['public', 'purgekit']);
    expect((await apply('auth|alice')).code).toBe(0);
    expect((await apply('auth|bob')).code).toBe(0);
    const exported = await run(['ledger', 'export']);
    expect(exported.code, why(exported)).toBe(0);
    const lines = exported.stdout.trim().split('\n');
    expect(lines.length).toBe(3);
    expect(exported.stdout).not.toMatch(/alice|bob|carol/);
    const file = join(mkdtempSync(join(tmpdir(), 'pk-ledger-')), 'ledger.jsonl');
    writeFileSync(file, exported.stdout);

    // The dump's ledger knows carol only: alice and bob come back unnoticed.
    await restoreDump(db, lastWeek);
    const blind = await run(['ledger', 'check', POLICY, '--json']);
    expect(blind.code, why(blind)).toBe(0);
    expect(JSON.parse(blind.stdout)).toMatchObject({ erased: 1, found: [] });

    const imported = await run(['ledger', 'import', file]);
    expect(imported.code, why(imported)).toBe(0);
    expect(imported.stderr).toMatch(/3 rows read, 2 added, 1 there already/);
    const seen = await run(['ledger', 'check', POLICY, '--json', '--show-keys']);
    expect(seen.code, why(seen)).toBe(10);
    expect((JSON.parse(seen.stdout) as { found: { key: string[] }[] }).found.map((f) => f.key[0]).sort()).toEqual(['auth|alice', 'auth|bob']);
    // Importing again adds nothing; the rows are the same, to the microsecond.
    expect((await run(['ledger', 'import', file])).stderr).toMatch(/3 rows read, 0 added/);
    expect((await run(['ledger', 'export'])).stdout).toBe(exported.stdout);

    // A bad line: file:line, nothing imported.
    writeFileSync(file, `${lines[0]}\n${lines[1]!.replace(/hmac-sha256:[0-9a-f]+/, 'auth|alice')}\n{\n`);
    const bad = await run(['ledger', 'import', file]);
    expect(bad.code, why(bad)).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`${file}:2: subject: expected hmac-sha256`));
    expect(bad.stderr).toMatch(new RegExp(`${file}:3: not JSON`));
  });

  it('bad input: unknown policy, missing key, short key, a database with a ledger and no key, unparsable --since, no lookup by the key', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const unknown = await purgekit(['ledger', 'check', 'nexus-purge-usr', '--connection', db.url], { env: ENV });
    expect(unknown.code, why(unknown)).toBe(2);
    expect(unknown.stderr).toMatch(/no policy named "nexus-purge-usr".*did you mean "nexus-purge-user"/);
    const noKey = await purgekit(['ledger', 'check', POLICY, '--connection', db.url]);
    expect(noKey.code, why(noKey)).toBe(2);
    expect(noKey.stderr).toMatch(/set PURGEKIT_LEDGER_KEY/);
    const noLedger = await purgekit(['ledger', 'check', POLICY, '--connection', db.url], { env: ENV });
    expect(noLedger.code, why(noLedger)).toBe(2);
    expect(noLedger.stderr).toMatch(/no erasure ledger/);

    // A short key is refused before anything is deleted (or created).
    const short = await purgekit(['apply', POLICY, '--user-id', 'auth|carol', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { env: { PURGEKIT_LEDGER_KEY: 'short' } });
    expect(short.code, why(short)).toBe(2);
    expect(short.stderr).toMatch(/PURGEKIT_LEDGER_KEY is 5 characters long: .* at least 32/);
    expect(short.stderr).not.toMatch(/\bshort\b/); // the key's value is not echoed
    expect((await db.sql`SELECT count(*)::int AS n FROM user_profiles WHERE user_id = 'auth|carol'`)[0]!['n']).toBe(1);
    expect((await db.sql`SELECT to_regclass('purgekit.ledger') AS t`)[0]!['t']).toBeNull();

    // Once the database keeps a ledger, an apply without the key is refused, nothing deleted.
    expect((await purgekit(['ledger', 'init', '--connection', db.url])).code).toBe(0);
    const missing = await purgekit(['apply', POLICY, '--user-id', 'auth|carol', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()]);
    expect(missing.code, why(missing)).toBe(2);
    expect(missing.stderr).toMatch(/this database keeps an erasure ledger .*set PURGEKIT_LEDGER_KEY/);
    expect((await db.sql`SELECT count(*)::int AS n FROM user_profiles WHERE user_id = 'auth|carol'`)[0]!['n']).toBe(1);

    const since = await purgekit(['ledger', 'check', POLICY, '--since', 'last tuesday', '--connection', db.url], { env: ENV });
    expect(since.code, why(since)).toBe(2);
    expect(since.stderr).toMatch(/--since "last tuesday": expected an ISO 8601 date/);
    const month = await purgekit(['ledger', 'replay', POLICY, '--since', '2026-13-01', '--connection', db.url], { env: ENV });
    expect(month.code, why(month)).toBe(2);

    const flag = await purgekit(['ledger', 'replay', POLICY, '--flag', 'delete_owned_company', '--confirm', db.name, '--connection', db.url], { env: ENV });
    expect(flag.code, why(flag)).toBe(2);
    expect(flag.stderr).toMatch(/no such flag \(did you mean delete_owned_companies\?\)/);

    // A policy that finds its subject by email only cannot be replayed by key.
    const dir = project();
    const text = readFileSync(join(dir, 'policies', `${POLICY}.yaml`), 'utf8').replace('    - by: [user_id]\n      where: user_id = :user_id\n', '');
    writeFileSync(join(dir, 'policies', 'by-email.yaml'), text.replace(`name: ${POLICY}`, 'name: by-email'));
    const byEmail = await purgekit(['ledger', 'replay', 'by-email', '--confirm', db.name, '--connection', db.url], { cwd: dir, env: ENV });
    expect(byEmail.code, why(byEmail)).toBe(2);
    expect(byEmail.stderr).toMatch(/ledger replay finds each subject by its key user_id, and no lookup of the policy does/);
  });

  it('digests: the tuple is length-prefixed, the table is part of the input, the key is at least 32 characters', () => {
    const key = ledgerKeyFrom(ENV)!;
    expect(subjectDigest(key, 'public.t', ['ab', 'c'])).not.toBe(subjectDigest(key, 'public.t', ['a', 'bc']));
    expect(subjectDigest(key, 'public.t', ['1'])).not.toBe(subjectDigest(key, 'public.u', ['1']));
    expect(subjectDigest(key, 'public.t', ['1'])).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(ledgerKeyFrom({})).toBeUndefined();
    expect(() => ledgerKeyFrom({ PURGEKIT_LEDGER_KEY: 'x'.repeat(31) })).toThrow(/at least 32/);
    expect(copyFields('a\\\\b\\tc\\nd\t\\N\tplain')).toEqual(['a\\b\tc\nd', null, 'plain']);
    expect(parseSince('2026-11-25').toISOString()).toBe('2026-11-25T00:00:00.000Z');
    expect(parseSince('12h', new Date('2026-12-02T12:00:00Z')).toISOString()).toBe('2026-12-02T00:00:00.000Z');
    expect(() => parseSince('2026-11-25T25:00')).toThrow(/--since/);
  });
});
