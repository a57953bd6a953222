import { readFile } from 'node:fs/promises';
import type postgres from 'postgres';
import { join, relative } from 'node:path';
import { randomUUID } from 'node:crypto';
import { kebab, qualified } from '../core/names.js';
import { type Plan } from '../plan/nodes.js';
import { allSteps, steps } from '../plan/query.js';
import { cascadeReach, withOwnStep } from '../run/reach.js';
import { BackupWriter } from '../run/backup.js';
import { readCatalog } from '../catalog/catalog.js';
import { ExitCode, RefusedError, StalePlanError, UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { checksumOf, render, renderWithLines } from '../render/render.js';
import { AuditLog } from '../run/audit.js';
import { connect, currentDatabase, describeTarget, redact } from '../db/connect.js';
import { execute, type ExecutionResult, type RunControl, type RunFailure, type RunMode } from '../run/execute.js';
import { checkConfirmation, checkDatabase } from '../run/guards.js';
import { confirmedForAudit, subjectControl, type SubjectConfirmation } from '../run/confirmSubject.js';
import { humanReport, summarize, type RunOutput } from '../run/output.js';
import { collectValues, describeOptions, type RunValues } from '../values.js';
import { resolvePolicy } from './resolvePolicy.js';
import { failedSource } from './failedSource.js';
import { sourceLabel } from './compile.js';
import * as outbox from '../outbox/runner.js';
import { ledgerKeyFrom } from '../ledger/key.js';
import { runLedger } from '../ledger/record.js';
import type { RunResidueOptions } from '../residue/inRun.js';
import { auditRecord, committedCounts, elapsed, explain, personalScrubber, scrubSummary, summarizeBackup, transactionStatus, verdict } from './runOutcome.js';

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
  /** --batch-size (src/volume): several subjects of a subjects file in this run's one transaction. */
  readonly batch?: BatchRun;
  /** plan|apply --residue: scan for the subject's values after the steps (src/residue/inRun.ts). */
  readonly residue?: RunResidueOptions;
  /** guard.confirm: subject (src/run/confirmSubject.ts): apply's confirmed display values; a dry run's receiver of them. */
  readonly confirmSubject?: SubjectConfirmation['confirmSubject'];
  readonly onSubjects?: SubjectConfirmation['onSubjects'];
}

/** One batch of --subjects-from: what stands in for a single subject's values, run id and audit fields. */
export interface BatchRun {
  /** The flags, and the first subject's params (the parameter block is set per subject in the transaction). */
  readonly values: RunValues;
  /** Every subject's personal values, scrubbed from server messages. */
  readonly scrub: (text: string) => string;
  /** The --subjects-from run's id: every batch's records carry it, with the batch's number. */
  readonly runId: string;
  /** Added to the batch's audit records (its number, its subjects as HMACs); params are not. */
  readonly audit: object;
  readonly beforeNode: NonNullable<RunControl['beforeNode']>;
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
  const values = options.batch?.values ?? collectValues(policy, options.values, options.pairs, options.escapedPairs);
  requireLookup(policy, values);
  // The erasure ledger (src/ledger): a key that is set but too short is refused before connecting.
  const ledgerKey = command === 'apply' ? ledgerKeyFrom(process.env) : undefined;
  if (command === 'apply' && policy.backup === 'required' && !options.backup) {
    throw new RefusedError(`${policy.name} says backup: required: add --backup <dir> (a new or empty directory)`);
  }
  if (options.backup && command !== 'apply') throw new UsageError('--backup goes with apply');
  if (options.confirmSubject?.length && command !== 'apply') throw new UsageError('--confirm-subject goes with apply');
  const mode: RunMode = command === 'verify' ? 'verify' : command === 'apply' ? 'apply' : options.rehearse ? 'rehearse' : 'plan';
  const planSha256 = checksumOf(fileText).actual;

  // Before anything else touches the database: an audit log that cannot be written stops the
  // apply here (exit 2), not after COMMIT.
  const auditLog = command === 'apply' ? AuditLog.open(options.auditLog) : undefined;
  const runId = options.batch?.runId ?? randomUUID();
  const startedAt = new Date();
  const scrub = options.batch?.scrub ?? personalScrubber(policy, values);
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
    await outbox.preflight(conn.sql, plan, mode, process.env, say, values);
    // Loaded only for --residue (test/load-path.test.ts).
    const residue = options.residue && (await (await import('../residue/inRun.js')).ResidueRun.prepare(conn.sql, policy, values, mode, options.residue, options.auditLog, say));

    const base = { version: 1 as const, command, mode, policy: policy.name, kind: policy.kind, planSha256, database: target, startedAt: startedAt.toISOString() };
    const record = (event: 'attempt' | 'outcome', output: Omit<RunOutput, 'durationMs'>, extra: object = {}) =>
      auditRecord(auditLog!, event, runId, policy, options.batch ? { ...values, params: new Map() } : values, output, systemIdentifier, { ...options.batch?.audit, ...confirmedForAudit(policy, options.confirmSubject, (v) => auditLog!.pseudonymize(v)), ...extra });
    if (mode === 'apply' || mode === 'rehearse') {
      try {
        checkDatabase(policy.guard, database);
        if (mode === 'apply') await checkConfirmation(policy.guard, database, options.confirm, options.ask, options.confirmSubject);
      } catch (e) {
        if (!(e instanceof RefusedError)) throw e;
        const output: RunOutput = { ...base, ...summarize([], []), reach: [], backup: null, outcome: 'refused', exitCode: e.exitCode, tables: [], error: { code: 'GUARD', message: e.message, at: null }, durationMs: elapsed(startedAt) };
        auditLog?.append(record('outcome', output));
        for (const line of humanReport(output, options.color)) say(line);
        return { output, exitCode: e.exitCode };
      }
    }

    // After the guard: a database it refuses gets no purgekit.ledger either.
    const ledger = mode === 'apply' ? await runLedger(conn.sql, policy, planSha256, runId, ledgerKey, say) : undefined;
    const cascades = new Set(steps(plan).flatMap((st) => st.cascades.map(qualified)));
    const stepTables = steps(plan).map((st) => qualified(st.table));
    const reach = withOwnStep(await cascadeReach(conn.sql, [...new Set(stepTables)]), allSteps(plan).map((st) => qualified(st.table))).map((r) => ({
      ...r,
      declared: cascades.has(r.table),
    }));
    const writer = options.backup && mode === 'apply' ? await BackupWriter.create(options.backup) : undefined;
    const backup = writer && {
      writer,
      catalog: await readCatalog(conn.sql),
      finish: async (tx: postgres.TransactionSql) =>
        writer.finish({
          policy: policy.name,
          kind: policy.kind,
          planSha256,
          database: { name: database, host: target.host, port: target.port },
          createdAt: new Date().toISOString(),
          // The subjects' ledger digests: purgekit restore records their un-erasure without the key.
          ...(ledger ? { ledger: { subjectTable: ledger.subjectTable, keyColumns: ledger.keyColumns, keyId: ledger.keyId, subjects: await ledger.digests(tx) } } : {}),
        }),
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
          ...(options.inTransaction || ledger
            ? {
                inTransaction: async (tx: postgres.TransactionSql) => {
                  await ledger?.write(tx);
                  await options.inTransaction?.(tx);
                },
              }
            : {}),
          ...(options.batch ? { beforeNode: options.batch.beforeNode } : {}),
          ...(residue ? residue.control() : {}),
          ...subjectControl(policy, mode, options),
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
      error: failure ? { code: failure.code, message: scrub(redact(explain(plan, failure, result, writer?.dir, options.auditLog, runId), secrets)), at: failure.at ?? null, ...failedLine(plan, failure, file, options), ...(await failedSource(plan, failure)) } : null,
      durationMs: elapsed(startedAt),
    };
    if (committed) {
      // Past COMMIT nothing may turn into a failure of the purge: it happened. Whatever is owed
      // now (the backup summary, the outcome record) is reported as pending work, exit 8.
      const owed: string[] = [];
      const backedUp = writer ? await summarizeBackup(writer.dir).catch((e: Error) => (owed.push(`reading the backup's manifest: ${e.message}`), null)) : null;
      if (backedUp) say(`backup: ${backedUp.files} ${backedUp.files === 1 ? 'file' : 'files'}, ${backedUp.rows} rows in ${backedUp.dir} (restore with purgekit restore ${backedUp.dir} --confirm ${database})`);
      output = { ...output, backup: backedUp };
      if (outbox.outboxNode(plan, values)) {
        const done = await outbox.runCommitted(conn.sql, plan, result.xid, { ...(auditLog ? { audit: auditLog } : {}), runId, env: process.env, say, values });
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
    if (!committed && outbox.outboxNode(plan, values)) output = { ...output, sideEffects: outbox.planned(plan, output.subject?.matched ?? null, values)! };
    if (residue) {
      if (committed) await residue.afterCommit(conn.sql);
      output = residue.finish(output, database, committed);
    }
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
  const { policy, plan, generatedFile, generatedText } = await resolvePolicy(options.target, options.policiesDir, options.generatedDir);
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
