/**
 * The command line as users meet it: the built bin (dist/cli.js, what `npx purgekit` runs),
 * exit codes, messages on stderr, no stack traces for user errors.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/scripts.js';
import { renderCommand } from '../src/commands/render.js';

const BIN = join(ROOT, 'dist', 'cli.js');

function purgekit(args: string[], cwd = ROOT): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A scratch project: a copy of policies/ and generated/. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-cli-'));
  cpSync(join(ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
  cpSync(join(ROOT, 'generated'), join(dir, 'generated'), { recursive: true });
  return dir;
}

describe('purgekit CLI', () => {
  it('prints help and exits 0; an unknown command exits 2', () => {
    const help = purgekit(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/validate .*compile .*render/s);
    const bad = purgekit(['frobnicate']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/Unknown argument: frobnicate/);
  });

  it('validates the shipped policies', () => {
    const r = purgekit(['validate']);
    expect(r.stderr).toMatch(/^\d+ policies valid$/m);
    expect(r.status).toBe(0);
  });

  it('reports every problem of every file as file:line:col, exit 2, no stack trace', () => {
    const r = purgekit(['validate', 'test/golden/purge-problems', 'test/golden/where-unbalanced']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('test/golden/purge-problems/policy.yaml:13:12: subject.lookup[0].by[0]: unknown parameter "emial" (did you mean "email"?)');
    expect(r.stderr).toContain("test/golden/where-unbalanced/policy.yaml:8:16: steps[1].where: unbalanced parentheses: this ')' closes nothing");
    expect(r.stderr).toMatch(/^9 problems found$/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing path is a usage error', () => {
    const r = purgekit(['validate', 'no/such/dir']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('purgekit: no/such/dir: no such file or directory\n');
  });

  it('compile --check passes on the repository and compile is a no-op there', () => {
    expect(purgekit(['compile', '--check']).status).toBe(0);
    const dir = project();
    const r = purgekit(['compile'], dir);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^0 written, \d+ unchanged$/m);
  });

  it('compile --check names every stale, missing, hand-edited and orphaned file (exit 4), and compile repairs them', () => {
    const dir = project();
    appendFileSync(join(dir, 'policies', 'verify-db.yaml'), '# a policy edit changes its sha256\n');
    rmSync(join(dir, 'generated', 'rephlo-critical-tables.sql'));
    const edited = join(dir, 'generated', 'nexus-purge-user.sql');
    writeFileSync(edited, readFileSync(edited, 'utf8').replace('SET LOCAL lock_timeout', 'SET LOCAL  lock_timeout'));
    writeFileSync(join(dir, 'generated', 'old-policy.sql'), '-- left behind\n');
    const r = purgekit(['compile', '--check'], dir);
    expect(r.status).toBe(4);
    expect(r.stderr).toContain('generated/verify-db.sql: stale');
    expect(r.stderr).toContain('generated/rephlo-critical-tables.sql: missing');
    expect(r.stderr).toContain('generated/nexus-purge-user.sql: hand-edited');
    expect(r.stderr).toContain('generated/old-policy.sql: orphaned');
    // The plan artifact of the changed policy records the old sha256 (src/render/artifact.ts).
    expect(r.stderr).toContain('generated/verify-db.plan.json: stale');
    expect(purgekit(['compile'], dir).stderr).toMatch(/^4 written/m);
    rmSync(join(dir, 'generated', 'old-policy.sql'));
    expect(purgekit(['compile', '--check'], dir).status).toBe(0);
  });

  it('compile --check catches CRLF-only changes as no change: line endings are normalised before hashing', () => {
    const dir = project();
    const file = join(dir, 'generated', 'verify-db.sql');
    writeFileSync(file, readFileSync(file, 'utf8').replaceAll('\n', '\r\n'));
    const r = purgekit(['compile', '--check'], dir);
    // The checksum still matches (normalised), but the bytes differ from what compile writes.
    expect(r.stderr).toContain('generated/verify-db.sql: stale');
    expect(r.stderr).not.toContain('hand-edited');
  });

  it('render fills the parameter block with literals quoted like format(%L)', () => {
    const r = purgekit(['render', 'nexus-purge-user', '--email', "o'brien\\x@example.com", '--delete-owned-companies']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("E'o''brien\\\\x@example.com'::text AS email,");
    expect(r.stdout).toContain('true AS delete_owned_companies,');
    expect(r.stdout).toContain('NULL::text AS user_id,');
    const pairs = purgekit(['render', 'generated/nexus-purge-user.sql', '--param', 'user_id=auth|x', '--force-multi']);
    expect(pairs.stdout).toContain("'auth|x'::text AS user_id,");
    expect(pairs.stdout).toContain('true AS force_multi;');
  });

  it('render refuses values PostgreSQL cannot hold and unknown options, exit 2', () => {
    const unknown = purgekit(['render', 'nexus-purge-user', '--emial', 'x']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown option --emial for policy nexus-purge-user; it takes --user-id <text>, --email <text>, --anonymize-key <text>, --delete-owned-companies, --delete-authentik-user, --anonymize, --force-multi');
    const typed = purgekit(['render', 'vedfolnir-delete-user', '--user-id', 'abc']);
    expect(typed.status).toBe(2);
    expect(typed.stderr).toContain('--user-id: "abc" is not a valid integer');
    const missing = purgekit(['render', 'nexus-purg-user']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('no policy named "nexus-purg-user" in policies/ (did you mean "nexus-purge-user"?)');
  });

  it('render refuses NUL bytes and lone surrogates with a usage error naming the option', async () => {
    // (A NUL cannot travel in argv, so this goes through the same function the command calls.)
    const render = (email: string) => renderCommand('nexus-purge-user', { policiesDir: join(ROOT, 'policies'), values: { email }, pairs: [] });
    await expect(render('a\0b')).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/^--email: .*NUL byte, which PostgreSQL text cannot hold/) });
    await expect(render('a\ud800')).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('lone UTF-16 surrogate') });
  });

  it('render refuses a hand-edited generated file', () => {
    const dir = project();
    const file = join(dir, 'generated', 'verify-db.sql');
    writeFileSync(file, readFileSync(file, 'utf8').replace('BEGIN', 'BEGIN;\nDELETE FROM users'));
    const r = purgekit(['render', 'generated/verify-db.sql'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('generated/verify-db.sql: hand-edited');
  });
});
