/**
 * npm run demo: the whole flow on a throw-away embedded PostgreSQL, no Docker, no setup.
 * Loads the seed-000 sample schema into a database named nexus_dev, then runs the real CLI:
 * validate, compile --check, plan (dry run), apply, a refused apply, verify; and shows the
 * standalone script an operator would paste into a SQL editor instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { EmbeddedStartError, startEmbedded, type EmbeddedServer } from '../test/harness/embedded.js';

const ROOT = new URL('../', import.meta.url).pathname;
const say = (line = '') => process.stdout.write(`${line}\n`);
const heading = (text: string) => say(`\n== ${text}`);

/** Runs the CLI as a user would, showing the command (password masked) and its output. */
function purgekit(args: string[], env: Record<string, string> = {}, shown = args): number {
  say(`$ purgekit ${shown.join(' ')}`);
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  process.stdout.write(r.stderr + r.stdout);
  say(`(exit ${r.status})`);
  return r.status ?? 1;
}

// The same starter as the test harness: as root, the server runs as the postgres OS user, from a
// readable copy of the binaries if the checkout is in a private directory.
let server: EmbeddedServer;
try {
  server = await startEmbedded({ password: 'demo' });
} catch (e) {
  if (!(e instanceof EmbeddedStartError)) throw e;
  process.stderr.write(`demo: cannot start an embedded PostgreSQL: ${e.message.split('\n')[0]}\n`);
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'purgekit-demo-'));
const { port } = server;
try {
  heading(`An embedded PostgreSQL on port ${port}, as user postgres`);
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin`CREATE DATABASE nexus_dev`;
  await admin.end();
  const env = { DATABASE_URL: `postgres://postgres:demo@127.0.0.1:${port}/nexus_dev` };
  const sql = postgres(env.DATABASE_URL, { onnotice: () => {} });
  await sql.unsafe(readFileSync(join(ROOT, 'test', 'fixtures', 'nexus.sql'), 'utf8'));
  say('Loaded the seed-000 sample schema into nexus_dev (DATABASE_URL points at it).');
  const audit = join(dir, 'audit.jsonl');

  heading('1. Validate the policies and check that generated/ is what they compile to');
  purgekit(['validate']);
  purgekit(['compile', '--check']);

  heading('2. Dry run: what would purging alice@example.com remove? (read-only)');
  purgekit(['plan', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies'], env);

  heading('3. Apply: one transaction, every step counted, cascades and triggers checked, then COMMIT');
  purgekit(['apply', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', 'nexus_dev', '--audit-log', audit], env);

  heading('4. The admin is preserved by the policy: the guard refuses and nothing changes');
  purgekit(['apply', 'nexus-purge-user', '--email', 'admin@example.com', '--confirm', 'nexus_dev', '--audit-log', audit], env);

  heading('5. Several users share an email: exit 3 unless --force-multi');
  purgekit(['plan', 'nexus-purge-user', '--email', 'shared@example.com'], env);

  heading('6. Verify the database afterwards (a check policy, read-only)');
  purgekit(['verify', 'nexus-integrity'], env);

  heading('7. The audit log (one line per apply; the email is an HMAC, never in clear)');
  for (const line of readFileSync(audit, 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as { policy: string; outcome: string; params: object; steps: unknown[]; failedCheck: { code: string } | null };
    say(`${r.policy}: ${r.outcome}, params ${JSON.stringify(r.params)}, ${r.steps.length} steps${r.failedCheck ? `, failed ${r.failedCheck.code}` : ''}`);
  }

  heading('8. For a SQL editor instead: the same script, parameters filled in');
  say('$ purgekit render nexus-purge-user --email bob@example.com --delete-owned-companies > purge.sql');
  const rendered = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'render', 'nexus-purge-user', '--email', 'bob@example.com', '--delete-owned-companies'], { cwd: ROOT, encoding: 'utf8' }).stdout;
  const at = rendered.indexOf('CREATE TEMP TABLE purgekit_params');
  say(rendered.slice(at, rendered.indexOf(';', at) + 1));
  const editor = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const results = (await editor.unsafe(rendered)) as unknown as Record<string, unknown>[][];
  await editor.end();
  say(`Sent whole as one query, like a web SQL editor: its last result set has ${results[results.length - 1]!.length} report rows; bob is gone:`);
  say(JSON.stringify(await sql`SELECT user_id, role FROM user_profiles ORDER BY user_id`));
  await sql.end();
  heading('Done. See README.md for the policy format and the commands.');
} finally {
  await server.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
