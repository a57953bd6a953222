/**
 * Data on stdout, people on stderr, for every command (issue 8, item 13: `purgekit counts > file`
 * wrote an empty file). What a command exists to produce — a script, a report, a policy, counts,
 * a --json document — goes to stdout, so it can be redirected; progress, confirmations and errors
 * go to stderr. The run commands print one JSON document with --json, and their human report on
 * stderr (docs/run-output.schema.json, DESIGN: "human-readable tables and progress on stderr").
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, loadFixture } from './harness/db.js';
import { project, purgekit, tempAuditLog, why, type CliResult } from './run-helpers.js';

/** stdout is exactly one JSON document. */
function jsonOnly(r: CliResult): unknown {
  expect(() => JSON.parse(r.stdout), `stdout is one JSON document:\n${r.stdout}`).not.toThrow();
  return JSON.parse(r.stdout);
}

describe('data on stdout, messages on stderr', () => {
  it('counts: the table on stdout (redirectable); with --json the document there and the table on stderr', async () => {
    const db = await createTestDatabase(loadFixture('catalog'));
    await db.sql`DELETE FROM audit.settings`;
    const plain = await purgekit(['counts', '--connection', db.url]);
    expect(plain.code, why(plain)).toBe(0);
    expect(plain.stdout).toMatch(/^exact rows in pk_[0-9a-f]+:\n/);
    expect(plain.stdout).toMatch(/\n {2}audit\.settings +0 +EMPTY\n/);
    expect(plain.stdout).toContain('\n8 tables, 1 empty\n');
    expect(plain.stderr).toBe('');

    const json = await purgekit(['counts', '--connection', db.url, '--json']);
    expect(json.code, why(json)).toBe(0);
    expect(jsonOnly(json)).toMatchObject({ version: 1, database: db.name });
    expect(json.stderr).toMatch(/audit\.settings +0 +EMPTY/);

    // A failed check: the table still on stdout, and the reason on stderr where a person sees it.
    const critical = await purgekit(['counts', '--connection', db.url, '--critical', 'audit.settings']);
    expect(critical.code).toBe(4);
    expect(critical.stdout).toContain('critical and empty: audit.settings');
    expect(critical.stderr).toBe('purgekit: critical tables are empty: audit.settings\n');
  });

  it('validate, compile and compile --check: nothing on stdout, what they did on stderr', async () => {
    const dir = project();
    for (const args of [['validate'], ['compile'], ['compile', '--check']]) {
      const r = await purgekit(args, { cwd: dir });
      expect(r.code, why(r)).toBe(0);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).not.toBe('');
    }
  });

  it('render: the script on stdout, nothing on stderr', async () => {
    const r = await purgekit(['render', 'nexus-purge-user', '--email', 'a@example.com'], { cwd: project() });
    expect(r.code, why(r)).toBe(0);
    expect(r.stdout).toMatch(/^-- /);
    expect(r.stdout).toContain('COMMIT;');
    expect(r.stderr).toBe('');
  });

  it('plan, apply, verify: --json puts exactly the document on stdout, the report on stderr; an error goes to stderr', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const common = ['--connection', db.url];
    const plan = await purgekit(['plan', 'nexus-purge-user', '--email', 'alice@example.com', ...common, '--json'], { cwd: dir });
    expect(plan.code, why(plan)).toBe(0);
    expect(jsonOnly(plan)).toMatchObject({ command: 'plan' });
    expect(plan.stderr).toContain('user_profiles');
    const human = await purgekit(['plan', 'nexus-purge-user', '--email', 'alice@example.com', ...common], { cwd: dir });
    expect(human.code, why(human)).toBe(0);
    expect(human.stdout).toBe('');
    expect(human.stderr).toContain('user_profiles');

    const apply = await purgekit(['apply', 'nexus-purge-user', '--email', 'carol@example.com', '--confirm', db.name, '--audit-log', tempAuditLog(), ...common, '--json'], { cwd: dir });
    expect(apply.code, why(apply)).toBe(0);
    expect(jsonOnly(apply)).toMatchObject({ command: 'apply', outcome: 'committed' });
    expect(apply.stderr).not.toBe('');

    const verify = await purgekit(['verify', 'nexus-integrity', ...common, '--json'], { cwd: dir });
    expect(jsonOnly(verify)).toMatchObject({ command: 'verify' });

    const usage = await purgekit(['plan', 'nexus-purge-user', ...common], { cwd: dir });
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(usage.stderr).toMatch(/^purgekit: /);
  });

  it('lint: the report on stdout; discover: the policy on stdout, or "wrote" on stderr with --out', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const lint = await purgekit(['lint', '--connection', db.url, '--reporter', 'json'], { cwd: dir });
    expect(jsonOnly(lint)).toBeDefined();
    expect(lint.stderr).toBe('');

    const discover = await purgekit(['discover', '--table', 'user_profiles', '--key', 'user_id', '--connection', db.url]);
    expect(discover.code, why(discover)).toBe(0);
    expect(discover.stdout).toContain('kind: purge');
    expect(discover.stderr).toBe('');
    const out = join(mkdtempSync(join(tmpdir(), 'purgekit-stdout-')), 'p.yaml');
    const written = await purgekit(['discover', '--table', 'user_profiles', '--key', 'user_id', '--connection', db.url, '--out', out]);
    expect(written.code, why(written)).toBe(0);
    expect(written.stdout).toBe('');
    expect(written.stderr).toContain(`wrote ${out}`);
  });

  it('restore: progress and the outcome on stderr, stdout empty without --json', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const dir = project();
    const backup = join(mkdtempSync(join(tmpdir(), 'purgekit-stdout-')), 'b');
    const apply = await purgekit(['apply', 'nexus-purge-user', '--email', 'carol@example.com', '--confirm', db.name, '--audit-log', tempAuditLog(), '--connection', db.url, '--backup', backup], { cwd: dir });
    expect(apply.code, why(apply)).toBe(0);
    expect(apply.stdout).toBe('');
    const restore = await purgekit(['restore', backup, '--confirm', db.name, '--connection', db.url]);
    expect(restore.code, why(restore)).toBe(0);
    expect(restore.stdout).toBe('');
    expect(restore.stderr).toContain('restored: committed');
  });
});
