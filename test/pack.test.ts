/**
 * purgekit as a dev dependency of another project (issue 8, item 14): `npm pack`, the tarball
 * installed into a scratch project (its dependencies from the npm cache, else the registry),
 * then the CLI through npx there: --help, validate, compile, compile --check, a dry run against a
 * real database; the policy's `$schema` comment points at the schema inside node_modules. One
 * test: it is slow (an npm install).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { ROOT } from './helpers/scripts.js';

function npm(args: string[], cwd: string): string {
  // No registry lookups that are not needed, no audit or funding calls; a clean npm environment.
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', npm_config_prefer_offline: 'true' };
  for (const k of Object.keys(env)) if (/^npm_(lifecycle|package)_/.test(k)) delete env[k];
  return execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function npx(args: string[], cwd: string, env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('npx', ['--no-install', ...args], { cwd, env: { ...process.env, NO_COLOR: '1', ...env }, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const POLICY = `# yaml-language-server: $schema=../node_modules/purgekit/schema/policy.schema.json
version: 1
name: purge-member
kind: purge
description: Remove one member and their notes.
schema: public
params:
  email: { type: text, normalize: lower }
subject:
  table: members
  key: id
  lookup:
    - by: [email]
      where: lower(email) = :email
steps:
  - table: notes
    where: member_id IN :subject
  - table: members
    where: id IN :subject
guard:
  databases: ["pk_*"]
`;

it('npm pack, installed into another project as a dev dependency: npx purgekit --help, validate, compile, plan', { timeout: 300_000 }, async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'purgekit-pack-'));
  onTestFinished(() => rmSync(scratch, { recursive: true, force: true }));

  // The tarball, from the built dist/ (no scripts: the suite's own dist/ is not rebuilt under the other tests).
  const [packed] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], ROOT)) as { filename: string; files: { path: string; mode: number }[] }[];
  const paths = packed!.files.map((f) => f.path);
  expect(paths).toContain('dist/cli.js');
  expect(paths).toContain('schema/policy.schema.json');
  expect(paths).toContain('docs/run-output.schema.json');
  expect(paths).toContain('scripts/patch-postgres.mjs'); // the package's postinstall
  expect(paths.filter((p) => p.startsWith('src/') || p.startsWith('test/') || p.startsWith('node_modules/'))).toEqual([]);
  // An executable with a shebang, as bin needs it.
  expect(packed!.files.find((f) => f.path === 'dist/cli.js')!.mode & 0o111, 'dist/cli.js is executable in the tarball (npm run build)').not.toBe(0);
  expect(readFileSync(join(ROOT, 'dist', 'cli.js'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');

  const app = join(scratch, 'app');
  mkdirSync(join(app, 'policies'), { recursive: true });
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'some-app', version: '1.0.0', private: true }, null, 2)}\n`);
  npm(['install', '--save-dev', join(scratch, packed!.filename)], app);
  const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  expect(Object.keys(manifest.devDependencies)).toEqual(['purgekit']);
  expect(statSync(join(app, 'node_modules', '.bin', 'purgekit')).mode & 0o111).not.toBe(0);
  // Its postinstall patched the driver the CLI runs with there too (scripts/patch-postgres.mjs).
  expect(readFileSync(join(app, 'node_modules', 'postgres', 'src', 'connection.js'), 'utf8')).toContain('purgekit patch: porsager/postgres#1208');

  const help = npx(['purgekit', '--help'], app);
  expect(help.code, help.stderr).toBe(0);
  expect(help.stdout).toContain('purgekit <command> [options]');

  writeFileSync(join(app, 'policies', 'purge-member.yaml'), POLICY);
  // The editor's schema path, as the policy writes it, resolves inside the installed package.
  expect(existsSync(join(app, 'policies', '../node_modules/purgekit/schema/policy.schema.json'))).toBe(true);
  const validate = npx(['purgekit', 'validate'], app);
  expect(validate.code, validate.stderr).toBe(0);
  expect(validate.stderr).toContain('1 policy valid');
  const compile = npx(['purgekit', 'compile'], app);
  expect(compile.code, compile.stderr).toBe(0);
  expect(readFileSync(join(app, 'generated', 'purge-member.sql'), 'utf8')).toContain('DELETE FROM public.notes');
  expect(npx(['purgekit', 'compile', '--check'], app).code).toBe(0);

  const db = await createTestDatabase(`
    CREATE TABLE members (id serial PRIMARY KEY, email text NOT NULL);
    CREATE TABLE notes (id serial PRIMARY KEY, member_id int NOT NULL REFERENCES members (id), body text);
    INSERT INTO members (email) VALUES ('a@example.com'), ('b@example.com');
    INSERT INTO notes (member_id, body) VALUES (1, 'x'), (1, 'y'), (2, 'z');`);
  const plan = npx(['purgekit', 'plan', 'purge-member', '--email', 'A@example.com', '--connection', db.url, '--json'], app);
  expect(plan.code, plan.stderr).toBe(0);
  const json = JSON.parse(plan.stdout) as { steps: { table: string; rows: number }[] };
  expect(json.steps.map((s) => [s.table, s.rows])).toEqual([
    ['public.notes', 2],
    ['public.members', 1],
  ]);

  // discover, run there, writes a $schema path that resolves from the file it writes.
  const out = join(app, 'policies', 'purge-members.yaml');
  const discover = npx(['purgekit', 'discover', '--table', 'members', '--key', 'id', '--connection', db.url, '--out', out], app);
  expect(discover.code, discover.stderr).toBe(0);
  const schemaPath = /\$schema=(\S+)/.exec(readFileSync(out, 'utf8').split('\n')[0]!)?.[1];
  expect(schemaPath).toBeDefined();
  expect(existsSync(resolve(dirname(out), schemaPath!)), schemaPath).toBe(true);
  expect(npx(['purgekit', 'validate'], app).code).toBe(0);
});
