/**
 * One batch of --subjects-from: its subjects in ONE transaction through the single-subject
 * runner (runCommand with a BatchRun), every check of a single run applied to the batch.
 *
 *   committed        every subject found is committed; a subject whose lookups found nothing
 *                    is reported not found (and journaled so, in the same transaction)
 *   transient        (exit 7: lock or statement timeout, deadlock, serialization, connection
 *                    lost before COMMIT) retried whole with backoff, --retries times at most
 *   subject guard    the subjects that failed it on their own (several matches, preserved) are
 *                    reported failed by line; the others are run again as a batch without them
 *   any other check  (an expectation, max_rows, unplanned changes, an error of a step): it
 *                    cannot be pinned on one subject, so each subject of the batch is run again
 *                    in its own transaction, and only the ones that fail alone are failed (not
 *                    when the answer to COMMIT was lost: the batch may have committed; its
 *                    subjects are failed, exit 1, and the message says how to find out)
 */
import { join } from 'node:path';
import { kebab } from '../core/names.js';
import { ExitCode, guardExitCode, guardOf } from '../core/errors.js';
import { runCommand, type ReviewedPlan } from '../commands/run.js';
import { auditParams, personalScrubber } from '../commands/runOutcome.js';
import { collectValues } from '../values.js';
import type { AuditLog } from '../run/audit.js';
import type { Subject } from './subjects.js';
import type { Journal } from './journal.js';
import { batchLookup, type BatchMember, type BatchTally } from './batchLookup.js';
import type { VolumeOptions } from './batches.js';

export type SubjectOutcome = 'committed' | 'not-found' | 'read-only' | 'failed' | 'skipped' | 'done-before';

export interface SubjectResult {
  readonly line: number;
  readonly outcome: SubjectOutcome;
  readonly exitCode: number;
  readonly tries: number;
  /** The batch (1-based, in the order they ran) whose transaction held it; null when not run. */
  readonly batch: number | null;
  /** Rows its lookups matched; null when not run. */
  readonly matched: number | null;
  /** Rows deleted by its transaction when it was alone in it; null in a batch of several (see the batch line). */
  readonly deleted: number | null;
  readonly error: string | null;
}

export interface BatchResult {
  readonly kind: 'batch';
  readonly batch: number;
  readonly lines: readonly number[];
  readonly outcome: 'committed' | 'not-found' | 'read-only' | 'failed';
  readonly exitCode: number;
  readonly tries: number;
  readonly deleted: number;
  readonly durationMs: number;
  readonly error: string | null;
  /** apply --backup: the batch's backup directory (restorable on its own). */
  readonly backup: string | null;
  /** A failed batch's subjects that run again: without the ones the guard refused, or each alone. */
  readonly rerun: 'without-refused' | 'one-per-transaction' | null;
}

export interface BatchContext {
  readonly command: 'plan' | 'apply';
  readonly options: VolumeOptions;
  readonly reviewed: ReviewedPlan;
  readonly journal: Journal | undefined;
  readonly auditLog: AuditLog | undefined;
  /** The --subjects-from run's id, in every batch's audit records. */
  readonly runId: string;
  readonly label: string;
  /** Subjects not run: the run stopped (a signal, the guard, --stop-on-error). */
  readonly skip: (subjects: readonly Subject[]) => void;
  /** A message that is not about one batch (a retry). */
  readonly note: (line: string) => void;
  /** A batch has ended (committed or not); its subjects' results. */
  readonly ended: (batch: BatchResult, subjects: readonly SubjectResult[]) => void;
  /** The next batch's number. */
  next: number;
  /** A signal or the policy's guard: no more batches. */
  stopped: boolean;
  /** The guard refused the database: why. */
  refused?: string;
}

/** The subjects of one batch, until each has an outcome (a batch failed by some is run again without them). */
export async function settleBatch(ctx: BatchContext, subjects: readonly Subject[]): Promise<void> {
  if (subjects.length === 0) return;
  if (ctx.stopped) return ctx.skip(subjects);
  const members = subjects.map((s) => ({ line: s.line, values: valuesOf(ctx, s) }));
  const { batch, tally, outcome } = await attempt(ctx, members);
  const { output, exitCode } = outcome;
  const deleted = output.tables.reduce((n, t) => n + t.deleted, 0);
  const matched = (line: number) => tally.matched.get(line) ?? null;
  // Exit 8: committed, side effects after COMMIT pending (purgekit outbox run finishes them): its subjects are committed.
  const ok = exitCode === ExitCode.ok || (exitCode === ExitCode.committedPending && output.outcome === 'committed');
  const batchOutcome: BatchResult['outcome'] = !ok ? 'failed' : output.outcome === 'nothing-matched' ? 'not-found' : output.outcome === 'committed' ? 'committed' : 'read-only';
  const error = exitCode === ExitCode.ok ? null : (output.error?.message ?? `exit ${exitCode}`);
  const result: BatchResult = {
    kind: 'batch', batch: batch.number, lines: subjects.map((s) => s.line), outcome: batchOutcome, exitCode, tries: batch.tries, deleted,
    durationMs: output.durationMs, error, backup: ok && output.backup ? output.backup.dir : null, rerun: null,
  };
  const one = subjects.length === 1;
  const each = (s: Subject, o: SubjectOutcome, code = exitCode, why = error): SubjectResult => ({
    line: s.line, outcome: o, exitCode: code, tries: batch.tries, batch: batch.number, matched: matched(s.line), deleted: one && o !== 'failed' ? deleted : o === 'not-found' ? 0 : null, error: why,
  });
  if (ok) {
    const found = (s: Subject) => (matched(s.line) ?? 0) > 0 && batchOutcome !== 'not-found';
    const results = subjects.map((s) => each(s, found(s) ? (batchOutcome === 'committed' ? 'committed' : 'read-only') : 'not-found'));
    ctx.ended(result, results);
    // A batch that committed journaled its lines in its own transaction; one that found nobody did not commit.
    if (ctx.journal && batchOutcome !== 'committed') {
      await record(ctx, results.filter((r) => r.outcome === 'not-found'), members);
    }
    return;
  }
  if (output.outcome === 'refused') {
    ctx.stopped = true;
    ctx.refused = output.error?.message ?? 'refused';
  }
  if (exitCode === ExitCode.interrupted || exitCode === ExitCode.terminated) ctx.stopped = true;
  // The subject guard failed some subjects on their own: they fail, the others run again without them.
  if (tally.refused.size > 0 && guardOf(output.error?.code ?? '') !== undefined) {
    const refused = subjects.filter((s) => tally.refused.has(s.line));
    const failed = refused.map((s) => {
      const why = tally.refused.get(s.line)!;
      return each(s, 'failed', guardExitCode(guardOf(why.code)!), why.message);
    });
    const rest = subjects.filter((s) => !tally.refused.has(s.line));
    ctx.ended({ ...result, rerun: rest.length ? 'without-refused' : null }, failed);
    await record(ctx, failed, members);
    await settleBatch(ctx, rest);
    return;
  }
  // Another check failed: it cannot be pinned on one subject of several; each runs again alone.
  // Not after a COMMIT whose answer was lost (outcome unknown: the batch may have committed).
  if (!one && !ctx.stopped && exitCode !== ExitCode.transient && output.outcome !== 'unknown') {
    ctx.ended({ ...result, rerun: 'one-per-transaction' }, []);
    for (const s of subjects) await settleBatch(ctx, [s]);
    return;
  }
  const failed = subjects.map((s) => each(s, 'failed'));
  ctx.ended(result, failed);
  if (output.outcome !== 'refused') await record(ctx, failed, members);
}

/** A subject's values as a single run takes them: the command line's flags and the line's params. */
function valuesOf(ctx: BatchContext, s: Subject) {
  const values = { ...ctx.options.values, ...Object.fromEntries([...s.values].map(([k, v]) => [kebab(k), v])) };
  return collectValues(ctx.reviewed.policy, values, ctx.options.pairs, ctx.options.escapedPairs);
}

/** The subject as the audit log names it (and the journal, as JSON): its params, personal ones HMAC'd. */
function paramsOf(ctx: BatchContext, member: BatchMember): Record<string, string> {
  return ctx.auditLog ? auditParams(ctx.auditLog, ctx.reviewed.policy, new Map([...member.values.params].sort(([a], [b]) => a.localeCompare(b)))) : {};
}

async function record(ctx: BatchContext, results: readonly SubjectResult[], members: readonly BatchMember[]): Promise<void> {
  if (!ctx.journal || results.length === 0) return;
  const rows = results.map((r) => ({ line: r.line, subject: JSON.stringify(paramsOf(ctx, members.find((m) => m.line === r.line)!)), outcome: r.outcome as 'not-found' | 'failed', exitCode: r.exitCode }));
  await ctx.journal.recorded(rows).catch((e: Error) => ctx.note(`warning: ${ctx.label}: lines ${rows.map((r) => r.line).join(', ')} not recorded in purgekit.journal (${e.message}); --resume will run them again`));
}

/** One transaction for the batch, retried with backoff while it fails on a transient error. */
async function attempt(ctx: BatchContext, members: readonly BatchMember[]) {
  const { options, reviewed, journal } = ctx;
  const number = ctx.next++;
  const first = members[0]!;
  const scrubbers = members.map((m) => personalScrubber(reviewed.policy, m.values));
  const subjects = members.map((m) => ({ line: m.line, params: paramsOf(ctx, m) }));
  let tries = 0;
  for (;;) {
    tries++;
    const tally: BatchTally = { matched: new Map(), refused: new Map() };
    const lines: string[] = [];
    const outcome = await runCommand(ctx.command, {
      ...options,
      reviewed,
      values: {},
      stderr: (l) => lines.push(l),
      ...(options.backup && ctx.command === 'apply' ? { backup: join(options.backup, `batch-${String(number).padStart(6, '0')}-line-${first.line}${tries > 1 ? `-try-${tries}` : ''}`) } : {}),
      ...(journal
        ? {
            inTransaction: (tx) =>
              journal.committed(tx, number, subjects.map((s) => ({ line: s.line, subject: JSON.stringify(s.params), outcome: (tally.matched.get(s.line) ?? 0) > 0 ? ('committed' as const) : ('not-found' as const) }))),
          }
        : {}),
      batch: {
        values: first.values,
        scrub: (text) => scrubbers.reduce((t, s) => s(t), text),
        runId: ctx.runId,
        audit: { batch: number, subjectsFile: ctx.label, ...(journal ? { journalRunId: journal.runId } : {}), subjects },
        beforeNode: batchLookup(reviewed.plan, members, first.values.forceMulti, tally),
      },
    });
    if (outcome.exitCode !== ExitCode.transient || tries > options.retries || options.interrupt?.aborted) return { batch: { number, tries }, tally, outcome };
    const wait = options.backoffMs * 2 ** (tries - 1);
    ctx.note(`${ctx.label}: batch ${number} (lines ${first.line}-${members.at(-1)!.line}): transient failure (${outcome.output.error?.message ?? 'exit 7'}); retry ${tries} of ${options.retries} in ${wait} ms`);
    await new Promise((r) => setTimeout(r, wait));
  }
}
