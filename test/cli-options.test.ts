/**
 * A policy's params and flags are options of the commands that take it, derived from the policy
 * itself: listed by --help, offered by completion, and any other option refused with the
 * nearest known one (exit 2). The command's own options keep their meaning whatever a policy
 * declares. All through the built bin, as users meet it; none of this connects to a database.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/scripts.js';

const BIN = join(ROOT, 'dist', 'cli.js');

function purgekit(args: string[], cwd = ROOT, env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Completions as the shell script asks for them (bash: one per line, no descriptions). */
function complete(words: string[], cwd = ROOT): string[] {
  const r = purgekit(['--get-yargs-completions', ...words], cwd, { SHELL: '/bin/bash', ZSH_NAME: '' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

/** A project whose policy declares params and flags named like options of the commands. */
function ownNamesProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-cli-options-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'policies', 'own-names.yaml'),
    `version: 1
name: own-names
kind: cleanup
params:
  policies: { type: text, description: a param named like the global --policies }
  json: { type: text, description: a param named like plan's --json }
  n: { type: integer, description: how many }
flags:
  debug: { default: false, description: a flag named like the global --debug }
steps:
  - table: t
    where: name = :policies AND label = :json AND id = :n AND NOT :debug
`,
  );
  return dir;
}

describe('per-policy --help', () => {
  it("apply <policy> --help lists seed 000's flag table: the policy's params and flags with type, default and description, and the command's own options", () => {
    const r = purgekit(['apply', 'nexus-purge-user', '--help']);
    expect(r.status, r.stderr).toBe(0);
    const [params, flags] = [section(r.stdout, 'Parameters of nexus-purge-user:'), section(r.stdout, 'Flags of nexus-purge-user:')];
    expect(params).toMatch(/--user-id\s+Authentik subject \(user_profiles\.user_id\) \[text, personal\]/);
    expect(params).toMatch(/--email\s+matches email, business_email or personal_email \[text,\s+lower-cased,\s+personal\]/);
    expect(flags).toMatch(/--delete-owned-companies\s+also delete companies the user owns\s+\[boolean\] \[default: false\]/);
    expect(flags).toMatch(/--force-multi\s+Purge every matching subject[^[]*\[boolean\] \[default: false\]/);
    const own = section(r.stdout, 'Options:');
    for (const option of ['--confirm', '--json', '--connection', '--backup', '--audit-log']) expect(own).toContain(option);
    expect(own).not.toContain('--email');
  });

  it('plan, render and verify list them too, a generated .sql file names its policy, and generic help says how to see them', () => {
    expect(section(purgekit(['plan', 'nexus-purge-user', '--help']).stdout, 'Parameters of nexus-purge-user:')).toContain('--email');
    const render = purgekit(['render', 'generated/nexus-purge-user.sql', '--help']);
    expect(section(render.stdout, 'Flags of nexus-purge-user:')).toContain('--delete-owned-companies');
    expect(section(render.stdout, 'Options:')).not.toContain('--confirm');
    const verify = purgekit(['verify', 'rephlo-critical-tables', '--help']);
    expect(verify.status).toBe(0);
    expect(verify.stdout).toContain('rephlo-critical-tables: a check policy');
    const generic = purgekit(['apply', '--help']);
    expect(generic.status).toBe(0);
    expect(generic.stdout.replace(/\s+/g, ' ')).toContain("The policy's params and flags are options too (apply <policy> --help lists them)");
  });

  it('a param or flag named like an own option is listed as --param name=... and not as an option', () => {
    const dir = ownNamesProject();
    const r = purgekit(['plan', 'own-names', '--help'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(section(r.stdout, 'Parameters of own-names:')).toMatch(/-n\s+how many \[integer\]/);
    expect(section(r.stdout, 'Parameters of own-names:')).not.toMatch(/--(json|policies)\b/);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('Given with --param only (its name is an option of this command): --param policies=..., --param json=..., --param debug=...');
  });
});

describe('derived options', () => {
  it('an unknown option is a usage error (exit 2) naming the nearest option, a param or one of the command\'s own', () => {
    const param = purgekit(['render', 'nexus-purge-user', '--emial', 'a@b.c']);
    expect(param.status).toBe(2);
    expect(param.stderr).toContain('unknown option --emial for policy nexus-purge-user; it takes --user-id <text>, --email <text>, --anonymize-key <text>, --delete-owned-companies, --delete-authentik-user, --anonymize, --force-multi (did you mean --email?)');
    const own = purgekit(['plan', 'nexus-purge-user', '--email', 'a@b.c', '--conection', 'postgres://x@127.0.0.1:1/x']);
    expect(own.status).toBe(2);
    expect(own.stderr).toContain('(did you mean --connection?)');
    const flag = purgekit(['render', 'nexus-purge-user', '--email', 'a@b.c', '--delete-owned-company']);
    expect(flag.stderr).toContain('(did you mean --delete-owned-companies?)');
  });

  it('plan --json answers an unknown option with an error document, before connecting anywhere', () => {
    const r = purgekit(['plan', 'nexus-purge-user', '--emial', 'a@b.c', '--json', '--connection', 'postgres://x@127.0.0.1:1/x']);
    expect(r.status).toBe(2);
    const doc = JSON.parse(r.stdout) as { outcome: string; exitCode: number; error: { code: string; message: string } };
    expect(doc).toMatchObject({ outcome: 'error', exitCode: 2, error: { code: 'UsageError' } });
    expect(doc.error.message).toContain('did you mean --email?');
    expect(r.stderr).not.toMatch(/connect/);
  });

  it('other commands name the nearest option too', () => {
    const r = purgekit(['compile', '--chek']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Unknown argument: chek (did you mean --check?)');
  });

  it("an own option keeps its meaning when a param or flag has its name; --param sets the param", () => {
    const dir = ownNamesProject();
    const r = purgekit(['render', 'own-names', '--policies', 'policies', '--debug', '--n', '3', '--param', 'policies=p', '--param', 'json=j'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("'p'::text AS policies,");
    expect(r.stdout).toContain(`'j'::text AS "json",`);
    expect(r.stdout).toContain("'3'::integer AS n,");
    // --debug was the global option, not the flag.
    expect(r.stdout).toMatch(/false AS debug/);
    const flag = purgekit(['render', 'own-names', '--n', '3', '--param', 'policies=p', '--param', 'json=j', '--param', 'debug=true'], dir);
    expect(flag.stdout).toMatch(/true AS debug/);
  });

  it('finds the policy wherever it stands among the options, and a flag takes no value', () => {
    const before = purgekit(['render', '--email', 'a@b.c', 'nexus-purge-user', '--delete-owned-companies']);
    expect(before.status, before.stderr).toBe(0);
    expect(before.stdout).toContain("'a@b.c'::text AS email,");
    const flagFirst = purgekit(['render', '--delete-owned-companies', 'nexus-purge-user', '--email', 'a@b.c']);
    expect(flagFirst.status, flagFirst.stderr).toBe(0);
    expect(flagFirst.stdout).toContain('true AS delete_owned_companies,');
    const valued = purgekit(['render', 'nexus-purge-user', '--email', 'a@b.c', '--delete-owned-companies', 'yes']);
    expect(valued.status).toBe(2);
    expect(valued.stderr).toContain('unexpected argument "yes"');
    const off = purgekit(['render', 'nexus-purge-user', '--email', 'a@b.c', '--delete-owned-companies=false']);
    expect(off.stdout).toContain('false AS delete_owned_companies,');
  });

  it('a policy that does not load still gets its own diagnostics, not an unknown-option error', () => {
    const r = purgekit(['render', 'test/golden/purge-problems/policy.yaml', '--email', 'a@b.c']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown parameter "emial" (did you mean "email"?)');
    expect(r.stderr).not.toContain('unknown option');
  });
});

describe('purgekit completion', () => {
  it('prints a shell script that asks purgekit for completions', () => {
    const r = purgekit(['completion'], ROOT, { SHELL: '/bin/bash' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('purgekit --get-yargs-completions');
  });

  it('completes commands, policy names, and the options of a named policy', () => {
    expect(complete([''])).toEqual(expect.arrayContaining(['validate', 'render', 'plan', 'apply', 'verify', 'completion']));
    expect(complete(['apply', 'nexus-'])).toEqual(['nexus-integrity', 'nexus-purge-user']);
    expect(complete(['apply', ''])).toContain('vedfolnir-delete-user');
    const options = complete(['apply', 'nexus-purge-user', '--']);
    expect(options).toEqual(expect.arrayContaining(['--user-id', '--email', '--delete-owned-companies', '--force-multi', '--confirm', '--json', '--connection']));
    expect(complete(['apply', 'nexus-purge-user', '--email', 'a@b.c', '--'])).not.toContain('--email');
    expect(complete(['render', 'nexus-purge-user', '--'])).not.toContain('--confirm');
  });

  it('reads policy names from --policies', () => {
    const dir = ownNamesProject();
    expect(complete(['plan', ''], dir)).toEqual(['own-names']);
    expect(complete(['plan', '--policies', join(ROOT, 'policies'), 'vedfolnir-'], dir)).toEqual(['vedfolnir-delete-user', 'vedfolnir-expire-sessions']);
  });
});

/** The lines of one help section: from its heading to the next blank line. */
function section(help: string, heading: string): string {
  const start = help.indexOf(`${heading}\n`);
  expect(start, `${heading} in\n${help}`).toBeGreaterThanOrEqual(0);
  const end = help.indexOf('\n\n', start);
  return help.slice(start, end < 0 ? undefined : end);
}
