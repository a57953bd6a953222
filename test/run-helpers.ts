/**
 * Shared helpers of the runner's integration tests (test/run-*.test.ts): the built CLI spawned
 * as a child process (asynchronously, so a test can act on the database while a run is under
 * way), the --json document checked against docs/run-output.schema.json, scratch projects.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvModule from 'ajv';
import { expect, onTestFinished, TestRunner } from 'vitest';
import { ROOT } from './helpers/scripts.js';

export const BIN = join(ROOT, 'dist', 'cli.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout parsed, when it is one JSON document. */
  json?: RunJson;
}

/** The --json document (docs/run-output.schema.json); loosely typed for assertions. */
export interface RunJson {
  version: number;
  command: string;
  mode: string;
  policy: string;
  kind: string;
  planSha256: string;
  database: { host: string; port: number; user: string; database: string };
  outcome: string;
  exitCode: number;
  subject: { table: string; matched: number } | null;
  steps: { step: number; table: string; outcome: string; rows: number | null; detail: string | null; ms: number | null }[];
  wipe: { table: string; rows: number | null; reason: string | null }[];
  preserved: { rule: string; table: string; rows: number | null }[];
  expectations: { name: string; outcome: string; detail: string | null }[];
  tables: { table: string; inserted: number; updated: number; deleted: number; plannedAs: string | null; removedBySteps: number }[];
  error: { code: string; message: string; at: string | null } | null;
  startedAt: string;
  durationMs: number;
}

/** The environment of a run: no DATABASE_URL or PG* variables leak in from the test's own. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'DATABASE_URL' && !k.startsWith('PG')) env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

/** `node dist/cli.js ...args`, asynchronously. */
export function purgekit(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const result: CliResult = { code: code ?? (signal ? 128 : -1), stdout, stderr, ms: Date.now() - started };
      if (args.includes('--json') && stdout.trim()) {
        try {
          result.json = JSON.parse(stdout) as RunJson;
        } catch {
          /* left undefined: the assertions on json say so */
        }
      }
      resolve(result);
    });
  });
}

/** A fresh audit log path in a fresh temp dir (the default, .purgekit/ under cwd, is never used by tests). */
export function tempAuditLog(): string {
  return join(tempDir('purgekit-audit-'), 'audit.jsonl');
}

/** A fresh temp dir, removed when the current test finishes. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (TestRunner.getCurrentTest()) onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A scratch project: copies of policies/ and generated/ (as test/cli.test.ts makes them). */
export function project(): string {
  const dir = tempDir('purgekit-run-');
  cpSync(join(ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
  cpSync(join(ROOT, 'generated'), join(dir, 'generated'), { recursive: true });
  return dir;
}

/** The Checksum line of a generated file (what planSha256 must be). */
export function recordedChecksum(name: string, dir = ROOT): string {
  const m = /^-- Checksum:\s+sha256 ([0-9a-f]{64})/m.exec(readFileSync(join(dir, 'generated', `${name}.sql`), 'utf8'));
  if (!m) throw new Error(`no Checksum line in generated/${name}.sql`);
  return m[1]!;
}

type AjvCtor = new (options: object) => { compile: (schema: object) => { (data: unknown): boolean; errors?: unknown } };
const Ajv = ((AjvModule as unknown as { default?: AjvCtor }).default ?? AjvModule) as unknown as AjvCtor;
const validateRunOutput = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(
  JSON.parse(readFileSync(join(ROOT, 'docs', 'run-output.schema.json'), 'utf8')) as object,
);

/** Asserts that a run printed exactly one JSON document valid against docs/run-output.schema.json; returns it. */
export function validJson(r: CliResult): RunJson {
  expect(r.json, `stdout is not one JSON document:\n${r.stdout}\nstderr:\n${r.stderr}`).toBeDefined();
  const ok = validateRunOutput(r.json);
  expect(ok ? [] : validateRunOutput.errors, 'docs/run-output.schema.json').toEqual([]);
  expect(r.json!.exitCode, 'exitCode in the document is the process exit code').toBe(r.code);
  return r.json!;
}

/** A readable message for a failed exit-code assertion. */
export function why(r: CliResult): string {
  return `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(0, 4000)}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
