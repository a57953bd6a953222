/**
 * after_commit through the built CLI against real services: PostgreSQL (the embedded server),
 * a redis-server of the test's own, a node http server, real directories. The jobs are queued in
 * purgekit.outbox inside the purge's transaction and run after COMMIT by apply or outbox run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, hasPsql, loadFixture, runPsql, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';
import AjvModule from 'ajv';
import { renderedScript, ROOT, tempFile } from './helpers/scripts.js';
import { startApi, startRedis, type Api, type Redis } from './helpers/sidecars.js';
import { BIN, project, purgekit, tempAuditLog, validJson, why } from './run-helpers.js';
import { withOutbox } from './helpers/outbox.js';

const POLICY = 'vedfolnir-delete-user';
const SECRET = 'sk_test_0123456789abcdef';

let redis: Redis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function fixture(outbox = true): Promise<TestDb> {
  return createTestDatabase(outbox ? withOutbox('vedfolnir') : loadFixture('vedfolnir'));
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Storage with alice's (id 2) and bob's (id 3) directories. */
function storage(): string {
  const root = tempDir('purgekit-storage-');
  for (const id of ['2', '3']) {
    mkdirSync(join(root, 'images', id), { recursive: true });
    writeFileSync(join(root, 'images', id, 'a.jpg'), 'jpg');
    mkdirSync(join(root, 'users', id), { recursive: true });
    writeFileSync(join(root, 'users', id, 'profile.json'), '{}');
  }
  mkdirSync(join(root, 'temp'));
  return root;
}

async function redisKeys(): Promise<void> {
  await redis.client.flushAll();
  for (const key of ['vedfolnir:session:2:a', 'vedfolnir:session:2:b', 'vedfolnir:cache:platform:2:x', 'vedfolnir:user:2:platform_context', 'vedfolnir:session:3:a', 'vedfolnir:session:22:a']) {
    await redis.client.set(key, 'v');
  }
}

/** A scratch project whose vedfolnir-delete-user also calls an HTTP API and runs a command. */
async function scratch(): Promise<{ dir: string; mark: string }> {
  const dir = project();
  const mark = join(dir, 'marks.txt');
  const file = join(dir, 'policies', `${POLICY}.yaml`);
  const yaml = readFileSync(file, 'utf8');
  const extra = [
    `  - http: { method: DELETE, url: "\${API_URL}/v1/users/{subject.id}", headers: { Authorization: "Bearer \${API_KEY}" }, ok: [200, 404] }`,
    `  - command: { argv: ${JSON.stringify([process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], process.argv[2] + '\\n')", '${MARK_FILE}', '{subject.id}'])} }`,
  ].join('\n');
  expect(yaml).toContain('\n\nsteps:\n');
  writeFileSync(file, yaml.replace('\n\nsteps:\n', `\n${extra}\n\nsteps:\n`));
  const compiled = await purgekit(['compile'], { cwd: dir });
  expect(compiled.code, why(compiled)).toBe(0);
  return { dir, mark };
}

function env(api: Api, root: string, mark = '/dev/null'): Record<string, string> {
  return { API_URL: api.url, API_KEY: SECRET, REDIS_URL: redis.url, VEDFOLNIR_STORAGE: root, MARK_FILE: mark };
}

/** The fixture's usernames by id: guard.confirm: [database, subject] wants the exact username too. */
const USERNAMES: Record<string, string> = { '1': 'admin', '2': 'alice', '3': 'bob', '4': 'carol', '5': 'olaf' };

function applyArgs(db: TestDb, audit: string, id = '2'): string[] {
  return ['apply', POLICY, '--user-id', id, '--confirm-subject', USERNAMES[id] ?? '', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit];
}

async function jobs(db: TestDb): Promise<{ id: string; action: number; kind: string; status: string; attempts: number; captured: unknown; last_error: string | null }[]> {
  return db.sql`SELECT id::text, action, kind, status, attempts, captured, last_error FROM purgekit.outbox ORDER BY id`;
}

type AjvCtor = new (options: object) => { compile: (schema: object) => { (data: unknown): boolean; errors?: unknown } };
const Ajv = ((AjvModule as unknown as { default?: AjvCtor }).default ?? AjvModule) as unknown as AjvCtor;
const outboxSchema = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(readFileSync(join(ROOT, 'docs', 'outbox-output.schema.json'), 'utf8')) as object);

/** outbox run / list --json: one document, valid against docs/outbox-output.schema.json. */
function outboxJson(r: { stdout: string }): { jobs: { id: string; kind: string; status: string; error?: string | null }[] } {
  const doc = JSON.parse(r.stdout) as unknown;
  expect(outboxSchema(doc) ? [] : outboxSchema.errors, 'docs/outbox-output.schema.json').toEqual([]);
  return doc as { jobs: { id: string; kind: string; status: string }[] };
}

function auditLines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function users(db: TestDb, id: number): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM users WHERE id = ${id}`;
  return row!.n;
}

describe('after_commit: apply queues the jobs in its transaction and runs them after COMMIT', () => {
  it('every kind runs (files, redis, http, command); the HTTP server fails twice, the job is retried and succeeds', async () => {
    const db = await fixture();
    const api = await startApi();
    onTestFinished(() => api.stop());
    api.answer = (_req, res, n) => void res.writeHead(n <= 2 ? 500 : 200).end();
    const root = storage();
    await redisKeys();
    const { dir, mark } = await scratch();
    const audit = tempAuditLog();
    const r = await purgekit(applyArgs(db, audit), { cwd: dir, env: env(api, root, mark) });
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r) as unknown as { sideEffects: { queued: number; jobs: { kind: string; status: string; attempts: number }[] } };
    expect(json.sideEffects.queued).toBe(4);
    expect(json.sideEffects.jobs.map((j) => [j.kind, j.status, j.attempts])).toEqual([['files', 'done', 1], ['redis', 'done', 1], ['http', 'done', 3], ['command', 'done', 1]]);
    expect(await users(db, 2)).toBe(0);

    // files: alice's directories gone, bob's kept; temp/2 never existed (already gone = done).
    expect(existsSync(join(root, 'images', '2'))).toBe(false);
    expect(existsSync(join(root, 'users', '2'))).toBe(false);
    expect(existsSync(join(root, 'users', '3', 'profile.json'))).toBe(true);
    // redis: DEL and SCAN/UNLINK of alice's keys only (session:22 does not match session:2:*).
    expect((await redis.client.keys('*')).sort()).toEqual(['vedfolnir:session:22:a', 'vedfolnir:session:3:a']);
    // http: method, path and the secret header, three times (500, 500, 200).
    expect(api.seen).toEqual(Array(3).fill({ method: 'DELETE', path: '/v1/users/2', authorization: `Bearer ${SECRET}` }));
    expect(readFileSync(mark, 'utf8')).toBe('2\n');

    // The outbox keeps status, not personal values.
    expect((await jobs(db)).map((j) => [j.kind, j.status, j.captured])).toEqual([['files', 'done', null], ['redis', 'done', null], ['http', 'done', null], ['command', 'done', null]]);
    // The audit log: one record per job outcome, the captured id as an HMAC.
    const effects = auditLines(audit).filter((l) => l['event'] === 'side-effect');
    expect(effects.map((e) => [e['kind'], e['outcome']])).toEqual([['files', 'done'], ['redis', 'done'], ['http', 'done'], ['command', 'done']]);
    expect((effects[0]!['captured'] as { id: string }).id).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(r.stderr + r.stdout + readFileSync(audit, 'utf8')).not.toContain(SECRET);
  });

  it('side effects that keep failing: COMMITTED, exit 8, the job failed with its error redacted; outbox run finishes it later', async () => {
    const db = await fixture();
    const api = await startApi();
    onTestFinished(() => api.stop());
    api.answer = (_req, res) => void res.writeHead(503).end();
    const root = storage();
    await redisKeys();
    const { dir, mark } = await scratch();
    const audit = tempAuditLog();
    const r = await purgekit(applyArgs(db, audit), { cwd: dir, env: env(api, root, mark) });
    expect(r.code, why(r)).toBe(8);
    const json = validJson(r);
    expect(json.outcome).toBe('committed');
    expect(json.error?.message).toMatch(/^COMMITTED .*1 of 4 side effects did not succeed/);
    expect(await users(db, 2)).toBe(0);
    const http = (await jobs(db)).find((j) => j.kind === 'http')!;
    expect(http).toMatchObject({ status: 'failed', attempts: 3 });
    expect(http.captured).toEqual({ id: 2 });
    // The outcome record says the purge committed and what is still owed.
    expect(auditLines(audit).find((l) => l['event'] === 'outcome')).toMatchObject({ outcome: 'committed', sideEffects: { queued: 4, done: 3, failed: 1 } });
    expect(http.last_error).toBe('DELETE [${API_URL}]/v1/users/[redacted subject.id]: HTTP 503 (done on 200, 404)');

    api.answer = (_req, res) => void res.writeHead(404).end(); // already gone: done
    const list = await purgekit(['outbox', 'list', '--json', '--connection', db.url]);
    expect(outboxJson(list).jobs.map((j: { kind: string; status: string }) => [j.kind, j.status])).toEqual([['http', 'failed']]);
    const run = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit], { env: env(api, root, mark) });
    expect(run.code, why(run)).toBe(0);
    expect(outboxJson(run).jobs.map((j: { kind: string; status: string }) => [j.kind, j.status])).toEqual([['http', 'done']]);
    expect((await jobs(db)).every((j) => j.status === 'done' && j.captured === null)).toBe(true);
  });

  it('killed (SIGKILL) during the HTTP call, no transaction open: the lease keeps other workers off until it expires, then outbox run finishes the jobs exactly once', async () => {
    const db = await fixture();
    const api = await startApi();
    onTestFinished(() => api.stop());
    const root = storage();
    await redisKeys();
    const { dir, mark } = await scratch();
    const audit = tempAuditLog();
    const child = spawn(process.execPath, [BIN, ...applyArgs(db, audit)], { cwd: dir, env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1', ...env(api, root, mark) }, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    // The first HTTP request is the process working off its jobs after COMMIT. While it waits for
    // the answer, no session of the database is inside a transaction; then it is killed.
    let during: Promise<{ open: number; status: string; leased: boolean }> | undefined;
    api.answer = () => {
      during = (async () => {
        const [open] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`;
        const [job] = await db.sql<{ status: string; leased: boolean }[]>`SELECT status, lease_until > now() AS leased FROM purgekit.outbox WHERE kind = 'http'`;
        child.kill('SIGKILL');
        return { open: open!.n, status: job!.status, leased: job!.leased };
      })();
    };
    expect(await exited).toBe('SIGKILL');
    expect(await during).toEqual({ open: 0, status: 'running', leased: true });
    expect(await users(db, 2)).toBe(0); // committed
    expect((await jobs(db)).map((j) => [j.kind, j.status])).toEqual([['files', 'done'], ['redis', 'done'], ['http', 'running'], ['command', 'pending']]);

    // The dead worker's lease still holds: outbox run does the command job and leaves the http job.
    api.answer = (_req, res) => void res.writeHead(200).end();
    const early = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit], { env: env(api, root, mark) });
    expect(early.code, why(early)).toBe(0);
    expect(outboxJson(early).jobs.map((j: { kind: string; status: string }) => [j.kind, j.status])).toEqual([['command', 'done']]);
    expect(early.stderr).toMatch(/1 side effect is running under another worker's lease/);
    expect(api.seen).toHaveLength(1);
    // Its lease runs out (60 s; moved into the past here rather than waited for): the next run takes the job again.
    await db.sql`UPDATE purgekit.outbox SET lease_until = now() - interval '1 second' WHERE kind = 'http'`;
    const run = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit], { env: env(api, root, mark) });
    expect(run.code, why(run)).toBe(0);
    expect(outboxJson(run).jobs.map((j: { kind: string; status: string }) => [j.kind, j.status])).toEqual([['http', 'done']]);
    expect(run.stderr).toMatch(/lease expired \(the worker stopped\): running it again/);
    const again = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit], { env: env(api, root, mark) });
    expect(outboxJson(again).jobs).toEqual([]);
    expect(readFileSync(mark, 'utf8')).toBe('2\n');
    expect(api.seen).toHaveLength(2); // the one the kill interrupted, and the retry after the lease
    const done = auditLines(audit).filter((l) => l['event'] === 'side-effect' && l['outcome'] === 'done').map((l) => l['kind']);
    expect(done).toEqual(['files', 'redis', 'command', 'http']);
  });

  it('a rolled-back purge (plan --rehearse) leaves no job and runs nothing; plan lists what it would queue', async () => {
    const db = await fixture();
    const api = await startApi();
    onTestFinished(() => api.stop());
    const root = storage();
    await redisKeys();
    const { dir, mark } = await scratch();
    const rehearse = await purgekit(['plan', '--rehearse', POLICY, '--user-id', '2', '--connection', db.url, '--json'], { cwd: dir, env: env(api, root, mark) });
    expect(rehearse.code, why(rehearse)).toBe(0);
    expect(validJson(rehearse).outcome).toBe('rolled-back');
    const plan = await purgekit(['plan', POLICY, '--user-id', '2', '--connection', db.url, '--json'], { cwd: dir, env: env(api, root, mark) });
    expect(plan.code, why(plan)).toBe(0);
    const json = validJson(plan) as unknown as { sideEffects: { queued: number; actions: { kind: string; description: string }[] } };
    expect(json.sideEffects.queued).toBe(4);
    expect(json.sideEffects.actions.map((a) => a.kind)).toEqual(['files', 'redis', 'http', 'command']);
    expect(plan.stderr).toContain('after COMMIT, queued in purgekit.outbox (4 jobs):');
    expect(plan.stderr).toContain('3. http DELETE ${API_URL}/v1/users/{subject.id} (done on 200, 404) for each subject');
    expect(await jobs(db)).toEqual([]);
    expect(api.seen).toEqual([]);
    expect(existsSync(mark)).toBe(false);
    expect(await redis.client.exists('vedfolnir:session:2:a')).toBe(1);
  });

  it('usage errors before anything is deleted: no outbox table, an environment variable not set', async () => {
    const bare = await fixture(false);
    const before = await snapshot(bare.sql);
    const r = await purgekit(applyArgs(bare, tempAuditLog()), { env: { REDIS_URL: redis.url, VEDFOLNIR_STORAGE: '/tmp' } });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toContain('this database has no purgekit.outbox to queue them in: run purgekit outbox init (nothing was run)');
    expect(await snapshot(bare.sql)).toEqual(before);

    const db = await fixture();
    const before2 = await snapshot(db.sql);
    const unset = await purgekit(applyArgs(db, tempAuditLog()), { env: { VEDFOLNIR_STORAGE: '/tmp' } });
    expect(unset.code, why(unset)).toBe(2);
    expect(unset.stderr).toContain("vedfolnir-delete-user's after_commit reads ${REDIS_URL}, not set in the environment (nothing was run)");
    expect(await snapshot(db.sql)).toEqual(before2);
  });

  it('files: a symlink pointing outside the root is refused, and so is a root that does not exist (exit 8, nothing outside touched)', async () => {
    const db = await fixture();
    const root = tempDir('purgekit-storage-');
    const outside = tempDir('purgekit-outside-');
    writeFileSync(join(outside, 'keep.txt'), 'precious');
    mkdirSync(join(root, 'images'));
    symlinkSync(outside, join(root, 'images', '2')); // the leaf is a link to outside
    symlinkSync(outside, join(root, 'users')); // a directory on the way is a link to outside
    mkdirSync(join(outside, '2'));
    writeFileSync(join(outside, '2', 'keep.txt'), 'precious');
    const audit = tempAuditLog();
    const r = await purgekit(applyArgs(db, audit), { env: { REDIS_URL: redis.url, VEDFOLNIR_STORAGE: root } });
    expect(r.code, why(r)).toBe(8);
    expect(existsSync(join(outside, 'keep.txt'))).toBe(true);
    expect(existsSync(join(outside, '2', 'keep.txt'))).toBe(true);
    const files = (await jobs(db)).find((j) => j.kind === 'files')!;
    expect(files).toMatchObject({ status: 'failed', attempts: 1 }); // refused at once: retrying cannot help
    expect(files.last_error).toContain('is a symlink that points outside the root ${VEDFOLNIR_STORAGE}: refused');

    rmSync(join(root, 'images', '2'));
    rmSync(join(root, 'users'));
    const missing = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit, '--attempts', '1'], { env: { REDIS_URL: redis.url, VEDFOLNIR_STORAGE: join(root, 'nope') } });
    expect(missing.code).toBe(8);
    expect(outboxJson(missing).jobs[0]!.error).toMatch(/^files root \$\{VEDFOLNIR_STORAGE\} does not exist or is not a directory/);
    const ok = await purgekit(['outbox', 'run', '--connection', db.url, '--audit-log', audit], { env: { REDIS_URL: redis.url, VEDFOLNIR_STORAGE: root } });
    expect(ok.code, why(ok)).toBe(0);
  });
});

describe('purgekit outbox run', () => {
  it('two concurrent workers never run one job twice (FOR UPDATE SKIP LOCKED)', async () => {
    const db = await fixture();
    const mark = join(tempDir('purgekit-marks-'), 'marks.txt');
    const argv = [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], process.argv[2] + '\\n'); setTimeout(() => {}, 100)", '${MARK_FILE}', '{subject.id}'];
    const spec = JSON.stringify({ kind: 'command', argv });
    await db.sql.unsafe(`INSERT INTO purgekit.outbox (policy, action, kind, spec, captured)
      SELECT 'test', 1, 'command', $1::text::jsonb, jsonb_build_object('id', i) FROM generate_series(1, 12) AS i`, [spec]);
    const audit = tempAuditLog();
    const args = ['outbox', 'run', '--json', '--connection', db.url, '--audit-log', audit];
    const [a, b] = await Promise.all([purgekit(args, { env: { MARK_FILE: mark } }), purgekit(args, { env: { MARK_FILE: mark } })]);
    expect(a.code, why(a)).toBe(0);
    expect(b.code, why(b)).toBe(0);
    const ran = [...outboxJson(a).jobs, ...outboxJson(b).jobs].map((j: { id: string }) => j.id);
    expect(ran.sort()).toEqual([...new Set(ran)].sort());
    expect(ran).toHaveLength(12);
    expect(readFileSync(mark, 'utf8').trim().split('\n').map(Number).sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('a pasted standalone script queues the jobs; outbox run runs them', async () => {
    const db = await fixture();
    const root = storage();
    await redisKeys();
    const result = await runSimpleQuery(db.url, await renderedScript(POLICY, { user_id: '2' }));
    expect(result.ok, JSON.stringify(result)).toBe(true);
    expect(await users(db, 2)).toBe(0);
    expect((await jobs(db)).map((j) => [j.kind, j.status, j.captured])).toEqual([['files', 'pending', { id: 2 }], ['redis', 'pending', { id: 2 }]]);
    const run = await purgekit(['outbox', 'run', '--connection', db.url, '--audit-log', tempAuditLog()], { env: { REDIS_URL: redis.url, VEDFOLNIR_STORAGE: root } });
    expect(run.code, why(run)).toBe(0);
    expect(existsSync(join(root, 'users', '2'))).toBe(false);
    expect((await redis.client.keys('vedfolnir:*:2:*')).sort()).toEqual([]);
    expect((await jobs(db)).map((j) => j.status)).toEqual(['done', 'done']);
  });

  it.runIf(hasPsql())('psql -v ON_ERROR_STOP=1 -f of the rendered script queues the jobs too', async () => {
    const db = await fixture();
    const r = runPsql(db.url, tempFile(await renderedScript(POLICY, { username: 'carol' })));
    expect(r.status, r.stderr).toBe(0);
    const [carol] = await db.sql<{ captured: { id: number } }[]>`SELECT captured FROM purgekit.outbox ORDER BY id LIMIT 1`;
    expect(carol!.captured).toEqual({ id: 4 });
    expect((await jobs(db)).map((j) => [j.kind, j.status])).toEqual([['files', 'pending'], ['redis', 'pending']]);
  });
});

describe('after_commit: bad input', () => {
  it('unknown kinds and arguments (did-you-mean), unknown placeholders, paths that can leave the root: located errors', async () => {
    const dir = tempDir('purgekit-bad-');
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, [
      'version: 1', 'name: bad-after-commit', 'kind: purge', 'params:', '  user_id: { type: integer, personal: false }',
      'subject:', '  table: users', '  key: id', '  lookup:', '    - by: [user_id]', '      where: id = :user_id', '  capture: [id, clerk_id]',
      'steps:', '  - table: users', '    where: id IN :subject',
      'after_commit:',
      '  - htpp: { url: "https://api.example.com/{subject.id}" }',
      '  - http: { metod: DELETE, url: "https://api.example.com/{subject.clerk}" }',
      '  - redis: { url: "${REDIS_URL}", del: ["session:{sbject.id}", "x:{params.user}"] }',
      '  - files: { root: "${ROOT}", remove: ["../{subject.id}", "/etc/{subject.id}", "a/../../b"] }',
      '',
    ].join('\n'));
    const r = await purgekit(['validate', file]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').filter(Boolean).map((l) => l.replace(`${file}:`, ''))).toEqual([
      '17:5: after_commit[0]: unknown key "htpp" (did you mean "http"?)',
      '18:13: after_commit[1].http: unknown key "metod" (did you mean "method"?)',
      '18:33: after_commit[1].http.url: unknown placeholder {subject.clerk}: "clerk" is not in subject.capture (id, clerk_id)',
      '19:41: after_commit[2].redis.del[0]: unknown placeholder "{sbject.id}" (did you mean {subject.id}?)',
      '19:64: after_commit[2].redis.del[1]: unknown placeholder {params.user}: no param "user"',
      '20:40: after_commit[3].files.remove[0]: "../{subject.id}" has a ".." segment, which can leave the root',
      '20:59: after_commit[3].files.remove[1]: "/etc/{subject.id}" is absolute (or starts with an environment variable); paths are relative to root',
      '20:80: after_commit[3].files.remove[2]: "a/../../b" has a ".." segment, which can leave the root',
      '8 problems found',
    ]);
  });
});

describe('supabase-fresh-start (seed 003): the Clerk organizations, then the users, through the HTTP API', () => {
  it('one job per captured row, run after the wipe commits: DELETE /v1/organizations/:id, then /v1/users/:id, with the secret key', async () => {
    const db = await createTestDatabase(withOutbox('supabase'));
    const clerk = await startApi();
    onTestFinished(() => clerk.stop());
    clerk.answer = (req, res) => void res.writeHead(req.url === '/v1/users/user_ben' ? 404 : 200).end(); // ben: already gone
    const audit = tempAuditLog();
    const plan = await purgekit(['plan', 'supabase-fresh-start', '--connection', db.url], { env: { CLERK_API_URL: clerk.url } });
    expect(plan.stderr).toContain('1. http DELETE ${CLERK_API_URL:-https://api.clerk.com}/v1/organizations/{row.clerk_organization_id} (done on 200, 404) for each public.clients row');
    const r = await purgekit(['apply', 'supabase-fresh-start', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', audit], {
      env: { CLERK_API_URL: clerk.url, CLERK_SECRET_KEY: SECRET },
    });
    expect(r.code, why(r)).toBe(0);
    expect(clerk.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      'DELETE /v1/organizations/org_acme', 'DELETE /v1/organizations/org_globex',
      'DELETE /v1/users/user_ann', 'DELETE /v1/users/user_ben', 'DELETE /v1/users/user_gil',
    ]);
    expect(new Set(clerk.seen.map((s) => s.authorization))).toEqual(new Set([`Bearer ${SECRET}`]));
    expect((await jobs(db)).map((j) => j.status)).toEqual(Array(5).fill('done'));
    expect(readFileSync(audit, 'utf8')).not.toContain('user_ann');
  });
});
