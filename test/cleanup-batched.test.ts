/**
 * Batched cleanup (issue 11, item 3; src/run/batched.ts): policies/rephlo-expired-oidc-models
 * deletes expired oidc_models rows 500 per transaction in keyset order of the primary key.
 * On a table that needs many batches, with a concurrent writer inserting and updating other rows
 * of the same table; killed by SIGKILL mid-way and resumed from purgekit.cleanup_journal; the
 * generated file refusing to run by hand; bad batch input located at the YAML.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture, runSimpleQuery, type TestDb } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';
import { adapt } from '../src/run/batched.js';
import { BIN, purgekit, sleep, tempAuditLog, validJson, why } from './run-helpers.js';

const POLICY = 'rephlo-expired-oidc-models';
const EXPIRED = 20_000;

/** 24,000 rows in key order: 20,000 expired sessions, 2,000 expired clients (preserved), 2,000 live rows, interleaved. */
async function oidcTable(): Promise<TestDb> {
  const db = await createTestDatabase(loadFixture('rephlo'));
  // The fixture's own few oidc_models rows make way for 24,000 of a known mix.
  await db.sql`DELETE FROM oidc_models`;
  await db.sql`
    INSERT INTO oidc_models (id, kind, payload, expires_at)
    SELECT format('m%s', lpad(i::text, 6, '0')),
           CASE i % 12 WHEN 0 THEN 'Client' WHEN 6 THEN 'AccessToken' ELSE 'Session' END,
           jsonb_build_object('n', i),
           CASE i % 12 WHEN 6 THEN now() + interval '30 days' ELSE now() - interval '10 days' END
    FROM generate_series(1, 24000) i`;
  return db;
}

async function counts(db: TestDb): Promise<{ expired: number; clients: number; live: number; written: number }> {
  const [row] = await db.sql<{ expired: number; clients: number; live: number; written: number }[]>`
    SELECT count(*) FILTER (WHERE expires_at < now() - interval '1 day' AND kind <> 'Client')::int AS expired,
           count(*) FILTER (WHERE kind = 'Client')::int AS clients,
           count(*) FILTER (WHERE kind = 'AccessToken' AND id LIKE 'm%')::int AS live,
           count(*) FILTER (WHERE id LIKE 'w%')::int AS written
    FROM oidc_models`;
  return row!;
}

async function journalRows(db: TestDb): Promise<{ batches: number; rows: number }> {
  const [row] = await db.sql<{ batches: number; rows: number }[]>`SELECT count(*)::int AS batches, coalesce(sum(rows), 0)::int AS rows FROM purgekit.cleanup_journal`;
  return row!;
}

/** Inserts new live rows and updates live rows of the same table until stopped: what a busy identity provider does. */
function writer(db: TestDb): { stop: () => Promise<number> } {
  let running = true;
  let writes = 0;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await db.sql`INSERT INTO oidc_models (id, kind, payload, expires_at) VALUES (${`w${i}`}, 'Session', '{}', now() + interval '1 hour')`;
      await db.sql`UPDATE oidc_models SET payload = jsonb_build_object('touched', ${i}::int) WHERE id = ${`m${String((i % 2000) * 12 + 6).padStart(6, '0')}`}`;
      writes += 2;
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return writes;
    },
  };
}

function args(db: TestDb, audit: string, extra: string[] = []): string[] {
  return ['apply', POLICY, '--confirm', db.name, '--connection', db.url, '--audit-log', audit, '--json', ...extra];
}

function jsonLines(stdout: string): Record<string, any>[] {
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
}

/** Spawns the CLI and sends `signal` once `batches` batch lines are on stderr; resolves at exit. */
function signalAfter(cli: string[], batches: number, signal: NodeJS.Signals): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...cli], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    let sent = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!sent && (stderr.match(/ batch \d+: /g) ?? []).length >= batches) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('error', reject);
    child.on('close', (code, killedBy) => resolve({ code, signal: killedBy, stdout }));
  });
}

describe('batched cleanup', () => {
  it('plan: the rows and the number of batches, read-only', async () => {
    const db = await oidcTable();
    const r = await purgekit(['plan', POLICY, '--connection', db.url, '--json']);
    expect(r.code, why(r)).toBe(0);
    const doc = validJson(r) as unknown as Record<string, any>;
    expect(doc['batched']).toEqual([{ step: 1, rows: EXPIRED, batchRows: 500, batches: 40, adaptive: false }]);
    expect(r.stderr).toContain(`step 1: ${EXPIRED} rows in 40 batches of 500`);
    expect((await counts(db)).expired).toBe(EXPIRED);
  });

  it('apply without --confirm is refused (exit 6), in the audit log, nothing deleted', async () => {
    const db = await oidcTable();
    const audit = tempAuditLog();
    const r = await purgekit(['apply', POLICY, '--connection', db.url, '--audit-log', audit]);
    expect(r.code, why(r)).toBe(6);
    expect(r.stderr).toContain('add --confirm');
    expect(JSON.parse(readFileSync(audit, 'utf8').trim())).toMatchObject({ event: 'cleanup-refused', outcome: 'refused', exitCode: 6 });
    expect((await counts(db)).expired).toBe(EXPIRED);
  });

  it('apply with a concurrent writer: many batches, the right rows gone, none preserved lost, the writer untouched', async () => {
    const db = await oidcTable();
    const audit = tempAuditLog();
    const w = writer(db);
    const r = await purgekit(args(db, audit));
    const writes = await w.stop();
    expect(r.code, why(r)).toBe(0);
    const lines = jsonLines(r.stdout);
    const batches = lines.filter((l) => l['kind'] === 'batch');
    const summary = lines.at(-1)!;
    // 40 full batches and the one that found fewer than 500 (none): the end of the keyset.
    expect(batches.length).toBeGreaterThanOrEqual(41);
    expect(batches.slice(0, 40).every((b) => b['rows'] === 500)).toBe(true);
    expect(summary).toMatchObject({ kind: 'summary', outcome: 'committed', deleted: EXPIRED, exitCode: 0, error: null });
    expect(summary['expectations']).toEqual([
      { name: 'users is not empty', outcome: 'ok', detail: 'value 9, wanted >= 1' },
      { name: 'no expired row remains', outcome: 'ok', detail: 'value 0, wanted = 0' },
    ]);
    const after = await counts(db);
    expect(after).toEqual({ expired: 0, clients: 2000, live: 2000, written: writes / 2 });
    expect(writes).toBeGreaterThan(0);
    expect(await journalRows(db)).toEqual({ batches: batches.length, rows: EXPIRED });
    // One audit record per batch and one for the run.
    const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(records.filter((x) => x['event'] === 'cleanup-batch').length).toBe(batches.length);
    expect(records.at(-1)).toMatchObject({ event: 'cleanup-summary', deleted: EXPIRED });
  });

  it('killed by SIGKILL mid-way, then --resume: the right rows gone, no batch counted twice', async () => {
    const db = await oidcTable();
    const audit = tempAuditLog();
    const killed = await signalAfter(args(db, audit, ['--pause-ms', '20']), 8, 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    // The server ends the killed run's session (and its open batch) once it sees the socket closed.
    for (let i = 0; i < 100; i++) {
      const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'purgekit'`;
      if (row!.n === 0) break;
      await sleep(50);
    }
    const mid = await counts(db);
    const journal = await journalRows(db);
    // The journal holds exactly what was committed.
    expect(journal.rows).toBe(EXPIRED - mid.expired);
    expect(journal.batches).toBeGreaterThanOrEqual(8);
    expect(mid.expired).toBeGreaterThan(0);

    const resumed = await purgekit(args(db, audit, ['--resume']));
    expect(resumed.code, why(resumed)).toBe(0);
    expect(resumed.stderr).toContain(`resuming after batch ${journal.batches}`);
    const summary = jsonLines(resumed.stdout).at(-1)!;
    expect(summary).toMatchObject({ outcome: 'committed', resumed: true, deleted: EXPIRED });
    expect(summary['steps'][0]).toMatchObject({ rows: EXPIRED, outcome: 'done' });
    expect(await counts(db)).toMatchObject({ expired: 0, clients: 2000, live: 2000 });
    expect((await journalRows(db)).rows).toBe(EXPIRED);
    // The run is finished: there is nothing left to resume.
    const again = await purgekit(args(db, audit, ['--resume']));
    expect(again.code, why(again)).toBe(6);
    expect(again.stderr).toContain('nothing to resume');
  });

  it('SIGINT between batches: the batch under way rolls back, exit 130, and --resume finishes', async () => {
    const db = await oidcTable();
    const audit = tempAuditLog();
    const stopped = await signalAfter(args(db, audit, ['--pause-ms', '50']), 3, 'SIGINT');
    expect(stopped.code).toBe(130);
    const summary = jsonLines(stopped.stdout).at(-1)!;
    expect(summary).toMatchObject({ outcome: 'interrupted', exitCode: 130 });
    expect((await journalRows(db)).rows).toBe(summary['deleted']);
    expect(EXPIRED - (await counts(db)).expired).toBe(summary['deleted']);
    const resumed = await purgekit(args(db, audit, ['--resume']));
    expect(resumed.code, why(resumed)).toBe(0);
    expect(jsonLines(resumed.stdout).at(-1)).toMatchObject({ deleted: EXPIRED });
    expect((await counts(db)).expired).toBe(0);
  });

  it('a batch that would lose a preserved row rolls back alone; fixed, --resume finishes the run', async () => {
    const db = await oidcTable();
    const audit = tempAuditLog();
    // Once 5,000 rows are gone, a trigger deletes a client whenever a session goes.
    await db.sql.unsafe(`
      CREATE FUNCTION take_a_client() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.id > 'm006000' THEN DELETE FROM oidc_models WHERE id = (SELECT min(id) FROM oidc_models WHERE kind = 'Client'); END IF;
        RETURN OLD;
      END $$;
      CREATE TRIGGER take_a_client AFTER DELETE ON oidc_models FOR EACH ROW WHEN (OLD.kind = 'Session') EXECUTE FUNCTION take_a_client();`);
    const failed = await purgekit(args(db, audit));
    expect(failed.code, why(failed)).toBe(4);
    const summary = jsonLines(failed.stdout).at(-1)!;
    expect(summary).toMatchObject({ outcome: 'failed', exitCode: 4, error: { code: 'PK005', step: 1 } });
    expect(failed.stderr).toContain('apply --resume continues from there');
    const mid = await counts(db);
    expect(mid.clients).toBe(2000);
    expect(EXPIRED - mid.expired).toBe(summary['deleted']);
    expect(summary['deleted']).toBeGreaterThan(0);
    await db.sql`DROP TRIGGER take_a_client ON oidc_models`;
    const resumed = await purgekit(args(db, audit, ['--resume']));
    expect(resumed.code, why(resumed)).toBe(0);
    expect(jsonLines(resumed.stdout).at(-1)).toMatchObject({ deleted: EXPIRED, outcome: 'committed' });
    expect(await counts(db)).toMatchObject({ expired: 0, clients: 2000 });
  });

  it('the generated file refuses to run by hand, at once, and changes nothing', async () => {
    const db = await oidcTable();
    const file = readFileSync(join(ROOT, 'generated', `${POLICY}.sql`), 'utf8');
    expect(file).toContain('-- For purgekit apply only');
    // One simple-protocol query (a SQL editor sending the whole file).
    const simple = await runSimpleQuery(db.url, file);
    expect(simple.ok).toBe(false);
    expect(!simple.ok && simple.error).toMatchObject({ code: 'PK012', message: expect.stringContaining('for review and for purgekit apply only') });
    expect((await counts(db)).expired).toBe(EXPIRED);
    const psql = spawnSync('psql', ['--version']);
    if (psql.status === 0) {
      const run = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-f', join(ROOT, 'generated', `${POLICY}.sql`), db.url], { encoding: 'utf8' });
      expect(run.status).toBe(3);
      expect(run.stderr).toContain('this file is for review and for purgekit apply only');
      // Without ON_ERROR_STOP psql goes on, but inside the aborted transaction nothing runs.
      const lax = spawnSync('psql', ['-X', '-f', join(ROOT, 'generated', `${POLICY}.sql`), db.url], { encoding: 'utf8' });
      expect(lax.stderr).toContain('current transaction is aborted');
      expect((await counts(db)).expired).toBe(EXPIRED);
    }
  });

  it('a composite primary key on a partitioned table, rows adapted to max_batch_ms', async () => {
    const db = await createTestDatabase(`
      CREATE TABLE events (tenant int NOT NULL, id text NOT NULL, old boolean NOT NULL, PRIMARY KEY (tenant, id)) PARTITION BY LIST (tenant);
      CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
      CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
      INSERT INTO events SELECT 1 + i % 2, 'e' || i, i % 3 <> 0 FROM generate_series(1, 3000) i;`);
    const dir = mkdtempSync(join(tmpdir(), 'pk-batch-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'old-events.yaml'), ['version: 1', 'name: old-events', 'kind: cleanup', 'steps:', '  - table: events', '    where: old', '    batch: { rows: 50, max_batch_ms: 1000 }', 'guard:', '  confirm: database', ''].join('\n'));
    const where = ['--policies', join(dir, 'policies'), '--generated', join(dir, 'generated'), '--connection', db.url];
    expect((await purgekit(['compile', '--policies', join(dir, 'policies'), '--out', join(dir, 'generated')])).code).toBe(0);
    const r = await purgekit(['apply', 'old-events', '--confirm', db.name, '--audit-log', tempAuditLog(), '--json', ...where]);
    expect(r.code, why(r)).toBe(0);
    const lines = jsonLines(r.stdout);
    const limits = lines.filter((l) => l['kind'] === 'batch').map((l) => l['limit'] as number);
    // The first batch takes rows: 50; each later one moves toward the time target, at most doubled or halved (no timing asserted).
    expect(limits[0]).toBe(50);
    for (let i = 1; i < limits.length; i++) expect(limits[i]! / limits[i - 1]!).toBeGreaterThanOrEqual(0.5), expect(limits[i]! / limits[i - 1]!).toBeLessThanOrEqual(2);
    expect(lines.at(-1)).toMatchObject({ deleted: 2000, outcome: 'committed' });
    const [row] = await db.sql<{ old: number; kept: number }[]>`SELECT count(*) FILTER (WHERE old)::int AS old, count(*) FILTER (WHERE NOT old)::int AS kept FROM events`;
    expect(row).toEqual({ old: 0, kept: 1000 });
  });

  it('max_rows is for the whole run: too many matching rows stop the step before its first batch', async () => {
    const db = await createTestDatabase(`CREATE TABLE sessions (id bigint PRIMARY KEY, old boolean NOT NULL); INSERT INTO sessions SELECT i, i % 2 = 0 FROM generate_series(1, 4000) i;`);
    const dir = mkdtempSync(join(tmpdir(), 'pk-batch-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'old-sessions.yaml'), ['version: 1', 'name: old-sessions', 'kind: cleanup', 'steps:', '  - table: sessions', '    where: old', '    max_rows: 1500', '    batch: { rows: 300 }', ''].join('\n'));
    const where = ['--policies', join(dir, 'policies'), '--generated', join(dir, 'generated'), '--connection', db.url];
    expect((await purgekit(['compile', '--policies', join(dir, 'policies'), '--out', join(dir, 'generated')])).code).toBe(0);
    const r = await purgekit(['apply', 'old-sessions', '--confirm', '--audit-log', tempAuditLog(), '--json', ...where]);
    expect(r.code, why(r)).toBe(4);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ outcome: 'failed', deleted: 0, batches: 0, error: { code: 'PK009', step: 1 } });
    const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM sessions WHERE old`;
    expect(row!.n).toBe(2000);
  });

  it('adapt: toward the time target, at most doubled or halved', () => {
    expect(adapt(1000, 100, 1000)).toBe(2000);
    expect(adapt(1000, 4000, 1000)).toBe(500);
    expect(adapt(1000, 800, 1000)).toBe(1000);
    expect(adapt(1, 5000, 10)).toBe(1);
    expect(adapt(900_000, 1, 60_000)).toBe(1_000_000);
  });

  describe('bad input, located at the YAML', () => {
    function policyFile(batch: string, kind = 'cleanup', table = 'oidc_models'): string {
      const dir = mkdtempSync(join(tmpdir(), 'pk-batch-'));
      mkdirSync(join(dir, 'policies'));
      const path = join(dir, 'policies', 'bad-batch.yaml');
      const lines = ['version: 1', 'name: bad-batch', `kind: ${kind}`, 'steps:', `  - table: ${table}`, '    where: expires_at < now()', `    batch: ${batch}`];
      if (kind === 'purge') lines.splice(3, 0, 'params:', '  id: { type: text }', 'subject:', '  table: users', '  key: id', '  lookup:', '    - by: [id]', '      where: id::text = :id');
      writeFileSync(path, `${lines.join('\n')}\n`);
      return path;
    }

    it.each([
      ['{ rows: 0 }', 'rows'],
      ['{ rows: -5 }', 'rows'],
      ['{ rows: 2.5 }', 'rows'],
      ['{ max_batch_ms: 0 }', 'max_batch_ms'],
      ['{ }', 'batch'],
      ['{ size: 10 }', 'size'],
    ])('batch: %s', async (batch, key) => {
      const path = policyFile(batch);
      const r = await purgekit(['validate', path]);
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`bad-batch\\.yaml:7:\\d+: .*${key}`));
      expect(r.stderr).not.toContain('    at ');
    });

    it('batch on a purge step', async () => {
      const r = await purgekit(['validate', policyFile('{ rows: 10 }', 'purge')]);
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toMatch(/bad-batch\.yaml:15:\d+: steps\[0\]\.batch: batch goes on the steps of a cleanup policy/);
    });

    it('a table without a primary key: plan and apply stop at the step\'s batch, file:line:col', async () => {
      const db = await createTestDatabase('CREATE TABLE events (at timestamptz, expires_at timestamptz); INSERT INTO events SELECT now(), now() - interval \'1 day\' FROM generate_series(1, 10)');
      const path = policyFile('{ rows: 10 }', 'cleanup', 'events');
      const dir = join(path, '..', '..');
      const compiled = await purgekit(['compile', '--policies', join(dir, 'policies'), '--out', join(dir, 'generated')]);
      expect(compiled.code, why(compiled)).toBe(0);
      for (const command of [['plan'], ['apply', '--confirm', '--audit-log', tempAuditLog()]]) {
        const r = await purgekit([command[0]!, 'bad-batch', ...command.slice(1), '--policies', join(dir, 'policies'), '--generated', join(dir, 'generated'), '--connection', db.url]);
        expect(r.code, why(r)).toBe(2);
        expect(r.stderr).toMatch(/bad-batch\.yaml:7:12: steps\[0\]\.batch: public\.events has no primary key/);
        expect(r.stderr).not.toContain('    at ');
      }
      const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
      expect(row!.n).toBe(10);
    });
  });
});
