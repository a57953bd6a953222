/**
 * purgekit plan | apply of a cleanup with batched steps (src/run/batched.ts).
 *
 *   plan   the ordinary dry run (one read-only transaction: what every step would remove), plus
 *          per batched step its primary key and how many batches that makes
 *   apply  guards and confirmation once, then batch after batch, each its own transaction with
 *          its journal row (purgekit.cleanup_journal); one line per batch on stderr (--json: one
 *          JSON line per batch on stdout and a summary line); an audit record per batch and one
 *          for the run. --resume continues the newest unfinished run of this policy and plan.
 */
import { ExitCode, RefusedError, UsageError } from '../core/errors.js';
import { connect, currentDatabase, describeTarget, redact } from '../db/connect.js';
import { batchedSteps, dryRunPlan } from '../plan/batchPlan.js';
import { checksumOf } from '../render/render.js';
import { AuditLog } from '../run/audit.js';
import { CleanupJournal } from '../run/batchJournal.js';
import { DEFAULT_BATCH_ROWS, runBatched, type BatchedResult, type BatchEvent } from '../run/batched.js';
import { batchKeys } from '../run/keys.js';
import { checkConfirmation, checkDatabase } from '../run/guards.js';
import { runJson } from '../run/output.js';
import { collectValues } from '../values.js';
import { runCommand, type ReviewedPlan, type RunOptions } from './run.js';
import { personalScrubber } from './runOutcome.js';
import type { Plan } from '../plan/nodes.js';

export interface BatchedOptions extends RunOptions {
  readonly reviewed: ReviewedPlan;
  /** Pause between batch transactions (replicas and other writers catch up). */
  readonly pauseMs: number;
  readonly resume: boolean;
  /** --json: apply prints one line per batch and a summary; plan one document. */
  readonly json: boolean;
  readonly stdout: (text: string) => void;
}

export function isBatched(plan: Plan): boolean {
  return batchedSteps(plan).length > 0;
}

export interface BatchedSummary {
  readonly kind: 'summary';
  readonly policy: string;
  readonly runId: string;
  readonly resumed: boolean;
  readonly outcome: 'committed' | 'failed' | 'interrupted';
  readonly steps: BatchedResult['steps'];
  readonly batches: number;
  readonly deleted: number;
  readonly maxBatchMs: number;
  readonly expectations: readonly { readonly name: string; readonly outcome: string; readonly detail: string | null }[];
  readonly error: { readonly code: string; readonly message: string; readonly step: number | null } | null;
  readonly exitCode: number;
  readonly durationMs: number;
}

export async function runBatchedCommand(command: 'plan' | 'apply' | 'verify', options: BatchedOptions): Promise<number> {
  const { policy, plan, fileText } = options.reviewed;
  if (command === 'verify') throw new UsageError(`${policy.name} is a ${policy.kind} policy: verify runs check policies (use plan or apply)`);
  if (options.rehearse) throw new UsageError(`${policy.name} has batched steps: --rehearse runs one transaction, which a batched cleanup is not; purgekit plan counts its rows and batches`);
  if (options.backup) throw new UsageError(`${policy.name} has batched steps: --backup is not supported with batches yet`);
  if (policy.afterCommit.length) throw new UsageError(`${policy.name} has batched steps and after_commit: not supported together yet`);
  if (options.resume && command !== 'apply') throw new UsageError('--resume goes with apply');
  if (command === 'plan') return planBatched(options);

  const started = Date.now();
  const values = collectValues(policy, options.values, options.pairs, options.escapedPairs);
  const scrub = personalScrubber(policy, values);
  const planSha256 = checksumOf(fileText).actual;
  const auditLog = AuditLog.open(options.auditLog);
  const conn = connect(options.connection, (message) => options.stderr(`notice: ${scrub(redact(message, conn.secrets))}`));
  const say = (line: string) => options.stderr(scrub(redact(line, conn.secrets)));
  try {
    const database = await currentDatabase(conn);
    const target = { ...conn.target, database };
    say(`purgekit apply ${policy.name} on ${describeTarget(target)} (batched)`);
    try {
      checkDatabase(policy.guard, database);
      await checkConfirmation(policy.guard, database, options.confirm, options.ask);
    } catch (e) {
      // A refusal is in the audit log too, as a single run's is.
      if (e instanceof RefusedError) auditLog.append({ version: 1, event: 'cleanup-refused', policy: policy.name, kind: policy.kind, planSha256, database: target, at: new Date().toISOString(), outcome: 'refused', exitCode: e.exitCode, error: e.message });
      throw e;
    }
    const keys = await batchKeys(conn.sql, plan);
    const journal = await CleanupJournal.open(conn.sql, policy.name, planSha256, options.resume, (runId, batches) =>
      say(`note: run ${runId} of ${policy.name} did not finish (${batches} batches committed); this run starts anew (apply --resume continues that one instead)`),
    );
    say(`journal: purgekit.cleanup_journal run ${journal.runId}${options.resume ? `, resuming after batch ${journal.lastBatch}` : ''}`);
    const auditBase = { version: 1, policy: policy.name, kind: policy.kind, planSha256, database: target, runId: journal.runId };
    const onBatch = (e: BatchEvent) => {
      auditLog.append({ ...auditBase, event: 'cleanup-batch', at: new Date().toISOString(), ...e });
      if (options.json) options.stdout(`${JSON.stringify(e)}\n`);
      say(`  step ${e.step} (${e.table}) batch ${e.batch}${e.pass > 1 ? ` (pass ${e.pass})` : ''}: ${e.rows} rows${e.limit ? ` of ${e.limit}` : ''} in ${e.ms} ms; ${e.stepRows} so far`);
    };
    const result = await runBatched({
      sql: conn.sql,
      plan,
      values,
      settings: options,
      journal,
      keys,
      pauseMs: options.pauseMs,
      ...(options.interrupt ? { interrupt: options.interrupt } : {}),
      onBatch,
      say,
    });
    const interrupted = result.failure?.code === 'INTERRUPTED';
    const summary: BatchedSummary = {
      kind: 'summary',
      policy: policy.name,
      runId: journal.runId,
      resumed: options.resume,
      outcome: result.exitCode === ExitCode.ok ? 'committed' : interrupted ? 'interrupted' : 'failed',
      steps: result.steps,
      batches: result.batches,
      deleted: result.steps.reduce((n, s) => n + s.rows, 0),
      maxBatchMs: result.maxBatchMs,
      expectations: (result.final?.report ?? []).filter((r) => r.item.kind === 'expect').map((r) => ({ name: r.target ?? '', outcome: r.outcome, detail: r.detail })),
      error: result.failure ? { code: result.failure.code, message: scrub(redact(result.failure.message, conn.secrets)), step: result.failure.step ?? null } : null,
      exitCode: result.exitCode,
      durationMs: Date.now() - started,
    };
    if (result.exitCode === ExitCode.ok) await journal.finished(result.exitCode);
    auditLog.append({ ...auditBase, event: 'cleanup-summary', finishedAt: new Date().toISOString(), ...summary });
    if (options.json) options.stdout(`${JSON.stringify(summary)}\n`);
    for (const line of describeSummary(summary)) say(line);
    return result.exitCode;
  } finally {
    auditLog.close();
    await conn.sql.end({ timeout: 5 });
  }
}

function describeSummary(s: BatchedSummary): string[] {
  const lines = s.steps.map((st) => `  step ${st.step} (${st.table}): ${st.outcome}, ${st.rows} rows${st.batched ? ` in ${st.batches} ${st.batches === 1 ? 'batch' : 'batches'}${st.passes > 1 ? `, ${st.passes} passes` : ''}` : ''}`);
  for (const e of s.expectations) lines.push(`  expect ${e.name}: ${e.outcome}${e.detail ? ` (${e.detail})` : ''}`);
  const head =
    s.outcome === 'committed'
      ? `COMMITTED in ${s.batches} batch transactions: ${s.deleted} rows deleted; the longest batch took ${s.maxBatchMs} ms`
      : `${s.outcome === 'interrupted' ? 'INTERRUPTED' : 'FAILED'} (exit ${s.exitCode}): ${s.error?.message ?? ''}. The batches before it are committed (${s.deleted} rows, purgekit.cleanup_journal run ${s.runId}); apply --resume continues from there`;
  return [head, ...lines];
}

/** The dry run, and per batched step how many batches its rows make. */
async function planBatched(options: BatchedOptions): Promise<number> {
  const { plan } = options.reviewed;
  const conn = connect(options.connection);
  try {
    await currentDatabase(conn);
    await batchKeys(conn.sql, plan);
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
  const { output, exitCode } = await runCommand('plan', { ...options, reviewed: { ...options.reviewed, plan: dryRunPlan(plan) } });
  const batched = batchedSteps(plan).map((step) => {
    const rows = output.steps.find((s) => s.step === step.step)?.rows ?? 0;
    const per = step.batch!.rows ?? DEFAULT_BATCH_ROWS;
    return { step: step.step, rows, batchRows: per, batches: Math.ceil(rows / per), adaptive: step.batch!.maxBatchMs !== undefined };
  });
  for (const b of batched) {
    options.stderr(`  step ${b.step}: ${b.rows} rows in ${b.batches} ${b.batches === 1 ? 'batch' : 'batches'} of ${b.batchRows}${b.adaptive ? ' (the first batch\'s size; then adapted to max_batch_ms)' : ''}, one transaction each`);
  }
  if (options.json) options.stdout(`${JSON.stringify({ ...runJson(output), batched }, null, 2)}\n`);
  return exitCode;
}
