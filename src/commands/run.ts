import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import { compile, qualified } from '../compile/compile.js';
import { cascadeReach, withOwnStep } from '../run/reach.js';
import { BackupWriter, MANIFEST, type Manifest } from '../run/backup.js';
import { readCatalog } from '../catalog/catalog.js';
import { ExitCode, UsageError } from '../errors.js';
import type { Policy } from '../policy.js';
import { checksumOf, render, renderStatements } from '../render/render.js';
import { appendAudit, pseudonymize } from '../run/audit.js';
import { connect, currentDatabase, describeTarget, redact } from '../run/connect.js';
import { execute, type RunFailure, type RunMode } from '../run/execute.js';
import { checkConfirmation, checkDatabase, RefusedError } from '../run/guards.js';
import { humanReport, summarize, type RunOutput } from '../run/output.js';
import { collectValues, describeOptions, type RunValues } from '../values.js';
import { kebab } from '../compile/compile.js';
import { resolvePolicy, StalePlanError } from './resolvePolicy.js';
import { sourceLabel } from './compile.js';

export interface RunOptions {
  readonly target: string;
  readonly policiesDir: string;
  readonly generatedDir: string;
  /** The policy's params and flags as typed on the command line (kebab-case keys). */
  readonly values: Readonly<Record<string, unknown>>;
  readonly pairs: readonly string[];
  /** --param-escaped name=value: value with JSON string escapes. */
  readonly escapedPairs?: readonly string[];
  readonly connection?: string;
  readonly lockTimeout: string;
  readonly statementTimeout: string;
  readonly rehearse?: boolean;
  /** apply: undefined = not given, '' = given without a value. */
  readonly confirm?: string;
  readonly auditLog: string;
  /** apply: write the rows it removes here first (required when the policy says backup: required). */
  readonly backup?: string;
  readonly dangerouslyRunUnreviewed?: boolean;
  readonly ask?: (question: string) => Promise<string>;
  readonly stderr: (line: string) => void;
  readonly color: boolean;
}

const DURATION = /^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$/;

/** purgekit plan | apply | verify: resolve the reviewed plan, guard, execute, report, audit. */
export async function runCommand(command: 'plan' | 'apply' | 'verify', options: RunOptions): Promise<{ output: RunOutput; exitCode: number }> {
  for (const [flag, value] of [['--lock-timeout', options.lockTimeout], ['--statement-timeout', options.statementTimeout]] as const) {
    if (!DURATION.test(value)) throw new UsageError(`${flag} ${value}: expected a duration such as 500ms, 5s or 2min`);
  }
  const { policy, file, fileText } = await reviewedPlan(options);
  if (command === 'verify' && policy.kind !== 'check') throw new UsageError(`${policy.name} is a ${policy.kind} policy: verify runs check policies (use plan or apply)`);
  if (command !== 'verify' && policy.kind === 'check') throw new UsageError(`${policy.name} is a check policy: run it with purgekit verify ${policy.name}`);
  const values = collectValues(policy, options.values, options.pairs, options.escapedPairs);
  requireLookup(policy, values);
  if (command === 'apply' && policy.backup === 'required' && !options.backup) {
    throw new RefusedError(`${policy.name} says backup: required: add --backup <dir> (a new or empty directory)`);
  }
  if (options.backup && command !== 'apply') throw new UsageError('--backup goes with apply');
  const mode: RunMode = command === 'verify' ? 'verify' : command === 'apply' ? 'apply' : options.rehearse ? 'rehearse' : 'plan';
  const plan = compile(policy);
  const planSha256 = checksumOf(fileText).actual;

  const startedAt = new Date();
  let secrets: readonly string[] = [];
  const conn = connect(options.connection, (message) => options.stderr(`notice: ${redact(message, secrets)}`));
  secrets = conn.secrets;
  const say = (line: string) => options.stderr(redact(line, conn.secrets));
  try {
    const database = await currentDatabase(conn);
    // The cluster's identity for the audit log; pg_control_system() may be denied to ordinary roles.
    const systemIdentifier = await conn.sql`SELECT system_identifier::text AS id FROM pg_control_system()`
      .then((rows) => String(rows[0]?.['id'] ?? ''))
      .catch(() => null);
    const target = { ...conn.target, database };
    say(`purgekit ${command}${mode === 'rehearse' ? ' --rehearse' : ''} ${policy.name} on ${describeTarget(target)}`);
    say(`plan: ${file} (sha256 ${planSha256.slice(0, 12)})`);
    if (mode === 'rehearse') say('rehearsal: runs every statement for real, takes the same locks as apply, then rolls back');

    const base = { version: 1 as const, command, mode, policy: policy.name, kind: policy.kind, planSha256, database: target, startedAt: startedAt.toISOString() };
    const audit = async (output: RunOutput, failure?: RunFailure) => {
      if (command === 'apply') await appendAudit(options.auditLog, await auditRecord(options.auditLog, policy, values, output, systemIdentifier, failure));
    };
    if (mode === 'apply' || mode === 'rehearse') {
      try {
        checkDatabase(policy.guard, database);
        if (mode === 'apply') await checkConfirmation(policy.guard, database, options.confirm, options.ask);
      } catch (e) {
        if (!(e instanceof RefusedError)) throw e;
        const output: RunOutput = { ...base, ...summarize([], []), reach: [], backup: null, outcome: 'refused', exitCode: e.exitCode, tables: [], error: { code: 'GUARD', message: e.message, at: null }, durationMs: elapsed(startedAt) };
        await audit(output);
        say(e.message);
        for (const line of humanReport(output, options.color)) say(line);
        return { output, exitCode: e.exitCode };
      }
    }

    const cascades = new Set(plan.statements.flatMap((st) => (st.cascades ?? []).map(qualified)));
    const stepTables = plan.statements.flatMap((st) => (st.role === 'step' && st.table ? [qualified(st.table)] : []));
    const reach = withOwnStep(await cascadeReach(conn.sql, [...new Set(stepTables)]), stepTables).map((r) => ({
      ...r,
      declared: cascades.has(r.table),
    }));
    const writer = options.backup && mode === 'apply' ? await BackupWriter.create(options.backup) : undefined;
    const backup = writer && {
      writer,
      catalog: await readCatalog(conn.sql),
      finish: () =>
        writer.finish({ policy: policy.name, kind: policy.kind, planSha256, database: { name: database, host: target.host, port: target.port }, createdAt: new Date().toISOString() }),
    };
    let result;
    try {
      result = await execute(conn.sql, plan, renderStatements(plan), values, mode, options, (event) =>
        say(`  step ${event.step} (${event.table}) still running: ${event.seconds} s`),
      backup);
    } catch (e) {
      // Lost connection after the manifest was written: COMMIT may have gone through, so the
      // backup may be the only copy of what was deleted. Keep it, and say so.
      if (writer?.finished) say(`warning: the run ended without a clear outcome (${(e as Error).message}); the backup in ${writer.dir} is kept: check the database, and restore or delete it`);
      else await writer?.discard();
      throw e;
    }
    // Nothing was removed: a backup of it would only be a copy of personal data.
    if (writer && !result.committed) await writer.discard();
    const backedUp = writer && result.committed ? await summarizeBackup(writer.dir) : null;
    if (backedUp) say(`backup: ${backedUp.files} ${backedUp.files === 1 ? 'file' : 'files'}, ${backedUp.rows} rows in ${backedUp.dir} (restore with purgekit restore ${backedUp.dir} --confirm ${database})`);
    const { exitCode, outcome } = verdict(result.committed, result.failure);
    const output: RunOutput = {
      ...base,
      ...summarize(result.report, result.timings),
      reach,
      backup: backedUp,
      outcome,
      exitCode,
      tables: result.tables,
      error: result.failure ? { code: result.failure.code, message: redact(explain(result.failure), conn.secrets), at: result.failure.at ?? null } : null,
      durationMs: elapsed(startedAt),
    };
    await audit(output, result.failure);
    for (const line of humanReport(output, options.color)) say(line);
    return { output, exitCode };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

/** The generated file the run executes must be exactly what its policy compiles to. */
async function reviewedPlan(options: RunOptions): Promise<{ policy: Policy; file: string; fileText: string }> {
  const { policy, generatedFile } = await resolvePolicy(options.target, options.policiesDir);
  const file = generatedFile ?? join(options.generatedDir, `${policy.name}.sql`);
  const expected = render(compile(policy), { sourceLabel: sourceLabel(policy, options.generatedDir) });
  const text = generatedFile ? expected : await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined || checksumOf(text).recorded !== checksumOf(text).actual || text.replace(/\r\n?/g, '\n') !== expected) {
    const why = text === undefined ? 'missing' : checksumOf(text).recorded !== checksumOf(text).actual ? 'hand-edited' : 'stale';
    if (!options.dangerouslyRunUnreviewed) {
      throw new StalePlanError(file, `${why}: the runner executes only the reviewed generated file; run purgekit compile and review the diff (or pass --dangerously-run-unreviewed)`);
    }
    options.stderr(`warning: ${file} is ${why}; running the policy as compiled now, unreviewed (--dangerously-run-unreviewed)`);
  }
  return { policy, file, fileText: expected };
}

/** A purge needs one lookup's parameters: say which before connecting anywhere. */
function requireLookup(policy: Policy, values: RunValues): void {
  if (!policy.subject) return;
  if (policy.subject.lookup.some((l) => l.by.every((b) => values.params.has(b)))) return;
  const choices = policy.subject.lookup.map((l) => l.by.map((b) => `--${kebab(b)}`).join(' + ')).join(', or ');
  throw new UsageError(`${policy.name} needs ${choices} to find what to purge (options: ${describeOptions(policy)})`);
}

function verdict(committed: boolean, failure?: RunFailure): { exitCode: number; outcome: RunOutput['outcome'] } {
  if (!failure) return { exitCode: ExitCode.ok, outcome: committed ? 'committed' : 'rolled-back' };
  const code = failure.code;
  if (code === 'PK002') return { exitCode: ExitCode.ok, outcome: 'nothing-matched' };
  if (code === 'PK001' || code === 'PK011') return { exitCode: ExitCode.usage, outcome: 'rolled-back' };
  if (code === 'PK003') return { exitCode: ExitCode.multipleSubjects, outcome: 'rolled-back' };
  if (/^PK\d{3}$/.test(code) || code === 'RUNNER' || code.startsWith('23')) return { exitCode: ExitCode.checkFailed, outcome: 'rolled-back' };
  return { exitCode: ExitCode.unexpected, outcome: 'rolled-back' };
}

function explain(failure: RunFailure): string {
  if (failure.code === '55P03') return `lock timeout: another session holds a lock this run needs (${failure.message}); raise --lock-timeout or retry later`;
  if (failure.code === '57014') return `statement timeout: a statement ran longer than --statement-timeout (${failure.message})`;
  if (failure.code === 'PK003') return `${failure.message} (pass --force-multi to purge them all)`.replace('; set force_multi to purge them all', '');
  return failure.message;
}

async function summarizeBackup(dir: string): Promise<{ dir: string; files: number; rows: number }> {
  const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  return { dir, files: manifest.files.length, rows: manifest.files.reduce((n, f) => n + f.rows, 0) };
}

function elapsed(since: Date): number {
  return Date.now() - since.getTime();
}

async function auditRecord(logPath: string, policy: Policy, values: RunValues, output: RunOutput, systemIdentifier: string | null, failure?: RunFailure): Promise<object> {
  const params: Record<string, string> = {};
  for (const [name, value] of values.params) {
    const personal = policy.params.find((p) => p.name === name)?.personal ?? true;
    const normalize = policy.params.find((p) => p.name === name)?.normalize;
    // The value as the policy compares it: Carol@Example.com and carol@example.com are one person.
    const compared = normalize === 'lower' ? value.toLowerCase() : normalize === 'upper' ? value.toUpperCase() : normalize === 'trim' ? value.trim() : value;
    params[name] = personal ? await pseudonymize(logPath, compared) : compared;
  }
  return {
    version: 1,
    policy: output.policy,
    planSha256: output.planSha256,
    database: { name: output.database.database, host: output.database.host, port: output.database.port, user: output.database.user, systemIdentifier },
    osUser: os.userInfo().username,
    startedAt: output.startedAt,
    finishedAt: new Date().toISOString(),
    params,
    flags: Object.fromEntries(values.flags),
    forceMulti: values.forceMulti,
    subject: output.subject,
    steps: output.steps.map(({ step, table, outcome, rows }) => ({ step, table, outcome, rows })),
    tables: output.tables,
    outcome: output.outcome,
    exitCode: output.exitCode,
    failedCheck: failure ? { code: failure.code, message: output.error?.message ?? failure.message } : output.error,
  };
}

