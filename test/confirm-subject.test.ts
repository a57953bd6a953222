/**
 * guard.confirm: subject and the interactive pick (issue 12, items 3 and 4), driven the way an
 * operator drives them: the built CLI at a real pseudo-terminal (test/helpers/pty.ts, util-linux
 * script), and without one, with --confirm-subject.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, snapshot, type TestDb } from './harness/db.js';
import { withOutbox } from './helpers/outbox.js';
import { hasScript, inPty, KEY, type PtySession } from './helpers/pty.js';
import { ROOT } from './helpers/scripts.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';

/**
 * A scratch project with vedfolnir-delete-user's steps under another name, without its
 * after_commit (no Redis here) and with a third lookup that can match several users.
 */
function scratch(guard = 'confirm: subject', subjectExtra = '  display: username\n  search: [username, email]\n'): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-confirm-'));
  mkdirSync(join(dir, 'policies'));
  const source = readFileSync(join(ROOT, 'policies', 'vedfolnir-delete-user.yaml'), 'utf8');
  const steps = source.slice(source.indexOf('\nsteps:\n'), source.indexOf('\nexpect:\n'));
  writeFileSync(
    join(dir, 'policies', 'pick-user.yaml'),
    `version: 1
name: pick-user
kind: purge
params:
  user_id: { type: integer, personal: false }
  username: { type: text }
  prefix: { type: text }
subject:
  table: users
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
    - by: [username]
      where: username = :username
    - by: [prefix]
      where: starts_with(username, :prefix)
  max: 5
${subjectExtra}${steps}
guard:
  ${guard}
`,
  );
  return dir;
}

async function compiled(dir: string): Promise<string> {
  const r = await purgekit(['compile'], { cwd: dir });
  expect(r.code, why(r)).toBe(0);
  return dir;
}

async function usernames(db: TestDb): Promise<string[]> {
  return (await db.sql<{ username: string }[]>`SELECT username FROM users ORDER BY 1`).map((r) => r.username);
}

const fixture = () => createTestDatabase(loadFixture('vedfolnir'));
const run = (db: TestDb, audit = tempAuditLog()) => ['--connection', db.url, '--audit-log', audit];

/** At the search prompt: types a term, waits until the list shows exactly the row `label` (not a stale list), chooses it. */
async function choose(t: PtySession, term: string, label: string): Promise<void> {
  t.type(term);
  const escape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await t.waitFor(new RegExp(`email: ${escape(term)}\n❯ ${escape(label)}\n\n↑↓`));
  t.type(KEY.enter);
}

/** Types a line at a prompt once the terminal has echoed it (a fast typist's Enter would not outrun the echo). */
async function answer(t: PtySession, text: string): Promise<void> {
  t.type(text);
  if (text.trim()) await t.waitFor(text.trim());
  t.type(KEY.enter);
}

describe('guard.confirm: subject without a terminal: --confirm-subject', () => {
  it('refuses a missing or different value (exit 6, nothing changed) and purges with the exact username', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const before = await snapshot(db.sql);
    const audit = tempAuditLog();
    for (const [given, outcome, message] of [
      // Refused before the run (nothing was sent), or inside it (read, compared, rolled back).
      [[], 'refused', /confirms the subject by name: give --confirm-subject/],
      [['Alice'], 'rolled-back', /1 of 1 confirmed value does not equal the username of the matched subject \(exact match/],
      [['alice '], 'rolled-back', /does not equal/],
      [[' alice'], 'rolled-back', /does not equal/],
      [['alice', 'alice'], 'rolled-back', /1 subject matched and 2 --confirm-subject values were given/],
    ] as const) {
      const r = await purgekit(['apply', 'pick-user', '--username', 'alice', ...given.flatMap((v) => ['--confirm-subject', v]), ...run(db, audit), '--json'], { cwd: dir });
      expect(r.code, why(r)).toBe(6);
      const doc = validJson(r);
      expect(doc.outcome).toBe(outcome);
      expect(doc.error?.message).toMatch(message);
      expect(r.stdout).not.toContain('Alice');
      expect(await snapshot(db.sql)).toEqual(before);
    }
    const ok = await purgekit(['apply', 'pick-user', '--username', 'alice', '--confirm-subject', 'alice', ...run(db, audit), '--json'], { cwd: dir });
    expect(ok.code, why(ok)).toBe(0);
    expect(await usernames(db)).toEqual(['admin', 'bob', 'carol', 'olaf']);
    // Neither the values given nor the display values are in the audit log or --json in clear:
    // the audit log has what was confirmed as HMACs, one per value, like personal params.
    expect(readFileSync(audit, 'utf8')).not.toMatch(/alice/i);
    const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = records.at(-1)!;
    expect(last['outcome']).toBe('committed');
    expect(last['confirmedSubject']).toEqual({ column: 'username', values: [expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/)] });
    // The same HMAC as the username param's: one person, one pseudonym.
    expect((last['confirmedSubject'] as { values: string[] }).values[0]).toBe((last['params'] as Record<string, string>)['username']);
    expect(ok.stdout).not.toMatch(/alice/i);
  });

  it('several subjects: every display value, repeated once per subject, in any order', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    // prefix "a" matches admin and alice.
    const after = await snapshot(db.sql);
    const one = await purgekit(['apply', 'pick-user', '--prefix', 'a', '--force-multi', '--confirm-subject', 'alice', ...run(db)], { cwd: dir });
    expect(one.code, why(one)).toBe(6);
    expect(one.stderr).toMatch(/2 subjects matched and 1 --confirm-subject value was given/);
    const wrong = await purgekit(['apply', 'pick-user', '--prefix', 'a', '--force-multi', '--confirm-subject', 'alice', '--confirm-subject', 'alice', ...run(db)], { cwd: dir });
    expect(wrong.code, why(wrong)).toBe(6);
    expect(wrong.stderr).toMatch(/1 of 2 confirmed values do not equal the username of each of the 2 matched subjects/);
    expect(await snapshot(db.sql)).toEqual(after);
    const both = await purgekit(['apply', 'pick-user', '--prefix', 'a', '--force-multi', '--confirm-subject', 'alice', '--confirm-subject', 'admin', ...run(db)], { cwd: dir });
    expect(both.code, why(both)).toBe(0);
    expect(await usernames(db)).toEqual(['bob', 'carol', 'olaf']);
  });

  it('confirm: [database, subject] needs both; --confirm-subject goes with apply only', async () => {
    const db = await fixture();
    const dir = await compiled(scratch('confirm: [database, subject]'));
    const before = await snapshot(db.sql);
    const noDb = await purgekit(['apply', 'pick-user', '--username', 'bob', '--confirm-subject', 'bob', ...run(db)], { cwd: dir });
    expect(noDb.code, why(noDb)).toBe(6);
    expect(noDb.stderr).toContain(`this policy confirms the database too: add --confirm ${db.name}`);
    const plan = await purgekit(['plan', 'pick-user', '--username', 'bob', '--confirm-subject', 'bob', ...run(db)], { cwd: dir });
    expect(plan.code, why(plan)).toBe(2);
    expect(plan.stderr).toContain('--confirm-subject goes with apply');
    expect(await snapshot(db.sql)).toEqual(before);
    const ok = await purgekit(['apply', 'pick-user', '--username', 'bob', '--confirm-subject', 'bob', '--confirm', db.name, ...run(db)], { cwd: dir });
    expect(ok.code, why(ok)).toBe(0);
    expect(await usernames(db)).toEqual(['admin', 'alice', 'carol', 'olaf']);
  });

  it('no terminal and no lookup parameter: still the usage error naming the lookups (nothing is asked)', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const r = await purgekit(['apply', 'pick-user', '--confirm-subject', 'x', ...run(db)], { cwd: dir });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toContain('pick-user needs --user-id, or --username, or --prefix');
  });

  it('validation: guard.confirm: subject needs subject.display, located at the YAML', async () => {
    const dir = scratch('confirm: [subject]', '');
    const r = await purgekit(['compile'], { cwd: dir });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/pick-user\.yaml:\d+:\d+: guard\.confirm: subject needs subject\.display/);
    const bad = scratch('confirm: [database, everyone]');
    const r2 = await purgekit(['compile'], { cwd: bad });
    expect(r2.code, why(r2)).toBe(2);
    expect(r2.stderr).toMatch(/pick-user\.yaml:\d+:\d+: guard\.confirm/);
  });
});

describe('lint: subject.display and subject.search name columns of the subject table (PK-L002)', () => {
  it('a misspelt display or search column is reported at its YAML position', async () => {
    const db = await fixture();
    const dir = scratch('confirm: subject', '  display: usrname\n  search: [username, mail]\n');
    const r = await purgekit(['lint', 'policies', '--connection', db.url], { cwd: dir });
    expect(r.stdout).toMatch(/pick-user\.yaml:\d+:12: error PK-L002: subject\.display: column usrname of public\.users does not exist \(did you mean username\?\)/);
    expect(r.stdout).toMatch(/pick-user\.yaml:\d+:22: error PK-L002: subject\.search\[1\]: column mail of public\.users does not exist \(did you mean email\?\)/);
  });
});

describe.skipIf(!hasScript())('apply at a terminal (a real pseudo-terminal)', () => {
  it('pick: search, choose, dry run, proceed, type the exact username: purged; the audit log has no name in clear', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const audit = tempAuditLog();
    const t = inPty(['apply', 'pick-user', ...run(db, audit)], { cwd: dir });
    await t.waitFor('Search public.users by username, email:');
    await choose(t, 'ali', 'alice  alice@example.com  (id 2)');
    await t.waitFor('purgekit plan pick-user');
    await t.waitFor('14  public.users                             would remove     1');
    await t.waitFor('1 public.users row to purge, by username:\n  alice');
    await t.waitFor('Proceed with the purge of pick-user?');
    await answer(t, 'y');
    await t.waitFor('Type the username of the subject to confirm ("alice"):');
    await answer(t, 'alice');
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(0);
    expect(screen).toContain('purgekit apply pick-user');
    expect(screen).toMatch(/\ncommitted in \d+ ms/);
    expect(await usernames(db)).toEqual(['admin', 'bob', 'carol', 'olaf']);
    expect(readFileSync(audit, 'utf8')).not.toMatch(/alice/i);
    // NO_COLOR (set by the helper): the prompts print no colour, only cursor movement.
    // eslint-disable-next-line no-control-regex
    expect(t.raw()).not.toMatch(/\x1b\[(3\d|9\d|1)m/);
  });

  for (const typedValue of ['Alice', 'alice ', ' alice']) {
    it(`a typed username that differs in case or spaces (${JSON.stringify(typedValue)}): refused, exit 6, nothing changed`, async () => {
      const db = await fixture();
      const dir = await compiled(scratch());
      const before = await snapshot(db.sql);
      const t = inPty(['apply', 'pick-user', '--username', 'alice', ...run(db)], { cwd: dir });
      await t.waitFor('Type the username of the subject to confirm ("alice"):');
      t.type(typedValue);
      await t.waitFor(`confirm ("alice"): ${typedValue.trimEnd()}`);
      t.type(KEY.enter);
      const { code, screen } = await t.exited;
      expect(code, screen).toBe(6);
      expect(screen).toMatch(/does not equal the username of the matched subject \(exact match: case and spaces count\); rolled back, nothing was changed/);
      expect(await snapshot(db.sql)).toEqual(before);
    });
  }

  it('several subjects: asks for each username in turn', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const t = inPty(['apply', 'pick-user', '--prefix', 'a', '--force-multi', ...run(db)], { cwd: dir });
    await t.waitFor('2 public.users rows to purge, by username:\n  admin\n  alice');
    await t.waitFor('Type the username of subject 1 of 2 to confirm ("admin"):');
    await answer(t, 'admin');
    await t.waitFor('Type the username of subject 2 of 2 to confirm ("alice"):');
    await answer(t, 'alice');
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(0);
    expect(await usernames(db)).toEqual(['bob', 'carol', 'olaf']);
  });

  it('a subject whose username changed between the dry run and the typed confirmation: refused inside the apply, nothing changed', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const t = inPty(['apply', 'pick-user', '--user-id', '2', ...run(db)], { cwd: dir });
    await t.waitFor('Type the username of the subject to confirm ("alice"):');
    await db.sql`UPDATE users SET username = 'alicia' WHERE id = 2`;
    const before = await snapshot(db.sql);
    await answer(t, 'alice');
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(6);
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('search terms are values: % and _ match themselves only; no match, no choice', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const before = await snapshot(db.sql);
    const t = inPty(['apply', 'pick-user', ...run(db)], { cwd: dir });
    await t.waitFor('Search public.users by username, email:');
    t.type("%' OR true --");
    await t.waitFor('No results found');
    t.type(KEY.ctrlC);
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(130);
    expect(screen).toContain('cancelled at the terminal: nothing was changed');
    expect(await snapshot(db.sql)).toEqual(before);
  });

  it('no subject.search declared: a usage error naming the key, before anything is asked', async () => {
    const db = await fixture();
    const dir = await compiled(scratch('confirm: subject', '  display: username\n'));
    const t = inPty(['apply', 'pick-user', ...run(db)], { cwd: dir });
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(2);
    expect(screen).toContain('pick-user declares no subject.search');
  });

  it('answering no to proceed: refused, exit 6, nothing changed', async () => {
    const db = await fixture();
    const dir = await compiled(scratch());
    const before = await snapshot(db.sql);
    const t = inPty(['apply', 'pick-user', ...run(db)], { cwd: dir });
    await t.waitFor('Search public.users by username, email:');
    await choose(t, 'bob@', 'bob  bob@example.com  (id 3)');
    await t.waitFor('Proceed with the purge of pick-user?');
    await answer(t, 'n');
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(6);
    expect(screen).toContain('not confirmed at the terminal: nothing was changed');
    expect(await snapshot(db.sql)).toEqual(before);
  });
});

describe.skipIf(!hasScript())('vedfolnir-delete-user (seed 001) at a terminal', () => {
  it('lists users, selects one, dry run, proceed?, type the exact username: purged (its Redis job stays queued: exit 8)', async () => {
    const db = await createTestDatabase(withOutbox('vedfolnir'));
    const storage = mkdtempSync(join(tmpdir(), 'purgekit-storage-'));
    // Nothing listens on port 1: the purge commits, the Redis job stays queued for purgekit outbox run.
    const env = { REDIS_URL: 'redis://127.0.0.1:1', VEDFOLNIR_STORAGE: storage };
    // --confirm left empty: the database name is typed too (guard.confirm: [database, subject]).
    const t = inPty(['apply', 'vedfolnir-delete-user', '--confirm', ...run(db)], { env });
    await t.waitFor('Search public.users by username, email:');
    // The list before any term: every user (seed 001: "shows all available users").
    await t.waitFor('olaf  olaf@vedfolnir.test  (id 5)');
    await choose(t, 'carol', 'carol  carol@example.com  (id 4)');
    await t.waitFor('Proceed with the purge of vedfolnir-delete-user?');
    await answer(t, 'y');
    await t.waitFor('Type the username of the subject to confirm ("carol"):');
    await answer(t, 'carol');
    await t.waitFor(`Type the name of the database to purge (${db.name}):`);
    await answer(t, db.name);
    const { code, screen } = await t.exited;
    expect(code, screen).toBe(8);
    expect(screen).toMatch(/COMMITTED/);
    expect(screen).toMatch(/redis/i);
    expect(await usernames(db)).toEqual(['admin', 'alice', 'bob', 'olaf']);
  });
});
