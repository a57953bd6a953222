import { readFile } from 'node:fs/promises';
import type postgres from 'postgres';
import { join, relative } from 'node:path';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { kebab, qualified } from '../core/names.js';
import { GuardCode, type Plan } from '../plan/nodes.js';
import { steps } from '../plan/query.js';
import { cascadeReach, withOwnStep } from '../run/reach.js';
import { BackupWriter, MANIFEST, type Manifest } from '../run/backup.js';
import { readCatalog } from '../catalog/catalog.js';
import { ExitCode, guardExitCode, guardOf, RefusedError, StalePlanError, TRANSIENT_KINDS, UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { checksumOf, render, renderWithLines } from '../render/render.js';
import { AuditLog } from '../run/audit.js';
import { connect, currentDatabase, describeTarget, redact } from '../db/connect.js';
import { execute, type ExecutionResult, type RunFailure, type RunMode } from '../run/execute.js';
import { checkConfirmation, checkDatabase } from '../run/guards.js';
import { humanReport, summarize, type RunOutput } from '../run/output.js';
import { collectValues, describeOptions, type RunValues } from '../values.js';
import { resolvePolicy } from './resolvePolicy.js';
import { sourceLabel } from './compile.js';
import * as outbox from '../outbox/runner.js';

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
  /** Aborted on SIGINT/SIGTERM (reason 'SIGINT' | 'SIGTERM'): cancel, roll back, clean up. */
  readonly interrupt?: AbortSignal;
  /** apply: called just before COMMIT is sent (from then on an interrupt cannot roll back). */
  readonly commitSent?: () => void;
  /** apply: purgekit's own writes in the run's transaction, just before COMMIT (the volume journal). */
  readonly inTransaction?: (tx: postgres.TransactionSql) => Promise<void>;
  /** The reviewed plan, resolved and checked once by a caller that runs it many times (--subjects-from). */
  readonly reviewed?: ReviewedPlan;
}

export interface ReviewedPlan {
  readonly policy: Policy;
  readonly plan: Plan;
  readonly file: string;
  readonly fileText: string;
}

const DURATION = /^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$/;

/** purgekit plan | apply | verify: resolve the reviewed plan, guard, execute, report, audit. */
export async function runCommand(command: 'plan' | 'apply' | 'verify', options: RunOptions): Promise<{ output: RunOutput; exitCode: number }> {
  for (const [flag, value] of [['--lock-timeout', options.lockTimeout], ['--statement-timeout', options.statementTimeout]] as const) {
    if (!DURATION.test(value)) throw new UsageError(`${flag} ${value}: expected a duration such as 500ms, 5s or 2min`);
  }
  const { policy, plan, file, fileText } = options.reviewed ?? (await reviewedPlan(options));
  if (command === 'verify' && policy.kind !== 'check') throw new UsageError(`${policy.name} is a ${policy.kind} policy: verify runs check policies (use plan or apply)`);
  if (command !== 'verify' && policy.kind === 'check') throw new UsageError(`${policy.name} is a check policy: run it with purgekit verify ${policy.name}`);
  const values = collectValues(policy, options.values, options.pairs, options.escapedPairs);
  requireLookup(policy, values);
  if (command === 'apply' && policy.backup === 'required' && !options.backup) {
    throw new RefusedError(`${policy.name} says backup: required: add --backup <dir> (a new or empty directory)`);
  }
  if (options.backup && command !== 'apply') throw new UsageError('--backup goes with apply');
  const mode: RunMode = command === 'verify' ? 'verify' : command === 'apply' ? 'apply' : options.rehearse ? 'rehearse' : 'plan';
  const planSha256 = checksumOf(fileText).actual;

  // Before anything else touches the database: an audit log that cannot be written stops the
  // apply here (exit 2), not after COMMIT.
  const auditLog = command === 'apply' ? AuditLog.open(options.auditLog) : undefined;
  const runId = randomUUID();
  const startedAt = new Date();
  const scrub = personalScrubber(policy, values);
  let secrets: readonly string[] = [];
  let conn: ReturnType<typeof connect> | undefined;
  let lost = false;
  try {
    conn = connect(options.connection, (message) => options.stderr(`notice: ${scrub(redact(message, secrets))}`));
    secrets = conn.secrets;
    const say = (line: string) => options.stderr(redact(line, secrets));
    const database = await currentDatabase(conn);
    // The cluster's identity for the audit log; pg_control_system() may be denied to ordinary roles.
    const systemIdentifier = await conn.sql`SELECT system_identifier::text AS id FROM pg_control_system()`
      .then((rows) => String(rows[0]?.['id'] ?? ''))
      .catch(() => null);
    const target = { ...conn.target, database };
    say(`purgekit ${command}${mode === 'rehearse' ? ' --rehearse' : ''} ${policy.name} on ${describeTarget(target)}`);
    say(`plan: ${file} (sha256 ${planSha256.slice(0, 12)})`);
    if (mode === 'rehearse') say('rehearsal: runs every statement for real, takes the same locks as apply, then rolls back');
    // after_commit: the outbox exists and every ${VAR} is set, or nothing runs (src/outbox/runner.ts).
    await outbox.preflight(conn.sql, plan, mode, process.env, say);

    const base = { version: 1 as const, command, mode, policy: policy.name, kind: policy.kind, planSha256, database: target, startedAt: startedAt.toISOString() };
    const record = (event: 'attempt' | 'outcome', output: Omit<RunOutput, 'durationMs'>, extra: object = {}) =>
      auditRecord(auditLog!, event, runId, policy, values, output, systemIdentifier, extra);
    if (mode === 'apply' || mode === 'rehearse') {
      try {
        checkDatabase(policy.guard, database);
        if (mode === 'apply') await checkConfirmation(policy.guard, database, options.confirm, options.ask);
      } catch (e) {
        if (!(e instanceof RefusedError)) throw e;
        const output: RunOutput = { ...base, ...summarize([], []), reach: [], backup: null, outcome: 'refused', exitCode: e.exitCode, tables: [], error: { code: 'GUARD', message: e.message, at: null }, durationMs: elapsed(startedAt) };
        auditLog?.append(record('outcome', output));
        for (const line of humanReport(output, options.color)) say(line);
        return { output, exitCode: e.exitCode };
      }
    }

    const cascades = new Set(steps(plan).flatMap((st) => st.cascades.map(qualified)));
    const stepTables = steps(plan).map((st) => qualified(st.table));
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
    let result: ExecutionResult;
    try {
      result = await execute(
        conn.sql,
        plan,
        values,
        mode,
        options,
        (event) => say(`  step ${event.step} (${event.table}) still running: ${event.seconds} s`),
        backup,
        {
          ...(options.interrupt ? { interrupt: options.interrupt } : {}),
          ...(options.commitSent ? { commitSent: options.commitSent } : {}),
          ...(options.inTransaction ? { inTransaction: options.inTransaction } : {}),
          // The attempt is on disk before COMMIT is sent: a purge that committed is always in the log.
          ...(auditLog
            ? {
                beforeCommit: ({ xid, report, tables }) =>
                  auditLog.append(record('attempt', { ...base, ...summarize(report, []), reach, backup: null, outcome: 'committed', exitCode: ExitCode.ok, tables, error: null }, { xid })),
              }
            : {}),
        },
      );
    } catch (e) {
      // Unforeseen: COMMIT may or may not have been sent. A finished backup may be the only copy
      // of what was deleted: keep it, and say so.
      if (writer?.finished) say(`warning: the run ended without a clear outcome (${(e as Error).message}); the backup in ${writer.dir} is kept: check the database, and restore or delete it`);
      else await writer?.discard();
      throw e;
    }
    lost = result.failure?.code === 'CONNECTION_LOST';
    let committed = result.committed;
    let unknown = false;
    let note: string | undefined;
    if (result.commitUnknown) {
      // COMMIT went out and its answer did not come back: ask the server what became of it.
      const status = result.xid ? await transactionStatus(options.connection, result.xid) : undefined;
      if (status === 'committed') {
        committed = true;
        note = `the connection was lost during COMMIT; the server reports transaction ${result.xid} as committed`;
      } else if (status === 'aborted') {
        note = `the connection was lost during COMMIT; the server reports transaction ${result.xid} as aborted: nothing was changed`;
      } else unknown = true;
    }
    const failure = committed ? undefined : result.failure;
    if (writer && !committed && !unknown) await writer.discard();
    // Only what the server said can name a person: scrub every message before it is printed or logged.
    let output: RunOutput = {
      ...base,
      ...scrubSummary(summarize(result.report, result.timings), scrub),
      reach,
      backup: null,
      ...verdict(mode, committed, unknown, failure, options.interrupt),
      tables: result.tables,
      error: failure ? { code: failure.code, message: scrub(redact(explain(plan, failure, result, writer?.dir, options.auditLog, runId), secrets)), at: failure.at ?? null, ...failedLine(plan, failure, file, options) } : null,
      durationMs: elapsed(startedAt),
    };
    if (committed) {
      // Past COMMIT nothing may turn into a failure of the purge: it happened. Whatever is owed
      // now (the backup summary, the outcome record) is reported as pending work, exit 8.
      const owed: string[] = [];
      const backedUp = writer ? await summarizeBackup(writer.dir).catch((e: Error) => (owed.push(`reading the backup's manifest: ${e.message}`), null)) : null;
      if (backedUp) say(`backup: ${backedUp.files} ${backedUp.files === 1 ? 'file' : 'files'}, ${backedUp.rows} rows in ${backedUp.dir} (restore with purgekit restore ${backedUp.dir} --confirm ${database})`);
      output = { ...output, backup: backedUp };
      if (outbox.outboxNode(plan)) {
        const done = await outbox.runCommitted(conn.sql, plan, result.xid, { ...(auditLog ? { audit: auditLog } : {}), runId, env: process.env, say });
        output = { ...output, sideEffects: done.effects };
        if (done.owed) owed.push(done.owed);
      }
      try {
        auditLog?.append(record('outcome', output, { ...(note ? { note } : {}), ...outbox.auditSummary(output.sideEffects) }));
      } catch (e) {
        owed.push(`writing the audit log's outcome record to ${options.auditLog}: ${(e as Error).message} (the attempt record ${runId} is there)`);
      }
      if (owed.length) {
        output = { ...output, exitCode: ExitCode.committedPending, error: { code: 'PENDING', message: `COMMITTED (${committedCounts(output)}), but ${owed.join('; ')}`, at: null } };
      }
    } else {
      try {
        auditLog?.append(record('outcome', output, note ? { note } : {}));
      } catch (e) {
        say(`warning: the audit log's outcome record could not be written to ${options.auditLog}: ${(e as Error).message}`);
      }
    }
    if (!committed && outbox.outboxNode(plan)) output = { ...output, sideEffects: outbox.planned(plan, output.subject?.matched ?? null)! };
    if (note) say(note);
    if (output.sideEffects && !committed) for (const line of outbox.describePlanned(output.sideEffects)) say(line);
    for (const line of humanReport(output, options.color)) say(line);
    return { output, exitCode: output.exitCode };
  } finally {
    auditLog?.close();
    // A connection that is gone has nothing to flush: do not wait for it.
    await conn?.sql.end({ timeout: lost ? 0 : 5 });
  }
}

/** error.line: the failed statement's line in the generated file (issue 10, item 5). */
function failedLine(plan: Plan, failure: RunFailure, file: string, options: RunOptions): { line?: string } {
  if (failure.node === undefined) return {};
  const { lines } = renderWithLines(plan, { sourceLabel: sourceLabel(plan, options.generatedDir) });
  const line = lines[failure.node];
  return line ? { line: `${relative(process.cwd(), file) || file}:${line}` } : {};
}

/** The generated file the run executes must be exactly what its policy compiles to. */
export async function reviewedPlan(options: RunOptions): Promise<ReviewedPlan> {
  const { policy, plan, generatedFile, generatedText } = await resolvePolicy(options.target, options.policiesDir);
  const file = generatedFile ?? join(options.generatedDir, `${policy.name}.sql`);
  // A generated file given as the target was verified against its policy already.
  const expected = generatedText ?? render(plan, { sourceLabel: sourceLabel(plan, options.generatedDir) });
  const text = generatedFile ? expected : await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined || checksumOf(text).recorded !== checksumOf(text).actual || text.replace(/\r\n?/g, '\n') !== expected) {
    const why = text === undefined ? 'missing' : checksumOf(text).recorded !== checksumOf(text).actual ? 'hand-edited' : 'stale';
    if (!options.dangerouslyRunUnreviewed) {
      throw new StalePlanError(file, `${why}: the runner executes only the reviewed generated file; run purgekit compile and review the diff (or pass --dangerously-run-unreviewed)`);
    }
    options.stderr(`warning: ${file} is ${why}; running the policy as compiled now, unreviewed (--dangerously-run-unreviewed)`);
  }
  return { policy, plan, file, fileText: expected };
}

/** A purge needs one lookup's parameters: say which before connecting anywhere. */
function requireLookup(policy: Policy, values: RunValues): void {
  if (!policy.subject) return;
  if (policy.subject.lookup.some((l) => l.by.every((b) => values.params.has(b)))) return;
  const choices = policy.subject.lookup.map((l) => l.by.map((b) => `--${kebab(b)}`).join(' + ')).join(', or ');
  throw new UsageError(`${policy.name} needs ${choices} to find what to purge (options: ${describeOptions(policy)})`);
}

function verdict(
  mode: RunMode,
  committed: boolean,
  unknown: boolean,
  failure: RunFailure | undefined,
  interrupt: AbortSignal | undefined,
): { exitCode: number; outcome: RunOutput['outcome'] } {
  const readOnly = mode === 'plan' || mode === 'verify';
  const rolledBack: RunOutput['outcome'] = readOnly ? 'read-only' : 'rolled-back';
  if (committed) return { exitCode: ExitCode.ok, outcome: 'committed' };
  if (unknown) return { exitCode: ExitCode.unexpected, outcome: 'unknown' };
  if (!failure) return { exitCode: ExitCode.ok, outcome: rolledBack };
  const code = failure.code;
  if (code === 'INTERRUPTED') return { exitCode: interrupt?.reason === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted, outcome: rolledBack };
  const guard = guardOf(code);
  if (guard === 'noSubject') return { exitCode: ExitCode.ok, outcome: 'nothing-matched' };
  if (guard) return { exitCode: guardExitCode(guard), outcome: rolledBack };
  if (failure.kind && TRANSIENT_KINDS.has(failure.kind)) return { exitCode: ExitCode.transient, outcome: rolledBack };
  if (/^PK\d{3}$/.test(code) || code === 'RUNNER' || failure.kind === 'integrity') return { exitCode: ExitCode.checkFailed, outcome: rolledBack };
  return { exitCode: ExitCode.unexpected, outcome: rolledBack };
}

/** The failure as an operator reads it: what happened, whether anything changed, what to do. */
function explain(plan: Plan, failure: RunFailure, result: ExecutionResult, backupDir: string | undefined, auditLog: string, runId: string): string {
  const retry = 'rolled back, nothing was changed; safe to retry';
  switch (failure.kind) {
    case 'lock-timeout':
      return `lock timeout: another session holds a lock this run needs (${failure.message}); ${retry}, or raise --lock-timeout`;
    case 'statement-timeout':
      return `statement timeout: a statement ran longer than --statement-timeout (${failure.message}); ${retry}, or raise --statement-timeout`;
    case 'cancelled':
      return `cancelled by another session (pg_cancel_backend or an administrator), not a timeout (${failure.message}); ${retry}`;
    case 'deadlock':
      return `deadlock with another session (${failure.message}); ${retry}`;
    case 'serialization':
      return `serialization failure (${failure.message}); ${retry}`;
    case 'connection-lost':
      if (result.commitUnknown) {
        const how = result.xid ? `SELECT txid_status(${result.xid}); -- committed or aborted` : 'compare the tables with the plan';
        return `OUTCOME UNKNOWN: ${failure.message}. The server may or may not have committed. Find out with: ${how}` +
          `; the audit log ${auditLog} has the attempt record (runId ${runId}) with the counts` +
          (backupDir ? `; the backup in ${backupDir} is kept (restore it if the purge committed and should not have, delete it otherwise)` : '');
      }
      return `${failure.message}: the server rolled back the open transaction, nothing was changed; safe to retry`;
    default:
      break;
  }
  if (failure.code === GuardCode.multipleSubjects) {
    // Said in the runner's words: the file's message tells a psql user to set force_multi.
    const guard = plan.nodes.find((n) => n.kind === 'subject-guard');
    const matched = result.report.find((r) => r.item.kind === 'subject')?.rows ?? undefined;
    if (guard && matched !== undefined) return `${matched} ${guard.table.name} rows matched, more than ${guard.max} (pass --force-multi to purge them all)`;
    return `${failure.message} (pass --force-multi to purge them all)`;
  }
  return failure.message;
}

/** "12 rows deleted from 5 tables" for a COMMITTED message. */
function committedCounts(output: RunOutput): string {
  const rows = output.tables.reduce((n, t) => n + t.deleted, 0);
  const tables = output.tables.filter((t) => t.deleted > 0).length;
  return `${rows} ${rows === 1 ? 'row' : 'rows'} deleted from ${tables} ${tables === 1 ? 'table' : 'tables'}: ${output.tables.filter((t) => t.deleted > 0).map((t) => `${t.table} ${t.deleted}`).join(', ')}`;
}

/** What the server says became of a transaction whose COMMIT lost its answer (one new connection, 10 s at most). */
async function transactionStatus(connection: string | undefined, xid: string): Promise<string | undefined> {
  try {
    const probe = connect(connection, () => {});
    try {
      const [row] = await probe.sql<{ status: string | null }[]>`SELECT txid_status(${xid}::bigint) AS status`;
      return row?.status ?? undefined;
    } finally {
      await probe.sql.end({ timeout: 1 });
    }
  } catch {
    return undefined;
  }
}

/**
 * The values of personal params, as typed and as compared, replaced in server messages by a
 * marker: `invalid input syntax for type timestamp: "carol@example.com"` must not reach the
 * audit log, --json or stderr. Short values (under 4 characters) would also match unrelated
 * text, so they are replaced only where PostgreSQL quotes a value: "v", (v), 'v'.
 */
function personalScrubber(policy: Policy, values: RunValues): (text: string) => string {
  const rules: { pattern: RegExp; marker: string }[] = [];
  const escape = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [name, value] of values.params) {
    const decl = policy.params.find((p) => p.name === name);
    if (!(decl?.personal ?? true)) continue;
    const forms = [...new Set([value, compared(value, decl?.normalize), value.trim()])].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
    for (const form of forms) {
      const marker = `[redacted :${name}]`;
      rules.push(form.length >= 4 ? { pattern: new RegExp(escape(form), 'gi'), marker } : { pattern: new RegExp(`(["'(])${escape(form)}(["')])`, 'g'), marker: `$1${marker}$2` });
    }
  }
  return (text) => rules.reduce((t, r) => t.replace(r.pattern, r.marker), text);
}

function scrubSummary(summary: ReturnType<typeof summarize>, scrub: (text: string) => string): ReturnType<typeof summarize> {
  const s = (t: string | null) => (t === null ? null : scrub(t));
  return {
    ...summary,
    steps: summary.steps.map((x) => ({ ...x, detail: s(x.detail) })),
    wipe: summary.wipe.map((x) => ({ ...x, reason: s(x.reason) })),
    expectations: summary.expectations.map((x) => ({ ...x, detail: s(x.detail) })),
  };
}

/** The value as the policy compares it: Carol@Example.com and carol@example.com are one person. */
function compared(value: string, normalize: string | undefined): string {
  return normalize === 'lower' ? value.toLowerCase() : normalize === 'upper' ? value.toUpperCase() : normalize === 'trim' ? value.trim() : value;
}

async function summarizeBackup(dir: string): Promise<{ dir: string; files: number; rows: number }> {
  const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  return { dir, files: manifest.files.length, rows: manifest.files.reduce((n, f) => n + f.rows, 0) };
}

function elapsed(since: Date): number {
  return Date.now() - since.getTime();
}

function auditRecord(
  log: AuditLog,
  event: 'attempt' | 'outcome',
  runId: string,
  policy: Policy,
  values: RunValues,
  output: Omit<RunOutput, 'durationMs'>,
  systemIdentifier: string | null,
  extra: object,
): object {
  const params: Record<string, string> = {};
  for (const [name, value] of values.params) {
    const decl = policy.params.find((p) => p.name === name);
    const personal = decl?.personal ?? true;
    const value_ = compared(value, decl?.normalize);
    params[name] = personal ? log.pseudonymize(value_) : value_;
  }
  return {
    version: 1,
    // attempt: written just before COMMIT (outcome "committing"); outcome: once it is known.
    event,
    runId,
    policy: output.policy,
    planSha256: output.planSha256,
    database: { name: output.database.database, host: output.database.host, port: output.database.port, user: output.database.user, systemIdentifier },
    osUser: os.userInfo().username,
    startedAt: output.startedAt,
    ...(event === 'outcome' ? { finishedAt: new Date().toISOString() } : {}),
    params,
    flags: Object.fromEntries(values.flags),
    forceMulti: values.forceMulti,
    subject: output.subject,
    steps: output.steps.map(({ step, table, outcome, rows }) => ({ step, table, outcome, rows })),
    tables: output.tables,
    outcome: event === 'attempt' ? 'committing' : output.outcome,
    ...(event === 'outcome' ? { exitCode: output.exitCode, failedCheck: output.error } : {}),
    ...extra,
  };
}
